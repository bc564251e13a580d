"""Beat-aligned crops: where they start (a pure plan) and cutting them (I/O).

Every crop is exactly ``length`` samples long at the crop sample rate: a tail
shorter than that is never written. Modes:

- ``beat``: each crop starts on a downbeat. The next crop starts on the first
  downbeat at or after the previous start plus the step (the crop length, or
  half of it with ``overlap``). With ``div4`` a crop may only start on every
  4th downbeat counted from the first crop's, so crops begin on 4-bar phrase
  boundaries and consecutive starts are a multiple of 4 bars apart.
  A track with no downbeats (silence, no pulse) falls back to ``sequential``
  and says so.
- ``sequential``: crops at 0, step, 2*step, ...

A track that is digital silence throughout gets no crops, and its
``crop_alignment`` says so.

Each loop advances an index strictly, so planning always ends.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.audio import to_stereo, write_audio
from mirflow.provenance import provenance
from mirflow.records import StageResult


@dataclass(frozen=True)
class CropOptions:
    length_samples: int
    sample_rate: int
    mode: str = "beat"  # "beat" | "sequential"
    div4: bool = False
    overlap: bool = False
    channels: int | None = 2  # None keeps the source's channel count
    format: str = "flac"
    subtype: str = "PCM_24"
    skip_stems: bool = False  # the workflow then passes no stems

    @property
    def step(self) -> int:
        return self.length_samples // 2 if self.overlap else self.length_samples


@dataclass(frozen=True)
class CropPlan:
    starts: list[int]  # start sample of each crop
    alignment: str  # how the starts were chosen ("beat", "beat-div4", "sequential", ...)


def plan_crops(total_samples: int, downbeat_samples: np.ndarray, options: CropOptions) -> CropPlan:
    """Start samples of every full-length crop of a track of ``total_samples``."""
    length, step = options.length_samples, options.step
    last_start = total_samples - length
    if last_start < 0:
        return CropPlan([], "none (track shorter than one crop)")
    if options.mode == "sequential":
        return CropPlan(list(range(0, last_start + 1, step)), "sequential")

    candidates = np.unique(np.asarray(downbeat_samples, dtype=np.int64))
    candidates = candidates[(candidates >= 0) & (candidates <= last_start)]
    if len(candidates) == 0:
        return CropPlan(list(range(0, last_start + 1, step)), "sequential (no downbeats found)")

    stride = 4 if options.div4 else 1
    starts = [int(candidates[0])]
    index = 0
    while True:
        # Smallest index past ``index`` (in strides) whose downbeat is at least a step on.
        target = starts[-1] + step
        nxt = index + stride
        while nxt < len(candidates) and candidates[nxt] < target:
            nxt += stride
        if nxt >= len(candidates):
            break
        index = nxt
        starts.append(int(candidates[index]))
    return CropPlan(starts, "beat-div4" if options.div4 else "beat")


def crop_name(track: str, index: int) -> str:
    return f"{track}_{index:03d}"


def fit_channels(audio: np.ndarray, channels: int | None) -> np.ndarray:
    """Give ``(c, n)`` audio the crop channel count.

    Mono to stereo duplicates; more channels are down-mixed to stereo
    (:func:`mirflow.audio.to_stereo`: a 5.1 file keeps its centre channel,
    where the vocals usually are), and to mono from there by averaging.
    """
    if channels is None or audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if audio.shape[0] > 2:
        audio = to_stereo(audio)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if channels == 2:
        return audio
    raise ValueError(f"cannot make {channels} channels from {audio.shape[0]}")


def beats_in_window(beats: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Beats in ``[start_s, end_s)``, times relative to ``start_s``."""
    if len(beats) == 0:
        return beats.reshape(-1, 2)
    inside = (beats[:, 0] >= start_s) & (beats[:, 0] < end_s)
    window = beats[inside].copy()
    window[:, 0] -= start_s
    return window


