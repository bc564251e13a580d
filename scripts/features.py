"""Rule features: features of the track and of each of its crops -> features.json."""

from mirflow.feature_records import features_record
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result
from mirflow.stems import stems_of
from mirflow.time_series import write_empty_table

log = log_to_file(snakemake.log[0])
upstream = [read_result(snakemake.input.source), read_result(snakemake.input.rhythm)]
crops = (
    read_result(snakemake.input.crops_record) if "crops_record" in snakemake.input.keys() else None
)
stems_record, stems = stems_of(snakemake.input.get("stems_record"), snakemake.input.get("stems"))
upstream += [stems_record] if stems_record else []
result = run_stage(
    "features",
    upstream + ([crops] if crops else []),
    lambda: features_record(
        snakemake.params.source,
        snakemake.input.beats,
        upstream[1].data.get("onsets", []),
        snakemake.params.enabled,
        crops_dir=snakemake.input.get("crops"),
        crops=crops.crops if crops else None,
        stems=stems,
        tempo_defined=upstream[1].track.get("bpm_is_defined", True),
        track_features=snakemake.params.track_features,
        time_series_path=snakemake.output.get("time_series"),
    ),
)
if "time_series" in snakemake.output.keys() and not result.track.get("time_series_file"):
    # Skipped or failed: the output must exist all the same (assemble ignores it).
    write_empty_table(snakemake.output.time_series)
log.info(
    "%s: %s, track features %s, %d crops %s",
    snakemake.wildcards.track,
    result.status,
    bool(result.track),
    len(result.crops),
    result.error,
)
write_result(snakemake.output.record, result)
