"""Ingest: what a source file is (probe, checksum) and what its tags say.

The probe decodes the whole file once, in blocks: a header can claim a
duration that a truncated file does not have, and a corrupt file should fail
here, with its cause, not deep inside a later stage.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mirflow.audio import ffmpeg_blocks, probe_ffmpeg
from mirflow.errors import AudioDecodeError, TrackError
from mirflow.provenance import provenance
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


#: What a user can do about a file that is not usable audio.
REPLACE_HINT = "replace it with a good copy, or remove it from the library"

#: Longest track taken by default (config ``rhythm.max_track_minutes``): 2.5
#: hours, a long DJ mix or concert. Beats, crops and features run a window
#: at a time (:mod:`mirflow.rhythm`, :mod:`mirflow.crops`,
#: :mod:`mirflow.feature_windows`), so memory does not grow with the track;
#: time does (README "Long tracks"), which is what the limit guards.
MAX_DURATION_S = 150 * 60.0


def probe(path: str | os.PathLike) -> dict[str, Any]:
    """codec, sample_rate, channels, duration_s (decoded frames), peak level.

    Raises AudioDecodeError, naming the file, what is wrong and what the user
    can do, when the file is not decodable audio, holds no samples, or is cut
    short (fewer samples decode than its header promises).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty (0 bytes): {REPLACE_HINT}")
    try:
        facts = _probe_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as sf_error:
        facts = _probe_with_ffmpeg(path, sf_error)
    if facts["frames"] == 0:
        raise AudioDecodeError(f"{path}: holds no audio samples: {REPLACE_HINT}")
    if cut := truncation(path, facts):
        raise AudioDecodeError(
            f"{path}: truncated: {cut}; the file is incomplete (an interrupted copy or "
            "download?): replace it with a complete copy"
        )
    return facts


def _probe_with_ffmpeg(path: Path, sf_error: Exception) -> dict[str, Any]:
    """ffmpeg's probe, for what libsndfile cannot read; both reasons when neither can."""
    sf_reason = getattr(sf_error, "error_string", None) or str(sf_error)
    if "does not exist" in sf_reason:
        # What libsndfile says of bytes none of its formats (nor mpg123) take.
        sf_reason = "format not recognised"
    try:
        return _probe_ffmpeg_decode(path)
    except FileNotFoundError:  # no ffmpeg on PATH
        ff_reason = "not installed"
    except AudioDecodeError as ff_error:
        # Drop the path where the message repeats it: the cause names it once.
        ff_reason = str(ff_error).removeprefix(f"{path}: ").replace(f"{path}: ", "")
    raise AudioDecodeError(
        f"{path}: not decodable audio (libsndfile: {sf_reason.rstrip('.')}; "
        f"ffmpeg: {ff_reason}): {REPLACE_HINT}"
    ) from sf_error


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
    codec = info.format if info.subtype in ("VORBIS", "OPUS") else info.subtype
    codec_name = {"VORBIS": "vorbis", "OPUS": "opus", "MPEG_LAYER_III": "mp3"}.get(
        info.subtype, f"{info.format.lower()}/{codec.lower()}"
    )
    return {
        "codec": codec_name,
        "container": info.format.lower(),
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": frames,
        "duration_s": frames / info.samplerate,
        "peak": peak,
    }


def _probe_ffmpeg_decode(path: Path) -> dict[str, Any]:
    facts = probe_ffmpeg(path)
    channels = facts["channels"]
    frames, peak = 0, 0.0
    for block in ffmpeg_blocks(path, channels):
        frames += block.shape[1]
        peak = max(peak, float(np.abs(block).max()))
    return {
        "codec": facts["codec"],
        "container": path.suffix.lower().lstrip("."),
        "sample_rate": facts["sample_rate"],
        "channels": channels,
        "frames": frames,
        "duration_s": frames / facts["sample_rate"],
        "peak": peak,
    }


def truncation(path: str | os.PathLike, facts: dict[str, Any]) -> str:
    """How a file shows it was cut short ('' when it does not).

    FLAC states its exact length (STREAMINFO; 0 means unknown); an MP3 frame
    states its own size, so a last frame with fewer bytes than that is cut.
    Other formats (WAV, Ogg) carry no length a decoder does not already
    adjust to what is there.
    """
    if str(facts["codec"]).startswith("flac"):
        import mutagen.flac  # noqa: PLC0415

        try:
            total = mutagen.flac.FLAC(str(path)).info.total_samples
        except Exception:  # noqa: BLE001  (Ogg FLAC, odd headers: no claim to check)
            return ""
        if total and facts["frames"] < total:
            sr = facts["sample_rate"]
            return f"its FLAC header says {total / sr:.2f} s, {facts['frames'] / sr:.2f} s decode"
    if facts["codec"] == "mp3":
        return mp3_cut_short(path)
    return ""


