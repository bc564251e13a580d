import numpy as np
import pytest
import soundfile as sf

from mirflow.stems import (
    QualityThresholds,
    apply_quality_filter,
    collect_stems,
    find_stem_files,
    fold_stems,
    is_near_silent,
    stem_levels,
    write_stem,
)

SR = 44100
RNG = np.random.default_rng(1)


def noise(level=0.1, n=SR):
    return (RNG.standard_normal((2, n)) * level).astype(np.float32)


def six_stems():
    return {name: noise() for name in ("bass", "drums", "other", "vocals", "guitar", "piano")}


def test_folding_extras_into_other_preserves_the_sum_exactly():
    stems = six_stems()
    folded = fold_stems(stems)
    assert list(folded) == ["drums", "bass", "other", "vocals"]
    total_before = sum(a.astype(np.float64) for a in stems.values())
    total_after = sum(a.astype(np.float64) for a in folded.values())
    assert np.max(np.abs(total_before - total_after)) < 1e-6  # float32 rounding only


def test_save_extra_and_discard():
    stems = six_stems()
    assert set(fold_stems(stems, save_extra=True)) == set(stems)
    folded = fold_stems(stems, discard=("vocals",))
    assert "vocals" not in folded
    np.testing.assert_allclose(
        folded["other"],
        stems["other"] + stems["guitar"] + stems["piano"] + stems["vocals"],
        atol=1e-6,
    )


def test_quality_filter_needs_all_three_thresholds():
    limits = QualityThresholds(rms_db=-50, peak_db=-25, crest_db=10)
    quiet_bleed = np.zeros((2, SR), np.float32)
    quiet_bleed[:, ::4410] = 0.01  # sparse clicks: low RMS, low peak, high crest
    assert is_near_silent(stem_levels(quiet_bleed), limits)
    assert is_near_silent(stem_levels(np.zeros((2, 100), np.float32)), limits)
    loud_clicks = quiet_bleed * 20  # peak -14 dBFS: above the peak threshold
    assert not is_near_silent(stem_levels(loud_clicks), limits)
    steady_hum = np.full((2, SR), 0.001, np.float32)  # low but crest 0 dB: a real part
    assert not is_near_silent(stem_levels(steady_hum), limits)


def test_quality_filter_folds_into_other_keeping_the_sum():
    stems = {"drums": noise(), "bass": noise(1e-5), "other": noise(), "vocals": noise()}
    stems["bass"][:, ::4410] = 0.01
    limits = QualityThresholds()
    flagged, report = apply_quality_filter(stems, limits, fold=False)
    assert report["bass"]["near_silent"] and not report["drums"]["near_silent"]
    assert np.array_equal(flagged["bass"], stems["bass"])
    folded, report = apply_quality_filter(stems, limits, fold=True)
    assert report["bass"]["folded_into_other"] and not np.any(folded["bass"])
    np.testing.assert_allclose(sum(folded.values()), sum(stems.values()), atol=1e-6)


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3"])
def test_write_stem_formats(tmp_path, fmt):
    audio = noise(0.2, 22050)
    write_stem(tmp_path / f"s.{fmt}", audio, 22050, fmt, mp3_bitrate=128)
    data, sr = sf.read(tmp_path / f"s.{fmt}", always_2d=True)
    if fmt == "mp3":
        assert sr == 44100  # LAME cannot take 22.05 kHz here: resampled
        size = (tmp_path / "s.mp3").stat().st_size
        assert abs(size * 8 / 1.0 / 1000 - 128) < 40  # ~128 kbit/s for 1 s
    else:
        assert sr == 22050 and data.shape == (22050, 2)


def test_find_stem_files_needs_every_stem_and_prefers_lossless(tmp_path):
    for name in ("drums", "bass", "other"):
        (tmp_path / f"{name}.flac").write_bytes(b"")
    assert find_stem_files(tmp_path) == {}
    (tmp_path / "vocals.mp3").write_bytes(b"")
    (tmp_path / "vocals.WAV").write_bytes(b"")
    found = find_stem_files(tmp_path)
    assert set(found) == {"drums", "bass", "other", "vocals"}
    assert found["vocals"].name == "vocals.WAV"


def separation_config(**overrides):
    config = {
        "format": "flac", "mp3_bitrate": 128, "save_extra_stems": False, "discard_stems": [],
        "convert_existing": False,
        "quality_filter": {"rms_db": -50.0, "peak_db": -25.0, "crest_db": 10.0, "fold": False},
    }  # fmt: skip
    config.update(overrides)
    return config


def test_library_stems_are_linked_as_they_are_and_extras_folded(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    stems = six_stems()
    paths = {}
    for name, audio in stems.items():
        fmt = "mp3" if name == "drums" else "wav"
        write_stem(lib / f"{name}.{fmt}", audio, SR, fmt)
        paths[name] = str(lib / f"{name}.{fmt}")
    result = collect_stems("t", None, paths, tmp_path / "stems", separation_config())
    assert result.ok and result.track["stems_origin"] == "library"
    files = result.track["stem_files"]
    assert set(files) == {"drums", "bass", "other", "vocals"}
    assert files["drums"] == "stems/drums.mp3"  # not re-encoded
    assert (tmp_path / "stems" / "drums.mp3").read_bytes() == (lib / "drums.mp3").read_bytes()
    assert files["other"] == "stems/other.flac"  # rewritten: guitar and piano folded in
    other, _ = sf.read(tmp_path / "stems" / "other.flac", always_2d=True)
    expected = stems["other"] + stems["guitar"] + stems["piano"]
    # The MP3 stem decodes longer (encoder padding): the others are padded to it.
    assert np.max(np.abs(other.T[:, :SR] - expected)) < 1e-4  # 24-bit FLAC precision


def test_failed_separation_record_becomes_a_failed_stems_record(tmp_path):
    from mirflow.records import StageResult, write_result

    batch = tmp_path / "batch"
    (batch / "t").mkdir(parents=True)
    write_result(
        batch / "t" / "separation.json",
        StageResult("separate", status="failed", error="separate: bad checkpoint"),
    )
    result = collect_stems("t", batch, {}, tmp_path / "stems", separation_config())
    assert result.status == "failed" and "bad checkpoint" in result.error
