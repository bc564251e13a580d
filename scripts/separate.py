"""Rule separate: one resident model separates a batch of tracks -> separation/<batch>/."""

from pathlib import Path

from mirflow.logs import log_to_file
from mirflow.separation.batch import loads_in_this_process, run_batch

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.batch)
out_dir.mkdir(parents=True, exist_ok=True)
model, results = run_batch(
    snakemake.params.members, out_dir, snakemake.params.separation, snakemake.params.models_dir
)
failed = {track: r.error for track, r in results.items() if not r.ok}
log.info("%s: %d tracks, %d failed %s", model, len(results), len(failed), failed or "")
log.info("model_loads=%d", loads_in_this_process())
