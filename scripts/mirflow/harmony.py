"""Harmonic description: Essentia's peak-based HPCP, the tonal interval
vector (TIV) of it, a tonic, and how much the harmony moves from beat to beat.

Pure functions, as in :mod:`mirflow.features`: arrays in, JSON-ready dicts
out, ``None`` where a value is undefined (silence, too short, too few beats).

Conventions
- Frames of ``FRAME`` samples every ``HOP`` (4096 / 2048: 92.9 / 46.4 ms at
  44.1 kHz, the latent frame rate of :mod:`mirflow.time_series`), a
  Blackman-Harris window, spectral peaks from 40 Hz to 5 kHz, 8 harmonics
  folded onto their fundamental's pitch class (Essentia's recommended HPCP
  set-up for tonality: Gomez 2006).
- Pitch class 0 is C, as in ``chroma_*``: Essentia's own HPCP starts at A
  (its reference frequency), so its bins are rotated here.
- A frame with no spectral peak (silence) has an all-zero HPCP and is left
  out of every mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mirflow.essentia_import import essentia_standard
from mirflow.features import _ENHARMONIC, KEY_PROFILE, PITCH_CLASSES, TONAL_HOP, _as_mono

FRAME = 4096
HOP = TONAL_HOP
MIN_HZ, MAX_HZ = 40.0, 5000.0
HARMONICS = 8
#: Essentia's HPCP bin 0 is A (440 Hz reference): C is 3 semitones above A.
C_OFFSET = 3
#: TIV weights for audio HPCPs (Bernardes et al. 2016, "A multi-level tonal
#: interval space"; Ramires et al. 2020, TIV.lib): how much each DFT
#: coefficient (k = 1..6: chromaticity, dyads, triads, diminished, diatonic,
#: whole-tone) counts in a distance.
TIV_WEIGHTS = np.array([3.0, 8.0, 11.5, 15.0, 14.5, 7.5])
#: The largest TIV norm (a single pitch class): ||w||.
TIV_MAX_NORM = float(np.sqrt((TIV_WEIGHTS**2).sum()))


def frame_hpcps(audio: np.ndarray, sr: int) -> np.ndarray:
    """HPCP per frame, shape (frames, 12), C first, each frame max-normalised
    (all zero where the frame has no peak). Frame i is centred on sample
    ``i * HOP`` (the signal is zero-padded by half a frame at either end), so
    the frames line up with :mod:`mirflow.time_series`."""
    es = essentia_standard()
    mono = _as_mono(audio)
    n_frames = 1 + mono.size // HOP
    if mono.size == 0 or not np.any(mono):
        return np.zeros((n_frames, 12), dtype=np.float32)
    padded = np.concatenate([np.zeros(FRAME // 2, np.float32), mono, np.zeros(FRAME, np.float32)])
    window = es.Windowing(type="blackmanharris62", size=FRAME)
    spectrum = es.Spectrum(size=FRAME)
    peaks = es.SpectralPeaks(
        orderBy="magnitude", magnitudeThreshold=1e-05, minFrequency=MIN_HZ,
        maxFrequency=MAX_HZ, maxPeaks=60, sampleRate=float(sr),
    )  # fmt: skip
    hpcp = es.HPCP(
        size=12, referenceFrequency=440.0, harmonics=HARMONICS, bandPreset=True,
        minFrequency=MIN_HZ, maxFrequency=MAX_HZ, weightType="cosine",
        nonLinear=False, windowSize=1.0, normalized="unitMax", sampleRate=float(sr),
    )  # fmt: skip
    out = np.zeros((n_frames, 12), dtype=np.float32)
    for i in range(n_frames):
        frame = padded[i * HOP : i * HOP + FRAME]
        if not np.any(frame):
            continue
        freqs, mags = peaks(spectrum(window(frame)))
        if freqs.size:
            out[i] = hpcp(freqs, mags)
    return np.roll(out, -C_OFFSET, axis=1)


def tiv(profile: np.ndarray) -> np.ndarray | None:
    """Tonal interval vector of a 12-bin pitch-class profile (C first):
    ``T(k) = w(k) * sum_n p(n) exp(-2 pi i k n / 12)``, k = 1..6, p the
    L1-normalised profile. Returned as 12 reals: the 6 real parts, then the 6
    imaginary parts (the last always 0: T(6) is real). |T(k)| <= w(k).
    None for an all-zero profile."""
    profile = np.asarray(profile, dtype=np.float64).reshape(-1)
    total = profile.sum()
    if not total > 0:
        return None
    coefficients = np.fft.fft(profile / total)[1:7] * TIV_WEIGHTS
    imaginary = coefficients.imag
    imaginary[5] = 0.0  # k = 6 is the Nyquist coefficient: real for any profile (not ~1e-16)
    return np.concatenate([coefficients.real, imaginary])


def harmonic_profile(hpcps: np.ndarray, sr: int) -> dict[str, Any]:
    """``hpcp_0``..``hpcp_11`` (mean HPCP of the sounding frames, max bin 1,
    C first), ``tiv_0``..``tiv_11`` (TIV of that mean) and ``tonic``,
    ``tonic_strength`` (Essentia's Key on the mean HPCP, Krumhansl profile:
    the tonic's pitch class name and its correlation, clipped to [0, 1])."""
    none = {f"hpcp_{i}": None for i in range(12)}
    none.update({f"tiv_{i}": None for i in range(12)})
    none.update({"tonic": None, "tonic_strength": None})
    sounding = hpcps.any(axis=1)
    if not sounding.any():
        return none
    mean = hpcps[sounding].mean(axis=0)
    if not mean.max() > 0:
        return none
    mean = mean / mean.max()
    out: dict[str, Any] = {f"hpcp_{i}": float(v) for i, v in enumerate(mean)}
    out.update({f"tiv_{i}": float(v) for i, v in enumerate(tiv(mean))})
    out.update(_tonic(mean))
    return out


def _tonic(mean_c_first: np.ndarray) -> dict[str, Any]:
    es = essentia_standard()
    # Essentia's Key reads an A-first profile.
    a_first = np.roll(mean_c_first, C_OFFSET).astype(np.float32)
    tonic, _scale, strength, _ = es.Key(profileType=KEY_PROFILE, pcpSize=12)(a_first)
    tonic = _ENHARMONIC.get(tonic, tonic)
    if tonic not in PITCH_CLASSES or not math.isfinite(strength):
        return {"tonic": None, "tonic_strength": None}
    return {"tonic": tonic, "tonic_strength": float(np.clip(strength, 0.0, 1.0))}


def harmonic_change(hpcps: np.ndarray, beat_times: np.ndarray, sr: int) -> dict[str, float | None]:
    """How the harmony moves between beats: the frames between two beats are
    averaged into one HPCP per beat span, each span with sound gets its TIV;
    ``movement`` is the mean Euclidean distance between consecutive spans'
    TIVs (0 for a held chord, at most 2 x ``TIV_MAX_NORM`` = 52.8),
    ``variance`` the total variance of the TIVs over the spans (sum of the
    12 components' variances). Needs 2 spans with sound (3 beats)."""
    beat_times = np.sort(np.asarray(beat_times, dtype=np.float64).reshape(-1))
    frame_times = np.arange(hpcps.shape[0]) * HOP / sr
    vectors = []
    for start, stop in zip(beat_times[:-1], beat_times[1:], strict=True):
        inside = hpcps[(frame_times >= start) & (frame_times < stop)]
        inside = inside[inside.any(axis=1)]
        vector = tiv(inside.mean(axis=0)) if inside.size else None
        if vector is not None:
            vectors.append(vector)
    if len(vectors) < 2:
        return {"movement": None, "variance": None}
    vectors = np.asarray(vectors)
    steps = np.linalg.norm(np.diff(vectors, axis=0), axis=1)
    return {"movement": float(steps.mean()), "variance": float(vectors.var(axis=0).sum())}
