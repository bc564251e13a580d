"""Tests for the feature groups after the first six: spectral shape, harmonic
(HPCP, TIV, tonic, harmonic change), rhythm detail, saturation and dynamics.
Each is checked against a value known independently of the code: a sine's
centroid and zero-crossing rate, a single pitch class's TIV, a clipped
sine's flat share, an inter-sample peak, a silent half."""

from __future__ import annotations

import numpy as np
import pytest
from test_features import SR, assert_json_ready, beat_grid, sine, tone, white_noise

from mirflow import dynamics, features, harmony
from mirflow.feature_records import harmonic_source, stem_features


def chord(midis: list[int], seconds: float) -> np.ndarray:
    return sum(tone(m, seconds) for m in midis) / len(midis)


# --------------------------------------------------------------------------- spectral shape


def test_spectral_shape_of_a_sine():
    out = features.spectral_shape(sine(1000.0, 2.0, dbfs=-6), SR)
    assert out["spectral_centroid"] == pytest.approx(1000.0, rel=0.02)
    assert out["spectral_rolloff"] == pytest.approx(1000.0, abs=2 * SR / features.N_FFT)
    assert out["spectral_bandwidth"] < 100.0
    assert out["zero_crossing_rate"] == pytest.approx(2 * 1000.0 / SR, rel=0.01)
    assert_json_ready(out)


def test_spectral_shape_orders_bright_above_dark():
    dark, bright = (
        features.spectral_shape(sine(200, 2), SR),
        features.spectral_shape(white_noise(2), SR),
    )
    for key in (
        "spectral_centroid",
        "spectral_rolloff",
        "spectral_bandwidth",
        "zero_crossing_rate",
    ):
        assert bright[key] > dark[key], key
    # White noise: the centroid sits near the middle of the band.
    assert bright["spectral_centroid"] == pytest.approx(SR / 4, rel=0.1)


def test_spectral_shape_of_silence_is_none():
    out = features.spectral_shape(np.zeros(SR, dtype=np.float32), SR)
    assert set(out.values()) == {None}


# --------------------------------------------------------------------------- harmonic


def test_tiv_of_one_pitch_class_is_its_weights():
    profile = np.zeros(12)
    profile[0] = 1.0
    vector = harmony.tiv(profile)
    assert np.allclose(vector[:6], harmony.TIV_WEIGHTS)
    assert np.allclose(vector[6:], 0.0)
    assert np.linalg.norm(vector) == pytest.approx(harmony.TIV_MAX_NORM)
    # Transposing rotates each coefficient k by 2 pi k / 12: magnitudes stay.
    shifted = harmony.tiv(np.roll(profile, 5))
    magnitudes = np.hypot(shifted[:6], shifted[6:])
    assert np.allclose(magnitudes, harmony.TIV_WEIGHTS)


def test_tiv_of_all_twelve_is_zero_and_of_nothing_none():
    assert np.allclose(harmony.tiv(np.ones(12)), 0.0)
    assert harmony.tiv(np.zeros(12)) is None


