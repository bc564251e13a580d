"""RoformerBackend: a tiny random BS-RoFormer through the real audio-separator code.

No network (every socket connect and DNS lookup fails and is recorded), CPU only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from model_fixtures.roformer_tiny import SIX_STEMS, write_tiny_bs_roformer

from conftest import GUITARSET, REPO, VIBE_ACE
from mirflow.audio import load_audio, resample, to_stereo
from mirflow.errors import ModelNotFoundError, TrackError
from mirflow.separation import SeparationError
from mirflow.separation.roformer_backend import (
    DOWNLOAD_CHECKS,
    DOWNLOAD_LIST_KEYS,
    RoformerBackend,
    _refuse_download,
)

SR = 44100
SECONDS = 3

# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def network_attempts():
    """Fail every connect/DNS lookup for the whole module, and fail the module if any happened.

    Module scope (and autouse) so it is active before the module-scoped model
    fixtures below load anything.
    """
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise OSError("network access is blocked in this test module")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_tiny_bs_roformer(root)
    return root


@pytest.fixture(scope="module")
def backend(models_dir, tmp_path_factory):
    return RoformerBackend(
        "tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path_factory.mktemp("work")
    )


@pytest.fixture(scope="module")
def clip():
    audio, sr = load_audio(GUITARSET)
    assert sr == SR and audio.shape[0] == 1
    return audio[:, : SECONDS * sr]


def _assert_stems(stems, names, n):
    assert list(stems) == [name.lower() for name in names]
    for name, stem in stems.items():
        assert stem.shape == (2, n), name
        assert stem.dtype == np.float32, name
        assert np.isfinite(stem).all(), name
        assert np.abs(stem).max() > 1e-6, f"{name} is silent"


# -- separation ----------------------------------------------------------------


def test_socket_guard_blocks_http(network_attempts):
    import requests  # noqa: PLC0415  (audio-separator's HTTP client)

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("https://raw.githubusercontent.com/x/y/main/z.json", timeout=5)
    assert network_attempts
    network_attempts.clear()


def test_six_stems_from_real_audio(backend, clip):
    stems = backend.separate(clip, SR)
    _assert_stems(stems, SIX_STEMS, SECONDS * SR)
    assert backend.name == "bs_roformer:tiny_bs_roformer.ckpt"
    assert backend.sample_rate == SR
    # Six different outputs, not one signal copied six times.
    flat = np.stack([stem.ravel() for stem in stems.values()])
    assert np.linalg.matrix_rank(flat[:, :: SR // 100].astype(np.float64)) == 6


def test_mono_22050_input_comes_back_at_44100(backend, clip):
    low = resample(clip, SR, 22050)
    assert low.shape == (1, SECONDS * 22050)
    stems = backend.separate(low, 22050)
    n = resample(low, 22050, SR).shape[1]
    assert n == SECONDS * SR
    _assert_stems(stems, SIX_STEMS, n)
    # A 1-D array is one channel too.
    assert backend.separate(low[0], 22050)["vocals"].shape == (2, n)


def test_six_channels_are_separated_as_their_stereo_downmix(backend, clip):
    surround = np.concatenate([clip, clip * 0.5, clip * 0.25, clip[:, ::-1] * 0.1, clip, clip])
    a, b = backend.separate(to_stereo(surround), SR), backend.separate(surround, SR)
    for name in SIX_STEMS:
        np.testing.assert_allclose(a[name], b[name], atol=1e-6)


def test_stems_are_the_models_output_unscaled(backend):
    """The file round trip adds nothing: no peak normalisation, no 16-bit quantisation.

    A stereo mix with a peak above 1.0 would be rescaled by audio-separator's
    default normalisation, and then each stem on its own.
    """
    audio, sr = load_audio(VIBE_ACE)
    mix = audio[:, 30 * sr : 32 * sr] * np.float32(1.6 / np.abs(audio[:, 30 * sr : 32 * sr]).max())
    assert mix.shape[0] == 2 and np.abs(mix).max() > 1.5
    stems = backend.separate(mix, sr)
    direct = backend._separator.model_instance.demix(mix.copy(), override_model_segment_size=True)
    for name in SIX_STEMS:
        np.testing.assert_allclose(stems[name], direct[name], rtol=0, atol=1e-6)
    # The two channels differ, so the model saw a real stereo mix.
    assert np.abs(stems["drums"][0] - stems["drums"][1]).max() > 1e-5


def test_target_instrument_model_returns_target_and_residual(tmp_path):
    """A single-target yaml: audio-separator returns the target and mix - target."""
    models = tmp_path / "models"
    write_tiny_bs_roformer(
        models,
        "tiny_vocals.ckpt",
        instruments=("Vocals", "Instrumental"),
        target_instrument="Vocals",
    )
    one = RoformerBackend("tiny_vocals.ckpt", models, device="cpu", work_dir=tmp_path / "work")
    mix = np.random.default_rng(0).uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    stems = one.separate(mix, SR)
    assert list(stems) == ["vocals", "instrumental"]
    np.testing.assert_allclose(stems["vocals"] + stems["instrumental"], mix, atol=1e-5)


# -- loading once --------------------------------------------------------------


def test_loads_once_per_instance(models_dir, clip, tmp_path):
    before = RoformerBackend.load_count
    first = RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path)
    assert RoformerBackend.load_count == before + 1
    model = first._separator.model_instance.model_run
    first.separate(clip[:, :SR], SR)
    first.separate(clip[:, SR : 2 * SR], SR)
    assert RoformerBackend.load_count == before + 1
    assert first._separator.model_instance.model_run is model
    RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path)
    assert RoformerBackend.load_count == before + 2


def test_no_temporary_files_left(models_dir, clip, tmp_path):
    work = tmp_path / "work"
    one = RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=work)
    one.separate(clip[:, :SR], SR)
    assert list(work.iterdir()) == []
    # Nor after a failed separation.
    with pytest.raises(SeparationError):
        one.separate(np.full((2, SR), np.nan, dtype=np.float32), SR)
    assert list(work.iterdir()) == []


# -- missing and bad models ----------------------------------------------------


@pytest.mark.parametrize("missing", [".ckpt", ".yaml"])
def test_missing_model_file(models_dir, tmp_path, missing):
    models = tmp_path / "models"
    (models / "audio-separator").mkdir(parents=True)
    for suffix in (".ckpt", ".yaml"):
        if suffix != missing:
            src = models_dir / "audio-separator" / f"tiny_bs_roformer{suffix}"
            (models / "audio-separator" / src.name).write_bytes(src.read_bytes())
    before = RoformerBackend.load_count
    with pytest.raises(ModelNotFoundError) as caught:
        RoformerBackend("tiny_bs_roformer.ckpt", models, device="cpu")
    message = str(caught.value)
    assert f"tiny_bs_roformer{missing}" in message
    assert "make models" in message
    assert RoformerBackend.load_count == before


def test_corrupt_checkpoint_is_a_track_error_not_an_exit(models_dir, clip, tmp_path):
    models = tmp_path / "models"
    folder = models / "audio-separator"
    folder.mkdir(parents=True)
    ckpt = folder / "broken_bs_roformer.ckpt"
    ckpt.write_bytes(np.random.default_rng(1).bytes(100_000))
    yaml_src = models_dir / "audio-separator" / "tiny_bs_roformer.yaml"
    (folder / "broken_bs_roformer.yaml").write_text(yaml_src.read_text())

    before = RoformerBackend.load_count
    with pytest.raises(SeparationError) as caught:  # a SystemExit would fail this test
        RoformerBackend("broken_bs_roformer.ckpt", models, device="cpu", work_dir=tmp_path)
    assert isinstance(caught.value, TrackError)
    message = str(caught.value)
    assert f"cannot load {ckpt}" in message
    assert "not a valid BS-RoFormer checkpoint" in message
    assert "broken_bs_roformer.yaml" in message
    assert RoformerBackend.load_count == before

    # Still alive, and the next model works.
    good = RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path)
    assert set(good.separate(clip[:, :SR], SR)) == set(SIX_STEMS)


def test_mismatched_checkpoint_sys_exit_is_caught(models_dir, tmp_path):
    """A valid checkpoint of another shape: audio-separator calls sys.exit(1)."""
    models = tmp_path / "models"
    write_tiny_bs_roformer(models, "four_bs_roformer.ckpt", instruments=("A", "B", "C", "D"))
    four = models / "audio-separator" / "four_bs_roformer.ckpt"
    four.write_bytes((models_dir / "audio-separator" / "tiny_bs_roformer.ckpt").read_bytes())

    with pytest.raises(SeparationError) as caught:
        RoformerBackend("four_bs_roformer.ckpt", models, device="cpu", work_dir=tmp_path)
    assert isinstance(caught.value.__cause__, SystemExit)
    message = str(caught.value)
    assert f"cannot load {four}" in message
    assert "sys.exit(1)" in message


def test_failure_inside_separate_is_isolated(models_dir, clip, tmp_path, monkeypatch):
    one = RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path)

    def explode(*args, **kwargs):
        sys.exit(1)

    monkeypatch.setattr(one._separator.model_instance, "demix", explode)
    with pytest.raises(SeparationError) as caught:
        one.separate(clip[:, :SR], SR)
    assert isinstance(caught.value.__cause__, SystemExit)
    monkeypatch.undo()
    assert set(one.separate(clip[:, :SR], SR)) == set(SIX_STEMS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_batch_process_survives_a_bad_model(models_dir, tmp_path):
    """In a fresh interpreter (like a batch job): a bad model is recorded, the batch
    goes on, the exit status is 0, and nothing tries torchaudio/torchvision or the network."""
    bad = tmp_path / "bad"
    (bad / "audio-separator").mkdir(parents=True)
    (bad / "audio-separator" / "tiny_bs_roformer.ckpt").write_bytes(b"\x00not a checkpoint" * 64)
    (bad / "audio-separator" / "tiny_bs_roformer.yaml").write_text(
        (models_dir / "audio-separator" / "tiny_bs_roformer.yaml").read_text()
    )
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, socket, sys
        tried = []

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torchaudio", "torchvision"):
                    tried.append(name)
                    raise ImportError(name + " is blocked")

        sys.meta_path.insert(0, Block())
        net = []
        def refuse(*a, **k):
            net.append(repr(a[1:]))
            raise OSError("blocked")
        socket.socket.connect = refuse
        socket.getaddrinfo = refuse

        import numpy as np
        from mirflow.errors import TrackError
        from mirflow.separation.roformer_backend import RoformerBackend

        done, failed = [], []
        for models in ({str(bad)!r}, {str(models_dir)!r}):
            try:
                backend = RoformerBackend("tiny_bs_roformer.ckpt", models, device="cpu")
                stems = backend.separate(np.zeros((2, 44100), np.float32) + 0.1, 44100)
                done.append(sorted(stems))
            except TrackError as error:
                failed.append(str(error))
        print(json.dumps({{"done": done, "failed": failed, "tried": tried, "net": net}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["done"] == [sorted(SIX_STEMS)]
    assert (
        len(report["failed"]) == 1 and "not a valid BS-RoFormer checkpoint" in report["failed"][0]
    )
    assert report["tried"] == []
    assert report["net"] == []


# -- offline model list --------------------------------------------------------


def test_download_checks_written_with_every_key(backend, models_dir):
    data = json.loads((models_dir / "audio-separator" / DOWNLOAD_CHECKS).read_text())
    assert set(DOWNLOAD_LIST_KEYS) <= set(data)
    entries = list(data["roformer_download_list"].values())
    assert {"tiny_bs_roformer.ckpt": "tiny_bs_roformer.yaml"} in entries


def test_existing_download_checks_is_merged_not_replaced(models_dir, tmp_path):
    models = tmp_path / "models"
    write_tiny_bs_roformer(models)
    checks = models / "audio-separator" / DOWNLOAD_CHECKS
    other = {"Roformer Model: Other": {"other.ckpt": "other.yaml"}}
    vr = {"VR Arch Single Model v5: X": "x.pth"}
    checks.write_text(json.dumps({"roformer_download_list": other, "vr_download_list": vr}))

    RoformerBackend("tiny_bs_roformer.ckpt", models, device="cpu", work_dir=tmp_path)
    data = json.loads(checks.read_text())
    assert set(DOWNLOAD_LIST_KEYS) <= set(data)
    assert data["vr_download_list"] == vr
    assert data["roformer_download_list"]["Roformer Model: Other"] == other["Roformer Model: Other"]
    assert {"tiny_bs_roformer.ckpt": "tiny_bs_roformer.yaml"} in data[
        "roformer_download_list"
    ].values()
    assert not [p for p in checks.parent.iterdir() if p.name.startswith(".mirflow-tmp")]


def test_conflicting_listing_is_refused_before_any_download(models_dir, tmp_path):
    """An entry pairing our checkpoint with another yaml would make audio-separator fetch it."""
    models = tmp_path / "models"
    write_tiny_bs_roformer(models)
    checks = {key: {} for key in DOWNLOAD_LIST_KEYS}
    checks["mdx23c_download_list"] = {"MDX23C: X": {"tiny_bs_roformer.ckpt": "elsewhere.yaml"}}
    (models / "audio-separator" / DOWNLOAD_CHECKS).write_text(json.dumps(checks))
    with pytest.raises(ModelNotFoundError, match="elsewhere.yaml"):
        RoformerBackend("tiny_bs_roformer.ckpt", models, device="cpu", work_dir=tmp_path)


def test_downloader_refuses_missing_files(tmp_path):
    present = tmp_path / "present.yaml"
    present.write_text("x")
    _refuse_download("https://example.invalid/present.yaml", str(present))  # no-op
    with pytest.raises(ModelNotFoundError, match="make models"):
        _refuse_download("https://example.invalid/absent.ckpt", str(tmp_path / "absent.ckpt"))


def test_model_dir_environment_variable_is_ignored(models_dir, clip, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_SEPARATOR_MODEL_DIR", str(tmp_path / "does-not-exist"))
    one = RoformerBackend("tiny_bs_roformer.ckpt", models_dir, device="cpu", work_dir=tmp_path)
    assert one._separator.model_file_dir == str(models_dir / "audio-separator")
    assert os.environ["AUDIO_SEPARATOR_MODEL_DIR"] == str(tmp_path / "does-not-exist")
    assert set(one.separate(clip[:, :SR], SR)) == set(SIX_STEMS)


def test_a_long_track_in_windows_is_the_whole_tracks_stems(backend, tmp_path, monkeypatch):
    # Windows start on multiples of audio-separator's chunk step (the tiny
    # yaml's 32640-sample chunk over its num_overlap of 2), so every chunk
    # covering a window's own samples and its seams is one of the whole
    # track's: the stems come out the same, seams included.
    from mirflow.audio import write_audio  # noqa: PLC0415
    from mirflow.separation import batch  # noqa: PLC0415

    assert backend.window_unit == 32640 // 2
    monkeypatch.setattr(batch, "CONTEXT_S", 1.5)  # more than a chunk (0.74 s)
    monkeypatch.setattr(batch, "FADE_S", 0.5)
    audio, _ = load_audio(GUITARSET, sr=SR)
    mix = tmp_path / "mix.flac"
    write_audio(mix, audio[:, : 10 * SR], SR)
    config = {"format": "wav", "mp3_bitrate": 128, "save_extra_stems": False,
              "discard_stems": []}  # fmt: skip
    stems = {}
    for label, window_s in (("whole", 60.0), ("windows", 3.0)):  # 10 s: four windows
        folder = tmp_path / label
        folder.mkdir()
        files, _ = batch.separate_track(backend, mix, config, folder, window_s)
        stems[label] = {name: load_audio(folder / file)[0] for name, file in files.items()}
    assert list(stems["windows"]) == list(stems["whole"])
    for name, whole in stems["whole"].items():
        assert whole.shape == stems["windows"][name].shape == (2, 10 * SR)
        np.testing.assert_allclose(stems["windows"][name], whole, atol=1e-5, err_msg=name)
