"""Tests for mirflow.time_series: frame counts at the latent rate, values
against known signals, the crop slice, and a file other tools can read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from test_features import SR, beat_grid, sine, white_noise

from mirflow import time_series
from mirflow.export import passes_filters
from mirflow.feature_records import features_record
from mirflow.features import Analysis

RATE = time_series.DEFAULT_FRAME_RATE


def curves(audio, beats=None, rate=RATE):
    beats = beat_grid(8) if beats is None else beats
    return pd.DataFrame(time_series.track_curves(Analysis(audio, SR), beats, rate))


def test_the_default_rate_is_a_2048_sample_hop():
    assert time_series.hop_for(RATE, SR) == 2048
    table = curves(white_noise(524288 / SR))
    assert len(table) == 1 + 524288 // 2048
    assert np.allclose(np.diff(table["time_s"]), 2048 / SR)


def test_columns_and_types():
    table = curves(white_noise(3.0))
    expected = {"time_s", "loudness_short_term", "spectral_centroid", "spectral_flux",
                "spectral_flatness", "onset_strength", "beat_phase", "bar_position"}  # fmt: skip
    expected |= {f"hpcp_{i}" for i in range(12)}
    expected |= {"rms_energy_bass", "rms_energy_body", "rms_energy_mid", "rms_energy_air"}
    assert set(table.columns) == expected
    assert str(table.dtypes["time_s"]) == "float64"  # exact frame times
    assert all(str(table.dtypes[c]) == "float32" for c in table.columns if c != "time_s")


def test_values_follow_a_known_signal():
    # 4 s of silence, then a 0 dBFS 1 kHz sine (on one channel: -3.01 LUFS).
    x = np.concatenate([np.zeros(4 * SR, np.float32), sine(1000.0, 6.0)])
    table = curves(x)
    t = table["time_s"].to_numpy()
    late = (t > 5.6) & (t < 8.4)  # the centred 3 s loudness window lies inside the sine
    assert table["loudness_short_term"][late].to_numpy() == pytest.approx(-3.01, abs=0.1)
    assert table["loudness_short_term"][t < 2.0].max() <= -100.0
    assert np.nanmean(table["spectral_centroid"][late]) == pytest.approx(1000.0, rel=0.02)
    assert table["spectral_centroid"][t < 3.5].isna().all()  # silent: undefined
    # 1 kHz lies in the 600-2500 Hz band: a full-scale sine's RMS is -3.01 dBFS.
    assert table["rms_energy_mid"][late].to_numpy() == pytest.approx(-3.01, abs=0.1)
    assert table["rms_energy_bass"][late].max() < -40.0
    assert (
        table["onset_strength"][(t > 3.9) & (t < 4.2)].max() > table["onset_strength"][late].max()
    )


def test_beat_phase_and_bar_position():
    beats = beat_grid(9, ibi=0.5, start=1.0)  # beats at 1.0 .. 5.0 s, bars of 4
    phase, bar = time_series.beat_phases(beats, np.array([0.5, 1.0, 1.25, 2.75, 3.0, 5.0, 5.5]))
    assert np.isnan(phase[0]) and np.isnan(phase[-1]) and np.isnan(bar[0])
    assert phase[1:6] == pytest.approx([0.0, 0.5, 0.5, 0.0, 0.0])
    assert bar[1:6] == pytest.approx([0.0, 0.5, 3.5, 0.0, 0.0])
    table = curves(white_noise(6.0), beats)
    assert np.nanmax(table["bar_position"]) < 4.0 and np.nanmin(table["beat_phase"]) >= 0.0


def test_pool_averages_finer_frames_and_fills_from_coarser_ones():
    fine = np.arange(16, dtype=float)  # hop 512 -> hop 2048: centres 0, 2048, ...
    pooled = time_series.pool(fine, 512, 2048, 4)
    assert pooled == pytest.approx(
        [0.5, 3.5, 7.5, 11.5]
    )  # frame 0 gets 0, 1 (the rest of its span is before 0)
    coarse = time_series.pool(np.array([1.0, 2.0]), 4096, 2048, 4)
    assert coarse == pytest.approx([1.0, 1.0, 2.0, 2.0])
    masked = time_series.pool(fine, 512, 2048, 4, valid=fine < 4)
    assert masked[0] == pytest.approx(0.5) and np.isnan(masked[3])


def test_a_crop_slice_has_one_frame_per_hop():
    table = curves(white_noise(30.0))
    part = time_series.crop_slice(table, 10.0, 524288 / SR, RATE)
    assert {len(v) for v in part.values()} == {256}
    first = round(10.0 * RATE)
    assert part["hpcp_0"][5] == pytest.approx(float(table["hpcp_0"][first + 5]), rel=1e-5)
    assert abs(part["time_s"][0]) <= 0.5 / RATE  # relative to the crop start
    json.dumps(part, allow_nan=False)
    # A crop reaching past the track's end is padded with nulls, not cut short.
    tail = time_series.crop_slice(table, 25.0, 524288 / SR, RATE)
    assert len(tail["time_s"]) == 256 and tail["time_s"][-1] is None


def test_other_frame_rates():
    table = curves(white_noise(4.0), rate=44100 / 512)
    assert len(table) == 1 + 4 * SR // 512
    assert time_series.hop_for(10.0, SR) == 4410
    with pytest.raises(ValueError, match="frame_rate"):
        time_series.hop_for(100000.0, SR)


def test_silence_gives_floors_and_nans_not_errors():
    table = curves(np.zeros(2 * SR, np.float32))
    assert (table["loudness_short_term"] == time_series.FLOOR_DB).all()
    assert table["spectral_centroid"].isna().all()
    assert (table[[f"hpcp_{i}" for i in range(12)]] == 0).all().all()


def test_the_file_is_plain_parquet(tmp_path):
    table = curves(white_noise(3.0))
    path = tmp_path / "t.timeseries.parquet"
    time_series.write_table(table, path)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind
    read = pq.read_table(path)  # pyarrow alone, no mirflow or pandas
    assert read.column_names == list(table.columns)
    assert np.array_equal(read.column("time_s").to_numpy(), table["time_s"].to_numpy())


def test_max_silence_drops_a_crop_that_is_mostly_silence(tmp_path):
    """The export filter reads the silence_fraction the features stage writes
    (for a crop: of its span of the track)."""
    music = 0.3 * white_noise(4.0) + sine(220, 4.0, dbfs=-12)
    # 4 s of music, 3.2 s of silence, 0.8 s of music: crops at 0 s and 4 s.
    track = np.concatenate([music, np.zeros(int(3.2 * SR), np.float32), music[: int(0.8 * SR)]])
    sf.write(tmp_path / "t.flac", track, SR, subtype="PCM_24")
    np.savetxt(tmp_path / "t.BEATS", beat_grid(16), fmt="%.3f\t%d")
    n = 4 * SR
    crops = {
        f"t_00{i}": {"start_sample": i * n, "end_sample": (i + 1) * n, "start_s": 4.0 * i,
                     "duration_s": 4.0, "sample_rate": SR, "channels": 1, "stem_files": {}}
        for i in range(2)
    }  # fmt: skip
    config = {"dynamics": True, "time_series": {"enabled": False}}
    infos = features_record(tmp_path / "t.flac", tmp_path / "t.BEATS", [], config, crops).crops
    assert infos["t_000"]["silence_fraction"] < 0.05
    assert infos["t_001"]["silence_fraction"] == pytest.approx(0.8, abs=0.02)
    filters = {"max_silence": 0.5}
    assert passes_filters(infos["t_000"], filters) == (True, "")
    kept, reason = passes_filters(infos["t_001"], filters)
    assert not kept and reason.startswith("max_silence")
