"""A long track's separation and stems in bounded memory (issue 20).

Separation runs window by window on a tiny random HTDemucs (demucs's real
loading and apply_model); the stems rule streams the stems block by block.
Windows, context and crossfade are shrunk so that 24 s of real audio takes
several windows.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from model_fixtures.demucs_tiny import write_tiny_htdemucs

from conftest import GUITARSET
from mirflow.audio import aligned_blocks, load_audio, write_audio
from mirflow.separation import batch as separation_batch
from mirflow.separation.demucs_backend import DemucsBackend
from mirflow.stems import STEMS, collect_stems, stem_writer, write_stem

SR = 44100
SEPARATION = {
    "format": "wav", "mp3_bitrate": 128, "save_extra_stems": False, "discard_stems": [],
    "convert_existing": False,
    "quality_filter": {"rms_db": -50.0, "peak_db": -25.0, "crest_db": 10.0, "fold": True},
}  # fmt: skip


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_tiny_htdemucs(root / "demucs", name="tiny_htdemucs", segment=2)
    return root


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """24 s of a real recording (the GuitarSet clip looped), mono 44.1 kHz."""
    audio, sr = load_audio(GUITARSET, sr=SR)
    audio = np.tile(audio, (1, int(np.ceil(24 * SR / audio.shape[1]))))[:, : 24 * SR]
    path = tmp_path_factory.mktemp("mix") / "mix.flac"
    write_audio(path, audio, SR)
    return path


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr(separation_batch, "CONTEXT_S", 2.5)
    monkeypatch.setattr(separation_batch, "FADE_S", 0.5)
    return 7.0  # window_s: 24 s is four windows, the last one short


def separated(backend, mix, folder, window_s, **options):
    folder.mkdir()
    config = {**SEPARATION, **options}
    files, fields = separation_batch.separate_track(backend, mix, config, folder, window_s)
    return {name: sf.read(folder / file, dtype="float32", always_2d=True)[0].T
            for name, file in files.items()}, fields  # fmt: skip


def snr_db(reference, estimate):
    noise = np.sum((reference - estimate) ** 2)
    return 10 * np.log10(np.sum(reference**2) / max(noise, 1e-20))


def test_windows_give_the_whole_tracks_stems_with_no_seam(models_dir, mix, tmp_path, small_windows):
    backend = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="none")
    whole, fields = separated(backend, mix, tmp_path / "whole", window_s=60.0)
    windowed, _ = separated(backend, mix, tmp_path / "windows", window_s=small_windows)
    assert list(windowed) == list(STEMS) and fields["stems_model_outputs"] == sorted(STEMS)
    seams = [int(k * small_windows * SR) for k in (1, 2, 3)]
    for name in STEMS:
        assert windowed[name].shape == whole[name].shape == (2, 24 * SR)
        # The model hears each window with context: it gives almost the whole
        # track's stems (demucs normalises each window by its own level).
        assert snr_db(whole[name], windowed[name]) > 20, name
        # No step at a seam: the jump across it is of the size of the signal's
        # own sample-to-sample changes there, as in the whole-track stems.
        step = np.abs(np.diff(windowed[name], axis=1))
        typical = np.abs(np.diff(whole[name], axis=1))
        for seam in seams:
            around = slice(seam - SR // 4, seam + SR // 4)
            assert step[:, around].max() <= 2 * typical[:, around].max() + 1e-6, (name, seam)


def test_rescale_is_one_factor_over_the_whole_track(models_dir, mix, tmp_path, small_windows):
    raw = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="none")
    rescale = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="rescale")
    plain, _ = separated(raw, mix, tmp_path / "plain", small_windows)
    peak = max(np.abs(a).max() for a in plain.values())
    # The random model's stems are quieter than the mix: louden the mix until they clip.
    audio, _ = load_audio(mix)
    loud = tmp_path / "loud.wav"
    write_audio(loud, audio * np.float32(3.0 / peak), SR, "FLOAT")
    loud_raw, _ = separated(raw, loud, tmp_path / "loud_raw", small_windows)
    loud_peak = max(np.abs(a).max() for a in loud_raw.values())
    assert loud_peak > 1  # otherwise this test would prove nothing
    scaled, _ = separated(rescale, loud, tmp_path / "loud_rescaled", small_windows)
    for name in STEMS:
        np.testing.assert_allclose(scaled[name], loud_raw[name] / (1.01 * loud_peak), atol=1e-6)
    assert not [p for p in (tmp_path / "loud_rescaled").iterdir() if p.name.startswith(".")]
    clamp = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="clamp")
    clamped, _ = separated(clamp, loud, tmp_path / "loud_clamped", small_windows)
    for name in STEMS:
        np.testing.assert_allclose(clamped[name], np.clip(loud_raw[name], -0.99, 0.99), atol=1e-6)


def test_aligned_blocks_pad_the_shorter_signal():
    a = [np.ones((2, 5), np.float32), np.ones((2, 7), np.float32)]
    b = [np.full((1, 3), 2.0, np.float32)] * 3
    blocks = list(aligned_blocks([a, b], size=4))
    assert [x.shape[1] for x, _ in blocks] == [4, 4, 4]
    joined_a = np.concatenate([x for x, _ in blocks], axis=1)
    joined_b = np.concatenate([y for _, y in blocks], axis=1)
    np.testing.assert_array_equal(joined_a, np.ones((2, 12)))
    np.testing.assert_array_equal(joined_b[0], [2.0] * 9 + [0.0] * 3)


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3"])
def test_a_stem_written_in_blocks_is_the_stem_written_whole(tmp_path, fmt):
    audio = (np.random.default_rng(0).standard_normal((2, 3 * SR)) * 0.1).astype(np.float32)
    write_stem(tmp_path / f"whole.{fmt}", audio, SR, fmt)
    with stem_writer(tmp_path / f"blocks.{fmt}", SR, 2, fmt) as write:
        for start in range(0, audio.shape[1], 10_000):
            write(audio[:, start : start + 10_000])
    whole, _ = load_audio(tmp_path / f"whole.{fmt}")
    blocks, _ = load_audio(tmp_path / f"blocks.{fmt}")
    assert whole.shape == blocks.shape
    np.testing.assert_allclose(blocks, whole, atol=1e-4 if fmt == "mp3" else 0)


def test_stems_rule_streams_long_stems_and_folds_a_silent_one(tmp_path):
    """20 s stems (several blocks), one of them mono and shorter, one near-silent."""
    rng = np.random.default_rng(3)
    n = 20 * SR
    stems = {name: (rng.standard_normal((2, n)) * 0.1).astype(np.float32) for name in STEMS}
    stems["bass"] = stems["bass"][:1, : n - 1000]  # mono, a little shorter
    stems["vocals"] = (rng.standard_normal((2, n)) * 1e-5).astype(np.float32)  # bleed
    lib = tmp_path / "lib"
    paths = {}
    for name, audio in stems.items():
        write_stem(lib / f"{name}.wav", audio, SR, "wav")
        paths[name] = str(lib / f"{name}.wav")
    result = collect_stems("t", None, paths, tmp_path / "stems", SEPARATION)
    assert result.ok, result.error
    assert result.track["stems_near_silent"] == ["vocals"]
    assert result.track["stem_quality"]["vocals"]["folded_into_other"]
    out = {name: load_audio(tmp_path / "stems" / f"{name}.wav")[0] for name in STEMS}
    np.testing.assert_allclose(out["other"], stems["other"] + stems["vocals"], atol=1e-6)
    assert not out["vocals"].any()
    # Unchanged stems are linked as they are, the mono one too.
    for name in ("drums", "bass"):
        assert (tmp_path / "stems" / f"{name}.wav").samefile(lib / f"{name}.wav")
