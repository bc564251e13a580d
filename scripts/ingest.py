"""Rule ingest: probe, checksum and tags of one library file -> source.json."""

from mirflow.ingest import ingest_track
from mirflow.logs import log_to_file
from mirflow.records import run_stage, write_result

log = log_to_file(snakemake.log[0])
result = run_stage(
    "ingest",
    [],
    lambda: ingest_track(
        snakemake.params.source,
        snakemake.params.relpath,
        snakemake.wildcards.track,
        tuple(snakemake.params.various_artists),
        snakemake.params.max_duration_s,
    ),
    identity={"track": snakemake.wildcards.track, "source": snakemake.params.relpath},
)
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
