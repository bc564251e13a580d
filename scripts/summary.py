"""Rule summary: summary.json, manifest.parquet, and a sweep of stale temporaries."""

import shutil
from pathlib import Path

from mirflow.atomic import read_json, sweep_temporaries
from mirflow.logs import log_to_file
from mirflow.summary import (
    finished_datasets,
    format_summary,
    read_track_ids,
    summarize,
    write_summary,
)

log = log_to_file(snakemake.log[0])
# Every other job of the run has finished: what a killed writer left can go.
for leftover in sweep_temporaries(snakemake.params.output_root):
    log.warning("removed a temporary a killed job left: %s", leftover)
# Separation batches are temporary: one still here was cut short by a kill.
stale_batches = Path(snakemake.params.output_root) / "separation"
if stale_batches.is_dir():
    shutil.rmtree(stale_batches)
datasets, pending = list(snakemake.input.datasets), []
if "merged_datasets" in snakemake.params.keys():
    # A merge of shards: the datasets on disk now, the other tracks pending.
    datasets, pending = finished_datasets(
        snakemake.params.output_root, read_track_ids(snakemake.input.table)
    )
summary, manifest = summarize(
    snakemake.params.output_root,
    snakemake.params.input_root,
    datasets,
    notes=snakemake.params.notes,
    exports=read_json(snakemake.input.exports[0]) if snakemake.input.exports else None,
    pending=pending,
    duplicates=read_json(snakemake.input.duplicates[0]) if snakemake.input.duplicates else None,
)
write_summary(summary, manifest, snakemake.output.summary, snakemake.output.manifest)
log.info("\n%s", format_summary(summary))
