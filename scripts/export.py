"""Rule export: training formats of the dataset's crops -> exports/ + exports.json."""

from pathlib import Path

from mirflow.atomic import write_json
from mirflow.export import export_dataset
from mirflow.fingerprint import groups_by_track
from mirflow.logs import log_to_file
from mirflow.summary import finished_datasets, read_track_ids

log = log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.exports)
out_dir.mkdir(parents=True, exist_ok=True)
datasets = [Path(d) for d in snakemake.input.datasets]
if "merged_datasets" in snakemake.params.keys():
    # A merge of shards: the datasets on disk now (finished tracks only).
    output_root = Path(snakemake.output.record).parent
    datasets, _ = finished_datasets(output_root, read_track_ids(snakemake.input.table))
counts = export_dataset(
    datasets,
    out_dir,
    snakemake.params.formats,
    snakemake.params.filters,
    split=snakemake.params.split,
    drop_duplicates=snakemake.params.drop_duplicates,
    path_root=snakemake.params.path_root,
    # The library's current groups of copies (a .INFO may be a run behind).
    duplicates=groups_by_track(snakemake.input.duplicates[0])
    if snakemake.input.duplicates
    else None,
)
write_json(snakemake.output.record, counts)
log.info("exported %s", counts)
