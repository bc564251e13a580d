"""Rules <pass>_batch: one resident model runs over a batch of tracks -> passes/<pass>/<batch>/."""

from pathlib import Path

from mirflow.logs import log_to_file
from mirflow.passes import model_loads, run_pass

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.batch)
out_dir.mkdir(parents=True, exist_ok=True)
stage = snakemake.params.stage
results = run_pass(
    stage,
    snakemake.params.options,
    snakemake.params.models_dir,
    snakemake.params.members,
    out_dir,
    snakemake.wildcards.batch,
)
failed = {track: r.error for track, r in results.items() if r.status == "failed"}
log.info("%s: %d tracks, %d failed %s", stage, len(results), len(failed), failed or "")
log.info("model_loads=%d", model_loads(stage))