def test_hpcp_of_a_c_major_chord():
    hpcps = harmony.frame_hpcps(chord([60, 64, 67], 3.0), SR)
    assert hpcps.shape == (1 + 3 * SR // harmony.HOP, 12)
    out = harmony.harmonic_profile(hpcps, SR)
    assert_json_ready(out)
    profile = np.array([out[f"hpcp_{i}"] for i in range(12)])
    assert set(np.argsort(profile)[-3:]) == {0, 4, 7}  # C, E, G
    assert profile.max() == 1.0
    assert out["tonic"] == "C" and 0.5 < out["tonic_strength"] <= 1.0


def test_hpcp_follows_a_transposition():
    for midi, name in ((62, "D"), (69, "A")):
        out = harmony.harmonic_profile(
            harmony.frame_hpcps(chord([midi, midi + 4, midi + 7], 3), SR), SR
        )
        assert out["tonic"] == name


def test_harmonic_profile_of_silence_is_none():
    out = harmony.harmonic_profile(harmony.frame_hpcps(np.zeros(SR, np.float32), SR), SR)
    assert set(out.values()) == {None}
    assert_json_ready(out)


def test_harmonic_change_is_larger_for_a_progression_than_a_held_chord():
    beats = np.arange(0.0, 8.01, 1.0)
    held = harmony.frame_hpcps(chord([60, 64, 67], 8.0), SR)
    progression = np.concatenate(
        [chord(c, 1.0) for c in ([60, 64, 67], [65, 69, 72], [67, 71, 74], [57, 60, 64])] * 2
    )
    moving = harmony.frame_hpcps(progression, SR)
    still, changing = (
        harmony.harmonic_change(held, beats, SR),
        harmony.harmonic_change(moving, beats, SR),
    )
    assert changing["movement"] > 3 * still["movement"]
    assert changing["variance"] > 3 * still["variance"]
    assert changing["movement"] <= 2 * harmony.TIV_MAX_NORM
    assert harmony.harmonic_change(held, np.array([0.0, 1.0]), SR) == {
        "movement": None,
        "variance": None,
    }


def test_harmonic_source_sums_bass_and_other_only():
    stems = {name: np.full((2, 100), value, np.float32) for name, value in
             (("bass", 0.1), ("other", 0.2), ("drums", 0.5), ("vocals", 0.7))}  # fmt: skip
    assert np.allclose(harmonic_source(stems), 0.3)
    assert harmonic_source({"drums": stems["drums"]}) is None


def test_describe_takes_the_harmonic_group_from_the_stems_when_given():
    mix = chord([60, 64, 67], 3.0) + 0.5 * white_noise(3.0)
    accompaniment = chord([62, 66, 69], 3.0)  # D major under the noise
    beats = beat_grid(6)
    alone = features.describe(mix, SR, beats, beats[:, 0], {"harmonic": True})
    from_stems = features.describe(
        mix, SR, beats, beats[:, 0], {"harmonic": True},
        features.Analysis(mix, SR, harmonic=accompaniment),
    )  # fmt: skip
    assert alone["tonic"] == "C" and from_stems["tonic"] == "D"


# --------------------------------------------------------------------------- rhythm detail


def test_rhythm_detail_on_a_regular_grid():
    beats = beat_grid(16, ibi=0.5)
    clicks = np.zeros(10 * SR, np.float32)
    for t in beats[:, 0]:
        clicks[int(t * SR) : int(t * SR) + 200] = 0.8
    out = features.rhythm_detail(clicks, SR, beats, beats[:, 0])
    assert_json_ready(out)
    assert out["on_beat_ratio"] == 1.0
    assert out["ioi_mean"] == pytest.approx(0.5) and out["ioi_std"] == pytest.approx(0.0, abs=1e-9)
    assert out["onset_strength_mean"] > 0 and out["onset_strength_std"] > 0


def test_on_beat_ratio_counts_the_beats_that_are_played():
    beats = beat_grid(16, ibi=0.5)
    every_other = beats[::2, 0]
    between = beats[:-1, 0] + 0.25  # eighths between the beats only
    assert features.rhythm_detail(np.zeros(SR), SR, beats, every_other)["on_beat_ratio"] == 0.5
    assert features.rhythm_detail(np.zeros(SR), SR, beats, between)["on_beat_ratio"] == 0.0
    assert features.rhythm_detail(np.zeros(SR), SR, beats, np.empty(0))["on_beat_ratio"] == 0.0
    none = features.rhythm_detail(np.zeros(SR), SR, beats[:1], every_other)
    assert none["on_beat_ratio"] is None and none["onset_strength_mean"] is None


def test_bar_onset_density():
    beats = beat_grid(17, ibi=0.5)  # 4 whole bars of 2 s, downbeats at 1, 3, 5, 7, 9 s
    steady = features.bar_onset_density(beats, beats[:, 0])
    assert steady == {"average": pytest.approx(2.0), "variance": pytest.approx(0.0)}
    # Bar 1 has 4 onsets, the others 0: densities 2, 0, 0, 0.
    sparse = features.bar_onset_density(beats, beats[:4, 0])
    assert sparse["average"] == pytest.approx(0.5) and sparse["variance"] == pytest.approx(0.75)
    assert features.bar_onset_density(beats[:3], beats[:3, 0]) == {
        "average": None,
        "variance": None,
    }


def test_stem_features_with_every_group():
    beats = beat_grid(17, ibi=0.5)
    x = np.stack([chord([48, 55], 10.0)] * 2)
    enabled = dict.fromkeys(features.FEATURE_GROUPS, True)
    stems = {"bass": features.Analysis(x, SR), "vocals": features.Analysis(x, SR)}
    out = stem_features(stems, beats, enabled)
    assert_json_ready(out)
    for key in ("onset_density_average", "onset_density_variance", "rhythmic_evenness",
                "harmonic_movement", "harmonic_variance"):  # fmt: skip
        assert f"{key}_bass" in out
    assert out["harmonic_movement_bass"] is not None
    assert not any(key.endswith("_vocals") and "harmonic" in key for key in out)
    assert "rhythmic_evenness_vocals" not in out


# --------------------------------------------------------------------------- saturation, dynamics


def test_a_clipped_sine_is_flat_two_thirds_of_the_time():
    # 2 x amplitude into a hard clip at 1: |sin| > 1/2 for 2/3 of each period,
    # two flat tops per period.
    x = np.clip(2.0 * sine(441.0, 2.0), -1.0, 1.0)
    out = dynamics.saturation(x, SR)
    assert out["saturation_ratio"] == pytest.approx(2 / 3, abs=0.05)
    assert out["saturation_count"] == pytest.approx(2 * 441 * 2, rel=0.02)
    clean = dynamics.saturation(0.5 * sine(441.0, 2.0), SR)
    assert clean == {"saturation_ratio": 0.0, "saturation_count": 0}


def test_true_peak_finds_the_peak_between_samples():
    # A sine at sr/4 sampled 45 degrees off its crests: samples peak at
    # -3.01 dBFS, the waveform at 0 dBFS.
    n = np.arange(SR)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    out = dynamics.peaks(x, SR)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert out["true_peak_dbtp"] == pytest.approx(0.0, abs=0.1)
    assert out["crest_factor_db"] == pytest.approx(0.0, abs=0.01)  # sample peak = RMS here


def test_true_peak_blocks_in_chunks_equal_one_pass_oversampling():
    """The streamed, blockwise true peak is soxr's one-pass 4x oversampling
    (the independent computation), over several chunks, and a block's
    peak lands in its block."""
    import soxr

    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2, 3 * 2**18 + 1234))).astype(np.float32)
    x[1, 500_000] = 0.99  # one loud click
    blocks = dynamics.true_peak_blocks(x, SR)
    assert blocks.size == -(-x.shape[1] // features.TRUE_PEAK_BLOCK)
    whole = np.abs(soxr.resample(np.ascontiguousarray(x.T), SR, 4 * SR, quality="HQ")).max()
    assert blocks.max() == pytest.approx(whole, rel=1e-6)
    assert int(np.argmax(blocks)) == 500_000 // features.TRUE_PEAK_BLOCK


def test_crest_factor_of_a_sine_and_silence():
    assert dynamics.peaks(sine(1000, 1, dbfs=-6), SR)["crest_factor_db"] == pytest.approx(
        3.01, abs=0.02
    )
    silent = dynamics.peaks(np.zeros(SR, np.float32), SR)
    assert silent == {"true_peak_dbtp": features.FLOOR_DB, "crest_factor_db": None}


def test_silence_fraction_of_a_silent_half():
    x = np.concatenate([np.zeros(4 * SR, np.float32), sine(440, 4, dbfs=-20)])
    assert dynamics.dynamics(x, SR)["silence_fraction"] == pytest.approx(0.5, abs=0.01)
    assert dynamics.dynamics(sine(440, 4, dbfs=-20), SR)["silence_fraction"] == 0.0
    # -70 dBFS is below the documented -60 dBFS level: silent.
    assert dynamics.dynamics(sine(440, 2, dbfs=-70), SR)["silence_fraction"] == 1.0


def test_dynamic_complexity_grows_with_level_changes():
    steady = dynamics.dynamics(sine(440, 8, dbfs=-20), SR)["dynamic_complexity"]
    stepped = np.concatenate([sine(440, 1, dbfs=db) for db in (-10, -30) * 4])
    changing = dynamics.dynamics(stepped, SR)["dynamic_complexity"]
    assert steady < 0.5 < 5.0 < changing
    assert dynamics.dynamics(np.zeros(SR, np.float32), SR)["dynamic_complexity"] is None


def test_centroid_and_bandwidth_are_librosas():
    """Computed from the spectral moments; librosa computes them directly."""
    import librosa

    x = white_noise(2.0) + sine(300, 2.0, dbfs=-6)
    mag = features._stft_magnitude(x)
    centroid, bandwidth, _, _ = features._frame_moments(mag, SR)
    kwargs = {"S": mag, "sr": SR, "n_fft": features.N_FFT}
    assert centroid == pytest.approx(librosa.feature.spectral_centroid(**kwargs)[0], rel=1e-4)
    assert bandwidth == pytest.approx(librosa.feature.spectral_bandwidth(**kwargs)[0], rel=1e-4)


# --------------------------------------------------------------------------- spans (crops)


def test_a_span_describes_what_its_samples_alone_describe():
    """A crop's features come from its span of the track's analysis: they
    must agree with an analysis of the crop's samples on their own (the
    independent computation). Sums over samples agree exactly; frame means
    to a few per cent (the span's frames sit up to half a hop off the
    crop's own grid). The crop analysed alone pads its edges with zeros,
    so its first frames see a jump from silence that the span's do not:
    onset strength and flatness, which that jump dominates, differ most."""
    from test_features import library_file

    from mirflow.audio import load_audio

    audio, _ = load_audio(library_file("Kevin_MacLeod_-_Vibe_Ace.mp3"), sr=SR)
    clipped = np.clip(4.0 * audio[:, : 30 * SR], -1.0, 1.0)  # so saturation has regions
    start, stop = 12345, 12345 + 8 * SR  # on no frame grid
    beats = beat_grid(16, ibi=0.5, start=0.2)
    # Timbral models read the crop's own samples (tests/unit/test_timbral.py).
    enabled = {group: group != "timbral" for group in features.FEATURE_GROUPS}
    track = features.Analysis(clipped, SR)
    span = track.span(start, stop)
    from_span = features.describe(None, SR, beats, beats[:, 0], enabled, span)
    alone = features.describe(clipped[:, start:stop], SR, beats, beats[:, 0], enabled)
    assert from_span.keys() == alone.keys()
    assert alone["saturation_count"] > 10
    edge = {"spectral_flatness", "onset_strength_mean", "onset_strength_std"}
    for key, value in alone.items():
        if isinstance(value, str) or value is None:
            assert from_span[key] == value, key
        elif key.startswith(("lufs", "lra", "rms_energy", "key", "true_peak", "crest", "dynamic",
                             "silence", "beat", "onset_", "on_beat", "ioi",
                             "syncopation", "rhythmic")) and key not in edge:  # fmt: skip
            assert from_span[key] == pytest.approx(value, abs=0.01), key
        elif key.startswith("saturation"):  # the detector's blocks fall elsewhere
            assert from_span[key] == pytest.approx(value, rel=0.03), key
        elif key.startswith("tiv"):  # signed, up to +-15
            assert from_span[key] == pytest.approx(value, abs=0.1), key
        elif key.startswith(("chroma", "hpcp")):  # 0-1; the CQT's long low filters reach
            assert from_span[key] == pytest.approx(value, abs=0.03), key  # 0.3 s past an edge
        else:
            assert from_span[key] == pytest.approx(value, rel=0.15 if key in edge else 0.04), key


def test_a_mono_track_relaid_as_stereo_shares_its_mono_analysis():
    """Crops of a mono track are stereo: loudness counts both channels
    (+3.01 dB), everything made from the channel mean is shared, not redone."""
    mono = 0.3 * white_noise(4.0)
    track = features.Analysis(mono, SR)
    spectral = track.spectral_frames
    stereo = track.relayout(np.stack([mono, mono]))
    assert stereo.spectral_frames is spectral
    lufs = {
        name: features.describe(None, SR, beat_grid(4), [], {"loudness": True}, a)["lufs"]
        for name, a in (("mono", track), ("stereo", stereo))
    }
    assert lufs["stereo"] - lufs["mono"] == pytest.approx(3.01, abs=0.01)
