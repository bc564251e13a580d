"""Track ids that never move: the output folder's registry of the ids it gave.

:func:`mirflow.discovery.track_ids` derives ids from the paths alone, so a
file added beside another can change that one's id (``a b.flac`` is ``a_b``
until ``a  b.flac`` appears; then both clean to ``a_b`` and get a hash). The
registry, ``<output>/track_ids.json`` (library path -> id, JSON because file
names may hold tabs and newlines), pins each id once given:

- A path in the registry keeps its id for as long as its file exists,
  whatever is added beside it.
- A new path gets the id :func:`track_ids` gives it among the new paths,
  unless that id is taken (case-insensitively, for case-insensitive
  filesystems) by an id in the registry: then it gets its base id with a
  hash of its own path (``a_b-1f2e3d4c``), as :func:`track_ids` tells
  colliding paths apart. (A new path may so get a plain id no file holds,
  e.g. ``a_b`` when ``a b`` and ``a  b`` were registered with hashes.)
- Ids are never given to another file: a path that is gone keeps its entry,
  so its old outputs are never taken for a new file's.
- Discovery never opens a file (it must stay fast on 100k files), so a file
  renamed or moved in the library is a new path, hence a new track with a new
  id; its old id stays reserved, and its old outputs stay until removed.
- An output folder without a registry (a first run, or one made before the
  registry existed) gets exactly :func:`track_ids`'s ids, so existing
  outputs keep theirs.

Nothing here knows Snakemake: the workflow's main process calls
:func:`update_registry`; a dry run and job processes call :func:`assign_ids`
on :func:`load_registry`'s mapping, which gives the same ids without writing.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from mirflow.atomic import read_json, write_json
from mirflow.discovery import TRACK_ID_PATTERN, base_id, track_ids

#: The registry's file name in the output folder.
REGISTRY_NAME = "track_ids.json"

_ID = re.compile(TRACK_ID_PATTERN)


class RegistryError(Exception):
    """The registry cannot be read as one (not JSON, not path -> unique id)."""


def registry_path(output: str | os.PathLike) -> Path:
    return Path(output) / REGISTRY_NAME


def lock_path(registry: str | os.PathLike) -> Path:
    """The lock file beside the registry (``.track_ids.lock``)."""
    registry = Path(registry)
    return registry.with_name(f".{registry.stem}.lock")


def load_registry(path: str | os.PathLike) -> dict[str, str]:
    """The registry at ``path`` ({} when there is none yet).

    Raises RegistryError when it is not a mapping of paths to valid ids that
    are unique (case-insensitively): ids would silently move otherwise.
    """
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"track id registry {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"track id registry {path} is not a mapping of paths to ids")
    seen: dict[str, str] = {}
    for rel, track in data.items():
        if not isinstance(track, str) or not _ID.fullmatch(track):
            raise RegistryError(f"track id registry {path}: {rel!r} has an invalid id {track!r}")
        other = seen.setdefault(track.lower(), rel)
        if other != rel:
            raise RegistryError(
                f"track id registry {path}: {other!r} and {rel!r} have the same id {track!r}"
            )
    return data


def assign_ids(relpaths: Iterable[str], registry: Mapping[str, str]) -> dict[str, str]:
    """Each relative path's id: its registered one, else a new one (module doc).

    Pure and deterministic, O(n). With an empty registry the result is
    :func:`track_ids`'s for the same list (discovery passes it sorted).
    """
    relpaths = list(relpaths)
    ids = {rel: registry[rel] for rel in relpaths if rel in registry}
    new = [rel for rel in relpaths if rel not in registry]
    if not new:
        return ids
    # The rules of track_ids among the new paths only: a parse that finds no
    # new file cleans no path (that is most of discovery's time on 100k files).
    proposed = track_ids(new)
    new.sort()
    taken = {track.lower() for track in registry.values()}
    clashing = []
    for rel in new:
        if proposed[rel].lower() in taken:
            clashing.append(rel)
        else:
            ids[rel] = proposed[rel]
            taken.add(proposed[rel].lower())
    for rel in clashing:
        ids[rel] = _free_id(rel, taken)
        taken.add(ids[rel].lower())
    return ids


def _free_id(relpath: str, taken: set[str]) -> str:
    """The base id with the path's hash; a longer hash (then a number) in the
    unlikely case that one is taken too (a file named like another's id)."""
    base = base_id(relpath)
    digest = hashlib.sha1(relpath.encode("utf-8", "surrogateescape")).hexdigest()
    for length in (8, 16, 40):
        candidate = f"{base}-{digest[:length]}"
        if candidate.lower() not in taken:
            return candidate
    number = 2
    while f"{base}-{digest}-{number}".lower() in taken:
        number += 1
    return f"{base}-{digest}-{number}"


def update_registry(path: str | os.PathLike, relpaths: Iterable[str]) -> dict[str, str]:
    """Assign ids (:func:`assign_ids`) and register the new ones; return the ids.

    Read, assign and write happen under an exclusive lock on a file beside
    the registry, with the registry read again under it, so runs started at
    once on the same output (shards) agree. The write is atomic, and only when
    a path is new. Creates the output folder when needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    relpaths = list(relpaths)
    with open(lock_path(path), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            registry = load_registry(path)
            ids = assign_ids(relpaths, registry)
            added = {rel: ids[rel] for rel in relpaths if rel not in registry}
            if added:
                registry.update(added)
                write_json(path, dict(sorted(registry.items())))
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return ids


def library_table(library: str | os.PathLike, output: str | os.PathLike, *, register: bool):
    """The library's tracks (discovery + ids), a pandas DataFrame indexed by id
    with columns track, path, relpath, library_stems.

    Ids come from the output's registry: with ``register`` (a run's main
    process) new files' ids are registered under its lock, so shards started
    at once agree; otherwise (a dry run, a job) the same ids are computed
    without writing. Raises LibraryError or RegistryError.
    """
    import pandas as pd  # noqa: PLC0415

    from mirflow.discovery import discover  # noqa: PLC0415

    registry = registry_path(os.path.normpath(output))
    if register:
        assign = functools.partial(update_registry, registry)
    else:
        assign = lambda relpaths: assign_ids(relpaths, load_registry(registry))  # noqa: E731
    tracks = discover(library, exclude=[output], assign=assign)
    return pd.DataFrame(
        {
            "track": [t.track for t in tracks],
            "path": [str(t.path) for t in tracks],
            "relpath": [t.relpath for t in tracks],
            "library_stems": [dict(t.library_stems) for t in tracks],
        }
    ).set_index("track", drop=False)
