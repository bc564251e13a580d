"""Whole-track time series: frame-level curves at a latent frame rate, one
Parquet file per track, and each crop's slice of it.

The default rate is 44100 / 2048 = 21.533 frames per second, the latent frame
rate of Stable Audio Open's autoencoder (and of others with a 2048 downsampling
at 44.1 kHz), so a curve lines up frame for frame with the latents a control
head is trained on: a 524288-sample crop is exactly 256 frames.

Frame ``j`` is centred on sample ``j * hop`` of the track at the analysis rate
(``hop = round(44100 / frame_rate)``); it summarises the finer analysis frames
whose centres fall within half a hop of it (their mean), so every curve has
``1 + samples // hop`` frames. Columns (float32, ``time_s`` float64; NaN
where a value is undefined: silence for spectral shape, outside the beat
grid for the phases):

- ``time_s``: the frame's centre;
- ``loudness_short_term``: EBU R128 short-term loudness (3 s window centred
  on the frame), LUFS, floored at -120;
- ``rms_energy_bass`` .. ``rms_energy_air``: RMS of the bands of
  :data:`mirflow.features.BANDS` over the frame's span, dBFS (floor -120);
- ``spectral_centroid`` (Hz), ``spectral_flux``, ``spectral_flatness``: as in
  :mod:`mirflow.features`, over the span's sounding STFT frames;
- ``onset_strength``: librosa's onset strength envelope, mean over the span;
- ``hpcp_0`` .. ``hpcp_11``: the HPCP of :mod:`mirflow.harmony` (C first,
  per frame max 1; the bass and other stems when the track has them);
- ``beat_phase``: position within the beat, 0 (on it) to 1;
- ``bar_position``: position within the bar in beats, 0 (the downbeat) to
  beats per bar.

Why Parquet: named, typed columns that ``pandas.read_parquet`` (and polars,
DuckDB, Arrow in any language) read without mirflow, compressed, and a
schema that says which curve is which; an ``.npz`` would need a separate
list of names and loads all or nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from mirflow.features import FLOOR_DB

#: Stable Audio Open's latent rate at 44.1 kHz.
DEFAULT_FRAME_RATE = 44100 / 2048


def hop_for(frame_rate: float, sr: int) -> int:
    """Samples per frame at ``sr`` for ``frame_rate`` frames per second."""
    hop = round(sr / frame_rate)
    if hop < 1:
        raise ValueError(f"time_series.frame_rate {frame_rate} is above the sample rate {sr}")
    return hop


def frame_count(n_samples: int, hop: int) -> int:
    return 1 + n_samples // hop


def pool(values: np.ndarray, source_hop: int, hop: int, n_frames: int, valid=None) -> np.ndarray:
    """Mean of the ``values`` (one per source frame, centred on ``i *
    source_hop``) whose centres lie within half a ``hop`` of each output
    frame's centre; an output frame with none takes the nearest source frame
    (when the source is coarser). ``valid`` masks source frames out (a
    frame with no valid one is NaN). Works on (frames,) or (frames, k)."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1)
    centres = np.arange(values.shape[0]) * source_hop
    target = np.floor((centres + hop / 2) / hop).astype(np.int64)
    keep = target < n_frames
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)[: values.shape[0]]
    sums = np.zeros((n_frames, flat.shape[1]))
    np.add.at(sums, target[keep], flat[keep])
    counts = np.bincount(target[keep], minlength=n_frames)[:n_frames]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts[:, None]
    if source_hop > hop and values.shape[0] and valid is None:
        # A coarser source leaves gaps: take the nearest source frame there.
        nearest = np.clip(np.round(np.arange(n_frames) * hop / source_hop), 0, values.shape[0] - 1)
        empty = counts == 0
        out[empty] = flat[nearest[empty].astype(np.int64)]
    return out.reshape((n_frames, *values.shape[1:]))


def track_curves(analysis, beats: np.ndarray, frame_rate: float = DEFAULT_FRAME_RATE):
    """The track's curves, ``{column: array}`` with one value per frame (see
    the module doc; ``pandas.DataFrame(curves)`` makes a table of them).
    ``analysis`` is the track's :class:`mirflow.features.Analysis` (its
    spectral frames, onset envelope and HPCP frames are shared with the
    track's features). Plain arrays, not a DataFrame: the features job then
    needs no pandas (0.6 s of its fixed cost)."""
    from mirflow import features, harmony  # noqa: PLC0415

    sr, mono = analysis.sr, analysis.mono
    hop = hop_for(frame_rate, sr)
    n = frame_count(mono.size, hop)
    columns: dict[str, np.ndarray] = {"time_s": np.arange(n) * hop / sr}
    columns["loudness_short_term"] = _short_term_loudness(analysis.k_power, sr, hop, n)
    columns.update(_band_levels(analysis.band_power, mono.size, hop, n))
    spectral = analysis.spectral_frames
    sounding = spectral["sounding"]
    flux_valid = sounding & np.concatenate([[False], sounding[:-1]])
    columns["spectral_centroid"] = pool(spectral["centroid"], features.HOP, hop, n, sounding)
    columns["spectral_flux"] = pool(spectral["flux"], features.HOP, hop, n, flux_valid)
    columns["spectral_flatness"] = pool(spectral["flatness"], features.HOP, hop, n, sounding)
    columns["onset_strength"] = pool(analysis.onset_envelope, features.HOP, hop, n)
    hpcps = pool(analysis.hpcps, harmony.HOP, hop, n)
    for i in range(12):
        columns[f"hpcp_{i}"] = hpcps[:, i]
    columns["beat_phase"], columns["bar_position"] = beat_phases(beats, columns["time_s"])
    return {
        k: np.asarray(v, dtype=np.float64 if k == "time_s" else np.float32)
        for k, v in columns.items()
    }


