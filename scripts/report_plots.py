"""Rule report_plots: the report's figures of the dataset -> report/*.png."""

from pathlib import Path

from mirflow.logs import log_to_file
from mirflow.report_plots import draw_all

log = log_to_file(snakemake.log[0])
written = draw_all(snakemake.params.output_root, Path(snakemake.output[0]).parent)
log.info("%d figures", len(written))
