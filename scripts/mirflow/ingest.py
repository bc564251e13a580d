"""Ingest: what a source file is (probe, checksum) and what its tags say.

The probe decodes the whole file once, in blocks: a header can claim a
duration that a truncated file does not have, and a corrupt file should fail
here, with its cause, not deep inside a later stage.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mirflow.audio import ffmpeg_decode_command, probe_ffmpeg
from mirflow.errors import AudioDecodeError
from mirflow.records import StageResult

#: Default album-artist values that mean "compilation"; config can replace them.
VARIOUS_ARTISTS = ("Various Artists", "Various", "VA", "V.A.", "V/A", "Verschiedene Interpreten")

# mutagen "easy" key -> our field; first present key wins.
_TAG_FIELDS: dict[str, tuple[str, ...]] = {
    "artist": ("artist",),
    "title": ("title",),
    "album": ("album",),
    "album_artist": ("albumartist", "album artist", "album_artist"),
    "date": ("date", "year", "originaldate"),
    "genre": ("genre",),
    "bpm": ("bpm", "tbpm"),
    "key": ("initialkey", "key", "tkey"),
    "label": ("organization", "label", "publisher"),
}


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def probe(path: str | os.PathLike) -> dict[str, Any]:
    """codec, sample_rate, channels, duration_s (decoded frames), peak level.

    Raises AudioDecodeError when the file is not decodable audio.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty (0 bytes)")
    try:
        return _probe_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as sf_error:
        try:
            return _probe_ffmpeg_decode(path)
        except FileNotFoundError:  # no ffmpeg on PATH
            raise AudioDecodeError(f"{path}: cannot decode ({sf_error})") from sf_error


def _probe_soundfile(path: Path) -> dict[str, Any]:
    info = sf.info(str(path))
    frames = 0
    peak = 0.0
    # Read until the decoder stops: for MP3 the header's frame count is an
    # estimate (61.44 s of Vibe Ace reads as 63.02 s), and SoundFile.blocks()
    # trusts it.
    with sf.SoundFile(str(path)) as handle:
        while len(block := handle.read(1 << 18, dtype="float32", always_2d=True)):
            frames += len(block)
            peak = max(peak, float(np.abs(block).max()))
    if frames == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    codec = info.format if info.subtype in ("VORBIS", "OPUS") else info.subtype
    codec_name = {"VORBIS": "vorbis", "OPUS": "opus", "MPEG_LAYER_III": "mp3"}.get(
        info.subtype, f"{info.format.lower()}/{codec.lower()}"
    )
    return {
        "codec": codec_name,
        "container": info.format.lower(),
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "duration_s": frames / info.samplerate,
        "peak": peak,
    }


def _probe_ffmpeg_decode(path: Path) -> dict[str, Any]:
    facts = probe_ffmpeg(path)
    channels = facts["channels"]
    cmd = ffmpeg_decode_command(path)
    frames, peak = 0, 0.0
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 22):
            samples = np.frombuffer(chunk[: len(chunk) - len(chunk) % 4], dtype="<f4")
            frames += len(samples) // channels
            if len(samples):
                peak = max(peak, float(np.abs(samples).max()))
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0 or frames == 0:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "no audio samples"
        raise AudioDecodeError(f"{path}: ffmpeg cannot decode: {reason}")
    return {
        "codec": facts["codec"],
        "container": path.suffix.lower().lstrip("."),
        "sample_rate": facts["sample_rate"],
        "channels": channels,
        "duration_s": frames / facts["sample_rate"],
        "peak": peak,
    }


def read_tags(path: str | os.PathLike) -> tuple[dict[str, str], str]:
    """Raw tags as ``{field: text}`` and an error text ('' when fine).

    Broken tags are not a broken track: the audio may be perfect, so tag
    errors are reported beside the result instead of failing it.
    """
    import mutagen  # noqa: PLC0415  (slow-ish import, needed only here)

    try:
        audio = mutagen.File(str(path), easy=True)
    except Exception as exc:  # mutagen raises many types on malformed tags
        return {}, f"tags unreadable: {type(exc).__name__}: {exc}"
    if audio is None or audio.tags is None:
        return {}, ""
    lowered: dict[str, str] = {}
    for key in audio.tags.keys():
        try:
            values = audio.tags[key]
        except Exception:  # noqa: S112  (one bad frame must not hide the others)
            continue
        if isinstance(values, list | tuple):
            text = "; ".join(str(v) for v in values if str(v).strip())
        else:
            text = str(values)
        lowered[key.lower()] = text.strip()
    lowered.update(_extra_id3_frames(path, lowered))
    tags = {}
    for name, keys in _TAG_FIELDS.items():
        value = next((lowered[k] for k in keys if lowered.get(k)), "")
        if value:
            tags[name] = value
    return tags, ""


def _extra_id3_frames(path: str | os.PathLike, known: dict[str, str]) -> dict[str, str]:
    """ID3 frames that mutagen's easy interface does not map (TKEY, TPUB)."""
    if "initialkey" in known:
        return {}
    try:
        from mutagen.id3 import ID3  # noqa: PLC0415

        frames = ID3(str(path))
    except Exception:
        return {}
    extra = {}
    for frame_id, name in (("TKEY", "initialkey"), ("TPUB", "organization")):
        if frame_id in frames and str(frames[frame_id].text[0]).strip():
            extra[name] = str(frames[frame_id].text[0]).strip()
    return extra


def metadata_fields(tags: dict[str, str], various_artists: tuple[str, ...]) -> dict[str, Any]:
    """``track_metadata_*`` fields of the ``.INFO`` from raw tags.

    A compilation's album artist ("Various Artists" and the configured
    aliases) says nothing about the music, so it is replaced by the track's
    own artist.
    """
    aliases = {a.casefold() for a in various_artists}
    artist = tags.get("artist", "")
    album_artist = tags.get("album_artist", "")
    if not album_artist or album_artist.casefold() in aliases:
        album_artist = artist
    if not artist and album_artist.casefold() not in aliases:
        artist = album_artist
    year_match = re.search(r"\b(\d{4})\b", tags.get("date", ""))
    fields: dict[str, Any] = {
        "track_metadata_artist": artist or None,
        "track_metadata_title": tags.get("title") or None,
        "track_metadata_album": tags.get("album") or None,
        "track_metadata_album_artist": album_artist or None,
        "track_metadata_year": int(year_match.group(1)) if year_match else None,
        "track_metadata_genre": tags.get("genre") or None,
        "track_metadata_label": tags.get("label") or None,
        "track_metadata_key": tags.get("key") or None,
        "track_metadata_bpm": _number(tags.get("bpm")),
    }
    return fields


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value


def ingest_track(
    path: str | os.PathLike, relpath: str, track: str, various_artists: tuple[str, ...]
) -> StageResult:
    """The ``source.json`` record of one track."""
    facts = probe(path)
    tags, tags_error = read_tags(path)
    fields: dict[str, Any] = {
        "track": track,
        "source": relpath,
        "sha256": sha256_file(path),
        "size_bytes": os.path.getsize(path),
        **{k: facts[k] for k in ("codec", "container", "sample_rate", "channels", "duration_s")},
        "peak_dbfs": 20 * float(np.log10(facts["peak"])) if facts["peak"] > 0 else None,
        **metadata_fields(tags, various_artists),
    }
    if tags_error:
        fields["tags_error"] = tags_error
    return StageResult(stage="ingest", track=fields)
