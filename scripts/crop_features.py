"""Rule crop_features: the track features computed on every crop -> crop_features.json."""

from mirflow.feature_records import crop_features
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result

log = log_to_file(snakemake.log[0])
crops = read_result(snakemake.input.crops_record)
rhythm = read_result(snakemake.input.rhythm)
result = run_stage(
    "crop_features",
    [crops, rhythm],
    lambda: crop_features(
        snakemake.input.crops, crops.crops, rhythm.data.get("onsets", []), snakemake.params.enabled
    ),
)
log.info(
    "%s: %s, %d crops %s", snakemake.wildcards.track, result.status, len(result.crops), result.error
)
write_result(snakemake.output.record, result)