def cut_crops(
    track: str,
    audio: np.ndarray,
    beats: np.ndarray,
    stems: dict[str, np.ndarray],
    options: CropOptions,
    out_dir: str | os.PathLike,
) -> tuple[CropPlan, dict[str, dict[str, Any]]]:
    """Write every crop (mix, stems, beat slice) into ``out_dir``.

    ``audio`` and each stem are ``(channels, samples)`` at the crop sample
    rate; stems are cut at the mix's sample boundaries. Returns the plan and
    each crop's ``.INFO`` fields, keyed by crop name.
    """
    from mirflow.rhythm import write_beats  # noqa: PLC0415

    out_dir = Path(out_dir)
    sr = options.sample_rate
    total = audio.shape[1]
    downbeats = beats[beats[:, 1] == 1, 0] if len(beats) else np.empty(0)
    plan = plan_crops(total, np.round(downbeats * sr), options)
    if plan.starts and not np.any(audio):
        # Crops of nothing teach a model nothing: the .INFO says why there are none.
        plan = CropPlan([], "none (digital silence)")
    audio = fit_channels(audio, options.channels)
    stems = {name: fit_channels(stem, options.channels) for name, stem in stems.items()}
    crops: dict[str, dict[str, Any]] = {}
    for index, start in enumerate(plan.starts):
        name = crop_name(track, index)
        end = start + options.length_samples
        audio_file = f"{name}.{options.format}"
        write_audio(out_dir / audio_file, audio[:, start:end], sr, options.subtype)
        stem_files = {}
        for stem_name, stem in stems.items():
            stem_file = f"{name}_{stem_name}.{options.format}"
            write_audio(out_dir / stem_file, _padded(stem, start, end), sr, options.subtype)
            stem_files[stem_name] = stem_file
        window = beats_in_window(beats, start / sr, end / sr)
        beats_file = f"{name}.BEATS"
        write_beats(out_dir / beats_file, window)
        crops[name] = {
            "crop": name,
            "crop_index": index,
            "audio_file": audio_file,
            "stem_files": stem_files,
            "beats_file": beats_file,
            "start_sample": start,
            "end_sample": end,
            "start_s": start / sr,
            "duration_s": options.length_samples / sr,
            "sample_rate": sr,
            "channels": int(audio.shape[0]),
            "position_in_file": start / total,
            "beat_count": int(len(window)),
            "downbeat_count": int((window[:, 1] == 1).sum()) if len(window) else 0,
        }
    return plan, crops


def _padded(stem: np.ndarray, start: int, end: int) -> np.ndarray:
    """Stem slice; zero-padded when a separator returned a few samples fewer."""
    piece = stem[:, start:end]
    missing = (end - start) - piece.shape[1]
    if missing > 0:
        piece = np.pad(piece, ((0, 0), (0, missing)))
    return piece


def crop_track(
    track: str,
    audio_path: str | os.PathLike,
    beats_path: str | os.PathLike,
    stem_paths: dict[str, str],
    options: CropOptions,
    out_dir: str | os.PathLike,
) -> StageResult:
    """The crops stage for one track: cut everything and return crops.json's record."""
    from mirflow.audio import load_audio  # noqa: PLC0415
    from mirflow.rhythm import read_beats  # noqa: PLC0415

    audio, _ = load_audio(audio_path, sr=options.sample_rate)
    stems = {name: load_audio(path, sr=options.sample_rate)[0] for name, path in stem_paths.items()}
    plan, crops = cut_crops(track, audio, read_beats(beats_path), stems, options, out_dir)
    fields = {
        "crop_alignment": plan.alignment,
        "crop_length_samples": options.length_samples,
        "crop_sample_rate": options.sample_rate,
    }
    made_by = provenance(("soundfile", "soxr"), params=asdict(options))
    return StageResult(stage="crops", track=fields, crops=crops, provenance=made_by)
