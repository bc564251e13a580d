"""A long track's features a window at a time (mirflow.feature_windows)
against the same track analysed whole."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mirflow import feature_records, feature_windows
from mirflow.audio import load_audio, sample_windows
from mirflow.memory import HELD_MINUTES

REPO = Path(__file__).resolve().parents[2]
SONG = REPO / "tests/data/library/Kevin_MacLeod_-_Vibe_Ace.mp3"
SR = 44100
#: Values a window cannot see whole: each window's own tuning feeds its
#: chroma, the key is the windows' vote, librosa's onset envelope floors a
#: window 80 dB below its own loudest frame (the module doc says why).
PER_WINDOW = {f"chroma_{i}" for i in range(12)} | {"key", "key_strength"}
PER_WINDOW |= {"onset_strength_mean", "onset_strength_std"}


def test_sample_windows_join_into_the_signal():
    signal = np.arange(2 * 10_000, dtype=np.float32).reshape(2, -1)
    blocks = [signal[:, i : i + 777] for i in range(0, signal.shape[1], 777)]
    own, starts = [], []
    for window in sample_windows(blocks, window=2048, context=1024, unit=512):
        assert window.start % 512 == 0 and window.own_start % 512 == 0
        assert window.audio.shape[1] <= 2048 + 2 * 1024
        np.testing.assert_array_equal(
            window.audio, signal[:, window.start : window.start + window.audio.shape[1]]
        )
        own.append(signal[:, window.own_start : window.own_stop])
        starts.append(window.own_start)
    assert window.last and window.own_stop == signal.shape[1]
    np.testing.assert_array_equal(np.concatenate(own, axis=1), signal)
    assert starts == list(range(0, 10_000, 2048))


def test_dynamic_complexity_is_essentias():
    from mirflow.dynamics import dynamics
    from mirflow.essentia_import import essentia_standard

    audio, _ = load_audio(SONG, sr=SR, mono=True)
    mono = np.concatenate(
        [np.zeros(2 * SR, np.float32), audio[0, : 30 * SR], np.zeros(SR, np.float32)]
    )
    reference = essentia_standard().DynamicComplexity(sampleRate=float(SR))(mono)[0]
    assert dynamics(mono, SR)["dynamic_complexity"] == pytest.approx(reference, abs=1e-3)


def test_held_minutes_are_the_feature_window():
    held = (feature_windows.WINDOW_S + 2 * feature_windows.CONTEXT_S) / 60.0
    assert HELD_MINUTES["features_batch"] == pytest.approx(held)


@pytest.fixture(scope="module")
def excerpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    audio, _ = load_audio(SONG, sr=SR)
    path = folder / "excerpt.flac"
    sf.write(path, audio[:, : 45 * SR].T, SR, subtype="PCM_24")
    beats = folder / "excerpt.BEATS"
    times = np.arange(0.3, 45.0, 60.0 / 117)
    beats.write_text("".join(f"{t:.3f}\t{i % 4 + 1}\n" for i, t in enumerate(times)))
    crops = {}
    for index, start in enumerate((0.3, 11.9, 23.4)):  # one across each seam of 12 s windows
        first = round(start * SR)
        crops[f"c{index}"] = {
            "start_sample": first, "end_sample": first + 262144, "start_s": first / SR,
            "duration_s": 262144 / SR, "sample_rate": SR, "channels": 2, "stem_files": {},
        }  # fmt: skip
    return path, beats, crops


@pytest.fixture(scope="module")
def stems(tmp_path_factory):
    """Two 45 s "stems" (other recordings: the joining is what is tested)."""
    folder = tmp_path_factory.mktemp("stems")
    files = {}
    library = REPO / "tests/data/library"
    for name, pattern in (("bass", "Karissa_Hobbs_*"), ("drums", "Hungarian_Dance_*")):
        audio, _ = load_audio(next(library.glob(pattern)), sr=SR)
        files[name] = folder / f"{name}.flac"
        sf.write(files[name], np.repeat(audio[:1, : 45 * SR], 2, axis=0).T, SR, subtype="PCM_24")
    return files


def record(excerpt, tmp_path, window_s, monkeypatch, stems=None):
    path, beats, crops = excerpt
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())["features"]
    monkeypatch.setattr(feature_windows, "WINDOW_S", window_s)
    onsets = list(np.arange(0.25, 45.0, 0.37))
    series = tmp_path / f"{window_s}.parquet"
    if stems:
        files = {name: f"{name}.flac" for name in stems}
        crops = {name: {**crop, "stem_files": files} for name, crop in crops.items()}
    result = feature_records.features_record(
        path, beats, onsets, config, crops=crops, stems=stems, time_series_path=series
    )
    import pandas as pd

    return result, pd.read_parquet(series)


def close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=2e-3, abs_tol=1e-3)
    return a == b


def test_windowed_features_are_the_whole_tracks(excerpt, tmp_path, monkeypatch):
    whole, whole_series = record(excerpt, tmp_path, 300.0, monkeypatch)
    windowed, windowed_series = record(excerpt, tmp_path, 12.0, monkeypatch)  # 4 windows
    assert set(whole.track) == set(windowed.track)
    differ = {
        k for k, v in whole.track.items()
        if k != "time_series_file" and not close(v, windowed.track[k])
    }  # fmt: skip
    assert differ <= PER_WINDOW, {
        k: (whole.track[k], windowed.track[k]) for k in differ - PER_WINDOW
    }
    for name in PER_WINDOW - {"key"}:
        assert windowed.track[name] == pytest.approx(whole.track[name], rel=0.05, abs=0.05)
    # Crops are spans of a window's analysis, with its context around them.
    for name, fields in whole.crops.items():
        other = windowed.crops[name]
        differ = {k for k, v in fields.items() if k != "time_series" and not close(v, other[k])}
        assert differ <= PER_WINDOW, (name, differ)
        assert len(other["time_series"]["time_s"]) == 128  # 262144 samples at 44100 / 2048
    # The time series joins into the whole track's table, frame for frame.
    assert len(windowed_series) == len(whole_series) == 1 + 45 * SR // 2048
    np.testing.assert_allclose(windowed_series["time_s"], whole_series["time_s"])
    for column in whole_series.columns:
        rtol = 0.05 if column == "onset_strength" else 1e-3  # its floor is per window
        np.testing.assert_allclose(
            windowed_series[column], whole_series[column], atol=0.02, rtol=rtol, err_msg=column
        )


def test_windowed_stem_features_are_the_whole_tracks(excerpt, stems, tmp_path, monkeypatch):
    # The mix and each stem are analysed one after the other in a window:
    # the stems' fields, the track's and each crop's, are still the whole track's.
    whole, _ = record(excerpt, tmp_path, 300.0, monkeypatch, stems)
    windowed, _ = record(excerpt, tmp_path, 12.0, monkeypatch, stems)
    of_stems = {k for k in whole.track if k.endswith(("_bass", "_drums"))}
    assert {"lufs_bass", "harmonic_movement_bass", "onset_density_drums"} <= of_stems
    assert set(whole.track) == set(windowed.track)
    # The stems' onsets come from librosa's envelope, floored per window.
    rhythmic = ("onset", "rhythm", "syncopation")
    per_window = PER_WINDOW | {k for k in of_stems if any(word in k for word in rhythmic)}
    differ = {k for k in of_stems if not close(whole.track[k], windowed.track[k])}
    assert differ <= per_window, {k: (whole.track[k], windowed.track[k]) for k in differ}
    for name, fields in whole.crops.items():
        assert of_stems & set(fields) >= {"lufs_bass", "lufs_drums"}, name
        other = windowed.crops[name]
        assert set(fields) == set(other)
        differ = {k for k, v in fields.items() if k != "time_series" and not close(v, other[k])}
        assert differ <= per_window, (name, differ)