# kbit/s by (MPEG-1?, layer) and bitrate index; sample rates by version bits.
_MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_BITRATES[(False, 3)] = _MPEG_BITRATES[(False, 2)]
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_frame(header: bytes) -> tuple[tuple[int, int, int], int] | None:
    """(stream signature, frame size in bytes) of a 4-byte MPEG audio frame
    header, or None when the bytes are no such header (or free format)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1, padding = 4 - layer_bits, version == 3, (header[2] >> 1) & 1
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    sample_rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        size = (12 * bitrate // sample_rate + padding) * 4
    elif layer == 3 and not mpeg1:
        size = 72 * bitrate // sample_rate + padding
    else:
        size = 144 * bitrate // sample_rate + padding
    return (version, layer, sample_rate), size


def mp3_cut_short(path: str | os.PathLike) -> str:
    """'' or how the MP3's last frame is cut short.

    Walks the frames from the first one (after any ID3v2 tag) to the end of
    the audio (before an ID3v1 or APEv2 tag). Anything that is not a frame of
    the same stream stops the walk with no verdict: trailing junk is not a
    truncation we can prove.
    """
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start, end = 0, len(data)
        while data[start : start + 3] == b"ID3" and start + 10 <= end:
            size = _syncsafe(data[start + 6 : start + 10])
            start += 10 + size + (10 if data[start + 5] & 0x10 else 0)
        if end - start >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
        if end - start >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            flags = int.from_bytes(data[end - 12 : end - 8], "little")
            end -= int.from_bytes(data[end - 20 : end - 16], "little")
            end -= 32 if flags & 0x80000000 else 0
        pos = _first_mpeg_frame(data, start, end)
        if pos is None:
            return ""
        signature = mpeg_frame(data[pos : pos + 4])[0]
        while pos < end:
            frame = mpeg_frame(data[pos : pos + 4])
            if frame is None or frame[0] != signature:
                return ""
            if pos + frame[1] > end:
                return f"its last MPEG frame has {end - pos} of its {frame[1]} bytes"
            pos += frame[1]
    return ""


def _syncsafe(raw: bytes) -> int:
    """An ID3v2 size: 7 bits per byte."""
    return sum((b & 0x7F) << (7 * (len(raw) - 1 - i)) for i, b in enumerate(raw))


def _first_mpeg_frame(data, start: int, end: int, search: int = 1 << 16) -> int | None:
    """The first header whose frame is followed by another header of the same
    stream (or by the end): one sync pattern alone may be chance."""
    pos = data.find(b"\xff", start, min(end, start + search))
    while pos != -1:
        frame = mpeg_frame(data[pos : pos + 4])
        if frame is not None:
            following = pos + frame[1]
            after = mpeg_frame(data[following : following + 4]) if following + 4 <= end else None
            if following >= end or (after is not None and after[0] == frame[0]):
                return pos
        pos = data.find(b"\xff", pos + 1, min(end, start + search))
    return None


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
    path: str | os.PathLike,
    relpath: str,
    track: str,
    various_artists: tuple[str, ...],
    max_duration_s: float = MAX_DURATION_S,
) -> StageResult:
    """The ``source.json`` record of one track.

    A track longer than ``max_duration_s`` fails here, with its cause, rather
    than later, killed for memory with none (see ``MAX_DURATION_S``).
    """
    facts = probe(path)
    if facts["duration_s"] > max_duration_s:
        raise TrackError(
            f"{path}: {facts['duration_s'] / 60:.0f} minutes long, over the "
            f"{max_duration_s / 60:g}-minute limit (rhythm.max_track_minutes; beat "
            "tracking takes about a minute per 2.5 minutes of audio): split it into parts "
            "(e.g. `ffmpeg -i IN -f segment -segment_time 3600 -c copy OUT_%03d.flac`), or "
            "raise rhythm.max_track_minutes"
        )
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
    made_by = provenance(
        ("mutagen", "soundfile"),
        params={"various_artists": list(various_artists), "max_duration_s": max_duration_s},
    )
    return StageResult(stage="ingest", track=fields, provenance=made_by)
