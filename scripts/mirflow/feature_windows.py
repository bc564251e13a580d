"""The features of a track longer than a window, a window at a time.

A song (up to ``WINDOW_S``) is analysed whole, as :mod:`mirflow.feature_records`
does. A longer track (a DJ mix, a concert, a radio show) is streamed
(:func:`mirflow.audio.sample_windows`): each window of ``WINDOW_S`` is
analysed with ``CONTEXT_S`` of audio on either side, and of each window only
its own part is kept, so memory is one window's, whatever the length:

- its crops, described from the window's analysis exactly as a song's crops
  are from the song's (the context is longer than any crop);
- its rows of the time series, which join into the track's table;
- what the track's features are made of (:class:`Joiner`): per-frame values
  (spectral frames, onset envelope, chroma, HPCP, frame RMS: a few numbers
  per frame, not the STFT), sums (K-weighted power per 100 ms, band power,
  the dynamic-complexity energies per 200 ms), clipped regions and true-peak
  blocks. Frames start on a multiple of every hop, so frame ``i`` of a window
  is a frame of the whole track, computed on the same samples.

The track's features then come from these joined values by the same code as
a song's, so they are the whole track's (``tests/unit/test_feature_windows.py``
holds them to it), with four exceptions, all because the whole track's
audio is never held: the key is the windows' key with the most time (its
strength their mean); the timbral attributes are the windows' means,
weighted by their length; chroma uses each window's own tuning estimate; and
librosa's onset envelope (``onset_strength_*``, the time series' onset
strength) floors each window 80 dB below that window's loudest frame, not
the track's. On a 45 s excerpt cut into 12 s windows these move by under 5 %.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from mirflow.audio import Window, sample_windows, stream_audio
from mirflow.features import TONAL_HOP, Analysis, loudness_step

#: Own audio per window, seconds: a song (up to 5 minutes) is one window.
WINDOW_S = 300.0
#: Audio either side of a window's own part, seconds: more than the filters
#: (K-weighting, band-passes, the constant-Q chroma's lowest octave) need to
#: settle; a crop longer than this widens it.
CONTEXT_S = 15.0

#: The quantities of :class:`mirflow.features.Analysis` each feature group
#: reads (for a track, and for a stem in :func:`mirflow.feature_records.stem_features`).
TRACK_NEEDS = {
    "loudness": ("k_power",),
    "spectral": ("spectral_frames",),
    "spectral_shape": ("spectral_frames", "zero_crossings"),
    "multiband_rms": ("band_power",),
    "chroma": ("chroma_frames",),
    "key": ("key",),
    "harmonic": ("hpcps",),
    "rhythm": (),
    "rhythm_detail": ("onset_envelope",),
    "saturation": ("saturation_regions", "true_peaks", "sample_level"),
    "dynamics": ("complexity_energies", "silence_rms"),
    "timbral": ("timbre",),
}
STEM_NEEDS = {
    "loudness": ("k_power",),
    "rhythm": ("onset_envelope",),
    "rhythm_detail": ("onset_envelope",),
    "harmonic": ("hpcps",),
}


def needs(enabled: dict[str, bool], table: dict[str, tuple[str, ...]]) -> set[str]:
    return {name for group, on in enabled.items() if on for name in table.get(group, ())}


def unit_for(sr: int, series_hop: int | None) -> int:
    """Samples every window starts on a multiple of: every frame hop's."""
    return math.lcm(TONAL_HOP, series_hop or 1)


def windows(path, sr: int, unit: int, context_s: float) -> Iterator[Window]:
    """:func:`mirflow.audio.sample_windows` of a file at ``sr``, every length
    rounded up to a multiple of ``unit``."""
    window = _round_up(WINDOW_S * sr, unit)
    context = _round_up(context_s * sr, unit)
    return sample_windows(stream_audio(path, sr=sr), window, context, unit)


def _round_up(samples: float, unit: int) -> int:
    return int(math.ceil(samples / unit)) * unit


def _own_frames(value, hop: int, window: Window, axis: int):
    lo = (window.own_start - window.start) // hop
    hi = None if window.last else (window.own_stop - window.start) // hop
    if isinstance(value, dict):
        return {name: _own_frames(v, hop, window, axis) for name, v in value.items()}
    index = [slice(None)] * value.ndim
    index[axis] = slice(lo, hi)
    return np.array(value[tuple(index)])


