"""Tests for mirflow.features: synthetic signals with known answers, edge
cases (silence, too short, too few beats) and two real recordings' keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mirflow import features, timbral
from mirflow.audio import load_audio, to_mono

SR = 44100
DATA_DIR = Path(__file__).parents[1] / "data" / "library"
SHARED_DIR = Path("/work/shared/testdata")


def library_file(name: str) -> Path:
    """The project's copy of a test recording, else the shared one."""
    path = DATA_DIR / name
    return path if path.exists() else SHARED_DIR / name


def sine(freq: float, seconds: float, dbfs: float = 0.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def white_noise(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def tone(midi: int, seconds: float, sr: int = SR) -> np.ndarray:
    """A harmonic tone (4 partials, 1/k amplitudes) at a MIDI pitch."""
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(sine(f0 * k, seconds, sr=sr) / k for k in range(1, 5)) / 4


def assert_json_ready(value) -> None:
    """Serialisable with no NaN/inf anywhere, and only plain Python types."""
    json.dumps(value, allow_nan=False)

    def walk(v):
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        else:
            assert v is None or type(v) in (float, int, str), type(v)

    walk(value)


# --------------------------------------------------------------------------- loudness


def test_loudness_ebu_tech_3341_stereo_sine():
    # EBU Tech 3341 case 1: 1 kHz at -23 dBFS on both channels reads -23.0 LUFS.
    x = sine(1000, 20, dbfs=-23)
    out = features.loudness(np.stack([x, x]), SR)
    assert out["lufs"] == pytest.approx(-23.0, abs=0.1)
    assert out["lra"] == pytest.approx(0.0, abs=0.1)
    assert_json_ready(out)


def test_loudness_mono_is_one_channel():
    # BS.1770 calibration: a 0 dBFS 1 kHz sine in a single channel reads -3.01 LKFS.
    out = features.loudness(sine(1000, 5)[np.newaxis], SR)
    assert out["lufs"] == pytest.approx(-3.01, abs=0.1)
    assert features.loudness(sine(1000, 5), SR)["lufs"] == pytest.approx(-3.01, abs=0.1)


@pytest.mark.parametrize(("second_db", "expected_lra"), [(-30.0, 10.0), (-15.0, 5.0)])
def test_loudness_range_ebu_tech_3342(second_db, expected_lra):
    # EBU Tech 3342 cases 1 and 2: 20 s at -20 dBFS then 20 s at a second level.
    x = np.concatenate([sine(1000, 20, dbfs=-20), sine(1000, 20, dbfs=second_db)])
    out = features.loudness(np.stack([x, x]), SR)
    assert out["lra"] == pytest.approx(expected_lra, abs=1.0)


def test_loudness_more_than_two_channels():
    x = np.concatenate([sine(1000, 10, dbfs=-20), sine(1000, 10, dbfs=-30)])
    stereo = features.loudness(np.stack([x, x]), SR)
    # Silent extra channels add nothing ...
    padded = features.loudness(np.stack([x, x, 0 * x, 0 * x]), SR)
    assert padded["lufs"] == pytest.approx(stereo["lufs"], abs=0.05)
    assert padded["lra"] == pytest.approx(stereo["lra"], abs=0.1)
    # ... and doubling every channel's power adds 3.01 LU, leaving the range alone.
    doubled = features.loudness(np.stack([x, x, x, x]), SR)
    assert doubled["lufs"] == pytest.approx(stereo["lufs"] + 3.01, abs=0.05)
    assert doubled["lra"] == pytest.approx(stereo["lra"], abs=0.1)
    # Three identical channels: 1.5 x the stereo power.
    three = features.loudness(np.stack([x, x, x]), SR)
    assert three["lufs"] == pytest.approx(stereo["lufs"] + 10 * math.log10(1.5), abs=0.05)


def test_loudness_undefined_cases_are_none():
    assert features.loudness(np.zeros((2, 10 * SR), dtype=np.float32), SR) == {
        "lufs": None,
        "lra": None,
    }
    x = sine(1000, 0.2)
    assert features.loudness(np.stack([x, x]), SR) == {"lufs": None, "lra": None}
    # 1 s: one loudness block but no 3 s short-term window.
    x = sine(1000, 1.0, dbfs=-23)
    out = features.loudness(np.stack([x, x]), SR)
    assert out["lufs"] == pytest.approx(-23.0, abs=0.2)
    assert out["lra"] is None
    # Below the -70 LUFS absolute gate: nothing is measured.
    x = sine(1000, 5, dbfs=-90)
    assert features.loudness(np.stack([x, x]), SR)["lufs"] is None


# --------------------------------------------------------------------------- spectral


def test_spectral_flatness_noise_vs_sine():
    noise = features.spectral(white_noise(5), SR)
    tone_ = features.spectral(sine(440, 5, dbfs=-6), SR)
    # A one-frame periodogram of white noise has GM/AM ~ exp(-0.577) = 0.56.
    assert 0.45 < noise["spectral_flatness"] < 0.7
    assert tone_["spectral_flatness"] < 0.01
    assert_json_ready(noise)


def test_spectral_shape_of_white_noise_is_uniform():
    # Flat spectrum = uniform distribution over frequency: skewness 0, kurtosis 9/5.
    out = features.spectral(white_noise(5), SR)
    assert out["spectral_skewness"] == pytest.approx(0.0, abs=0.05)
    assert out["spectral_kurtosis"] == pytest.approx(1.8, abs=0.05)


def test_spectral_shape_of_low_tone_is_right_skewed():
    out = features.spectral(sine(200, 5, dbfs=-6) + 0.001 * white_noise(5), SR)
    assert out["spectral_skewness"] > 2.0
    assert out["spectral_kurtosis"] > 5.0


def test_spectral_flux_steady_vs_changing():
    steady = features.spectral(sine(440, 4, dbfs=-6), SR)["spectral_flux"]
    # Alternate two pitches every 100 ms: the spectrum jumps at each switch.
    pieces = [sine(440 if i % 2 else 1500, 0.1, dbfs=-6) for i in range(40)]
    changing = features.spectral(np.concatenate(pieces), SR)["spectral_flux"]
    assert steady < 0.01
    assert changing > 5 * steady + 0.02


def test_spectral_silence_is_none_and_silent_frames_are_skipped():
    silence = features.spectral(np.zeros(3 * SR, dtype=np.float32), SR)
    assert silence == dict.fromkeys(silence, None)
    assert set(silence) == {
        "spectral_flatness",
        "spectral_flux",
        "spectral_skewness",
        "spectral_kurtosis",
    }
    x = white_noise(3)
    padded = np.concatenate([np.zeros(2 * SR, dtype=np.float32), x, np.zeros(2 * SR)])
    plain, with_silence = features.spectral(x, SR), features.spectral(padded, SR)
    assert_json_ready(with_silence)
    for name, value in plain.items():
        assert with_silence[name] == pytest.approx(value, rel=0.05, abs=0.01), name


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("freq", "band"),
    [
        (55.0, "rms_energy_bass"),
        (300.0, "rms_energy_body"),
        (1200.0, "rms_energy_mid"),
        (6000.0, "rms_energy_air"),
    ],
)
def test_multiband_rms_full_scale_sine_in_band(freq, band):
    out = features.multiband_rms(sine(freq, 3), SR)
    assert out[band] == pytest.approx(-3.01, abs=0.5)
    for other, level in out.items():
        if other != band:
            assert level < -15.0, (other, level)


def test_multiband_rms_silence_and_low_sample_rate():
    out = features.multiband_rms(np.zeros(SR, dtype=np.float32), SR)
    assert out == dict.fromkeys(features.BANDS, features.FLOOR_DB)
    # At 4 kHz the air band (from 2.5 kHz) is above 0.95 x Nyquist: undefined.
    low = features.multiband_rms(sine(300, 2, sr=4000), 4000)
    assert low["rms_energy_air"] is None
    assert low["rms_energy_body"] == pytest.approx(-3.01, abs=0.5)
    # At 8 kHz it is capped below Nyquist, still measurable.
    assert features.multiband_rms(sine(3000, 2, sr=8000), 8000)["rms_energy_air"] > -4.0


# --------------------------------------------------------------------------- chroma, key


def test_chroma_of_a_tone_peaks_at_a():
    out = features.chroma(tone(69, 3), SR)
    assert list(out) == [f"chroma_{i}" for i in range(12)]
    values = np.array(list(out.values()))
    assert int(values.argmax()) == 9
    assert out["chroma_9"] == 1.0
    assert values.min() >= 0.0
    assert_json_ready(out)


def test_chroma_of_silence_or_too_short_is_none():
    undefined = {f"chroma_{i}": None for i in range(12)}
    assert features.chroma(np.zeros(2 * SR, dtype=np.float32), SR) == undefined
    assert features.chroma(tone(69, 0.01), SR) == undefined


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 48000])
def test_chroma_at_other_sample_rates(sr):
    values = list(features.chroma(tone(69, 2, sr=sr), sr).values())
    assert int(np.argmax(values)) == 9


