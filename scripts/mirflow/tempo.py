"""The tempo a listener would tap, chosen by the agreement of three estimators.

A beat tracker's commonest error is the metrical octave: it follows the
eighth notes of a samba or a hip-hop loop and reports twice the tempo a
listener taps. No single estimator is free of this, but independent ones make
their octave errors on different pieces, so mirflow asks three and lets them
vote on the octave of the beat tracker's grid:

- the beat tracker's own grid (madmom's DBN or Beat This!), ``bpm_<backend>``;
- Essentia's ``RhythmExtractor2013`` (multifeature beat tracker, Zapata et
  al. 2014), ``bpm_essentia``;
- Essentia's ``PercivalBpmEstimator`` (autocorrelation with its own octave
  decision, Percival & Tzanetakis 2014), ``bpm_percival``.

The candidates are the grid's tempo, its double, its half (an even bar) and
two thirds of it (a 3-beat bar that is a 6/8's two dotted quarters): the
rescalings that keep the tracker's bars whole (:func:`bar_subdivisions`,
:func:`rescale_grid`). Each estimator votes for the candidate it lies within
``TOLERANCE`` of; the grid's metrical accent (:func:`accent_contrast`) votes
between the grid and its half; doubling needs onsets on the beats it adds
(:func:`doubling_supported`). Most votes win; a tie keeps the tracker's grid,
then goes to the listeners' tapping preference (a log-normal resonance
around 120 bpm, van Noorden & Moelants 1999; Moelants 2002).

``bpm_is_defined`` is false when no two estimators agree on the chosen tempo
within the tolerance, nor up to an octave that the evidence settles (free time,
speech, a solo line, noise): then ``bpm`` is None and no prompt says "N bpm".
``bpm_confidence`` (0-1) is the estimators' mean closeness to the chosen
tempo: 1 when all three agree exactly, half for one at its octave, 0 for one
further than ``2 * TOLERANCE`` away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Two tempi agree within this relative difference (the MIREX tempo tolerance).
TOLERANCE = 0.04
#: Tapping preference: centre and width (octaves) of the resonance curve.
PREFERRED_BPM = 120.0
PREFERENCE_WIDTH_OCTAVES = 1.0
#: An onset this close to a beat (seconds) falls on it.
ONSET_WINDOW_S = 0.05
#: Doubling adds beats: at least this share as many of them must fall on an
#: onset as of the tracker's own beats (a 60 bpm metronome has nothing in between).
DOUBLING_ONSET_SUPPORT = 0.5
#: The metrical accent votes only when the odd and even beats differ by more than this.
ACCENT_MARGIN = 0.10
#: Essentia's estimators need this rate (they assume it).
ESSENTIA_SAMPLE_RATE = 44100


@dataclass(frozen=True)
class TempoChoice:
    bpm: float | None  # the chosen tempo, None when undefined
    beats_per_bar: int | None  # of the grid at that tempo (the tracker's when undefined)
    confidence: float  # 0-1
    is_defined: bool


def grid_tempo(times: np.ndarray, span: int = 8) -> float | None:
    """The tempo of beat times: 60 over the median interval spanned by ``span``
    beats, divided by ``span``. The median is robust to a few missed beats; the
    span averages out the trackers' frame grid (10 ms at 100 fps is 3 % of a
    180 bpm beat; over 8 beats, 0.4 %)."""
    times = np.asarray(times, dtype=float)
    if len(times) < 2:
        return None
    k = min(span, len(times) - 1)
    interval = float(np.median(times[k:] - times[:-k])) / k
    return 60.0 / interval if interval > 0 else None


def _ratio_octaves(a: float, b: float) -> float:
    return abs(math.log2(a / b))


def agrees(a: float | None, b: float | None, tolerance: float = TOLERANCE) -> bool:
    """Whether two tempi are the same within ``tolerance`` (relative)."""
    if not a or not b:
        return False
    return _ratio_octaves(a, b) <= math.log2(1.0 + tolerance)


def preference(bpm: float) -> float:
    """Listeners' tapping preference for a tempo, 0-1 (1 at PREFERRED_BPM)."""
    octaves = math.log2(bpm / PREFERRED_BPM) / PREFERENCE_WIDTH_OCTAVES
    return math.exp(-0.5 * octaves * octaves)


def closeness(estimate: float | None, bpm: float) -> float:
    """1 for the same tempo, falling to 0 at twice the tolerance; half that at an octave."""
    if not estimate:
        return 0.0
    limit = 2.0 * math.log2(1.0 + TOLERANCE)
    same = max(0.0, 1.0 - _ratio_octaves(estimate, bpm) / limit)
    octave = max(max(0.0, 1.0 - _ratio_octaves(estimate, bpm * k) / limit) for k in (0.5, 2.0))
    return max(same, 0.5 * octave)


