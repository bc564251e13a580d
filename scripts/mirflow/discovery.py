"""Find the audio files of a library and give each a stable, readable track id.

Discovery runs when Snakemake parses the workflow (the track list decides the
DAG), so it must be fast on 100k files: it only lists folders, it never opens
a file. The library is only read.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anyascii import anyascii

from mirflow.audio import AUDIO_EXTENSIONS

#: Folder names never descended into, besides hidden ones (".git", ".venv", ...).
SKIPPED_FOLDERS = frozenset({"crops", "__pycache__", "node_modules"})

#: Longest id before it is shortened (with a hash, so it stays unique).
MAX_ID_LENGTH = 100

#: File names (without extension) that are a stem of the mix beside them, not
#: a track, in a pre-separated library (``Song/mix.flac``, ``Song/drums.flac``).
STEM_FILE_NAMES = frozenset({"drums", "bass", "other", "vocals", "guitar", "piano"})
FULL_STEM_SET = frozenset({"drums", "bass", "other", "vocals"})

#: What a track id may contain; also the workflow's wildcard constraint.
TRACK_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class LibraryError(Exception):
    """The library cannot be used at all (missing, not a folder, no audio)."""


@dataclass(frozen=True)
class Track:
    track: str  # id: output folder and file names, wildcard value
    path: Path  # absolute path of the source file
    relpath: str  # path relative to the library root, as the user knows it
    #: Stems already in the library beside this track: ((name, path), ...),
    #: only when the track is alone in its folder with its stems.
    library_stems: tuple[tuple[str, str], ...] = ()


def find_audio_files(root: str | os.PathLike, exclude: list[str | os.PathLike] = ()) -> list[Path]:
    """Audio files under ``root``, sorted, skipping hidden and crops folders.

    ``exclude`` lists folders to leave out (the output folder when it lies
    inside the library). Symlinked folders are followed once: a link loop is
    cut by remembering each real folder already visited.
    """
    return sorted(_scan(Path(root), exclude)[0])


def _scan(root: Path, exclude) -> tuple[list[Path], dict[Path, dict[str, Path]]]:
    """(tracks, {track: {stem name: stem file}}) under ``root``.

    Stem-named files (``drums.mp3``) are the stems of the one other audio file
    beside them, not tracks, when drums, bass, other and vocals are all there.
    """
    if not root.exists():
        raise LibraryError(f"input library {root} does not exist")
    if not root.is_dir():
        raise LibraryError(f"input library {root} is not a folder")
    excluded = {os.path.realpath(p) for p in exclude}
    found: list[Path] = []
    stems: dict[Path, dict[str, Path]] = {}
    seen_dirs: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen_dirs or real in excluded:
            continue
        seen_dirs.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: nothing we can list there
        audio: list[Path] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    if name not in SKIPPED_FOLDERS:
                        stack.append(Path(entry.path))
                elif entry.is_file() and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                    audio.append(Path(entry.path))
            except OSError:
                continue  # broken link or vanished entry
        stem_files = [p for p in audio if p.stem.lower() in STEM_FILE_NAMES]
        mixes = [p for p in audio if p.stem.lower() not in STEM_FILE_NAMES]
        # Only a full set makes stems: a lone "Bass.mp3" beside a song is a song.
        if len(mixes) == 1 and FULL_STEM_SET <= {p.stem.lower() for p in stem_files}:
            stems[mixes[0]] = {p.stem.lower(): p for p in sorted(stem_files)}
            found.extend(mixes)
        else:
            found.extend(audio)
    return found, stems


def clean_id(text: str) -> str:
    """A readable ASCII id: transliterate, replace unsafe runs with ``_``."""
    ascii_text = anyascii(text)
    cleaned = _UNSAFE.sub("_", ascii_text)
    cleaned = re.sub(r"_+", "_", cleaned)
    cleaned = re.sub(r"_?\._?", ".", cleaned).strip("._-+")  # "(live).hq" -> "live.hq"
    return cleaned or "track"


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def base_id(relpath: str) -> str:
    """A path's id before collisions are told apart: the cleaned path without
    extension, folders joined by ``__``, shortened with a hash when too long."""
    stem = os.path.splitext(relpath)[0]
    candidate = "__".join(clean_id(part) for part in Path(stem).parts)
    if len(candidate) > MAX_ID_LENGTH:
        candidate = candidate[: MAX_ID_LENGTH - 9].rstrip("._-+") + "-" + _short_hash(relpath)
    return candidate


def track_ids(relpaths: list[str]) -> dict[str, str]:
    """Map each relative path to a unique track id.

    The id is the cleaned path without extension, folders joined by ``__``
    (``Artist/Album/01 Song.flac`` -> ``Artist__Album__01_Song``). It depends
    only on the path itself, except when two paths clean to the same id: then
    every path of the group that is not already clean gets a hash of its own
    path appended. The same library always gets the same ids; a file added
    beside another can change that one's id, which is why the workflow keeps
    the ids it gave in the output folder (:mod:`mirflow.track_registry`).
    """
    base = {rel: base_id(rel) for rel in relpaths}

    groups: dict[str, list[str]] = defaultdict(list)
    for rel, candidate in base.items():
        groups[candidate.lower()].append(rel)  # case-insensitive filesystems

    ids: dict[str, str] = {}
    for members in groups.values():
        if len(members) == 1:
            ids[members[0]] = base[members[0]]
            continue
        # A path that is its own clean id ("a_b.flac" -> "a_b") keeps it; the
        # rest are told apart by a hash of their own path.
        keeper = next((rel for rel in members if _is_clean(rel, base[rel])), None)
        for rel in members:
            ids[rel] = base[rel] if rel == keeper else f"{base[rel]}-{_short_hash(rel)}"
    return ids


def _is_clean(relpath: str, candidate: str) -> bool:
    return os.path.splitext(relpath)[0].replace(os.sep, "__") == candidate


def discover(
    root: str | os.PathLike,
    exclude: list[str | os.PathLike] = (),
    assign: Callable[[list[str]], dict[str, str]] = track_ids,
) -> list[Track]:
    """The library's tracks, sorted by id; raises LibraryError if there are none.

    ``assign`` maps the relative paths found to their ids: :func:`track_ids`
    (ids from the paths alone), or the output folder's registry of ids that
    never move (:mod:`mirflow.track_registry`), as the workflow does.
    """
    root = Path(root).absolute()
    found, stems = _scan(root, exclude)
    files = sorted(found)
    if not files:
        raise LibraryError(
            f"input library {root} holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    relpaths = [os.path.relpath(path, root) for path in files]
    ids = assign(relpaths)
    tracks = [
        Track(
            ids[rel],
            path,
            rel,
            tuple((name, str(stem)) for name, stem in stems.get(path, {}).items()),
        )
        for rel, path in zip(relpaths, files, strict=True)
    ]
    return sorted(tracks, key=lambda t: t.track)
