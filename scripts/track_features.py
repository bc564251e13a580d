"""Rule track_features: loudness, spectral, chroma, key and rhythm statistics -> features.json."""

from mirflow.feature_records import track_features
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result

log = log_to_file(snakemake.log[0])
upstream = [read_result(snakemake.input.source), read_result(snakemake.input.rhythm)]
result = run_stage(
    "features",
    upstream,
    lambda: track_features(
        snakemake.params.source,
        snakemake.input.beats,
        upstream[1].data.get("onsets", []),
        snakemake.params.enabled,
    ),
)
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
