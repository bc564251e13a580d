"""Rule separate: one resident model separates a batch of tracks -> separation/<batch>/."""

from pathlib import Path

from mirflow.logs import log_to_file
from mirflow.separation.batch import make_backend, separate_batch

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.batch)
out_dir.mkdir(parents=True, exist_ok=True)
backend = make_backend(snakemake.params.separation, snakemake.params.models_dir, out_dir)
results = separate_batch(backend, snakemake.params.members, out_dir, snakemake.params.separation)
failed = {track: r.error for track, r in results.items() if not r.ok}
log.info("%s: %d tracks, %d failed %s", backend.name, len(results), len(failed), failed or "")
