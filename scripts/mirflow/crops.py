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

Cutting streams the mix and the stems block by block (:func:`cut_spans`), so
a crop job's memory is bounded by a crop's length, not the track's: a 2-hour
track would otherwise cost gigabytes per file. The mix is read twice, once to
learn its length (the plan needs it) and once to cut it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.audio import to_stereo, write_audio
from mirflow.errors import TrackError
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


#: Reads a track from its start, block by block: float32 ``(channels, n)``
#: arrays at the crop sample rate (:func:`mirflow.audio.stream_audio`).
Blocks = Callable[[], Iterable[np.ndarray]]


def cut_spans(
    blocks: Iterable[np.ndarray], spans: Sequence[tuple[int, int]]
) -> Iterator[tuple[int, np.ndarray]]:
    """``(span index, audio)`` for each ``[start, end)`` span of a block stream.

    Each span is yielded, in order, as soon as the stream has passed its end,
    and only the samples from the next span's start on are held: memory is
    bounded by the longest span plus a block, not by the track. Spans must be
    ordered by start and by end (they may overlap). A span the stream ends
    inside comes out short (or empty); the caller decides what that means.
    The stream is read to its end, so an error there still surfaces.
    """
    held, held_from, index = None, 0, 0  # held: the stream from sample held_from on
    for block in blocks:
        held = block if held is None else np.concatenate((held, block), axis=1)
        held_to = held_from + held.shape[1]
        while index < len(spans) and spans[index][1] <= held_to:
            start, end = spans[index]
            yield index, held[:, start - held_from : end - held_from]
            index += 1
        keep = min(spans[index][0], held_to) if index < len(spans) else held_to
        held, held_from = held[:, keep - held_from :], keep
    if held is None:  # no samples at all (stream_audio raises before this)
        return
    for rest, (start, end) in enumerate(spans[index:], index):
        yield rest, held[:, start - held_from : end - held_from]


def cut_crops(
    track: str,
    audio: Blocks,
    beats: np.ndarray,
    stems: dict[str, Blocks],
    options: CropOptions,
    out_dir: str | os.PathLike,
) -> tuple[CropPlan, dict[str, dict[str, Any]]]:
    """Write every crop (mix, stems, beat slice) into ``out_dir``.

    ``audio`` and each stem read their track at the crop sample rate; stems
    are cut at the mix's sample boundaries, in step with it. Returns the plan
    and each crop's ``.INFO`` fields, keyed by crop name. A track that fails
    (a stem that cannot be decoded) leaves no crop files behind, as when every
    file was decoded before the first crop was written.
    """
    from mirflow.rhythm import write_beats  # noqa: PLC0415

    out_dir = Path(out_dir)
    sr = options.sample_rate
    total, sounding = 0, False
    for block in audio():
        total += block.shape[1]
        sounding = sounding or bool(np.any(block))
    downbeats = beats[beats[:, 1] == 1, 0] if len(beats) else np.empty(0)
    plan = plan_crops(total, np.round(downbeats * sr), options)
    if plan.starts and not sounding:
        # Crops of nothing teach a model nothing: the .INFO says why there are none.
        plan = CropPlan([], "none (digital silence)")
    length = options.length_samples
    spans = [(start, start + length) for start in plan.starts]
    stem_cuts = {name: cut_spans(read(), spans) for name, read in stems.items()}
    crops: dict[str, dict[str, Any]] = {}
    written: list[Path] = []
    try:
        for index, mix in cut_spans(audio(), spans):
            start, end = spans[index]
            name = crop_name(track, index)
            mix = fit_channels(mix, options.channels)
            audio_file = f"{name}.{options.format}"
            written.append(out_dir / audio_file)
            write_audio(written[-1], mix, sr, options.subtype)
            stem_files = {}
            for stem_name, cuts in stem_cuts.items():
                stem = _padded(fit_channels(next(cuts)[1], options.channels), length)
                stem_files[stem_name] = f"{name}_{stem_name}.{options.format}"
                written.append(out_dir / stem_files[stem_name])
                write_audio(written[-1], stem, sr, options.subtype)
            window = beats_in_window(beats, start / sr, end / sr)
            beats_file = f"{name}.BEATS"
            written.append(out_dir / beats_file)
            write_beats(written[-1], window)
            crops[name] = {
                "crop": name,
                "crop_index": index,
                "audio_file": audio_file,
                "stem_files": stem_files,
                "beats_file": beats_file,
                "start_sample": start,
                "end_sample": end,
                "start_s": start / sr,
                "duration_s": length / sr,
                "sample_rate": sr,
                "channels": int(mix.shape[0]),
                "position_in_file": start / total,
                "beat_count": int(len(window)),
                "downbeat_count": int((window[:, 1] == 1).sum()) if len(window) else 0,
            }
        for cuts in stem_cuts.values():
            for _ in cuts:  # read every stem to its end: a decoding error there counts
                pass
    except TrackError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return plan, crops


def _padded(stem: np.ndarray, length: int) -> np.ndarray:
    """A stem crop, zero-padded when a separator returned a few samples fewer."""
    missing = length - stem.shape[1]
    return np.pad(stem, ((0, 0), (0, missing))) if missing > 0 else stem


def crop_track(
    track: str,
    audio_path: str | os.PathLike,
    beats_path: str | os.PathLike,
    stem_paths: dict[str, str],
    options: CropOptions,
    out_dir: str | os.PathLike,
) -> StageResult:
    """The crops stage for one track: cut everything and return crops.json's record."""
    from mirflow.audio import stream_audio  # noqa: PLC0415
    from mirflow.rhythm import read_beats  # noqa: PLC0415

    def blocks(path: str | os.PathLike) -> Blocks:
        return partial(stream_audio, path, sr=options.sample_rate)

    stems = {name: blocks(path) for name, path in stem_paths.items()}
    plan, crops = cut_crops(
        track, blocks(audio_path), read_beats(beats_path), stems, options, out_dir
    )
    fields = {
        "crop_alignment": plan.alignment,
        "crop_length_samples": options.length_samples,
        "crop_sample_rate": options.sample_rate,
    }
    made_by = provenance(("soundfile", "soxr"), params=asdict(options))
    return StageResult(stage="crops", track=fields, crops=crops, provenance=made_by)