def bar_subdivisions(beats_per_bar: int) -> list[int]:
    """Beats per bar the grid may be rescaled to: the tracker's, half of it
    (an even bar), two thirds (a 3-beat bar heard as a 6/8's two dotted
    quarters) and double. Every candidate keeps the tracker's bars whole."""
    options = [beats_per_bar, 2 * beats_per_bar]
    if beats_per_bar % 2 == 0:
        options.append(beats_per_bar // 2)
    if beats_per_bar % 3 == 0:
        options.append(2 * beats_per_bar // 3)
    return options


def on_onsets(times: np.ndarray, onsets: np.ndarray) -> float:
    """Share of ``times`` with an onset within ONSET_WINDOW_S."""
    if len(times) == 0 or len(onsets) == 0:
        return 0.0
    onsets = np.sort(onsets)
    index = np.clip(np.searchsorted(onsets, times), 1, len(onsets) - 1)
    nearest = np.minimum(np.abs(onsets[index - 1] - times), np.abs(onsets[index] - times))
    return float(np.mean(nearest <= ONSET_WINDOW_S))


def doubling_supported(beats: np.ndarray, onsets: np.ndarray) -> bool:
    """Whether the beats doubling would add fall on onsets about as often as the
    tracker's own beats do (DOUBLING_ONSET_SUPPORT)."""
    times = np.asarray(beats, dtype=float).reshape(-1, 2)[:, 0]
    if len(times) < 2:
        return False
    own = on_onsets(times, onsets)
    added = on_onsets((times[:-1] + times[1:]) / 2, onsets)
    return own > 0 and added >= DOUBLING_ONSET_SUPPORT * own


def accent_contrast(flux: np.ndarray, beats: np.ndarray, fps: int = 100) -> float | None:
    """How much stronger the onsets on the grid's odd beats (1, 3, ...: the ones
    halving keeps) are than on its even beats (the ones it drops), as a ratio of
    mean spectral flux (``flux``: madmom's, at ``fps``; the peak within 30 ms
    of the beat).

    Metrical accent: when a tracker follows the eighth notes, the real beats
    are its odd ones and carry the kick and snare (ratio > 1); when it follows
    real beats, the even ones carry the backbeat (ratio < 1). None without beats,
    or for a bar of an odd number of beats (halving is no candidate there).
    """
    beats = np.asarray(beats, dtype=float).reshape(-1, 2)
    positions = beats[:, 1].astype(int)
    if len(beats) == 0 or len(flux) == 0 or positions.max() % 2:  # no even bar: no half to vote on
        return None
    if (positions % 2 == 0).sum() < 2 or (positions % 2 == 1).sum() < 2:
        return None
    reach = round(0.03 * fps)
    frames = np.clip(np.round(beats[:, 0] * fps).astype(int), 0, len(flux) - 1)
    peaks = np.array([flux[max(0, f - reach) : f + reach + 1].max() for f in frames])
    odd, even = peaks[positions % 2 == 1].mean(), peaks[positions % 2 == 0].mean()
    return float(odd / even) if even > 0 else None


def choose_tempo(
    grid_bpm: float | None,
    others: list[float | None],
    beats_per_bar: int | None,
    doubling_ok: bool = True,
    accent: float | None = None,
) -> TempoChoice:
    """The tempo among the grid's rescalings (:func:`bar_subdivisions`) that the
    estimators vote for; ``others`` are the independent estimates (Essentia's).

    ``doubling_ok``: whether the onsets support added beats
    (:func:`doubling_supported`). ``accent`` (:func:`accent_contrast`) votes
    for the half tempo when above 1 + ACCENT_MARGIN, for the grid's when
    below 1 / (1 + ACCENT_MARGIN). A tie goes to the tracker's grid, then to the
    tapping preference. The tempo is defined when two tempo estimators agree
    on it, or agree up to an octave and the evidence (accent, onsets) chose
    the octave: that evidence picks an octave, it measures no tempo.
    """
    if not grid_bpm or not beats_per_bar:
        return TempoChoice(None, beats_per_bar, 0.0, False)
    estimates = [grid_bpm, *others]
    options = [m for m in bar_subdivisions(beats_per_bar) if m <= beats_per_bar or doubling_ok]
    half = beats_per_bar // 2 if beats_per_bar % 2 == 0 else None

    clear_accent = (
        accent is not None
        and half is not None
        and abs(math.log(accent)) > math.log(1.0 + ACCENT_MARGIN)
    )

    def agreeing(subdivision: int) -> int:
        candidate = grid_bpm * subdivision / beats_per_bar
        return sum(agrees(e, candidate) for e in estimates)

    def accent_vote(subdivision: int) -> bool:
        return clear_accent and subdivision == (half if accent > 1 else beats_per_bar)

    def score(subdivision: int) -> tuple[int, bool, float]:
        votes = agreeing(subdivision) + accent_vote(subdivision)
        candidate = grid_bpm * subdivision / beats_per_bar
        return votes, subdivision == beats_per_bar, preference(candidate)

    chosen = max(options, key=score)
    bpm = grid_bpm * chosen / beats_per_bar
    confidence = round(float(np.mean([closeness(e, bpm) for e in estimates])), 3)
    # Defined: two estimators agree on it, or two agree up to an octave and the
    # evidence chose that octave: the accent (a fast backbeat Essentia halves),
    # or onsets refusing the double (a slow metronome Essentia doubles).
    octave_agreeing = sum(any(agrees(e, bpm * k) for k in (0.5, 1.0, 2.0)) for e in estimates)
    settled = accent_vote(chosen) or (not doubling_ok and chosen == beats_per_bar)
    if agreeing(chosen) < 2 and not (settled and octave_agreeing >= 2):
        return TempoChoice(None, beats_per_bar, confidence, False)  # keep the tracker's grid
    return TempoChoice(bpm, chosen, confidence, True)


def essentia_tempi(mono: np.ndarray, sr: int) -> dict[str, float | None]:
    """``bpm_essentia`` (RhythmExtractor2013, multifeature), its own confidence
    (0-5.32, Essentia's scale) and ``bpm_percival``, of a mono 44.1 kHz signal."""
    from mirflow.essentia_import import essentia_standard  # noqa: PLC0415

    if sr != ESSENTIA_SAMPLE_RATE:
        raise ValueError(f"Essentia's tempo estimators need {ESSENTIA_SAMPLE_RATE} Hz, got {sr}")
    es = essentia_standard()
    signal = np.ascontiguousarray(mono, dtype=np.float32)
    bpm, _, confidence, _, _ = es.RhythmExtractor2013(method="multifeature")(signal)
    percival = es.PercivalBpmEstimator(sampleRate=sr)(signal)

    def positive(value: float) -> float | None:
        return float(value) if np.isfinite(value) and value > 0 else None

    return {
        "bpm_essentia": positive(bpm),
        "bpm_essentia_confidence": float(confidence) if np.isfinite(confidence) else None,
        "bpm_percival": positive(percival),
    }


def combine_tempi(estimates: list[tuple[dict, float]]) -> dict[str, float | None]:
    """One set of :func:`essentia_tempi` fields from the estimates of a track's
    windows, each weighted by its length: the weighted median of each tempo
    (a window of another tempo, a mix's transition, does not pull it), the
    weighted mean confidence. One window gives its own fields unchanged."""
    keys = ("bpm_essentia", "bpm_essentia_confidence", "bpm_percival")
    if len(estimates) == 1:
        return dict(estimates[0][0])
    out: dict[str, float | None] = {}
    for key in keys:
        pairs = [(t[key], w) for t, w in estimates if t.get(key) is not None]
        if not pairs:
            out[key] = None
            continue
        values, weights = np.array(pairs, dtype=float).T
        if key == "bpm_essentia_confidence":
            out[key] = float(np.average(values, weights=weights))
        else:
            order = np.argsort(values)
            cumulative = np.cumsum(weights[order])
            out[key] = float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    return out


def rescale_grid(beats: np.ndarray, beats_per_bar: int) -> np.ndarray:
    """The beat grid with ``beats_per_bar`` evenly spaced beats in each of the
    tracker's bars (whatever its length); downbeats never move.

    Each beat gets a bar coordinate (bar index + (beat_in_bar - 1) / bar
    length); the new beats sit at ``bar + j / beats_per_bar`` and their times
    are interpolated between the tracker's beats. Halving keeps beats 1, 3,
    ...; doubling adds the midpoints; a 3-beat bar rescaled to 2 gets a beat
    at the downbeat and one midway between its beats 2 and 3.
    """
    beats = np.asarray(beats, dtype=float).reshape(-1, 2)
    if len(beats) < 2 or beats_per_bar < 1:
        return beats
    times, positions = beats[:, 0], beats[:, 1].astype(int)
    bar = np.cumsum(positions == 1) - 1  # -1 for an upbeat before the first downbeat
    lengths = {b: int(positions[bar == b].max()) for b in np.unique(bar)}
    if set(lengths.values()) == {beats_per_bar}:
        return beats
    # The first and last bar may be cut by the track's ends: they get the usual length.
    usual = int(np.bincount(list(lengths.values())).argmax())
    for b in (bar[0], bar[-1]):
        lengths[b] = max(lengths[b], usual)
    coordinate = bar + (positions - 1) / np.array([lengths[b] for b in bar])
    steps = np.arange(
        np.ceil(coordinate[0] * beats_per_bar - 1e-9),
        np.floor(coordinate[-1] * beats_per_bar + 1e-9) + 1,
    )
    new_times = np.interp(steps / beats_per_bar, coordinate, times)
    new_positions = np.mod(steps, beats_per_bar) + 1
    return np.column_stack([new_times, new_positions])
