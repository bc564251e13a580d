"""Rule crops: beat-aligned crops of the mix (and stems) -> crops/ + crops.json."""

from pathlib import Path

from mirflow.crops import CropOptions, crop_track
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result
from mirflow.stems import stem_paths

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.crops)
out_dir.mkdir(parents=True, exist_ok=True)
upstream = [read_result(snakemake.input.source), read_result(snakemake.input.rhythm)]
stems = {}
if "stems_record" in snakemake.input.keys():
    upstream.append(read_result(snakemake.input.stems_record))
    stems = stem_paths(upstream[-1], snakemake.input.stems)
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
