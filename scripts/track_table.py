"""Rule track_table: write the library's track table (id -> source path)."""

import pandas as pd

from mirflow.atomic import atomic_path
from mirflow.logs import log_to_file

log = log_to_file(snakemake.log[0])
table = pd.DataFrame(snakemake.params.tracks, columns=["track", "source"])
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
log.info("%d tracks in %s", len(table), snakemake.params.input_root)