def _short_term_loudness(cumulative: np.ndarray, sr: int, hop: int, n: int) -> np.ndarray:
    """EBU R128 short-term loudness (3 s window centred on each frame, the
    signal taken as silent beyond its ends), LUFS floored at -120, from the
    track's K-weighted power (:func:`mirflow.features.k_weighted_power`)."""
    half = round(1.5 * sr)
    centres = np.arange(n) * hop
    last = cumulative.size - 1
    lo, hi = np.clip(centres - half, 0, last), np.clip(centres + half, 0, last)
    power = (cumulative[hi] - cumulative[lo]) / (2 * half)
    return np.maximum(-0.691 + 10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


def _band_levels(power: dict, mono_size: int, hop: int, n: int) -> dict[str, np.ndarray]:
    """Per frame: RMS (dBFS) of each band of mirflow.features.BANDS over the
    samples within half a hop of the frame's centre, from the track's band
    power (:func:`mirflow.features.band_power`)."""
    edges = np.clip(np.arange(n + 1) * hop - hop // 2, 0, mono_size)
    lengths = np.maximum(edges[1:] - edges[:-1], 1)
    out = {}
    for name, cumulative in power.items():
        if cumulative is None:
            out[name] = np.full(n, np.nan)
            continue
        sums = cumulative[edges[1:]] - cumulative[edges[:-1]]
        out[name] = np.maximum(10.0 * np.log10(np.maximum(sums / lengths, 1e-30)), FLOOR_DB)
    return out


def beat_phases(beats: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beat phase 0-1, bar position 0-beats per bar) at each time, by linear
    interpolation between the grid's beats; NaN before the first beat and
    after the last."""
    beats = np.asarray(beats, dtype=np.float64)
    phase = np.full(times.size, np.nan)
    bar = np.full(times.size, np.nan)
    if beats.ndim != 2 or beats.shape[0] < 2:
        return phase, bar
    order = np.argsort(beats[:, 0])
    grid, number = beats[order, 0], beats[order, 1]
    inside = (times >= grid[0]) & (times <= grid[-1])
    position = np.interp(times[inside], grid, np.arange(grid.size, dtype=np.float64))
    index = np.minimum(np.floor(position).astype(np.int64), grid.size - 1)
    fraction = position - index
    phase[inside] = fraction
    bar[inside] = (number[index] - 1) + fraction
    return phase, bar


def crop_slice(table, start_s: float, duration_s: float, frame_rate: float) -> dict[str, list]:
    """The frames a crop covers, as ``{curve: [value, ...]}`` (``time_s``
    relative to the crop; NaN as None): ``round(start_s * rate)`` onwards,
    ``round(duration_s * rate)`` frames, so a 524288-sample crop at 44.1 kHz
    has 256 at the default rate. Frames past the track's end are None.
    ``table``: :func:`track_curves`' columns (or a DataFrame of them)."""
    first = round(start_s * frame_rate)
    count = round(duration_s * frame_rate)
    out: dict[str, list] = {}
    for column in table.keys():
        values = np.asarray(table[column], dtype=np.float64)[first : first + count]
        if column == "time_s":
            values = values - start_s
        listed = [None if not math.isfinite(v) else float(f"{v:.6g}") for v in values]
        out[column] = listed + [None] * (count - len(listed))
    return out


def write_table(table, path: str | os.PathLike) -> None:
    """Write the curves (:func:`track_curves`' columns) as Parquet with
    pyarrow, atomically (a killed job leaves no half file)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from mirflow.atomic import atomic_path  # noqa: PLC0415

    columns = pa.table({name: np.asarray(values) for name, values in table.items()})
    with atomic_path(Path(path)) as tmp:
        pq.write_table(columns, tmp, compression="zstd")


def write_empty_table(path: str | os.PathLike) -> None:
    """A table with no frames, for a track whose features could not be made
    (a failed upstream stage): the rule's output exists, its record says why."""
    write_table({"time_s": np.empty(0, dtype=np.float64)}, path)


def read_table(path: str | os.PathLike):
    import pandas as pd  # noqa: PLC0415

    return pd.read_parquet(path)
