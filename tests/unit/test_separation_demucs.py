"""DemucsBackend on a tiny random HTDemucs loaded through demucs's real loading code.

The tiny model is the real ``demucs.htdemucs.HTDemucs`` at a tiny width, written in demucs's own
checkpoint format and repo layout (``model_fixtures.demucs_tiny``), so these tests exercise
``get_model(name, repo=...)``, the checksum check, ``BagOfModels`` and ``apply_model`` exactly as
the official models do. Its stems are noise: only shapes, counts, scaling and errors are checked.
No network: ``repo=`` keeps demucs away from the hub.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import time

import numpy as np
import pytest
import torch
import yaml
from demucs.pretrained import REMOTE_ROOT
from model_fixtures.demucs_tiny import write_tiny_htdemucs

from conftest import GUITARSET, TRUMPET
from mirflow.audio import load_audio, resample, to_stereo
from mirflow.errors import ModelNotFoundError
from mirflow.separation import SeparationError
from mirflow.separation import demucs_backend as db
from mirflow.separation.demucs_backend import DemucsBackend
from mirflow.stems import STEMS

SR = 44100
SIX = (*STEMS, "guitar", "piano")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models/ folder holding tiny models side by side in models/demucs/.

    Most use a 2 s training segment (chunks of 2 s: fast, and 3 s of audio already takes
    several overlapping chunks); ``tiny_htdemucs_78`` keeps htdemucs's own 7.8 s.
    """
    root = tmp_path_factory.mktemp("models")
    write_tiny_htdemucs(root / "demucs", name="tiny_htdemucs", segment=2)
    write_tiny_htdemucs(root / "demucs", name="tiny_htdemucs_6s", sources=SIX, seed=1, segment=2)
    write_tiny_htdemucs(root / "demucs", name="tiny_htdemucs_78", seed=2)
    return root


@pytest.fixture(scope="module")
def backend(models_dir):
    return DemucsBackend("tiny_htdemucs", models_dir, device="cpu")


@pytest.fixture(scope="module")
def trumpet():
    """3 s of real stereo audio at 44.1 kHz."""
    audio, sr = load_audio(TRUMPET)
    assert sr == SR and audio.shape[0] == 2
    return audio[:, : 3 * SR]


def broken_copy(models_dir, tmp_path, name="tiny_htdemucs"):
    """A private copy of models/demucs/ with just ``name``'s files, safe to damage."""
    bag = yaml.safe_load((models_dir / "demucs" / f"{name}.yaml").read_text())
    (tmp_path / "demucs").mkdir()
    shutil.copy(models_dir / "demucs" / f"{name}.yaml", tmp_path / "demucs")
    (th,) = (models_dir / "demucs").glob(f"{bag['models'][0]}-*.th")
    shutil.copy(th, tmp_path / "demucs")
    return tmp_path, tmp_path / "demucs" / th.name


# -- the fixture model ----------------------------------------------------------------------------


def test_fixture_writes_demucs_repo_layout(tmp_path):
    started = time.perf_counter()
    name = write_tiny_htdemucs(tmp_path, name="t")
    assert time.perf_counter() - started < 2
    (th,) = tmp_path.glob("*.th")
    sig, sha8 = th.stem.split("-")
    assert hashlib.sha256(th.read_bytes()).hexdigest()[:8] == sha8
    assert th.stat().st_size < 5_000_000
    assert yaml.safe_load((tmp_path / f"{name}.yaml").read_text()) == {"models": [sig]}
    # Same seed, same weights: the file (and so its name) is reproducible.
    write_tiny_htdemucs(tmp_path, name="t")
    assert [p.name for p in tmp_path.glob("*.th")] == [th.name]


# -- loading --------------------------------------------------------------------------------------


def test_backend_reports_the_model(backend):
    assert backend.name == "demucs:tiny_htdemucs"
    assert backend.sample_rate == SR
    assert backend.sources == list(STEMS)
    assert backend.device == "cpu"
    assert not backend.model.training


def test_each_instance_loads_once_and_separating_never_reloads(models_dir, trumpet, monkeypatch):
    calls = []
    real_get_model = db.get_model

    def counting_get_model(name, repo=None):
        calls.append((name, repo))
        return real_get_model(name, repo=repo)

    monkeypatch.setattr(db, "get_model", counting_get_model)
    before = DemucsBackend.load_count
    first = DemucsBackend("tiny_htdemucs", models_dir, device="cpu")
    assert DemucsBackend.load_count == before + 1
    assert calls == [("tiny_htdemucs", models_dir / "demucs")]  # always with repo=
    guitar, _ = load_audio(GUITARSET)
    for track in (trumpet[:, :SR], guitar[:, :SR], trumpet[:, SR : 2 * SR]):
        assert set(first.separate(track, SR)) == set(STEMS)
    assert DemucsBackend.load_count == before + 1 and len(calls) == 1
    DemucsBackend("tiny_htdemucs_6s", models_dir, device="cpu")
    assert DemucsBackend.load_count == before + 2 and len(calls) == 2


# -- separating -----------------------------------------------------------------------------------