def test_key_of_c_major_triad_and_scale():
    triad = (tone(60, 4) + tone(64, 4) + tone(67, 4)) / 3
    scale = np.concatenate([tone(m, 0.5) for m in (60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60)])
    for audio in (triad, scale):
        out = features.estimate_key(audio, SR)
        assert out["key"] == "C:major"
        assert 0.0 <= out["key_strength"] <= 1.0


def test_key_spelling_uses_flats_except_f_sharp():
    eb = np.concatenate([tone(m, 0.5) for m in (63, 65, 67, 68, 70, 72, 74, 75, 70, 67, 63)])
    assert features.estimate_key(eb, SR)["key"] == "Eb:major"
    fs_minor = np.concatenate(
        [tone(m, 0.5) for m in (66, 68, 69, 71, 73, 74, 77, 78, 73, 69, 66)]
    )  # F# harmonic minor
    assert features.estimate_key(fs_minor, SR)["key"] == "F#:minor"


def test_key_of_silence_is_none():
    assert features.estimate_key(np.zeros(SR, dtype=np.float32), SR) == {
        "key": None,
        "key_strength": None,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Kevin_MacLeod_-_Vibe_Ace.mp3", "E:major"),
        ("guitarset_00_BN1-129-Eb_comp_mic.flac", "Eb:major"),
    ],
)
def test_key_of_real_recordings(name, expected):
    path = library_file(name)
    if not path.exists():
        pytest.skip(f"test audio {name} not found")
    audio, sr = load_audio(path)
    assert features.estimate_key(to_mono(audio), sr)["key"] == expected


