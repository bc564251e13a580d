"""Rule assemble: merge a track's records into its dataset folder of .INFO sidecars."""

from mirflow.assemble import assemble_track
from mirflow.fingerprint import duplicates_result
from mirflow.logs import log_to_file
from mirflow.records import read_result

log = log_to_file(snakemake.log[0])
results = [read_result(path) for path in snakemake.input.records]
if snakemake.input.duplicates:  # read now: the param is the last run's view
    results.append(
        duplicates_result(snakemake.input.duplicates[0], snakemake.wildcards.track, results)
    )
info = assemble_track(
    snakemake.wildcards.track,
    results,
    beats_path=snakemake.input.beats,
    crops_dir=snakemake.input.crops[0] if snakemake.input.crops else None,
    dest=snakemake.output.dataset,
    stems_dir=snakemake.input.stems[0] if snakemake.input.stems else None,
    file_dirs=list(snakemake.input.files),
    source=(snakemake.params.source, snakemake.params.relpath),
    track_files=[snakemake.input.time_series] if "time_series" in snakemake.input.keys() else [],
)
log.info("%s: %s, %d crops %s", info["track"], info["status"], info["crop_count"], info["error"])
