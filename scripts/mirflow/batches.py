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


def batch_size_for(pending: int, batch_size: int, cores: int | None) -> int:
    """Tracks per batch: ``batch_size``, or fewer when that would leave some
    of ``cores`` without a batch (a small library on a big machine)."""
    if pending <= 0:
        return batch_size
    batches = max(-(-pending // batch_size), min(pending, cores or 1))
    return -(-pending // batches)


def finished_stems(output_root: str | os.PathLike, track: str) -> tuple[dict | None, str | None]:
    """``(made, damage)`` of a track's stems, from its stems.json.

    ``made`` is how finished stems were made: ``{"batch", "members"
    ([track, source path] of that batch), "config"}``; None when they are not
    finished: no record, a record older than the source record, or a stem
    file it lists missing or of another size than it had when written.
    ``damage`` says which file, in that last case. A failed record is
    finished: the track is redone when its source changes.
    """
    import json  # noqa: PLC0415

    folder = Path(output_root) / "tracks" / track
    try:
        stems_time = (folder / "stems.json").stat().st_mtime
        record = json.loads((folder / "stems.json").read_text())
    except (OSError, ValueError):
        return None, None
    if record.get("status") == "ok" and (damage := damaged_stem(folder, record)):
        return None, damage
    try:
        if stems_time < (folder / "source.json").stat().st_mtime:
            return None, None
    except OSError:
        pass  # stems given without a source record: nothing says they are stale
    fields, data = record.get("track", {}), record.get("data", {})
    made = {  # older records kept these in the track fields
        "batch": data.get("batch", fields.get("stems_batch")),
        "members": data.get("batch_members", fields.get("stems_batch_members", [])),
        "config": data.get("separation", fields.get("stems_config")),
    }
    return made, None


def damaged_stem(folder: str | os.PathLike, record: dict) -> str | None:
    """What is wrong with the stem files a stems record lists ("drums.flac
    missing", "bass.flac has 60 bytes, not the 100 written"), None if nothing."""
    sizes = record.get("data", {}).get("stem_sizes", {})
    for name, relpath in record.get("track", {}).get("stem_files", {}).items():
        try:
            size = (Path(folder) / relpath).stat().st_size
        except OSError:
            return f"{Path(relpath).name} missing"
        if name in sizes and size != sizes[name]:
            return f"{Path(relpath).name} has {size} bytes, not the {sizes[name]} written"
    return None


def record_is_current(record: str | os.PathLike, upstream) -> bool:
    """A batched rule's record exists and is no older than the record (or any
    of the files, a list) it was made from."""
    try:
        made = os.stat(record).st_mtime
    except OSError:
        return False
    for path in [upstream] if isinstance(upstream, (str, os.PathLike)) else upstream:
        try:
            if made < os.stat(path).st_mtime:
                return False
        except OSError:
            pass  # nothing upstream yet says it is stale
    return True


def batch_of_record(record: str | os.PathLike) -> str | None:
    """The batch a model pass's record (``data.batch``) came from; None if unreadable."""
    from mirflow.records import read_result  # noqa: PLC0415

    try:
        return read_result(record).data.get("batch")
    except (OSError, ValueError, TypeError):
        return None