# --------------------------------------------------------------------------- rhythm


def beat_grid(n: int = 16, ibi: float = 0.5, start: float = 1.0) -> np.ndarray:
    times = start + ibi * np.arange(n)
    return np.stack([times, np.arange(n) % 4 + 1], axis=1)


def test_rhythm_onsets_on_the_beat():
    beats = beat_grid()
    out = features.rhythm_statistics(beats, beats[:, 0].copy(), 10.0)
    assert out["beat_count"] == 16
    assert out["onset_count"] == 16
    assert out["onset_density"] == pytest.approx(1.6)
    assert out["beat_regularity"] == pytest.approx(1.0)
    assert out["syncopation"] == 0.0
    assert out["rhythmic_complexity"] == 0.0  # one interval (1 beat) only
    assert out["rhythmic_evenness"] == pytest.approx(1.0)
    assert_json_ready(out)


def test_rhythm_onsets_off_the_beat():
    beats = beat_grid()
    offbeats = beats[:-1, 0] + 0.25  # the "and" of every beat
    out = features.rhythm_statistics(beats, offbeats, 10.0)
    assert out["syncopation"] == 1.0
    assert out["rhythmic_complexity"] == 0.0


def test_rhythm_mixed_patterns():
    beats = beat_grid()
    t = beats[:-1, 0]
    # Onsets on the beat and a sixteenth after it: half off the beat, two
    # interval classes (1/4 and 3/4 beat) in equal numbers -> 1 bit.
    onsets = np.sort(np.concatenate([t, t + 0.125]))
    out = features.rhythm_statistics(beats, onsets, 10.0)
    assert out["syncopation"] == pytest.approx(0.5)
    assert out["rhythmic_complexity"] == pytest.approx(1.0, abs=0.01)
    # IOIs alternate 0.125 and 0.375 s: CV about 0.5.
    assert out["rhythmic_evenness"] == pytest.approx(0.5, abs=0.02)
    # A little timing jitter does not move an onset off the beat.
    jitter = features.rhythm_statistics(beats, t + 0.02, 10.0)
    assert jitter["syncopation"] == 0.0


