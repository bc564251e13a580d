"""Descriptive audio features: loudness, spectral shape, band energy, chroma,
key and rhythm statistics, and :func:`describe`, which merges the enabled
groups (those of :mod:`mirflow.harmony` and :mod:`mirflow.dynamics` too).

Pure functions: arrays and a sample rate in, plain dicts of JSON-ready Python
values out (``float``/``int``/``str``/``None``/``list``, always finite). A
value that is undefined for the input (silence, too short, too few beats) is
``None``, never NaN or infinity. The output key names are a contract read by
other tools: do not rename them.

Conventions
- ``audio`` is ``(channels, samples)``; ``mono`` is ``(samples,)`` (a 2-D
  array is averaged over channels first).
- Frame-based features use one STFT: Hann window, ``N_FFT = 2048`` samples,
  ``HOP = 512``, centred frames (46.4 ms / 11.6 ms at 44.1 kHz). The frame is
  fixed in samples, so values are comparable between tracks only at one
  sample rate: feed them audio at the workflow's analysis rate.
- A frame is *silent* when its windowed RMS is below ``SILENCE_DB`` dBFS.
  Spectral shape is undefined there (0/0), so silent frames are left out of
  every mean; a track with no sounding frame gets ``None``.

Heavy imports happen inside the functions that need them, so importing this
module is cheap (~0.1 s) and a caller pays only for what it uses: essentia
loads TensorFlow's libraries (~1 s), scipy.signal ~0.8 s cold, and librosa
(lazy) ~1.5 s on its first STFT (numba, scipy).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import librosa  # lazy-loading: its submodules load on first use
import numpy as np

from mirflow.essentia_import import essentia_standard

N_FFT = 2048
HOP = 512
#: Frames quieter than this (windowed RMS, dBFS) count as silence. -80 dBFS is
#: far below any musical passage, yet above the dither/quantisation noise of a
#: 16-bit fade, whose "spectrum" would read as white noise.
SILENCE_DB = -80.0
#: Spectral flatness ignores bins above this (see ``frame_flatness``).
FLATNESS_MAX_HZ = 16000.0
#: Level reported for a band with no energy, instead of -inf.
FLOOR_DB = -120.0

#: Bands for :func:`multiband_rms`: name -> (low Hz, high Hz).
BANDS: dict[str, tuple[float, float]] = {
    "rms_energy_bass": (20.0, 120.0),
    "rms_energy_body": (120.0, 600.0),
    "rms_energy_mid": (600.0, 2500.0),
    "rms_energy_air": (2500.0, 22000.0),
}
#: Highest band edge as a fraction of Nyquist: a Butterworth edge at Nyquist
#: itself is not realisable.
MAX_EDGE_FRACTION = 0.95
BAND_FILTER_ORDER = 4

#: Pitch-class names, index 0 = C. The key spelling is fixed by contract.
PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ENHARMONIC = {"C#": "Db", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb"}
#: essentia KeyExtractor profile. Chosen on the test recordings: 'krumhansl'
#: was right on every full track and on 25/25 pitch-shifted copies (as were
#: 'edma' and 'shaath'), and the best of all profiles on 10 s excerpts
#: (28/44, 'edma' 21/44). madmom's CNN was slower (~2.7 s per minute) and
#: named the GuitarSet clip's dominant (Bb) instead of Eb.
KEY_PROFILE = "krumhansl"

#: EBU R128 needs one 400 ms block for integrated loudness and one 3 s
#: short-term window for loudness range.
MIN_LUFS_S = 0.4
MIN_LRA_S = 3.0
ABSOLUTE_GATE_LUFS = -70.0

#: Inter-onset intervals for :func:`rhythm_statistics` are binned to this
#: fraction of a beat, up to ``IOI_MAX_BEATS`` (longer ones share the top bin).
IOI_BIN_BEATS = 0.25
IOI_MAX_BEATS = 4.0

#: Spectral roll-off: the frequency below which this share of the energy lies.
ROLLOFF_PERCENT = 0.85
#: An onset is on a beat for ``on_beat_ratio`` within this fraction of the
#: local beat interval (the tolerance ``syncopation`` uses too).
ON_BEAT_TOLERANCE = 0.125

#: The switches under ``features:`` in the config, in the order of the .INFO.
FEATURE_GROUPS = (
    "loudness",
    "spectral",
    "spectral_shape",
    "multiband_rms",
    "chroma",
    "key",
    "harmonic",
    "rhythm",
    "rhythm_detail",
    "saturation",
    "dynamics",
    "timbral",
)
#: Groups a config that does not name them leaves off: the timbral models cost
#: about as much time as the audio is long (mirflow.timbral).
OFF_BY_DEFAULT = frozenset({"timbral"})


# --------------------------------------------------------------------------- helpers


def _as_mono(mono: np.ndarray) -> np.ndarray:
    mono = np.asarray(mono, dtype=np.float32)
    return mono.mean(axis=0) if mono.ndim == 2 else mono.reshape(-1)


def _as_channels(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio[np.newaxis] if audio.ndim == 1 else audio


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _db(power: np.ndarray | float) -> np.ndarray | float:
    """10*log10(power), floored at ``FLOOR_DB`` so silence stays finite."""
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


def _stft_magnitude(mono: np.ndarray) -> np.ndarray:
    """|STFT|, shape (1 + N_FFT/2, frames); at least one frame, even for empty input."""
    if mono.size == 0:
        return np.zeros((1 + N_FFT // 2, 1), dtype=np.float32)
    return np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP, window="hann", center=True))


def sounding_frames(mag: np.ndarray) -> np.ndarray:
    """Boolean per frame: not silent (windowed RMS >= SILENCE_DB)."""
    rms = librosa.feature.rms(S=mag, frame_length=N_FFT)[0]
    return rms >= 10.0 ** (SILENCE_DB / 20.0)


def frame_flatness(mag: np.ndarray, sr: int) -> np.ndarray:
    """Per frame: geometric / arithmetic mean of the power spectrum (librosa)
    over 0 Hz to ``FLATNESS_MAX_HZ``.

    Lossy codecs empty the bins above ~16 kHz, and empty bins drag the
    geometric mean to librosa's floor: over the full band, a 128 kbit/s MP3
    read 25 times flatter than a 320 kbit/s MP3 of the same audio
    (2.2e-5 vs 5.3e-4); up to 16 kHz the two agree (1.20e-3 vs 1.29e-3).
    """
    bins = librosa.fft_frequencies(sr=sr, n_fft=N_FFT) <= FLATNESS_MAX_HZ
    return librosa.feature.spectral_flatness(S=mag[bins], power=2.0)[0]


def frame_flux(mag: np.ndarray) -> np.ndarray:
    """Per frame t: || max(p_t - p_{t-1}, 0) ||_2, p = L1-normalised magnitudes.

    Normalising first makes the flux measure change of spectral *shape*, not
    of level. Frame 0 has no predecessor and gets 0.
    """
    total = mag.sum(axis=0, keepdims=True)
    shape = mag / np.maximum(total, np.finfo(np.float32).tiny)
    rise = np.maximum(np.diff(shape, axis=1), 0.0)
    return np.concatenate([[0.0], np.sqrt((rise**2).sum(axis=0))])


def _frame_moments(
    mag: np.ndarray, sr: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: skewness and kurtosis of the magnitude spectrum as a
    distribution over frequency (3rd and 4th standardised moments; the
    kurtosis is not excess, a Gaussian would give 3)."""
    # Raw moments E[f^k] for all frames in one matrix product (fast), then
    # central moments from them. Frequencies in kHz, float64: the
    # cancellation costs ~4 of float64's 16 digits.
    khz = librosa.fft_frequencies(sr=sr, n_fft=N_FFT) / 1000.0
    powers = np.vstack([khz**k for k in range(5)])  # (5, bins)
    raw = powers @ mag.astype(np.float64)  # (5, frames): sum |X| f^k
    total = np.maximum(raw[0], 1e-300)
    m1, m2, m3, m4 = (raw[k] / total for k in range(1, 5))
    var = np.maximum(m2 - m1**2, 1e-12)  # a pure DC frame has zero spread
    third = m3 - 3 * m1 * m2 + 2 * m1**3
    fourth = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
    # Centroid and bandwidth in Hz: librosa's spectral_centroid and
    # spectral_bandwidth (p = 2) are these same two moments, at 3x the cost.
    return 1000.0 * m1, 1000.0 * np.sqrt(var), third / var**1.5, fourth / var**2


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float | None:
    return _finite_or_none(values[mask].mean()) if mask.any() else None