def test_separates_real_stereo_audio_into_the_models_stems(backend, trumpet):
    stems = backend.separate(trumpet, SR)
    assert list(stems) == list(STEMS)
    for stem in stems.values():
        assert stem.dtype == np.float32
        assert stem.shape == (2, trumpet.shape[1])
        assert np.isfinite(stem).all()
        assert np.abs(stem).max() > 0
    assert not np.allclose(stems["drums"], stems["vocals"])


def test_official_segment_length_on_ten_seconds(models_dir):
    b = DemucsBackend("tiny_htdemucs_78", models_dir, device="cpu")
    assert float(b._max_segment()) == 7.8
    guitar, _ = load_audio(GUITARSET)
    stems = b.separate(guitar[:, : 10 * SR], SR)  # two 7.8 s chunks
    assert list(stems) == list(STEMS)
    assert all(s.shape == (2, 10 * SR) and np.isfinite(s).all() for s in stems.values())


def test_mono_22050_input_is_resampled_and_made_stereo(backend):
    audio, sr = load_audio(GUITARSET, sr=22050)
    mono = audio[:, : 3 * sr]
    assert mono.shape == (1, 3 * sr)
    expected = resample(np.concatenate([mono, mono]), sr, SR).shape[1]
    stems = backend.separate(mono, sr)
    assert expected == 3 * SR
    assert all(stem.shape == (2, expected) for stem in stems.values())
    # Mono is exactly "the same signal on both channels", 1-D is mono.
    dual = backend.separate(np.concatenate([mono, mono]), sr)
    flat = backend.separate(mono[0], sr)
    for name in STEMS:
        np.testing.assert_array_equal(stems[name], dual[name])
        np.testing.assert_array_equal(stems[name], flat[name])


def test_odd_length_and_rate_gives_the_resampled_length(backend):
    sr = 32000
    x = np.random.default_rng(0).standard_normal((2, 12_345)).astype(np.float32) * 0.1
    n = resample(x, sr, SR).shape[1]
    assert all(s.shape == (2, n) for s in backend.separate(x, sr).values())


def test_six_channels_are_separated_as_their_stereo_downmix(backend, trumpet):
    x = trumpet[:, :SR]
    surround = np.concatenate([x, x[::-1] * 0.5, x * 0.25])  # 5.1: L R C LFE Ls Rs
    a, b = backend.separate(to_stereo(surround), SR), backend.separate(surround, SR)
    for name in STEMS:
        np.testing.assert_array_equal(a[name], b[name])
    # Not the first two channels only: the centre and surrounds are in the mix.
    assert not np.allclose(b["drums"], backend.separate(x, SR)["drums"])


def test_separation_is_deterministic_and_leaves_global_random_alone(backend, trumpet):
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    first = backend.separate(trumpet[:, :SR], SR)
    assert random.random() == expected_next
    second = backend.separate(trumpet[:, :SR], SR)
    for name in STEMS:
        np.testing.assert_array_equal(first[name], second[name])


def test_six_source_model_returns_six_stems(models_dir, trumpet):
    six = DemucsBackend("tiny_htdemucs_6s", models_dir, device="cpu")
    assert six.sources == list(SIX)
    stems = six.separate(trumpet[:, : 2 * SR], SR)
    assert list(stems) == list(SIX)
    assert all(s.shape == (2, 2 * SR) for s in stems.values())


def test_shorter_segment_and_no_shifts(models_dir, trumpet):
    b = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", segment=1.0, shifts=0)
    stems = b.separate(trumpet[:, : 2 * SR], SR)
    assert all(s.shape == (2, 2 * SR) for s in stems.values())


def test_very_short_and_silent_input(backend):
    for x in (np.zeros((2, SR // 2), np.float32), np.full((1, 100), 0.2, np.float32)):
        stems = backend.separate(x, SR)
        assert all(s.shape == (2, x.shape[1]) and np.isfinite(s).all() for s in stems.values())


# -- clipping -------------------------------------------------------------------------------------


def test_rescale_scales_all_stems_by_one_factor_to_a_peak_below_one(models_dir, trumpet):
    raw = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="none")
    rescaled = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="rescale")
    clamped = DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="clamp")
    x = trumpet[:, :SR]
    # The random model's stems are much quieter than its input; separation is linear in the
    # input's scale (demucs normalises by the mix's std), so aim the stems at a peak of ~3.
    unit_peak = max(np.abs(s).max() for s in raw.separate(x, SR).values())
    loud = x * np.float32(3.0 / unit_peak)
    a, b, c = raw.separate(loud, SR), rescaled.separate(loud, SR), clamped.separate(loud, SR)
    peak = max(np.abs(s).max() for s in a.values())
    assert peak > 1  # otherwise this test would prove nothing
    for name in STEMS:
        assert np.abs(b[name]).max() <= 1
        assert np.abs(c[name]).max() <= 0.99
        np.testing.assert_allclose(b[name], a[name] / (1.01 * peak), rtol=1e-5, atol=1e-7)
    # Quiet input is left untouched by "rescale".
    quiet = x * np.float32(0.5 / unit_peak)
    qa, qb = raw.separate(quiet, SR), rescaled.separate(quiet, SR)
    assert max(np.abs(s).max() for s in qa.values()) < 1 / 1.01
    for name in STEMS:
        np.testing.assert_array_equal(qa[name], qb[name])


