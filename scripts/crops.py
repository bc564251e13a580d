"""Rule crops: beat-aligned crops of the mix (and stems) -> crops/ + crops.json."""

from pathlib import Path

from mirflow.crops import CropOptions, crop_track
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result
from mirflow.stems import stems_of

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.crops)
out_dir.mkdir(parents=True, exist_ok=True)
upstream = [read_result(snakemake.input.source), read_result(snakemake.input.rhythm)]
stems_record, stems = stems_of(snakemake.input.get("stems_record"), snakemake.input.get("stems"))
upstream += [stems_record] if stems_record else []
result = run_stage(
    "crops",
    upstream,
    lambda: crop_track(
        snakemake.wildcards.track,
        snakemake.params.source,
        snakemake.input.beats,
        stems,
        CropOptions(**snakemake.params.options),
        out_dir,
    ),
)
log.info(
    "%s: %s, %d crops %s", snakemake.wildcards.track, result.status, len(result.crops), result.error
)
write_result(snakemake.output.record, result)
