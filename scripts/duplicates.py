"""Rule duplicates: the library's duplicate groups -> duplicates.json."""

from mirflow.atomic import write_json
from mirflow.fingerprint import duplicates_record
from mirflow.logs import log_to_file

log = log_to_file(snakemake.log[0])
folder = f"{snakemake.params.output_root}/tracks"
tracks = snakemake.params.tracks
record = duplicates_record(
    {track: f"{folder}/{track}/fingerprint.json" for track in tracks},
    {track: f"{folder}/{track}/source.json" for track in tracks},
)
for group in record["groups"]:
    log.info("duplicates: %s (original) = %s", group[0], ", ".join(group[1:]))
log.info("%d groups of copies among %d tracks", len(record["groups"]), len(tracks))
write_json(snakemake.output.groups, record)
