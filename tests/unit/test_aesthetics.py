"""AestheticsModel on a tiny random AudioBox Aesthetics model loaded through the real loading code.

The tiny model is the real ``audiobox_aesthetics.model.aes.AesMultiOutput`` with a tiny WavLM,
saved in the official checkpoint format (``model_fixtures.audiobox_tiny``). Its scores are noise
around the fixture's target means, so these tests check the plumbing: windows, masks, weights,
the inverse normalisation, loading, errors, and agreement with the package's own
``AesPredictor.forward`` (run with a stand-in for torchaudio, which cannot be imported here; on a
machine with a working torchaudio 2.11 the real predictor agreed within 3e-5 on 16 kHz input and
within 0.004 on 44.1/48 kHz input, the gap being soxr vs torchaudio resampling).
"""

from __future__ import annotations

import importlib
import math
import sys
import time
import types

import numpy as np
import pytest
import torch
from audiobox_aesthetics.model import aes
from audiobox_aesthetics.model.wavlm import WavLMConfig
from model_fixtures.audiobox_tiny import (
    TINY_MODEL_CFG,
    TINY_TARGET_TRANSFORM,
    TINY_WAVLM_CFG,
    write_tiny_audiobox,
)

from conftest import write_tone
from mirflow import aesthetics as ae
from mirflow.aesthetics import AXES, AestheticsError, AestheticsModel
from mirflow.errors import ModelNotFoundError, TrackError

SR = ae.SAMPLE_RATE
AXIS_KEYS = set(AXES.values())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_audiobox(
        tmp_path_factory.mktemp("models") / "audiobox-aesthetics" / "checkpoint.pt"
    )


@pytest.fixture(scope="module")
def model(checkpoint):
    return AestheticsModel.load(checkpoint, device="cpu", batch_size=4)


