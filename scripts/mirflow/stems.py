"""Stems after separation: fold extras into ``other``, flag near-silent stems,
write them in the configured format, and find stems that already exist.

Folding adds arrays sample by sample, so the sum of the stems is preserved
exactly (before the output format's own rounding).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.atomic import atomic_path, link_or_copy, read_json
from mirflow.audio import (
    AUDIO_EXTENSIONS,
    aligned_blocks,
    audio_layout,
    audio_writer,
    stream_audio,
)
from mirflow.provenance import provenance
from mirflow.records import StageResult, read_result

#: The four stems every separation backend's output is folded into.
STEMS = ("drums", "bass", "other", "vocals")

#: Formats a stem may be written in (and recognised in, when it exists).
STEM_FORMATS = ("flac", "wav", "mp3")

#: Sample rates LAME encodes; anything else is resampled to 44.1 kHz first.
MP3_RATES = (32000, 44100, 48000)


def fold_stems(
    stems: dict[str, np.ndarray], save_extra: bool = False, discard: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Fold every stem that is not drums/bass/vocals (or is in ``discard``)
    into ``other``; with ``save_extra``, extra stems (guitar, piano) stay."""
    discard_set = set(discard)
    kept: dict[str, np.ndarray] = {}
    other = None
    for name, audio in stems.items():
        into_other = (
            name == "other" or name in discard_set or (name not in STEMS and not save_extra)
        )
        if into_other:
            other = audio.astype(np.float64) if other is None else other + audio
        else:
            kept[name] = audio
    if other is None:
        other = np.zeros_like(next(iter(stems.values())), dtype=np.float64)
    kept["other"] = other.astype(np.float32)
    order = [s for s in STEMS if s in kept] + sorted(k for k in kept if k not in STEMS)
    return {name: kept[name] for name in order}


@dataclass(frozen=True)
class QualityThresholds:
    """A stem is near-silent when all three hold (silence meets all three)."""

    rms_db: float = -50.0  # RMS below this (dBFS)
    peak_db: float = -25.0  # peak below this (dBFS)
    crest_db: float = 10.0  # crest factor (peak/RMS) above this: sparse bleed, not a part


def stem_levels(audio: np.ndarray) -> dict[str, float | None]:
    """RMS and peak in dBFS and crest factor in dB (None for digital silence)."""
    meter = LevelMeter()
    meter.add(audio)
    return meter.levels()


def is_near_silent(levels: dict[str, float | None], limits: QualityThresholds) -> bool:
    if levels["rms_db"] is None:
        return True
    return (
        levels["rms_db"] < limits.rms_db
        and levels["peak_db"] < limits.peak_db
        and levels["crest_db"] > limits.crest_db
    )


