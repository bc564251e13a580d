"""Atomic file writes: a reader (or a re-run after a crash) sees either the old
file or the complete new one, never a partial file.

Every writer goes through :func:`atomic_path`: write to a hidden temporary name
in the destination folder, flush to disk, then ``os.replace`` onto the final
name (atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".mirflow-tmp-"


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success move it onto ``dest``.

    ``suffix`` defaults to dest's own suffix, so libraries that infer a format
    from the extension (soundfile) still see the right one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_temp_prefix(dest),
        suffix=dest.suffix if suffix is None else suffix,
        dir=dest.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file 0600: the finished file gets the mode any new
    # file gets (0666 less the umask), so a dataset is as readable as the user
    # means it to be (a training job under another account, a shared group).
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it
    (``os.umask`` can only be read by setting it, which races with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_text(dest: str | os.PathLike, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats to plain JSON values.

    NaN and infinities become ``None`` (JSON has no spelling for them).
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(dest: str | os.PathLike, data: Any) -> None:
    text = json.dumps(to_jsonable(data), indent=2, ensure_ascii=False, allow_nan=False)
    write_text(dest, text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; on success it replaces ``dest``.

    An existing ``dest`` is moved aside first and removed only after the new
    folder is in place, so a crash leaves either the old or the new folder
    (plus a hidden temporary one that the next run removes).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest), dir=dest.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700 (see atomic_path)
    try:
        yield tmp
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest), dir=dest.parent))
            os.replace(dest, old / "old")
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _temp_prefix(dest: Path) -> str:
    # "~" never occurs in track ids, so one destination's prefix cannot match
    # another's (".mirflow-tmp-a~" vs ".mirflow-tmp-a-b~").
    return f"{TEMP_PREFIX}{dest.name}~"


def remove_stale_temporaries(dest: str | os.PathLike) -> None:
    """Remove what a killed writer of ``dest`` left behind.

    Only ``dest``'s own temporaries: other jobs may be writing beside it.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return
    for entry in dest.parent.glob(_temp_prefix(dest) + "*"):
        _remove(entry)


def sweep_temporaries(root: str | os.PathLike) -> list[Path]:
    """Remove every temporary under ``root``; call only when no job is running."""
    found = sorted(Path(root).rglob(TEMP_PREFIX + "*"))
    for entry in found:
        _remove(entry)
    return found


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def link_or_copy(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Hard-link ``src`` to ``dest`` (a copy where the filesystem cannot link),
    atomically: the dataset and the exports cost no extra space."""
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
