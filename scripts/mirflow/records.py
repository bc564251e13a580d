"""The one shape every per-track stage result has, and how a failure travels.

Each stage writes one JSON record per track (``source.json``,
``rhythm.json``, ``features.json``, ...). Assemble merges the ``track`` fields
of all records into the track's ``.INFO`` and each ``crops[name]`` into that
crop's ``.INFO``; ``data`` is for later stages only. A later model pass plugs
in by writing a record of this shape: assemble needs no change. ``provenance``
says what made the fields (tools, model files, parameters; mirflow.provenance).

A track whose content is bad fails in the first stage that notices
(``status: failed``); every later stage sees that and writes a ``skipped``
record carrying the same cause, so the run finishes, the summary names the
cause, and a re-run is a no-op until the source file changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mirflow.atomic import read_json, write_json
from mirflow.errors import TrackError

Status = Literal["ok", "failed", "skipped"]


@dataclass
class StageResult:
    stage: str
    status: Status = "ok"
    error: str = ""  # the cause, one line, empty when ok
    track: dict[str, Any] = field(default_factory=dict)  # fields for the track .INFO
    crops: dict[str, dict[str, Any]] = field(default_factory=dict)  # crop name -> .INFO fields
    data: dict[str, Any] = field(default_factory=dict)  # for later stages, not for .INFO
    #: What made the fields (mirflow.provenance): the .INFO's ``provenance[stage]``.
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def write_result(path: str | os.PathLike, result: StageResult) -> None:
    write_json(path, asdict(result))


def read_result(path: str | os.PathLike) -> StageResult:
    raw = read_json(path)
    return StageResult(**raw)


def first_failure(results: list[StageResult]) -> StageResult | None:
    """The first record that is not ok, i.e. where the track stopped."""
    return next((r for r in results if not r.ok), None)


def one_line(text: str) -> str:
    """``text`` with control characters escaped (a newline in a file name reads
    ``\\n``), so a cause is one line in the summary, the manifest and a log."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")  # what str.splitlines() splits on


def run_stage(
    stage: str,
    upstream: list[StageResult],
    compute: Callable[[], StageResult],
    identity: dict[str, Any] | None = None,
) -> StageResult:
    """Run ``compute`` unless an upstream record failed; turn a TrackError into a record.

    ``identity`` (e.g. the track's source path) goes into the record whatever
    happens, so a failed track's .INFO still says which file it is.
    Any other exception is a bug or an environment fault (disk full, missing
    model): it propagates and fails the job, so a re-run retries it.
    """
    failed = first_failure(upstream)
    if failed is not None:
        result = StageResult(stage=stage, status="skipped", error=failed.error)
    else:
        try:
            result = compute()
        except TrackError as exc:
            result = StageResult(stage=stage, status="failed", error=one_line(f"{stage}: {exc}"))
    result.track = {**(identity or {}), **result.track}
    return result
