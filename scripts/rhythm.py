"""Rule rhythm: beats, downbeats, tempo and onsets -> <track>.BEATS + rhythm.json."""

import numpy as np

from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result
from mirflow.rhythm import RhythmAnalyzer, analyze_track, write_beats

log = log_to_file(snakemake.log[0])
analyzer = RhythmAnalyzer(
    beats_per_bar=tuple(snakemake.params.beats_per_bar),
    onset_threshold=snakemake.params.onset_threshold,
)
result = run_stage(
    "rhythm",
    [read_result(snakemake.input.source)],
    lambda: analyze_track(analyzer, snakemake.params.source, snakemake.output.beats),
)
if not result.ok:
    write_beats(snakemake.output.beats, np.empty((0, 2)))  # the rule's file, empty
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
