"""Batches for the resident-model rules: which tracks one job takes.

Only tracks whose results are missing or stale are batched, so a finished
track is never computed again, and a growing library adds batches of its new
tracks instead of reshuffling old ones. A batch is named by a hash of its
members, so the same pending set always makes the same batches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def make_batches(pending: list[str], batch_size: int) -> dict[str, list[str]]:
    """``{batch id: [track, ...]}``, at most ``batch_size`` tracks each."""
    ordered = sorted(pending)
    batches = {}
    for start in range(0, len(ordered), batch_size):
        members = ordered[start : start + batch_size]
        digest = hashlib.sha1("\n".join(members).encode()).hexdigest()[:10]
        batches[f"b{digest}"] = members
    return batches


def stems_are_current(output_root: str | os.PathLike, track: str) -> bool:
    """The track's stems (folder and record) exist, newer than its source record."""
    folder = Path(output_root) / "tracks" / track
    if not (folder / "stems").is_dir():
        return False
    try:
        stems_time = (folder / "stems.json").stat().st_mtime
    except OSError:
        return False
    try:
        return stems_time >= (folder / "source.json").stat().st_mtime
    except OSError:
        return True  # stems given without a source record: nothing says they are stale


def recorded_batch(output_root: str | os.PathLike, track: str) -> dict:
    """How a finished track's stems were made, from its stems.json:
    ``{"batch", "members" ([track, source path] of that batch), "config"}``."""
    import json  # noqa: PLC0415

    try:
        record = json.loads((Path(output_root) / "tracks" / track / "stems.json").read_text())
    except (OSError, ValueError):
        return {"batch": None, "members": [], "config": None}
    fields = record.get("track", {})
    return {
        "batch": fields.get("stems_batch"),
        "members": fields.get("stems_batch_members", []),
        "config": fields.get("stems_config"),
    }


def record_is_current(record: str | os.PathLike, upstream: str | os.PathLike) -> bool:
    """A pass's record exists and is no older than the record it was made from."""
    try:
        made = os.stat(record).st_mtime
    except OSError:
        return False
    try:
        return made >= os.stat(upstream).st_mtime
    except OSError:
        return True  # nothing upstream yet says it is stale


def batch_of_record(record: str | os.PathLike) -> str | None:
    """The batch a model pass's record (``data.batch``) came from; None if unreadable."""
    from mirflow.records import read_result  # noqa: PLC0415

    try:
        return read_result(record).data.get("batch")
    except (OSError, ValueError, TypeError):
        return None
