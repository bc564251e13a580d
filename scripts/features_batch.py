"""Rule features_batch: a batch of tracks' features and time series -> passes/features/<batch>/."""

from mirflow.feature_records import features_batch
from mirflow.logs import log_to_file

log = log_to_file(snakemake.log[0])
results = features_batch(
    snakemake.params.members,
    snakemake.params.enabled,
    snakemake.params.track_features,
    snakemake.output.batch,
    snakemake.wildcards.batch,
)
failed = {track: r.error for track, r in results.items() if r.status == "failed"}
log.info("features: %d tracks, %d failed %s", len(results), len(failed), failed or "")