# --------------------------------------------------------------------------- loudness


def loudness(audio: np.ndarray, sr: int) -> dict[str, float | None]:
    """Integrated loudness ``lufs`` (ITU-R BS.1770-4 / EBU R128) and loudness
    range ``lra`` (LU, EBU Tech 3342).

    Every channel has weight 1.0: a mono file is measured as one channel (a
    0 dBFS 1 kHz sine reads -3.01 LUFS; the same sine on both stereo
    channels reads 0.0 LUFS). With more than two channels the surround
    weights would need a channel layout we are not given. ``None`` when
    undefined: silence (every block below the -70 LUFS absolute gate), under
    0.4 s for ``lufs``, under 3 s for ``lra``.

    Integrated loudness agrees with pyloudnorm's and ffmpeg's ebur128 on the
    test recordings (Vibe Ace: -17.28, pyloudnorm -17.28, ffmpeg -17.2).
    Short-term windows lie wholly inside the audio, so a clip of a few
    seconds reads a smaller ``lra`` than meters that start with a window
    padded by silence (a 5.3 s trumpet solo: 5.7 LU, ffmpeg 7.2); on whole
    songs they agree (Karissa Hobbs: 3.93, ffmpeg 3.9).
    """
    return _loudness_from_power(k_weighted_power(audio, sr), sr)


def k_weighted_power(audio: np.ndarray, sr: int) -> np.ndarray:
    """Cumulative sum (from 0, length samples + 1) of the K-weighted signal's
    power summed over channels (BS.1770-4: each channel through pyloudnorm's
    K-weighting filters, for any sample rate, then squared). Any block's mean
    square is then two look-ups, which is how momentary, short-term and the
    time series' loudness all come from one filtering pass (essentia's meter,
    used before, took 10x as long)."""
    import pyloudnorm  # noqa: PLC0415
    from scipy import signal  # noqa: PLC0415

    audio = _as_channels(audio)
    stages = list(pyloudnorm.Meter(sr)._filters.values())  # high shelf, then high pass
    sos = np.vstack([signal.tf2sos(stage.b, stage.a) for stage in stages])
    gain = np.prod([stage.passband_gain for stage in stages])
    return _cumulative_power(audio, sos, gain)