def apply_quality_filter(
    stems: dict[str, np.ndarray], limits: QualityThresholds, fold: bool
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Flag near-silent stems; with ``fold``, add them into ``other`` (and
    leave them silent), so the stems still sum to the same mix."""
    levels = {name: stem_levels(audio) for name, audio in stems.items()}
    report, silent = quality_report(levels, limits, fold)
    return fold_silent(stems, silent), report


def quality_report(
    levels: dict[str, dict[str, float | None]], limits: QualityThresholds, fold: bool
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Each stem's levels and whether it is near-silent, and the stems that go
    into ``other`` (the near-silent ones, with ``fold``, when there is an other)."""
    report = {
        name: {**lv, "near_silent": is_near_silent(lv, limits), "folded_into_other": False}
        for name, lv in levels.items()
    }
    silent = set()
    if fold and "other" in report:
        silent = {name for name, q in report.items() if q["near_silent"] and name != "other"}
    for name in silent:
        report[name]["folded_into_other"] = True
    return report, silent


def fold_silent(stems: dict[str, np.ndarray], silent: set[str]) -> dict[str, np.ndarray]:
    """The ``silent`` stems added into ``other`` and zeroed: the sum is kept."""
    if not silent:
        return stems
    out = dict(stems)
    other = out["other"].astype(np.float64)
    for name in silent:
        other += out[name]
        out[name] = np.zeros_like(out[name])
    out["other"] = other.astype(np.float32)
    return out


class LevelMeter:
    """:func:`stem_levels` of a signal that arrives block by block."""

    def __init__(self) -> None:
        self.power, self.count, self.peak = 0.0, 0, 0.0

    def add(self, audio: np.ndarray) -> None:
        self.power += float(np.sum(np.square(audio, dtype=np.float64)))
        self.count += audio.size
        if audio.size:
            self.peak = max(self.peak, float(np.max(np.abs(audio))))

    def levels(self) -> dict[str, float | None]:
        rms = float(np.sqrt(self.power / self.count)) if self.count else 0.0
        if rms == 0.0 or self.peak == 0.0:
            return {"rms_db": None, "peak_db": None, "crest_db": None}
        return {
            "rms_db": 20 * np.log10(rms),
            "peak_db": 20 * np.log10(self.peak),
            "crest_db": 20 * np.log10(self.peak / rms),
        }


def write_stem(
    dest: str | os.PathLike, audio: np.ndarray, sr: int, fmt: str, mp3_bitrate: int = 128
) -> None:
    """Write one stem: flac (24-bit), wav (float) or mp3 (LAME, constant bitrate)."""
    with stem_writer(dest, sr, audio.shape[0], fmt, mp3_bitrate) as write:
        write(audio)


@contextmanager
def stem_writer(
    dest: str | os.PathLike, sr: int, channels: int, fmt: str, mp3_bitrate: int = 128
) -> Iterator[Callable[[np.ndarray], None]]:
    """:func:`write_stem` block by block (a long track's stem is never held
    whole): yields ``write((channels, n) block)``; ``dest`` appears when done."""
    dest = Path(dest)
    if fmt == "mp3":
        with _mp3_writer(dest, sr, channels, mp3_bitrate) as write:
            yield write
    elif fmt in ("flac", "wav"):
        with audio_writer(dest, sr, channels, "PCM_24" if fmt == "flac" else "FLOAT") as write:
            yield write
    else:
        raise ValueError(f"unknown stem format {fmt!r} (flac, wav or mp3)")


@contextmanager
def _mp3_writer(
    dest: Path, sr: int, channels: int, bitrate: int
) -> Iterator[Callable[[np.ndarray], None]]:
    import lameenc  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    rate = sr if sr in MP3_RATES else 44100  # rates LAME does not take go to 44.1 kHz
    resampler = None if rate == sr else soxr.ResampleStream(sr, rate, channels, "float32", "HQ")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(2)
    encoder.set_quality(2)  # 2 = high quality, LAME's recommended setting

    def encode(audio: np.ndarray) -> bytes:
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        pcm = (np.clip(audio[:2].T, -1.0, 1.0) * 32767.0).astype("<i2")
        return bytes(encoder.encode(pcm.tobytes())) if len(pcm) else b""

    with atomic_path(dest) as tmp, open(tmp, "wb") as handle:

        def write(block: np.ndarray) -> None:
            block = np.asarray(block, dtype=np.float32)
            if resampler is not None:
                block = resampler.resample_chunk(np.ascontiguousarray(block.T)).T
            handle.write(encode(block))

        yield write
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
            handle.write(encode(np.ascontiguousarray(tail.T)))
        handle.write(bytes(encoder.flush()))


def find_stem_files(folder: str | os.PathLike, names=STEMS) -> dict[str, Path]:
    """``{stem: file}`` for stems named like ``drums.flac`` in ``folder``
    (any audio extension; the first in STEM_FORMATS order wins). Empty unless
    every one of ``names`` is there."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for entry in folder.iterdir():
        suffix = entry.suffix.lower()
        if entry.is_file() and suffix in AUDIO_EXTENSIONS and entry.stem.lower() in names:
            by_stem.setdefault(entry.stem.lower(), []).append(entry)
    for name in names:
        candidates = by_stem.get(name)
        if not candidates:
            return {}
        rank = {f".{fmt}": i for i, fmt in enumerate(STEM_FORMATS)}
        found[name] = min(candidates, key=lambda p: (rank.get(p.suffix.lower(), 99), p.name))
    return found


def collect_stems(
    track: str,
    batch_dir: str | os.PathLike | None,
    library_stems: dict[str, str],
    out_dir: str | os.PathLike,
    separation: dict[str, Any],
) -> StageResult:
    """The stems rule: a track's stems from its separation batch or from the
    library, quality-checked, into ``out_dir``; returns stems.json's record.

    Files that nothing changes are hard-linked as they are (an MP3 is never
    re-encoded for nothing); folded, filtered or converted stems are written
    in the configured format.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fmt = separation["format"]
    if batch_dir is not None:
        record = read_result(Path(batch_dir) / track / "separation.json")
        if not record.ok:
            return StageResult("stems", status="failed", error=record.error)
        files = {
            name: Path(batch_dir) / track / name_file
            for name, name_file in record.track["stem_files_written"].items()
        }
        fields = {k: v for k, v in record.track.items() if k != "stem_files_written"}
        fields["stems_origin"] = "separated"
        batch = read_json(Path(batch_dir) / "batch.json")
        # How the batch ran, for planning only (mirflow.batches.finished_stems):
        # its members' library paths never reach a .INFO.
        data = {
            "batch": Path(batch_dir).name,
            "batch_members": batch["members"],
            "separation": batch["separation"],
        }
        made_by = record.provenance or provenance(())  # a batch written without one
    else:
        files = {name: Path(path) for name, path in library_stems.items()}
        fields = {"stems_origin": "library"}
        data = {}
        made_by = provenance(("soundfile",), params={"format": fmt})
    # What this rule adds to either origin.
    made_by["params"] = {
        **made_by["params"],
        "quality_filter": dict(separation["quality_filter"]),
        "convert_existing": separation["convert_existing"],
    }

    # Two passes over the stems, block by block (a long track's stems are
    # never held whole): levels first, then the stems that change are written.
    sr = audio_layout(next(iter(files.values())))[0]
    channels = max(audio_layout(path)[1] for path in files.values())
    # Library stems are folded here (a batch's stems were folded when separated).
    discard = tuple(separation["discard_stems"])
    fold = (
        (lambda blocks: fold_stems(blocks, separation["save_extra_stems"], discard))
        if batch_dir is None
        else (lambda blocks: blocks)
    )

    sources = dict(files)

    def stem_blocks() -> Iterator[dict[str, np.ndarray]]:
        streams = [stream_audio(path, sr=sr) for path in sources.values()]
        for blocks in aligned_blocks(streams):
            yield fold({name: _widen(b, channels) for name, b in zip(sources, blocks, strict=True)})

    levels: dict[str, LevelMeter] = {}
    for blocks in stem_blocks():
        for name, audio in blocks.items():
            levels.setdefault(name, LevelMeter()).add(audio)
    names = list(levels)

    changed: set[str] = set()
    if batch_dir is None:
        if set(files) != set(names) or separation["discard_stems"]:
            changed.add("other")
        files = {name: files[name] for name in names if name in files}
    quality_filter = separation["quality_filter"]
    limits = QualityThresholds(
        quality_filter["rms_db"], quality_filter["peak_db"], quality_filter["crest_db"]
    )
    quality, into_other = quality_report(
        {name: meter.levels() for name, meter in levels.items()}, limits, quality_filter["fold"]
    )
    changed |= into_other | ({"other"} if into_other else set())
    if separation["convert_existing"]:
        changed |= {name for name, path in files.items() if path.suffix.lower() != f".{fmt}"}
    changed |= {name for name in names if name not in files}

    written = [name for name in names if name in changed]
    if written:
        with ExitStack() as stack:
            writers = {
                name: stack.enter_context(
                    stem_writer(
                        out_dir / f"{name}.{fmt}", sr, channels, fmt, separation["mp3_bitrate"]
                    )
                )
                for name in written
            }
            for blocks in stem_blocks():
                blocks = fold_silent(blocks, into_other)
                for name, write in writers.items():
                    write(blocks[name])

    stem_files = {}
    for name in names:
        if name in changed:
            target = out_dir / f"{name}.{fmt}"
        else:
            target = out_dir / f"{name}{files[name].suffix.lower()}"
            link_or_copy(files[name], target)
        stem_files[name] = f"stems/{target.name}"
    fields.update(
        {
            "stem_files": stem_files,
            "stem_quality": quality,
            "stems_near_silent": sorted(n for n, q in quality.items() if q["near_silent"]),
        }
    )
    # Each file's size: a later run's planner sees a missing or truncated stem.
    data["stem_sizes"] = {
        name: (out_dir.parent / rel).stat().st_size for name, rel in stem_files.items()
    }
    return StageResult("stems", track=fields, data=data, provenance=made_by)


def _widen(audio: np.ndarray, channels: int) -> np.ndarray:
    """A mono stem beside stereo ones, repeated to their channels."""
    if audio.shape[0] < channels:
        audio = np.repeat(audio, channels, axis=0)[:channels]
    return audio


def stem_paths(record: StageResult, stems_dir: str | os.PathLike) -> dict[str, Path]:
    """``{stem: file}`` from a stems record (its files are relative to the
    folder that holds ``stems/``)."""
    if not record.ok:
        return {}
    base = Path(stems_dir).parent
    return {name: base / rel for name, rel in record.track.get("stem_files", {}).items()}


def stems_of(
    record_path: str | os.PathLike | None, stems_dir: str | os.PathLike | None
) -> tuple[StageResult | None, dict[str, Path]]:
    """A track's stems record and ``{stem: file}``, or ``(None, {})`` when the
    track has no stems (separation off)."""
    if record_path is None:
        return None, {}
    record = read_result(record_path)
    return record, stem_paths(record, stems_dir)