def music_like(seconds: float, sr: int = SR, channels: int = 0, seed: int = 0) -> np.ndarray:
    """A decaying chord plus a little noise: ``(samples,)`` or ``(channels, samples)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220.0, 277.2, 329.6))
    sig = 0.2 * tone * np.exp(-(t % 1.0) * 3) + 0.02 * rng.standard_normal(t.size)
    if channels:
        sig = np.stack([sig * (1 - 0.2 * c) for c in range(channels)])
    return sig.astype(np.float32)


# -- the fixture model -----------------------------------------------------------------------------


def test_fixture_is_small_fast_and_in_the_official_format(tmp_path):
    started = time.perf_counter()
    path = write_tiny_audiobox(tmp_path / "checkpoint.pt")
    assert time.perf_counter() - started < 2
    assert path.stat().st_size < 2_000_000
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"state_dict", "model_cfg", "target_transform", ae.ENCODER_CFG_KEY}
    assert all(k.startswith("model.") for k in ckpt["state_dict"])
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values())
    assert set(ae.MODEL_CFG_KEYS) <= set(ckpt["model_cfg"])
    assert ckpt["target_transform"] == TINY_TARGET_TRANSFORM


# -- preprocessing: windows, masks, weights --------------------------------------------------------


def test_window_plan_cuts_10s_windows_without_overlap():
    # 25 s -> 10 s, 10 s, 5 s, as make_inference_batch(hop_size=10, window_size=10) cuts it.
    assert ae.window_plan(25 * SR) == [(0, 10 * SR), (10 * SR, 10 * SR), (20 * SR, 5 * SR)]
    assert ae.window_plan(20 * SR) == [(0, 10 * SR), (10 * SR, 10 * SR)]
    assert ae.window_plan(10 * SR + 1) == [(0, 10 * SR), (10 * SR, 1)]
    assert ae.window_plan(1) == [(0, 1)]
    assert ae.window_plan(0) == []


def test_make_windows_pads_masks_and_weighs_by_length():
    wav = np.arange(25 * SR, dtype=np.float32) + 1  # no zeros: padding is visible
    windows, masks, weights = ae.make_windows(wav)
    assert windows.shape == masks.shape == (3, ae.WINDOW)
    np.testing.assert_array_equal(windows[0], wav[: 10 * SR])
    np.testing.assert_array_equal(windows[1], wav[10 * SR : 20 * SR])
    np.testing.assert_array_equal(windows[2, : 5 * SR], wav[20 * SR :])
    assert not windows[2, 5 * SR :].any()  # zero-padded to 10 s
    assert masks[:2].all() and masks[2, : 5 * SR].all() and not masks[2, 5 * SR :].any()
    np.testing.assert_allclose(weights, [1.0, 1.0, 0.5])


def test_weighted_mean_is_the_length_weighted_average():
    assert ae.weighted_mean([4.0, 6.0, 10.0], [1.0, 1.0, 0.5]) == pytest.approx(15 / 2.5)
    assert ae.weighted_mean([3.0], [0.01]) == pytest.approx(3.0)


def test_model_input_is_16k_mono_with_torchaudio_length():
    stereo = music_like(2.0, sr=SR, channels=2)
    np.testing.assert_allclose(ae.to_model_input(stereo, SR), stereo.mean(axis=0), atol=1e-7)
    # 11.9 s crop at 44.1 kHz: torchaudio gives ceil(524288 * 160 / 441) samples; soxr one fewer
    crop = music_like(524288 / 44100, sr=44100, channels=2)
    assert crop.shape[1] == 524288
    out = ae.to_model_input(crop, 44100)
    assert out.dtype == np.float32 and out.ndim == 1
    assert out.shape[0] == ae.resampled_length(524288, 44100) == math.ceil(524288 * 160 / 441)
    assert ae.resampled_length(1, 44100) == 1  # soxr alone would return no sample at all
    assert ae.to_model_input(np.ones(1, np.float32), 44100).shape == (1,)


def test_resampling_keeps_the_signal():
    t44 = np.arange(44100) / 44100
    t16 = np.arange(SR) / SR
    out = ae.to_model_input(np.sin(2 * np.pi * 1000 * t44).astype(np.float32), 44100)
    np.testing.assert_allclose(out[100:-100], np.sin(2 * np.pi * 1000 * t16)[100:-100], atol=2e-3)


# -- scoring ---------------------------------------------------------------------------------------


def test_scores_are_four_finite_rounded_floats(model):
    scores = model.score(music_like(3.0, channels=2), SR)
    assert set(scores) == AXIS_KEYS
    for value in scores.values():
        assert isinstance(value, float) and math.isfinite(value)
        assert value == round(value, ae.DECIMALS)


def test_same_input_same_output(model, checkpoint):
    audio = music_like(4.0, sr=44100, channels=2)
    first = model.score(audio, 44100)
    assert model.score(audio, 44100) == first
    assert AestheticsModel.load(checkpoint, device="cpu").score(audio, 44100) == first


def test_different_signals_give_different_scores(model):
    a = model.score(music_like(4.0, seed=0), SR)
    b = model.score(np.random.default_rng(1).standard_normal(4 * SR).astype(np.float32), SR)
    assert a != b
    assert sum(a[k] != b[k] for k in AXIS_KEYS) >= 3


def test_track_score_is_the_length_weighted_mean_of_its_windows(model):
    # A window is scored on its own, so a 25 s clip must score (s1 + s2 + 0.5 * s3) / 2.5 where
    # s1, s2, s3 are the scores of its 10 s, 10 s and 5 s pieces scored alone.
    audio = music_like(25.0, seed=3)
    whole = model.score(audio, SR)
    pieces = [model.score(audio[a:b], SR) for a, b in ((0, 10 * SR), (10 * SR, 20 * SR))]
    pieces.append(model.score(audio[20 * SR :], SR))
    for key in AXIS_KEYS:
        expected = (pieces[0][key] + pieces[1][key] + 0.5 * pieces[2][key]) / 2.5
        assert whole[key] == pytest.approx(expected, abs=3e-4)
    # and it is not the plain mean (the 5 s window really weighs half)
    plain = {k: sum(p[k] for p in pieces) / 3 for k in AXIS_KEYS}
    assert any(abs(whole[k] - plain[k]) > 1e-3 for k in AXIS_KEYS)


def test_batch_size_and_pooling_do_not_change_scores(checkpoint, model):
    clips = [(music_like(25.0, seed=4), SR), (music_like(3.0, sr=44100, channels=2), 44100)]
    one_by_one = AestheticsModel.load(checkpoint, device="cpu", batch_size=1)
    pooled = model.score_many(clips)
    singles = [one_by_one.score(audio, sr) for audio, sr in clips]
    for p, s in zip(pooled, singles, strict=True):
        for key in AXIS_KEYS:
            assert p[key] == pytest.approx(s[key], abs=2e-4)
    assert model.score_many([]) == []


def test_target_normalisation_is_inverted(tmp_path):
    # Same weights, once with an identity transform (raw network outputs), once with known
    # mean/std: every score must be raw * std + mean.
    identity = {axis: {"mean": 0.0, "std": 1.0} for axis in AXES}
    raw_model = AestheticsModel.load(
        write_tiny_audiobox(tmp_path / "raw.pt", target_transform=identity), device="cpu"
    )
    known_model = AestheticsModel.load(write_tiny_audiobox(tmp_path / "known.pt"), device="cpu")
    audio = music_like(12.0, seed=5)
    raw, known = raw_model.score(audio, SR), known_model.score(audio, SR)
    for axis, key in AXES.items():
        mean, std = TINY_TARGET_TRANSFORM[axis]["mean"], TINY_TARGET_TRANSFORM[axis]["std"]
        assert known[key] == pytest.approx(raw[key] * std + mean, abs=3e-4)
        assert abs(known[key] - raw[key]) > 0.5  # the transform is really applied


def test_silence_and_very_short_audio_are_scored(model):
    # The package pads any clip to whole 10 s windows and masks the padding: so do we.
    for audio, sr in ((np.zeros(3 * SR, np.float32), SR), (np.full(1, 0.1, np.float32), 44100)):
        scores = model.score(audio, sr)
        assert set(scores) == AXIS_KEYS and all(math.isfinite(v) for v in scores.values())


def test_empty_or_non_finite_audio_is_a_track_error(model):
    with pytest.raises(AestheticsError, match="no audio samples"):
        model.score(np.zeros((2, 0), np.float32), SR)
    bad = music_like(2.0)
    bad[100] = np.nan
    with pytest.raises(TrackError, match="NaN or infinite"):
        model.score(bad, SR)


# -- loading and errors ----------------------------------------------------------------------------


def test_missing_checkpoint_names_the_file_and_make_models(tmp_path):
    before = AestheticsModel.load_count
    missing = tmp_path / "audiobox-aesthetics" / "checkpoint.pt"
    with pytest.raises(ModelNotFoundError) as info:
        AestheticsModel.load(missing, device="cpu")
    assert str(missing) in str(info.value) and "make models" in str(info.value)
    assert AestheticsModel.load_count == before


def test_load_count_counts_every_load(checkpoint):
    before = AestheticsModel.load_count
    AestheticsModel.load(checkpoint, device="cpu")
    assert AestheticsModel.load_count == before + 1
    AestheticsModel.load(checkpoint, device="cpu")
    assert AestheticsModel.load_count == before + 2


def test_load_options(checkpoint):
    with pytest.raises(ValueError, match="batch_size"):
        AestheticsModel.load(checkpoint, device="cpu", batch_size=0)
    threads = torch.get_num_threads()
    try:
        AestheticsModel.load(checkpoint, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert AestheticsModel.load(checkpoint, device="auto").device in {"cpu", "cuda"}


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelNotFoundError, match="not a usable audiobox-aesthetics checkpoint"):
        AestheticsModel.load(bad, device="cpu")


def test_state_dict_is_loaded_strictly(tmp_path, checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
    torch.save(ckpt, tmp_path / "partial.pt")
    with pytest.raises(ModelNotFoundError, match="Missing key"):
        AestheticsModel.load(tmp_path / "partial.pt", device="cpu")


def test_official_format_builds_the_packages_default_encoder(tmp_path, checkpoint):
    # Without the fixture's encoder entry (as in the official file) the encoder is
    # aes.DEFAULT_AUDIO_CFG's full-size WavLM: the tiny weights no longer fit it.
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    del ckpt[ae.ENCODER_CFG_KEY]
    torch.save(ckpt, tmp_path / "official-format.pt")
    default = aes.DEFAULT_AUDIO_CFG
    with pytest.raises(ModelNotFoundError, match="size mismatch"):
        AestheticsModel.load(tmp_path / "official-format.pt", device="cpu")
    assert aes.DEFAULT_AUDIO_CFG is default  # and the package's global is left as it was


def test_score_file_and_undecodable_file(model, tmp_path):
    tone = write_tone(tmp_path / "tone.wav", seconds=2.0, sr=22050, channels=2)
    scores = model.score_file(tone)
    assert set(scores) == AXIS_KEYS
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(TrackError) as info:
        model.score_file(corrupt)
    assert str(corrupt) in str(info.value)


# -- agreement with the package's own inference code -----------------------------------------------


@pytest.fixture
def package_infer(monkeypatch):
    """``audiobox_aesthetics.infer`` imported with a stand-in ``torchaudio`` (identity resample
    at equal rates; anything else fails) and the tiny encoder config; both undone afterwards."""

    def resample(wav, orig_freq, new_freq):
        assert orig_freq == new_freq, "the stand-in torchaudio cannot resample"
        return wav

    stub = types.ModuleType("torchaudio")
    stub.functional = types.SimpleNamespace(resample=resample)
    monkeypatch.setitem(sys.modules, "torchaudio", stub)
    monkeypatch.setattr(
        aes, "DEFAULT_AUDIO_CFG", WavLMConfig({**aes.DEFAULT_AUDIO_CFG.__dict__, **TINY_WAVLM_CFG})
    )
    sys.modules.pop("audiobox_aesthetics.infer", None)
    try:
        yield importlib.import_module("audiobox_aesthetics.infer")
    finally:
        sys.modules.pop("audiobox_aesthetics.infer", None)
        package = sys.modules["audiobox_aesthetics"]
        if hasattr(package, "infer"):
            delattr(package, "infer")


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated")
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
def test_scores_match_the_packages_predictor(package_infer, checkpoint, model):
    predictor = package_infer.AesPredictor(checkpoint_pth=str(checkpoint))
    assert predictor.model.wavlm_model.cfg.encoder_layers == TINY_WAVLM_CFG["encoder_layers"]
    assert predictor.model.nth_layer == TINY_MODEL_CFG["nth_layer"]
    clips = [music_like(25.0, channels=2, seed=6), music_like(3.7, seed=7)[None, :]]
    expected = predictor.forward([{"path": torch.from_numpy(c), "sample_rate": SR} for c in clips])
    got = model.score_many([(c, SR) for c in clips])
    for want, have in zip(expected, got, strict=True):
        for axis, key in AXES.items():
            assert have[key] == pytest.approx(want[axis], abs=2e-4)


def test_a_file_is_scored_chunk_by_chunk_as_a_whole(model, monkeypatch, tmp_path):
    """A 45 s file in chunks of 2 windows scores as the whole array does: the
    windows and their weights are the same ones."""
    from mirflow.audio import write_audio

    audio = music_like(45.3, sr=ae.SAMPLE_RATE, channels=1)
    path = tmp_path / "long.wav"
    write_audio(path, audio, ae.SAMPLE_RATE, "FLOAT")
    whole = model.score(audio, ae.SAMPLE_RATE)
    monkeypatch.setattr(ae, "FILE_CHUNK", 2 * ae.HOP)
    chunked = model.score_file(path)
    for key, value in whole.items():
        assert chunked[key] == pytest.approx(value, abs=2e-4), key
