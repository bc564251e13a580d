"""Rule stems: a track's stems (separated or from the library), checked -> stems/ + stems.json."""

from pathlib import Path

from mirflow.logs import log_to_file
from mirflow.records import run_stage, write_result
from mirflow.stems import collect_stems

log = log_to_file(snakemake.log[0])
Path(snakemake.output.stems).mkdir(parents=True, exist_ok=True)  # a target even when failed
result = run_stage(
    "stems",
    [],
    lambda: collect_stems(
        snakemake.wildcards.track,
        snakemake.input.batch[0] if snakemake.input.batch else None,
        snakemake.params.library_stems,
        snakemake.output.stems,
        snakemake.params.separation,
    ),
)
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
