"""The memory a job reserves: its rule's fixed part plus a part per minute of audio.

A job's peak is a fixed cost (the interpreter, the libraries, a model) plus,
in a stage that holds a track's arrays at once, a part that grows with the
track's length. ``config["resources"]["mem_mb"]`` holds the fixed parts and
``mem_mb_per_minute`` the growth (both measured by
``benchmarks/long_tracks.py``, whose peaks are the job's script, as
Snakemake's benchmark files record them), so the local scheduler and SLURM
are told what the job will use, not a guess sized for a song. A job of
several tracks holds one track at a time: its longest counts. Where each job
runs in a Snakemake process of its own (a cluster executor: SLURM), that
process's memory (:data:`JOB_PROCESS_MB`) is added; on one machine the jobs
share the one Snakemake process, so nothing is.

A retry asks for ``attempt`` times as much: SLURM kills a job that passes its
request, and the same request would be killed again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

#: Memory of a rule the config does not name (summary, export, report).
DEFAULT_MB = 2000

#: The Snakemake process that runs each job on a cluster node (measured: ~250 MB;
#: asked for 200 MB in all, every assemble job on the test cluster was killed).
JOB_PROCESS_MB = 300

#: Minutes of audio a rule that works a window at a time holds at most: the
#: features' window and its context on either side
#: (mirflow.feature_windows.WINDOW_S, CONTEXT_S; a test keeps them equal).
HELD_MINUTES = {"features_batch": (300.0 + 2 * 15.0) / 60.0}


def track_minutes(source_record: str | os.PathLike) -> float:
    """The track's probed length in minutes, from ingest's ``source.json``;
    0 while the record is not there yet (a dry run, before ingest)."""
    try:
        with open(source_record, encoding="utf-8") as handle:
            seconds = (json.load(handle).get("track") or {}).get("duration_s")
    except (OSError, ValueError):
        return 0.0
    return float(seconds or 0.0) / 60.0


def job_mem_mb(
    rule: str,
    minutes: float,
    resources: dict[str, Any],
    attempt: int = 1,
    own_process: bool = False,
) -> int:
    """MB that a job of ``rule`` reserves when its longest track is ``minutes`` long;
    ``own_process``: the job runs in a Snakemake process of its own (a cluster)."""
    base = resources.get("mem_mb", {}).get(rule, DEFAULT_MB)
    growth = resources.get("mem_mb_per_minute", {}).get(rule, 0)
    held = min(max(minutes, 0.0), HELD_MINUTES.get(rule, math.inf))
    process = JOB_PROCESS_MB if own_process else 0
    return int(math.ceil((base + growth * held + process) * max(attempt, 1)))


def longest_minutes(source_records: Iterable[str | os.PathLike]) -> float:
    """The longest of the tracks whose ``source.json`` files are given (0 for none)."""
    return max((track_minutes(path) for path in source_records), default=0.0)
