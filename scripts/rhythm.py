"""Rule rhythm: beats, downbeats, tempo and onsets -> <track>.BEATS + rhythm.json."""

import numpy as np

from mirflow.devices import resolve_device
from mirflow.logs import log_to_file
from mirflow.records import read_result, run_stage, write_result
from mirflow.rhythm import RhythmAnalyzer, analyze_track, write_beats

log = log_to_file(snakemake.log[0])


def analyze():
    # Built only when the track gets this far (upstream ok).
    analyzer = RhythmAnalyzer(
        beats_per_bar=tuple(snakemake.params.beats_per_bar),
        onset_threshold=snakemake.params.onset_threshold,
        backend=snakemake.params.backend,
        checkpoint=snakemake.params.checkpoint,
        device=resolve_device(snakemake.params.device, "tracking beats", snakemake.threads),
    )
    return analyze_track(analyzer, snakemake.params.source, snakemake.output.beats)


result = run_stage("rhythm", [read_result(snakemake.input.source)], analyze)
if not result.ok:
    write_beats(snakemake.output.beats, np.empty((0, 2)))  # the rule's file, empty
log.info("%s: %s %s", snakemake.wildcards.track, result.status, result.error)
write_result(snakemake.output.record, result)
