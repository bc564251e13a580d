"""The timbral group (mirflow.timbral): Audio Commons' timbral models as the
package computes them, through mirflow's tracks, crops and windows."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt
from test_features import SR, beat_grid, library_file, white_noise

from mirflow import feature_windows, features, timbral
from mirflow.audio import Window, load_audio


@pytest.fixture(scope="module")
def recording():
    """6 s of a real recording (vocadito: voice and guitar), stereo."""
    audio, _ = load_audio(library_file("vocadito_1.flac"), sr=SR)
    clip = audio[:, 10 * SR : 16 * SR]
    return np.stack([clip[0], 0.7 * clip[-1]])


def test_a_recording_scores_what_the_package_scores_on_its_file(recording, tmp_path):
    """The package's own entry points, on a file: they read it, sum its
    channels and normalise its loudness themselves. (Its hardness, depth,
    roughness and warmth do not run on NumPy 2 / librosa 0.11 unaided.)"""
    import timbral_models

    path = str(tmp_path / "clip.wav")
    sf.write(path, recording.T, SR, subtype="FLOAT")
    ours = timbral.timbre(recording, SR)
    assert set(ours) == set(timbral.KEYS)
    for key in ("brightness", "sharpness", "booming"):
        model = getattr(timbral_models, f"timbral_{key}")
        assert ours[key] == pytest.approx(model(path, clip_output=True), abs=1e-6), key
    _, probability = timbral_models.timbral_reverb(path, dev_output=True)
    assert ours["reverberation"] == pytest.approx(100 * probability, abs=1e-6)
    assert all(0.0 <= value <= 100.0 for value in ours.values()), ours


def test_dark_noise_scores_darker_deeper_and_warmer_than_bright_noise():
    noise = white_noise(3.0).astype(np.float64)
    dark = timbral.timbre(3 * sosfilt(butter(4, 300, "low", fs=SR, output="sos"), noise), SR)
    bright = timbral.timbre(sosfilt(butter(4, 3000, "high", fs=SR, output="sos"), noise), SR)
    for key in ("brightness", "sharpness"):
        assert bright[key] > dark[key] + 30, key
    for key in ("depth", "warmth", "booming"):
        assert dark[key] > bright[key] + 20, key


def test_silence_is_none_and_an_undefined_model_none_alone(caplog):
    assert timbral.timbre(np.zeros((2, 2 * SR)), SR) == dict.fromkeys(timbral.KEYS)
    constant = timbral.timbre(np.full(2 * SR, 0.3), SR)  # no spectral peaks to warm
    assert constant["warmth"] is None
    assert constant["brightness"] is not None
    assert "timbral warmth undefined" in caplog.text


def test_the_group_is_off_unless_asked_for():
    from mirflow.feature_records import switches

    assert switches({})["timbral"] is False
    assert switches({"timbral": True})["timbral"] is True
    assert switches({})["loudness"] is True


def test_a_crop_is_scored_on_its_own_samples(recording):
    """Not a slice of the track's value: the models read the crop's audio."""
    track = features.Analysis(recording, SR)
    span = track.span(SR, 4 * SR)
    from_span = features.describe(None, SR, beat_grid(4), [], {"timbral": True}, span)
    assert from_span == timbral.timbre(recording[:, SR : 4 * SR], SR)
    assert from_span != features.describe(None, SR, beat_grid(4), [], {"timbral": True}, track)


def test_a_long_tracks_timbre_is_its_windows_weighted_by_length(monkeypatch):
    # The models stand in: a value per window that says which window it is.
    monkeypatch.setattr(
        timbral, "timbre", lambda audio, sr: dict.fromkeys(timbral.KEYS, float(audio[0, 0]))
    )
    needs = feature_windows.needs({"timbral": True}, feature_windows.TRACK_NEEDS)
    joiner = feature_windows.Joiner(SR, needs)
    lengths = [3 * SR, SR]
    start = 0
    for index, length in enumerate(lengths):
        audio = np.full((2, length), 0.1 * (index + 1))
        window = Window(audio, start, start, start + length, index == len(lengths) - 1)
        joiner.add(features.Analysis(audio, SR), window)
        start += length
    joined = features.describe(None, SR, beat_grid(4), [], {"timbral": True}, joiner.analysis())
    assert joined == pytest.approx(dict.fromkeys(timbral.KEYS, (3 * 0.1 + 1 * 0.2) / 4))
