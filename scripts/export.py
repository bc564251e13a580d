"""Rule export: training formats of the dataset's crops -> exports/ + exports.json."""

from pathlib import Path

from mirflow.atomic import write_json
from mirflow.exports import export_dataset
from mirflow.logs import log_to_file

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.exports)
out_dir.mkdir(parents=True, exist_ok=True)
counts = export_dataset(
    [Path(d) for d in snakemake.input.datasets], out_dir, snakemake.params.formats,
    snakemake.params.filters,
)  # fmt: skip
write_json(snakemake.output.record, counts)
log.info("exported %s", counts)