class Joiner:
    """The parts of a track's whole-track quantities (``names``, of
    :class:`mirflow.features.Analysis`), gathered window after window
    (:meth:`add`); :meth:`analysis` is then an Analysis of the whole track
    made of them, which :func:`mirflow.features.describe` reads as it reads
    a song's."""

    def __init__(self, sr: int, names: set[str]) -> None:
        self.sr, self.names = sr, names
        self.step = loudness_step(sr)
        self.parts: dict[str, list] = {name: [] for name in names}
        self.n_samples, self.sounds = 0, False
        self.keys: Counter = Counter()
        self.strengths: dict[str, list[float]] = {}
        self.level = [0.0, 0.0, 0]
        self.segments: dict[int, float] = {}
        self.bands: dict[str, float | None] = {}
        self.timbre: dict[str, list[tuple[float, int]]] = {}

    def add(self, analysis: Analysis, window: Window) -> None:
        """Take ``analysis`` (of ``window.audio``) for the window's own samples."""
        from mirflow import dynamics  # noqa: PLC0415

        own = analysis.span(window.own_start - window.start, window.own_stop - window.start)
        self.n_samples += own.n_samples
        self.sounds = self.sounds or own.sounds
        for name in self.names:
            shared = getattr(Analysis, name)
            if name == "key":
                key = own.key
                if key["key"] is not None:
                    self.keys[key["key"]] += own.n_samples
                    self.strengths.setdefault(key["key"], []).append(key["key_strength"])
            elif name == "timbre":
                for key, value in own.timbre.items():
                    self.timbre.setdefault(key, [])
                    if value is not None:
                        self.timbre[key].append((value, own.n_samples))
            elif name == "sample_level":
                peak, squares, count = own.sample_level
                self.level = [max(self.level[0], peak), self.level[1] + squares,
                              self.level[2] + count]  # fmt: skip
            elif name == "complexity_energies":
                span = (window.own_start, window.own_stop)
                self.parts[name].append(
                    dynamics.complexity_energies(analysis.mono, self.sr, window.start, span)
                )
            elif name == "k_power":
                self._add_segments(analysis.k_power, window)
            elif name == "band_power":
                lo, hi = window.own_start - window.start, window.own_stop - window.start
                for band, cumulative in analysis.band_power.items():
                    self.bands[band] = (
                        None if cumulative is None
                        else self.bands.get(band, 0.0) + float(cumulative[hi] - cumulative[lo])
                    )  # fmt: skip
            elif shared.cut in ("frames", "rows"):
                value = getattr(analysis, name)
                if value is None:  # chroma of a silent window: frames that do not sound
                    value = self._silent_chroma(analysis)
                self.parts[name].append(
                    _own_frames(value, shared.hop, window, -1 if shared.cut == "frames" else 0)
                )
            elif shared.cut == "blocks":
                value = getattr(analysis, name)
                lo = (window.own_start - window.start) // shared.hop
                hi = None if window.last else -(-(window.own_stop - window.start) // shared.hop)
                self.parts[name].append(np.array(value[lo:hi]))
            elif shared.cut == "regions":
                # Every region the window finds, context included: Essentia's
                # detector can miss a region a few seconds into its input
                # that the next window's finds; the copies merge at the end.
                offset = window.start / self.sr
                self.parts[name].append(
                    [(starts + offset, ends + offset) for starts, ends in getattr(analysis, name)]
                )
            else:
                raise ValueError(f"no way to join {name!r} ({shared.cut})")

    def _add_segments(self, cumulative: np.ndarray, window: Window) -> None:
        """The window's own K-weighted power, summed per ``step`` samples of the track."""
        step = self.step
        lo, hi = window.own_start, window.own_stop
        bounds = np.unique(
            np.concatenate([[lo, hi], np.arange(-(-lo // step), hi // step + 1) * step])
        )
        sums = np.diff(cumulative[bounds - window.start])
        for first, value in zip(bounds[:-1] // step, sums, strict=True):
            self.segments[int(first)] = self.segments.get(int(first), 0.0) + float(value)

    @staticmethod
    def _silent_chroma(analysis: Analysis) -> dict[str, np.ndarray]:
        count = 1 + analysis.n_samples // TONAL_HOP
        return {"chroma": np.zeros((12, count), np.float32), "sounding": np.zeros(count, bool)}

    def analysis(self) -> Analysis:
        """The whole track's :class:`mirflow.features.Analysis`, made of the parts."""
        joined = object.__new__(Analysis)
        joined.audio = joined.mono = joined.harmonic = joined.parent = None
        joined.sr, joined.start, joined.stop = self.sr, 0, self.n_samples
        joined.n_samples, joined.sounds, joined.k_power_step = (
            self.n_samples,
            self.sounds,
            self.step,
        )
        joined._cache, joined._mono_cache = {}, {}
        for name in self.names:
            shared = getattr(Analysis, name)
            cache = joined._mono_cache if shared.mono else joined._cache
            cache[name] = self._joined(name, shared)
        return joined

    def _joined(self, name: str, shared) -> Any:
        from mirflow import dynamics  # noqa: PLC0415

        parts = self.parts.get(name)
        if name == "key":
            if not self.keys:
                return {"key": None, "key_strength": None}
            key = self.keys.most_common(1)[0][0]
            return {"key": key, "key_strength": float(np.mean(self.strengths[key]))}
        if name == "timbre":  # the models' values over windows, weighted by their length
            joined: dict[str, float | None] = dict.fromkeys(self.timbre)
            for key, values in self.timbre.items():
                if values:
                    scores, lengths = np.array(values).T
                    joined[key] = float(np.average(scores, weights=lengths))
            return joined
        if name == "sample_level":
            return tuple(self.level)
        if name == "complexity_energies":
            size = int(dynamics.COMPLEXITY_FRAME_S * self.sr)
            total = np.zeros(self.n_samples // size + 1)
            for first, energies in parts:
                end = min(first + energies.size, total.size)
                total[first:end] += energies[: end - first]
            return total[: self.n_samples // size]
        if name == "k_power":
            count = -(-self.n_samples // self.step)
            sums = np.zeros(count)
            for index, value in self.segments.items():
                sums[index] += value
            return np.concatenate([[0.0], np.cumsum(sums)])
        if name == "band_power":
            return {band: None if total is None else np.array([0.0, total])
                    for band, total in self.bands.items()}  # fmt: skip
        if shared.cut in ("frames", "rows"):
            axis = -1 if shared.cut == "frames" else 0
            if isinstance(parts[0], dict):
                return {key: np.concatenate([p[key] for p in parts], axis=axis) for key in parts[0]}
            return np.concatenate(parts, axis=axis)
        if shared.cut == "blocks":
            return np.concatenate(parts)
        if shared.cut == "regions":
            channels = range(len(parts[0]))
            starts = [np.concatenate([p[c][0] for p in parts]) for c in channels]
            ends = [np.concatenate([p[c][1] for p in parts]) for c in channels]
            return [_merged(s, e, 1.0 / self.sr) for s, e in zip(starts, ends, strict=True)]
        raise ValueError(f"no way to join {name!r}")


def _merged(starts: np.ndarray, ends: np.ndarray, tolerance: float):
    """Regions (seconds) with the ones that overlap (within ``tolerance``) merged."""
    order = np.argsort(starts, kind="stable")
    merged_starts: list[float] = []
    merged_ends: list[float] = []
    for start, end in zip(starts[order], ends[order], strict=True):
        if merged_ends and start <= merged_ends[-1] + tolerance:
            merged_ends[-1] = max(merged_ends[-1], end)
        else:
            merged_starts.append(float(start))
            merged_ends.append(float(end))
    return np.asarray(merged_starts), np.asarray(merged_ends)


def zip_windows(mix: Iterator[Window], stems: dict[str, Iterator[Window]]):
    """``(mix window, {stem: window})`` pairs; a stem shorter than the mix
    by a window drops out of the last ones."""
    names = list(stems)
    for mix_window, *stem_windows in itertools.zip_longest(mix, *stems.values()):
        if mix_window is None:
            return
        yield mix_window, {n: w for n, w in zip(names, stem_windows, strict=True) if w is not None}