def _cumulative_power(audio: np.ndarray, sos: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Cumulative sum (from 0, length samples + 1) of ``(c, n)`` audio's
    power through the filter ``sos``, summed over channels. Filtered and
    summed a block at a time, the filter state carried (the same numbers as
    one call): a window's float64 copies would be 3x its audio."""
    from scipy import signal  # noqa: PLC0415

    out = np.empty(audio.shape[1] + 1)
    out[0] = 0.0
    state = np.zeros((sos.shape[0], audio.shape[0], 2))
    for start in range(0, audio.shape[1], POWER_BLOCK):
        block = audio[:, start : start + POWER_BLOCK].astype(np.float64)
        filtered, state = signal.sosfilt(sos, block, axis=1, zi=state)
        power = np.square(gain * filtered).sum(axis=0)
        power[0] += out[start]
        np.cumsum(power, out=out[start + 1 : start + 1 + power.shape[0]])
    return out


#: Samples per block of :func:`_cumulative_power` (6 s at 44.1 kHz).
POWER_BLOCK = 1 << 18


def block_power(
    cumulative: np.ndarray,
    sr: int,
    block_s: float,
    hop_s: float,
    n: int | None = None,
    step: int = 1,
) -> np.ndarray:
    """Mean K-weighted power of blocks of ``block_s`` every ``hop_s``, the
    first starting at 0, the last ending by the signal's end (``n``
    samples). ``cumulative`` may hold only every ``step``-th value (a long
    track's, :mod:`mirflow.feature_windows`; the block and hop lengths are
    multiples of it)."""
    n = cumulative.size - 1 if n is None else n
    length, hop = round(block_s * sr), round(hop_s * sr)
    if n < length:
        return np.empty(0)
    starts = np.arange(0, n - length + 1, hop)
    return (cumulative[(starts + length) // step] - cumulative[starts // step]) / length


def loudness_step(sr: int) -> int:
    """The coarsest ``step`` :func:`block_power` can read loudness at."""
    return math.gcd(round(0.4 * sr), round(0.1 * sr), round(3.0 * sr))


def analysis_loudness(frames: Analysis) -> dict[str, float | None]:
    """:func:`loudness` of an analysis (a track's, a span's or a joined one)."""
    return _loudness_from_power(frames.k_power, frames.sr, frames.n_samples, frames.k_power_step)


def _loudness_from_power(
    cumulative: np.ndarray, sr: int, n: int | None = None, step: int = 1
) -> dict[str, float | None]:
    n = cumulative.size - 1 if n is None else n
    duration = n / sr
    if duration < MIN_LUFS_S or not cumulative[-1] > 0:
        return {"lufs": None, "lra": None}
    # 400 ms blocks with 75 % overlap (BS.1770-4); 3 s short-term windows
    # every 100 ms (Tech 3342).
    lufs = _gated_integrated(block_power(cumulative, sr, 0.4, 0.1, n, step))
    short_term = _power_to_lufs(block_power(cumulative, sr, 3.0, 0.1, n, step))
    lra_defined = duration >= MIN_LRA_S and np.any(short_term > ABSOLUTE_GATE_LUFS)
    return {
        "lufs": _finite_or_none(lufs) if lufs > ABSOLUTE_GATE_LUFS else None,
        "lra": _finite_or_none(_loudness_range(short_term)) if lra_defined else None,
    }


def _lufs_to_power(lufs: np.ndarray) -> np.ndarray:
    return 10.0 ** ((np.asarray(lufs, dtype=np.float64) + 0.691) / 10.0)


def _power_to_lufs(power: np.ndarray) -> np.ndarray:
    return -0.691 + 10.0 * np.log10(np.maximum(power, 1e-30))


def _gated_integrated(block_power: np.ndarray) -> float:
    """BS.1770-4 integrated loudness from 400 ms block powers (75 % overlap):
    absolute gate -70 LUFS, then relative gate 10 LU below the gated mean."""
    block_lufs = _power_to_lufs(block_power)
    kept = block_power[block_lufs > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return -math.inf
    relative_gate = _power_to_lufs(kept.mean()) - 10.0
    kept = kept[_power_to_lufs(kept) > relative_gate]
    return float(_power_to_lufs(kept.mean()))


def _loudness_range(short_term_lufs: np.ndarray) -> float:
    """EBU Tech 3342 LRA: spread (95th - 10th percentile) of the short-term
    loudness after a -70 LUFS absolute and a -20 LU relative gate."""
    kept = short_term_lufs[short_term_lufs > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return 0.0
    relative_gate = _power_to_lufs(_lufs_to_power(kept).mean()) - 20.0
    kept = kept[kept > relative_gate]
    low, high = np.percentile(kept, [10, 95])
    return float(high - low)


# --------------------------------------------------------------------------- spectrum


def spectral(mono: np.ndarray, sr: int) -> dict[str, float | None]:
    """Spectral shape, each the mean over sounding STFT frames (see module doc).

    - ``spectral_flatness``: geometric / arithmetic mean of the power
      spectrum up to 16 kHz (~0 for a pure tone; white noise gives about
      0.56 = exp(-Euler gamma), the ratio for a one-frame periodogram).
    - ``spectral_flux``: L2 norm of the half-wave rectified difference
      between consecutive L1-normalised magnitude spectra (only pairs of
      sounding frames).
    - ``spectral_skewness``, ``spectral_kurtosis``: 3rd and 4th standardised
      moments of the magnitude spectrum as a distribution over frequency
      (kurtosis not excess).
    """
    mag = _stft_magnitude(_as_mono(mono))
    return _spectral_from_magnitude(mag, sr)


def _spectral_from_magnitude(mag: np.ndarray, sr: int) -> dict[str, float | None]:
    return _spectral_from_frames(spectral_frames(mag, sr))


def spectral_frames(mag: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Every per-frame spectral quantity the features and the time series
    average, from one magnitude STFT: ``sounding`` (bool), ``flatness``,
    ``flux``, ``centroid`` and ``bandwidth`` (Hz), ``skewness``,
    ``kurtosis``, ``rolloff`` (Hz). Kept instead of the STFT itself: a few
    numbers per frame, where the STFT holds 1025."""
    centroid, bandwidth, skew, kurt = _frame_moments(mag, sr)
    rolloff = librosa.feature.spectral_rolloff(
        S=mag, sr=sr, n_fft=N_FFT, hop_length=HOP, roll_percent=ROLLOFF_PERCENT
    )[0]
    return {
        "sounding": sounding_frames(mag),
        "flatness": frame_flatness(mag, sr),
        "flux": frame_flux(mag),
        "centroid": centroid,
        "bandwidth": bandwidth,
        "skewness": skew,
        "kurtosis": kurt,
        "rolloff": rolloff,
    }


def _spectral_from_frames(frames: dict[str, np.ndarray]) -> dict[str, float | None]:
    sounding = frames["sounding"]
    # Flux compares a frame with the one before: both must sound, and the
    # first frame (of a track, or of a span of one) has no predecessor here.
    flux_valid = sounding & np.concatenate([[False], sounding[:-1]])
    return {
        "spectral_flatness": _mean_over(frames["flatness"], sounding),
        "spectral_flux": _mean_over(frames["flux"], flux_valid),
        "spectral_skewness": _mean_over(frames["skewness"], sounding),
        "spectral_kurtosis": _mean_over(frames["kurtosis"], sounding),
    }


def spectral_shape(mono: np.ndarray, sr: int) -> dict[str, float | None]:
    """Centroid, roll-off and bandwidth of the magnitude spectrum, and the
    zero-crossing rate, each the mean over sounding frames (librosa).

    - ``spectral_centroid``: magnitude-weighted mean frequency, Hz (a sine's
      frequency for a sine).
    - ``spectral_rolloff``: frequency below which 85 % of the magnitude lies, Hz.
    - ``spectral_bandwidth``: magnitude-weighted standard deviation of the
      frequency around the centroid, Hz.
    - ``zero_crossing_rate``: sign changes per sample (2 f / sr for a sine).
    """
    mono = _as_mono(mono)
    return _shape_from_magnitude(mono, _stft_magnitude(mono), sr)


def _shape_from_magnitude(mono: np.ndarray, mag: np.ndarray, sr: int) -> dict[str, float | None]:
    return _shape_from_frames(spectral_frames(mag, sr), zero_crossings(mono))


def zero_crossings(mono: np.ndarray) -> np.ndarray:
    """Zero-crossing rate per STFT frame (librosa, ``N_FFT``/``HOP``, centred)."""
    if mono.size == 0:
        return np.zeros(1)
    return librosa.feature.zero_crossing_rate(mono, frame_length=N_FFT, hop_length=HOP)[0]


def _shape_from_frames(frames: dict[str, np.ndarray], zcr: np.ndarray) -> dict[str, float | None]:
    sounding = frames["sounding"]
    n = min(zcr.size, sounding.size)
    return {
        "spectral_centroid": _mean_over(frames["centroid"], sounding),
        "spectral_rolloff": _mean_over(frames["rolloff"], sounding),
        "spectral_bandwidth": _mean_over(frames["bandwidth"], sounding),
        "zero_crossing_rate": _mean_over(zcr[:n], sounding[:n]),
    }


def multiband_rms(mono: np.ndarray, sr: int) -> dict[str, float | None]:
    """RMS level in dBFS of the signal band-passed to each of ``BANDS``.

    4th-order Butterworth band-passes (second-order sections); a full-scale
    sine inside a band reads about -3.01 dB. Silence reads ``FLOOR_DB``
    (-120). The air band's top edge is capped at 0.95 x Nyquist; a band
    whose low edge is not below that cap is ``None``.
    """
    mono = _as_mono(mono)
    return _multiband_from_power(band_power(mono, sr), mono.size)


def band_power(mono: np.ndarray, sr: int) -> dict[str, np.ndarray | None]:
    """Per band of ``BANDS``: the cumulative sum (from 0, length samples + 1)
    of the band-passed signal's power, or None for a band above the cap. One
    filtering pass serves the band levels and their time series."""
    from scipy import signal  # noqa: PLC0415  (~0.8 s cold import; see module doc)

    mono = np.asarray(mono).reshape(1, -1)
    top = MAX_EDGE_FRACTION * sr / 2.0
    out: dict[str, np.ndarray | None] = {}
    for name, (low, high) in BANDS.items():
        high = min(high, top)
        if low >= high:
            out[name] = None
            continue
        sos = signal.butter(BAND_FILTER_ORDER, [low, high], btype="bandpass", fs=sr, output="sos")
        out[name] = _cumulative_power(mono, sos)
    return out


def _multiband_from_power(
    power: dict[str, np.ndarray | None], n_samples: int
) -> dict[str, float | None]:
    """Band levels from :func:`band_power` (its last value: the band's total)."""
    return {
        name: None
        if cumulative is None
        else float(_db(cumulative[-1] / n_samples if n_samples else 0.0))
        for name, cumulative in power.items()
    }


# --------------------------------------------------------------------------- tonality


def chroma(mono: np.ndarray, sr: int) -> dict[str, float | None]:
    """``chroma_0``..``chroma_11`` (C..B): librosa's constant-Q chroma (tuning
    estimated), averaged over sounding frames and scaled so the largest bin
    is 1. ``None`` for silence or input shorter than one STFT frame."""
    mono = _as_mono(mono)
    return _chroma_from_frames(chroma_frames(mono, sr) if mono.size >= N_FFT else None)


def _chroma_from_frames(frames: dict[str, np.ndarray] | None):
    none = {f"chroma_{i}": None for i in range(12)}
    if frames is None:
        return none
    sounding = frames["sounding"]
    if not sounding.any():
        return none
    profile = frames["chroma"][:, sounding].mean(axis=1)
    if not profile.max() > 0:
        return none
    return {f"chroma_{i}": float(v) for i, v in enumerate(profile / profile.max())}


#: Samples (at the signal's rate) per true-peak block
#: (:func:`mirflow.dynamics.true_peak_blocks`): a crop's true peak is
#: the largest of the blocks it overlaps, so it may see up to this many
#: samples (1.5 ms at 44.1 kHz) past its edges, where its own file would see
#: the oversampling filter ring on silence instead.
TRUE_PEAK_BLOCK = 64

#: Hop of the tonal frames (chroma here, HPCP in mirflow.harmony): 2048
#: samples (~46 ms): only means and time-series frames at the latent rate
#: are kept, so finer steps buy nothing.
TONAL_HOP = 2048


def chroma_frames(
    mono: np.ndarray, sr: int, tuning: float | None = None
) -> dict[str, np.ndarray] | None:
    """CQT chroma per frame (``chroma``: 12 x frames, every ``TONAL_HOP``,
    centred) and which frames sound (``sounding``); None where the signal is
    too short, silent or the sample rate too low for one octave. ``tuning``
    in fractions of a bin (36 per octave), estimated from ``mono`` if None."""
    # C1 upwards, as many whole octaves as fit below ~0.85 x Nyquist (7 at
    # 44.1 and 22.05 kHz): librosa refuses filters that reach past Nyquist.
    fmin = librosa.note_to_hz("C1")
    n_octaves = int(min(7, np.floor(np.log2(0.85 * sr / 2 / fmin))))
    if n_octaves < 1 or mono.size < N_FFT or not np.any(mono):
        return None
    with warnings.catch_warnings():
        # The CQT's lowest octaves run on a signal decimated up to 64x; for a
        # clip of a few seconds librosa warns that its STFT is short, which
        # is expected and harmless here.
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        frames = librosa.feature.chroma_cqt(
            y=mono, sr=sr, hop_length=TONAL_HOP, fmin=fmin, n_octaves=n_octaves, tuning=tuning
        )
    rms = librosa.feature.rms(y=mono, frame_length=2 * TONAL_HOP, hop_length=TONAL_HOP)[0]
    n = min(frames.shape[1], rms.size)
    return {"chroma": frames[:, :n], "sounding": rms[:n] >= 10.0 ** (SILENCE_DB / 20.0)}


#: The band librosa's tuning estimate reads (piptrack's defaults).
TUNING_MIN_HZ, TUNING_MAX_HZ = 150.0, 4000.0


def tuning(mag: np.ndarray, sr: int) -> float:
    """librosa's ``estimate_tuning`` (fractions of a bin at 36 bins per
    octave, as ``chroma_cqt`` reads it) from an existing ``N_FFT`` STFT.

    Its pitch tracker only keeps peaks between 150 Hz and 4 kHz, so it gets
    only the bins up to just past 4 kHz (the sample rate relabelled so each
    bin keeps its frequency): the same estimate on all seven demo tracks, at
    a seventh of the cost.
    """
    rows = min(mag.shape[0], int(np.ceil(TUNING_MAX_HZ * N_FFT / sr)) + 2)
    relabelled = sr * 2 * (rows - 1) / N_FFT
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to estimate tuning", category=UserWarning)
        return float(
            librosa.estimate_tuning(
                S=mag[:rows], sr=relabelled, bins_per_octave=36,
                fmin=TUNING_MIN_HZ, fmax=TUNING_MAX_HZ,
            )
        )  # fmt: skip


def estimate_key(mono: np.ndarray, sr: int) -> dict[str, Any]:
    """Global key with essentia's KeyExtractor (HPCP + Krumhansl profiles).

    ``key`` is ``"<tonic>:<major|minor>"`` spelled with ``PITCH_CLASSES``
    (e.g. ``Eb:major``, ``F#:minor``); ``key_strength`` is the correlation
    of the track's pitch-class profile with the key's template, clipped to
    [0, 1]. Silence or audio too short for one analysis frame gives ``None``.
    """
    es = essentia_standard()

    mono = _as_mono(mono)
    # KeyExtractor frames are 4096 samples; shorter input has no profile.
    if mono.size < 4096 or not np.any(mono):
        return {"key": None, "key_strength": None}
    extractor = es.KeyExtractor(profileType=KEY_PROFILE, sampleRate=float(sr))
    tonic, scale, strength = extractor(np.ascontiguousarray(mono, dtype=np.float32))
    if not tonic or scale not in ("major", "minor") or not math.isfinite(strength):
        return {"key": None, "key_strength": None}
    tonic = _ENHARMONIC.get(tonic, tonic)
    if tonic not in PITCH_CLASSES:
        return {"key": None, "key_strength": None}
    return {"key": f"{tonic}:{scale}", "key_strength": float(np.clip(strength, 0.0, 1.0))}


# --------------------------------------------------------------------------- rhythm


def rhythm_statistics(beats: np.ndarray, onsets: np.ndarray, duration_s: float) -> dict[str, Any]:
    """Statistics of a beat grid and onset list.

    ``beats`` is (n, 2): time in s, beat in bar; ``onsets`` is 1-D times in s.

    - ``beat_count``, ``onset_count``; ``onset_density`` = onsets per second.
    - ``beat_regularity`` = 1 - CV of the inter-beat intervals, clipped to
      [0, 1] (needs >= 2 beats).
    - ``syncopation``: fraction of onsets that are off the beat. Each onset
      gets a beat phase by linear interpolation between its neighbouring
      beats (the grid is extended by one interval at either end; onsets
      beyond are ignored). Rounded to the nearest 1/4 beat, a phase of 0 or
      1 is on the beat, 1/4, 1/2 or 3/4 is off it: an onset is off-beat when
      it lies more than 1/8 beat from the nearest beat.
    - ``rhythmic_complexity``: Shannon entropy (bits) of the histogram of
      inter-onset intervals measured in beats on the same grid, binned to
      1/4 beat (bins 0, 1/4, ..., 4; longer intervals in the 4-beat bin):
      0 for one repeated interval, at most log2(17) = 4.09.
    - ``rhythmic_evenness`` = 1 - CV of the inter-onset intervals in
      seconds, clipped to [0, 1] (needs >= 2 onsets; grid-free).

    Values that need more beats or onsets than given are ``None``.
    """
    beat_times = _beat_times(beats)
    onset_times = np.sort(_finite_1d(onsets))
    grid = _extended_grid(beat_times)
    phases = _beat_positions(onset_times, grid)
    return {
        "beat_count": int(beat_times.size),
        "beat_regularity": _regularity(np.diff(beat_times)),
        "onset_count": int(onset_times.size),
        "onset_density": (
            float(onset_times.size / duration_s) if duration_s and duration_s > 0 else None
        ),
        "syncopation": _syncopation(phases),
        "rhythmic_complexity": _ioi_entropy(phases),
        "rhythmic_evenness": _regularity(np.diff(onset_times)),
    }


def rhythm_detail(
    mono: np.ndarray, sr: int, beats: np.ndarray, onsets: np.ndarray
) -> dict[str, float | None]:
    """Onset strength and timing against the beat grid.

    - ``onset_strength_mean``, ``onset_strength_std``: of librosa's onset
      strength envelope (mel spectral flux, N_FFT/HOP frames).
    - ``on_beat_ratio``: share of the beats that have an onset within
      ``ON_BEAT_TOLERANCE`` (1/8) of the local beat interval: how much of the
      grid is played (needs >= 2 beats).
    - ``ioi_mean``, ``ioi_std``: inter-onset intervals in seconds (need 2
      and 3 onsets).
    """
    return _rhythm_detail(Analysis(mono, sr), beats, onsets)


def _on_beat_ratio(beat_times: np.ndarray, onset_times: np.ndarray) -> float | None:
    if beat_times.size < 2:
        return None
    if onset_times.size == 0:
        return 0.0
    local = np.gradient(beat_times)  # the interval around each beat
    nearest = np.searchsorted(onset_times, beat_times)
    before = onset_times[np.clip(nearest - 1, 0, onset_times.size - 1)]
    after = onset_times[np.clip(nearest, 0, onset_times.size - 1)]
    distance = np.minimum(np.abs(beat_times - before), np.abs(after - beat_times))
    return float(np.mean(distance <= ON_BEAT_TOLERANCE * local))


def bar_onset_density(beats: np.ndarray, onsets: np.ndarray) -> dict[str, float | None]:
    """Onsets per second in each complete bar of the grid (downbeat to
    downbeat): ``average`` (needs 1 bar) and ``variance`` (needs 2)."""
    beats = np.asarray(beats, dtype=np.float64)
    if beats.ndim != 2 or beats.shape[0] == 0:
        return {"average": None, "variance": None}
    downbeats = np.sort(beats[beats[:, 1] == 1, 0])
    onset_times = _finite_1d(onsets)
    densities = [
        np.count_nonzero((onset_times >= start) & (onset_times < stop)) / (stop - start)
        for start, stop in zip(downbeats[:-1], downbeats[1:], strict=True)
        if stop > start
    ]
    return {
        "average": float(np.mean(densities)) if densities else None,
        "variance": float(np.var(densities)) if len(densities) >= 2 else None,
    }


def _finite_1d(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values[np.isfinite(values)]


def _beat_times(beats: np.ndarray) -> np.ndarray:
    beats = np.asarray(beats, dtype=np.float64)
    times = beats[:, 0] if beats.ndim == 2 else beats.reshape(-1)
    return np.sort(times[np.isfinite(times)])


def _regularity(intervals: np.ndarray) -> float | None:
    """1 - coefficient of variation, clipped to [0, 1]; None without intervals."""
    if intervals.size == 0 or intervals.mean() <= 0:
        return None
    return float(np.clip(1.0 - intervals.std() / intervals.mean(), 0.0, 1.0))


def _extended_grid(beat_times: np.ndarray) -> np.ndarray:
    """Beat times with one extrapolated beat before and after (empty if < 2 beats)."""
    if beat_times.size < 2:
        return np.empty(0)
    first, last = beat_times[1] - beat_times[0], beat_times[-1] - beat_times[-2]
    return np.concatenate([[beat_times[0] - first], beat_times, [beat_times[-1] + last]])


def _beat_positions(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fractional beat index of each time inside the grid; times outside are dropped."""
    if grid.size < 2:
        return np.empty(0)
    inside = times[(times >= grid[0]) & (times <= grid[-1])]
    return np.interp(inside, grid, np.arange(grid.size, dtype=np.float64))


def _syncopation(positions: np.ndarray) -> float | None:
    if positions.size == 0:
        return None
    quarter = np.round((positions % 1.0) / 0.25) % 4  # 0 = on the beat
    return float(np.mean(quarter != 0))


def _ioi_entropy(positions: np.ndarray) -> float | None:
    if positions.size < 2:
        return None
    intervals = np.minimum(np.diff(positions), IOI_MAX_BEATS)
    bins = np.round(intervals / IOI_BIN_BEATS).astype(int)
    counts = np.bincount(bins)
    p = counts[counts > 0] / bins.size
    return float(max(0.0, -(p * np.log2(p)).sum()))


# --------------------------------------------------------------------------- all together


class _Shared:
    """An intermediate result of an :class:`Analysis`, made on first use; on
    a span of one (:meth:`Analysis.span`), the part of its parent's that the
    span covers, so a crop costs a slice instead of a new analysis.

    ``cut`` says how a span takes its part: ``"cumulative"`` (a cumulative
    sum over samples, from 0), ``"bands"`` (a dict of them, or None),
    ``"frames"`` (frames centred every ``hop`` samples along the last axis,
    of an array or of each array of a dict), ``"rows"`` (the same along the
    first axis), ``"regions"`` (per channel, ``(starts, ends)`` in seconds),
    ``"times"`` (event times in seconds), ``"blocks"`` (one value per
    ``hop`` samples: the span takes every block it overlaps),
    ``"whole"`` (the track's value stands for its spans: the tuning) and
    ``"own"`` (a span computes its own from its samples: the key). ``mono``: made from the
    channel mean (or the harmonic source), so an analysis of the same
    signal in another channel layout shares it (:meth:`Analysis.relayout`).
    """

    def __init__(self, make, cut: str, hop: int = 0, mono: bool = True) -> None:
        self.make, self.cut, self.hop, self.mono = make, cut, hop, mono

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, analysis, owner=None):
        if analysis is None:
            return self
        cache = analysis._mono_cache if self.mono else analysis._cache
        if self.name not in cache:
            if analysis.parent is None or self.cut == "own":
                cache[self.name] = self.make(analysis)
            else:
                whole = getattr(analysis.parent, self.name)
                cache[self.name] = _cut(whole, self.cut, self.hop, analysis.start, analysis.stop,
                                        analysis.sr)  # fmt: skip
        return cache[self.name]


def _cut(value, cut: str, hop: int, start: int, stop: int, sr: int):
    """The part of an :class:`Analysis` quantity that samples ``start:stop`` cover."""
    if value is None or cut == "whole":
        return value
    if cut == "cumulative":
        part = value[start : stop + 1]
        return part - part[0] if part.size else np.zeros(1)
    if cut == "blocks":  # every block the span overlaps
        return value[start // hop : -(-stop // hop)]
    if cut == "bands":
        return {name: _cut(v, "cumulative", hop, start, stop, sr) for name, v in value.items()}
    if cut in ("frames", "rows"):
        if isinstance(value, dict):
            return {name: _cut(v, cut, hop, start, stop, sr) for name, v in value.items()}
        # Frame i of the span is centred on sample start + i * hop: the
        # parent's frame nearest that centre (at most hop / 2 away).
        first = round(start / hop)
        count = 1 + (stop - start) // hop
        axis = -1 if cut == "frames" else 0
        return np.take(value, np.arange(first, min(first + count, value.shape[axis])), axis=axis)
    t0, t1 = start / sr, stop / sr
    if cut == "times":
        return value[(value >= t0) & (value < t1)] - t0
    if cut == "regions":
        parts = []
        for starts, ends in value:
            inside = (starts < t1) & (ends > t0)
            parts.append((np.maximum(starts[inside], t0) - t0, np.minimum(ends[inside], t1) - t0))
        return parts
    raise ValueError(f"unknown cut {cut!r}")


def _from_magnitude(frames: Analysis) -> tuple[dict[str, np.ndarray], float]:
    """(spectral frames, tuning) from one magnitude STFT, made for both the
    first time either is asked for and not kept: 1025 numbers a frame, 116 MB
    per 5 minutes, where the spectral frames are a few."""
    cache = frames._mono_cache
    if "spectral_frames" not in cache or "tuning" not in cache:
        magnitude = _stft_magnitude(frames.mono)
        cache.setdefault("spectral_frames", spectral_frames(magnitude, frames.sr))
        cache.setdefault("tuning", tuning(magnitude, frames.sr))
    return cache["spectral_frames"], cache["tuning"]


def _onset_envelope(frames: Analysis) -> np.ndarray:
    if frames.mono.size < N_FFT or not np.any(frames.mono):
        return np.zeros(1 + frames.mono.size // HOP)
    return librosa.onset.onset_strength(y=frames.mono, sr=frames.sr, n_fft=N_FFT, hop_length=HOP)


def _onset_times(frames: Analysis) -> np.ndarray:
    """librosa's peak-picked onsets on the onset envelope, seconds."""
    if not frames.sounds:
        return np.empty(0)
    return librosa.onset.onset_detect(
        onset_envelope=frames.onset_envelope, sr=frames.sr, hop_length=HOP, units="time"
    )


def _silence_rms(frames: Analysis) -> np.ndarray:
    from mirflow import dynamics  # noqa: PLC0415

    return dynamics.frame_rms(frames.mono)


def _saturation_regions(frames: Analysis):
    from mirflow import dynamics  # noqa: PLC0415

    return dynamics.saturation_regions(frames.audio, frames.sr)


def _true_peaks(frames: Analysis) -> np.ndarray:
    from mirflow import dynamics  # noqa: PLC0415

    return dynamics.true_peak_blocks(frames.audio, frames.sr)


def _hpcps(frames: Analysis) -> np.ndarray:
    from mirflow.harmony import frame_hpcps  # noqa: PLC0415

    source = frames.mono if frames.harmonic is None else _as_mono(frames.harmonic)
    return frame_hpcps(source, frames.sr)


def _sample_level(frames: Analysis):
    from mirflow import dynamics  # noqa: PLC0415

    return dynamics.sample_level(frames.audio)


def _timbre(frames: Analysis) -> dict[str, float | None]:
    from mirflow import timbral  # noqa: PLC0415

    return timbral.timbre(frames.audio, frames.sr)


def _complexity_energies(frames: Analysis) -> np.ndarray:
    from mirflow import dynamics  # noqa: PLC0415

    energies = dynamics.complexity_energies(frames.mono, frames.sr)[1]
    return energies[: frames.mono.size // int(dynamics.COMPLEXITY_FRAME_S * frames.sr)]


class Analysis:
    """One signal's intermediate results (per-frame spectral values, the
    K-weighted and band powers, the onset envelope, chroma and HPCP frames,
    clipped regions), each made on first use and kept, so the feature groups
    and the time series that need the same one compute it once, and a crop
    (:meth:`span`) takes its part of the track's instead of its own.

    ``harmonic`` is the audio the harmonic group describes (the bass and
    other stems summed, when the track has them); the signal itself when
    not given.
    """

    def __init__(self, audio: np.ndarray, sr: int, harmonic: np.ndarray | None = None) -> None:
        self.audio = _as_channels(audio)
        self.sr = sr
        self.mono = _as_mono(self.audio)
        self.harmonic = harmonic
        self.parent: Analysis | None = None
        self.start, self.stop = 0, self.mono.size
        self.n_samples, self.sounds = self.mono.size, bool(np.any(self.mono))
        self.k_power_step = 1
        self._cache: dict[str, Any] = {}
        self._mono_cache: dict[str, Any] = {}

    def span(self, start: int, stop: int) -> Analysis:
        """Samples ``start:stop`` of this signal as an analysis of their own.

        Frame-based values come from this analysis's frames nearest the
        span's own frame centres (at most half a hop, 5.8 ms for the STFT,
        away), so the frames at a span's edges see the audio around it
        instead of padding; sums over samples (loudness, band levels) are
        exact. Values computed from the samples (key, true peak, dynamic
        complexity) are computed on the span's samples.
        """
        part = object.__new__(Analysis)
        part.audio, part.sr = self.audio[:, start:stop], self.sr
        part.mono = self.mono[start:stop]
        part.harmonic = None if self.harmonic is None else self.harmonic[..., start:stop]
        part.parent, part.start, part.stop = self, start, stop
        part.n_samples, part.sounds = part.mono.size, bool(np.any(part.mono))
        part.k_power_step = 1
        part._cache, part._mono_cache = {}, {}
        return part

    def relayout(self, audio: np.ndarray) -> Analysis:
        """An analysis of ``audio``, the same signal in another channel
        layout (a mono track duplicated to stereo, as its crops are): what
        depends only on the channel mean is shared, when the mean is equal."""
        other = Analysis(audio, self.sr, self.harmonic)
        if self.parent is None and np.array_equal(other.mono, self.mono):
            other.mono, other._mono_cache = self.mono, self._mono_cache
            if self.audio.shape[0] == 1 and all(
                np.array_equal(row, other.audio[0]) for row in other.audio[1:]
            ):
                # Copies of one channel: C times its power, its clips C times.
                copies = other.audio.shape[0]
                other._cache["k_power"] = copies * self.k_power
                other._cache["saturation_regions"] = self.saturation_regions * copies
                other._cache["true_peaks"] = self.true_peaks
        return other

    spectral_frames = _Shared(lambda a: _from_magnitude(a)[0], "frames", HOP)
    #: Deviation from A440 in fractions of a chroma bin (see :func:`tuning`);
    #: a span keeps its track's.
    tuning = _Shared(lambda a: _from_magnitude(a)[1], "whole")
    zero_crossings = _Shared(lambda a: zero_crossings(a.mono), "frames", HOP)
    #: :func:`k_weighted_power` (loudness and its time series); every channel counts.
    k_power = _Shared(lambda a: k_weighted_power(a.audio, a.sr), "cumulative", mono=False)
    #: :func:`band_power` (band levels and their time series).
    band_power = _Shared(lambda a: band_power(a.mono, a.sr), "bands")
    onset_envelope = _Shared(_onset_envelope, "frames", HOP)
    onset_times = _Shared(_onset_times, "times")
    chroma_frames = _Shared(lambda a: chroma_frames(a.mono, a.sr, a.tuning), "frames", TONAL_HOP)
    hpcps = _Shared(_hpcps, "rows", TONAL_HOP)
    silence_rms = _Shared(_silence_rms, "frames", HOP)  # mirflow.dynamics: the same hop
    saturation_regions = _Shared(_saturation_regions, "regions", mono=False)
    true_peaks = _Shared(_true_peaks, "blocks", TRUE_PEAK_BLOCK, mono=False)
    key = _Shared(lambda a: estimate_key(a.mono, a.sr), "own")
    #: :func:`mirflow.dynamics.sample_level` (the crest factor).
    sample_level = _Shared(_sample_level, "own", mono=False)
    #: :func:`mirflow.dynamics.complexity_energies`, whole frames only.
    complexity_energies = _Shared(_complexity_energies, "own")
    #: :func:`mirflow.timbral.timbre`: the models read the samples themselves.
    timbre = _Shared(_timbre, "own", mono=False)


def describe(
    audio: np.ndarray,
    sr: int,
    beats: np.ndarray,
    onsets: np.ndarray,
    enabled: dict[str, bool],
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The enabled feature groups merged into one flat dict.

    ``enabled`` maps each of ``FEATURE_GROUPS`` to a bool (a missing key counts
    as disabled). Mono features use the channel average. ``analysis`` shares
    intermediate results with a caller (see :class:`Analysis`; its harmonic
    source is what the harmonic group describes); by default one is made
    for ``audio``.
    """
    from mirflow import dynamics, harmony  # noqa: PLC0415

    unknown = set(enabled) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups: {sorted(unknown)}")
    frames = analysis if analysis is not None else Analysis(audio, sr)
    n, duration = frames.n_samples, frames.n_samples / sr
    groups = {
        "loudness": lambda: analysis_loudness(frames),
        "spectral": lambda: _spectral_from_frames(frames.spectral_frames),
        "spectral_shape": lambda: _shape_from_frames(frames.spectral_frames, frames.zero_crossings),
        "multiband_rms": lambda: _multiband_from_power(frames.band_power, n),
        "chroma": lambda: _chroma_from_frames(
            frames.chroma_frames if n >= N_FFT and frames.sounds else None
        ),
        "key": lambda: frames.key,
        "harmonic": lambda: harmony.harmonic_profile(frames.hpcps, sr),
        "rhythm": lambda: rhythm_statistics(beats, onsets, duration),
        "rhythm_detail": lambda: _rhythm_detail(frames, beats, onsets),
        "saturation": lambda: {
            **dynamics.saturation_from_regions(frames.saturation_regions, duration),
            **dynamics.peaks_from(frames.sample_level, frames.true_peaks),
        },
        "dynamics": lambda: dynamics.dynamics_from(
            frames.complexity_energies, frames.silence_rms, n, frames.sounds, sr
        ),
        "timbral": lambda: frames.timbre,
    }
    out: dict[str, Any] = {}
    for group in FEATURE_GROUPS:
        if enabled.get(group):
            out.update(groups[group]())
    return out


def _rhythm_detail(frames: Analysis, beats: np.ndarray, onsets: np.ndarray) -> dict[str, Any]:
    envelope = frames.onset_envelope
    onset_times = np.sort(_finite_1d(onsets))
    intervals = np.diff(onset_times)
    defined = frames.n_samples >= N_FFT and frames.sounds
    return {
        "onset_strength_mean": _finite_or_none(envelope.mean()) if defined else None,
        "onset_strength_std": _finite_or_none(envelope.std()) if defined else None,
        "on_beat_ratio": _on_beat_ratio(_beat_times(beats), onset_times),
        "ioi_mean": float(intervals.mean()) if intervals.size >= 1 else None,
        "ioi_std": float(intervals.std()) if intervals.size >= 2 else None,
    }