def test_rhythm_irregular_beats_lower_regularity():
    beats = beat_grid()
    beats[1::2, 0] += 0.2  # long-short-long-short
    out = features.rhythm_statistics(beats, beats[:, 0], 10.0)
    assert out["beat_regularity"] < 0.7
    assert out["syncopation"] == 0.0  # the onsets are still on the (uneven) beats


def test_rhythm_onsets_outside_the_grid_are_ignored():
    beats = beat_grid(start=5.0)  # grid 4.5 .. 13.0 after extension
    out = features.rhythm_statistics(beats, np.array([0.3, 1.1, 2.25]), 20.0)
    assert out["onset_count"] == 3
    assert out["syncopation"] is None
    assert out["rhythmic_complexity"] is None
    assert out["rhythmic_evenness"] is not None


@pytest.mark.parametrize(
    ("beats", "onsets", "duration"),
    [
        (np.empty((0, 2)), np.empty(0), 10.0),
        (np.array([[1.0, 1.0]]), np.array([1.0]), 10.0),
        (np.empty((0, 2)), np.array([0.5, 1.0, 1.5]), 10.0),
        (beat_grid(), np.empty(0), 0.0),
        (beat_grid(), np.array([np.nan, 2.0]), 10.0),
    ],
)
def test_rhythm_edge_cases_never_nan(beats, onsets, duration):
    out = features.rhythm_statistics(beats, onsets, duration)
    assert_json_ready(out)
    assert out["beat_count"] == len(beats)
    if len(beats) < 2:
        assert out["beat_regularity"] is None
        assert out["syncopation"] is None
        assert out["rhythmic_complexity"] is None
    if np.isfinite(onsets).sum() < 2:
        assert out["rhythmic_evenness"] is None
    if duration == 0.0:
        assert out["onset_density"] is None


# --------------------------------------------------------------------------- describe


def test_describe_all_groups():
    x = np.concatenate([sine(440, 4, dbfs=-12), white_noise(4)])
    audio = np.stack([x, x])
    beats = beat_grid()
    enabled = dict.fromkeys(features.FEATURE_GROUPS, True)
    out = features.describe(audio, SR, beats, beats[:, 0], enabled)
    assert_json_ready(out)
    expected = (
        {"lufs", "lra", "key", "key_strength", "tonic", "tonic_strength"}
        | {f"chroma_{i}" for i in range(12)}
        | {f"hpcp_{i}" for i in range(12)}
        | {f"tiv_{i}" for i in range(12)}
        | set(features.BANDS)
        | set(features.spectral(x, SR))
        | set(features.spectral_shape(x, SR))
        | set(features.rhythm_statistics(beats, beats[:, 0], 8.0))
        | set(features.rhythm_detail(x, SR, beats, beats[:, 0]))
        | {"saturation_ratio", "saturation_count", "true_peak_dbtp", "crest_factor_db"}
        | {"dynamic_complexity", "silence_fraction"}
        | set(timbral.KEYS)
    )
    assert set(out) == expected
    # The shared STFT gives the same numbers as the stand-alone functions.
    assert out["spectral_flux"] == features.spectral(x, SR)["spectral_flux"]
    assert out["spectral_centroid"] == features.spectral_shape(x, SR)["spectral_centroid"]
    assert out["onset_density"] == pytest.approx(16 / 8.0)


def test_describe_only_enabled_groups():
    x = sine(440, 2)
    enabled = {"loudness": True, "spectral": False, "rhythm": True}
    out = features.describe(x[np.newaxis], SR, np.empty((0, 2)), np.empty(0), enabled)
    assert set(out) == {"lufs", "lra"} | set(features.rhythm_statistics(np.empty((0, 2)), [], 2))
    assert "time_series" not in out
    assert_json_ready(out)


def test_describe_rejects_unknown_group():
    with pytest.raises(ValueError, match="tempo"):
        features.describe(sine(440, 1), SR, np.empty((0, 2)), np.empty(0), {"tempo": True})


def test_loudness_agrees_with_pyloudnorm_on_a_recording():
    """An independent BS.1770-4 implementation (its own gating loop)."""
    import pyloudnorm

    audio, sr = load_audio(library_file("guitarset_00_BN1-129-Eb_comp_mic.flac"), sr=SR)
    ours = features.loudness(audio, sr)["lufs"]
    assert ours == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(audio.T), abs=0.01)
