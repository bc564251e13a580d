"""Rule fingerprint: the track's Chromaprint fingerprint -> fingerprint.json."""

from mirflow.fingerprint import fingerprint_result
from mirflow.logs import log_to_file
from mirflow.records import read_result, write_result

log = log_to_file(snakemake.log[0])
result = fingerprint_result(snakemake.params.source, read_result(snakemake.input.source))
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