# -- missing or broken models ---------------------------------------------------------------------


def test_missing_checkpoint_names_the_file_and_make_models(models_dir, tmp_path):
    root, th = broken_copy(models_dir, tmp_path)
    th.unlink()
    before = DemucsBackend.load_count
    with pytest.raises(ModelNotFoundError) as err:
        DemucsBackend("tiny_htdemucs", root, device="cpu")
    sig = th.name.split("-")[0]
    assert f"{root / 'demucs' / sig}-" in str(err.value)
    assert "is missing" in str(err.value) and "make models" in str(err.value)
    assert DemucsBackend.load_count == before


def test_missing_official_files_are_named_exactly(tmp_path):
    (tmp_path / "demucs").mkdir()
    with pytest.raises(
        ModelNotFoundError,
        match=r"demucs/htdemucs\.yaml, .*/955717e8-8726e21a\.th are missing.*make models",
    ):
        DemucsBackend("htdemucs", tmp_path, device="cpu")
    shutil.copy(REMOTE_ROOT / "htdemucs_ft.yaml", tmp_path / "demucs")
    with pytest.raises(ModelNotFoundError) as err:
        DemucsBackend("htdemucs_ft", tmp_path, device="cpu")
    message = str(err.value)
    for name in (
        "f7e0c4bc-ba3fe64a",
        "d12395a8-e57c48e6",
        "92cfc3b6-ef3bcb9c",
        "04573f0d-f3cf25b2",
    ):
        assert f"{tmp_path / 'demucs' / name}.th" in message
    assert "are missing" in message and "make models" in message


def test_missing_folder_and_unknown_model(models_dir, tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        DemucsBackend("htdemucs", tmp_path / "nowhere", device="cpu")  # no sys.exit from demucs
    assert "955717e8-8726e21a.th" in str(err.value) and "htdemucs.yaml" in str(err.value)
    with pytest.raises(ModelNotFoundError, match=r"no_such_model\.yaml is missing"):
        DemucsBackend("no_such_model", models_dir, device="cpu")


def test_corrupted_checkpoint_is_model_not_found_not_a_crash(models_dir, tmp_path):
    root, th = broken_copy(models_dir, tmp_path)
    data = bytearray(th.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: sha256 no longer matches the name
    th.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match=r"corrupt or incompletely downloaded") as err:
        DemucsBackend("tiny_htdemucs", root, device="cpu")
    assert "Invalid checksum" in str(err.value) and "make models" in str(err.value)


def test_truncated_checkpoint_without_checksum_in_its_name(models_dir, tmp_path):
    root, th = broken_copy(models_dir, tmp_path)
    # demucs checks nothing for a file named just <sig>.th: torch.load meets the truncation.
    unchecked = th.with_name(th.name.split("-")[0] + ".th")
    unchecked.write_bytes(th.read_bytes()[:1000])
    th.unlink()
    with pytest.raises(ModelNotFoundError, match="corrupt or incompletely downloaded"):
        DemucsBackend("tiny_htdemucs", root, device="cpu")


def test_official_signature_with_the_wrong_checksum_name(tmp_path):
    (tmp_path / "demucs").mkdir()
    shutil.copy(REMOTE_ROOT / "htdemucs.yaml", tmp_path / "demucs")
    (tmp_path / "demucs" / "955717e8-00000000.th").write_bytes(b"not a model")
    with pytest.raises(ModelNotFoundError, match=r"not the official checkpoint 955717e8-8726e21a"):
        DemucsBackend("htdemucs", tmp_path, device="cpu")


def test_bad_bag_yaml(models_dir, tmp_path):
    root, _ = broken_copy(models_dir, tmp_path)
    (root / "demucs" / "tiny_htdemucs.yaml").write_text("just a string\n")
    with pytest.raises(ModelNotFoundError, match="not a demucs bag file"):
        DemucsBackend("tiny_htdemucs", root, device="cpu")


# -- argument and input errors --------------------------------------------------------------------


def test_bad_arguments(models_dir):
    with pytest.raises(ValueError, match="clip_mode"):
        DemucsBackend("tiny_htdemucs", models_dir, device="cpu", clip_mode="tanh-ish")
    with pytest.raises(ValueError, match="longer than"):
        DemucsBackend("tiny_htdemucs", models_dir, device="cpu", segment=60)


def test_bad_audio(backend):
    with pytest.raises(SeparationError):
        backend.separate(np.zeros((2, 0), np.float32), SR)
    with pytest.raises(SeparationError, match="NaN"):
        backend.separate(np.array([[0.0, np.nan, 0.1, 0.2]] * 2, np.float32), SR)
    with pytest.raises(ValueError, match=r"\(channels, samples\)"):
        backend.separate(np.zeros((SR, 2), np.float32), SR)  # transposed


def test_threads_setting_is_applied(models_dir):
    previous = torch.get_num_threads()
    try:
        DemucsBackend("tiny_htdemucs", models_dir, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
