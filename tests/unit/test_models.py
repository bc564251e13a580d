"""The model manifest and the checked download step, against a local HTTP server only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import logging
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import yaml

from mirflow import atomic, model_cli
from mirflow.errors import ModelNotFoundError
from mirflow.model_download import ChecksumError, DownloadError, download
from mirflow.models import (
    ManifestError,
    check_models,
    load_manifest,
    missing_files,
    missing_for,
    required_models,
)

REPO = Path(__file__).resolve().parents[2]
REAL_MANIFEST = REPO / "models" / "manifest.yaml"

# 3 MiB and a bit: more than one read chunk, so streaming and hashing span chunks.
GOOD = bytes(range(256)) * (3 * 4096 + 7)
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one folder; records every requested path."""

    def __init__(self, *args, requests: list[str], **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, list of requested paths); shut down after the test."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []
    handler = functools.partial(CountingHandler, directory=str(root), requests=requests)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def serve(root: Path, name: str, data: bytes) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(data)


def write_manifest(tmp_path: Path, models_: list[dict]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"models": models_}), encoding="utf-8")
    return path


def entry(name: str, files: list[dict], backend: str = "demucs") -> dict:
    return {
        "name": name,
        "backend": backend,
        "description": "test model",
        "licence": "test-only",
        "source": "this test",
        "files": files,
    }


def all_files(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden temporaries included."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- download ---


def test_unpublished_checksum_is_left_out_unless_allowed_then_pinned(tmp_path, server):
    base, root, requests = server
    serve(root, "m.gguf", GOOD)
    manifest = write_manifest(tmp_path, [entry("music_flamingo:X", [
        {"path": "mf/m.gguf", "url": f"{base}/m.gguf", "sha256": "unpublished"}],
        backend="music_flamingo")])  # fmt: skip
    entries = load_manifest(manifest)
    dest = tmp_path / "models" / "mf" / "m.gguf"
    assert download(entries, tmp_path / "models") == [(dest, "unverified: left out")]
    assert not dest.exists() and not requests
    assert download(entries, tmp_path / "models", allow_unverified=True) == [(dest, "downloaded")]
    assert dest.read_bytes() == GOOD
    assert (dest.parent / "m.gguf.sha256").read_text().split()[0] == GOOD_SHA
    # Fetched again (deleted by the user), it must be the bytes first fetched.
    dest.unlink()
    serve(root, "m.gguf", GOOD[::-1])
    with pytest.raises(ChecksumError):
        download(entries, tmp_path / "models", allow_unverified=True)
    assert not dest.exists()


def test_good_file_lands_atomically_and_second_run_makes_no_request(
    tmp_path, server, monkeypatch, caplog
):
    base, root, requests = server
    serve(root, "w/model-1234abcd.th", GOOD)
    manifest = write_manifest(
        tmp_path,
        [
            entry(
                "demucs:test",
                [
                    {
                        "path": "demucs/model-1234abcd.th",
                        "url": f"{base}/w/model-1234abcd.th",
                        "sha256": GOOD_SHA,
                        "size": len(GOOD),
                    }
                ],
            )
        ],
    )
    models_dir = tmp_path / "models"
    dest = models_dir / "demucs" / "model-1234abcd.th"

    replaced = []
    real_replace = os.replace

    def spy_replace(src, dst):
        # At the moment of the rename: a complete temporary beside an absent destination.
        replaced.append((Path(src), Path(dst), Path(dst).exists(), Path(src).read_bytes() == GOOD))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy_replace)
    entries = load_manifest(manifest)
    caplog.set_level(logging.INFO, logger="mirflow.model_download")
    assert download(entries, models_dir) == [(dest, "downloaded")]
    assert dest.read_bytes() == GOOD
    assert all_files(models_dir) == ["demucs/model-1234abcd.th"]  # no temporary left
    assert len(replaced) == 1
    src, dst, existed, complete = replaced[0]
    assert dst == dest and src.parent == dest.parent and src.name.startswith(".mirflow-tmp-")
    assert not existed and complete
    assert requests == ["/w/model-1234abcd.th"]
    assert oct(dest.stat().st_mode & 0o044) == oct(0o044)  # readable by others, not 0600

    caplog.clear()
    assert download(entries, models_dir) == [(dest, "skipped")]
    assert requests == ["/w/model-1234abcd.th"]  # no second request
    assert "already present" in caplog.text and "sha256 verified" in caplog.text
    assert missing_files(entries, models_dir) == []


def test_checksum_mismatch_raises_and_leaves_nothing(tmp_path, server):
    base, root, _ = server
    serve(root, "bad.th", GOOD)
    wrong = hashlib.sha256(b"something else").hexdigest()
    url = f"{base}/bad.th"
    entries = load_manifest(
        write_manifest(
            tmp_path,
            [entry("demucs:bad", [{"path": "demucs/bad.th", "url": url, "sha256": wrong}])],
        )
    )
    models_dir = tmp_path / "models"
    with pytest.raises(ChecksumError) as info:
        download(entries, models_dir)
    message = str(info.value)
    assert "demucs/bad.th" in message and wrong in message and GOOD_SHA in message
    assert url in message
    assert (info.value.expected, info.value.actual, info.value.url) == (wrong, GOOD_SHA, url)
    assert all_files(models_dir) == []  # neither the file nor a temporary


def test_size_mismatch_stops_early_and_leaves_nothing(tmp_path, server):
    base, root, _ = server
    serve(root, "big.th", GOOD)
    spec = {"path": "demucs/big.th", "url": f"{base}/big.th", "sha256": GOOD_SHA, "size": 1000}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:big", [spec])]))
    with pytest.raises(ChecksumError, match="size mismatch for demucs/big.th"):
        download(entries, tmp_path / "models")
    assert all_files(tmp_path / "models") == []


def test_prefix_only_entry_verifies_the_prefix(tmp_path, server, caplog):
    base, root, _ = server
    serve(root, "p.th", GOOD)
    spec = {"path": "demucs/p.th", "url": f"{base}/p.th", "sha256_prefix": GOOD_SHA[:8]}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:p", [spec])]))
    assert entries[0].files[0].sha256 is None
    caplog.set_level(logging.INFO, logger="mirflow.model_download")
    download(entries, tmp_path / "models")
    assert (tmp_path / "models" / "demucs" / "p.th").read_bytes() == GOOD
    assert f"sha256 prefix {GOOD_SHA[:8]} verified" in caplog.text
    assert "only the prefix" in caplog.text

    wrong_prefix = "0" * 8 if not GOOD_SHA.startswith("0" * 8) else "f" * 8
    spec = {"path": "demucs/q.th", "url": f"{base}/p.th", "sha256_prefix": wrong_prefix}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:q", [spec])]))
    with pytest.raises(ChecksumError, match="sha256 prefix mismatch for demucs/q.th") as info:
        download(entries, tmp_path / "models")
    assert info.value.expected == wrong_prefix and info.value.actual == GOOD_SHA
    assert not (tmp_path / "models" / "demucs" / "q.th").exists()


def test_present_but_wrong_file_is_replaced(tmp_path, server):
    base, root, requests = server
    serve(root, "r.th", GOOD)
    spec = {"path": "demucs/r.th", "url": f"{base}/r.th", "sha256": GOOD_SHA, "size": len(GOOD)}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:r", [spec])]))
    dest = tmp_path / "models" / "demucs" / "r.th"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(GOOD[:1000])  # cut short by some other tool
    assert missing_files(entries, tmp_path / "models") == [dest]
    assert download(entries, tmp_path / "models") == [(dest, "downloaded")]
    assert dest.read_bytes() == GOOD and len(requests) == 1


def test_404_is_a_clear_error(tmp_path, server):
    base, _, _ = server
    url = f"{base}/nowhere.th"
    spec = {"path": "demucs/nowhere.th", "url": url, "sha256": GOOD_SHA}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:gone", [spec])]))
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(entries, tmp_path / "models")
    assert url in str(info.value) and "demucs/nowhere.th" in str(info.value)
    assert not isinstance(info.value, ChecksumError)
    assert all_files(tmp_path / "models") == []


def test_unreachable_host_names_the_url(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = {"path": "demucs/x.th", "url": "https://example.invalid/x.th", "sha256": GOOD_SHA}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:x", [spec])]))
    with pytest.raises(DownloadError) as info:
        download(entries, tmp_path / "models", base_url_override=f"http://127.0.0.1:{port}/m")
    assert f"http://127.0.0.1:{port}/m/demucs/x.th" in str(info.value)
    assert all_files(tmp_path / "models") == []


def test_base_url_override_fetches_path_below_the_mirror(tmp_path, server):
    base, root, requests = server
    serve(root, "mirror/demucs/m.th", GOOD)
    spec = {"path": "demucs/m.th", "url": "https://example.invalid/m.th", "sha256": GOOD_SHA}
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:m", [spec])]))
    download(entries, tmp_path / "models", base_url_override=f"{base}/mirror/")
    assert requests == ["/mirror/demucs/m.th"]
    assert (tmp_path / "models" / "demucs" / "m.th").read_bytes() == GOOD


def test_from_package_file_is_copied_and_verified(tmp_path):
    spec_ = importlib.util.find_spec("demucs")
    source = Path(next(iter(spec_.submodule_search_locations))) / "remote" / "htdemucs.yaml"
    data = source.read_bytes()
    good = {
        "path": "demucs/htdemucs.yaml",
        "from_package": "demucs/remote/htdemucs.yaml",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:htdemucs", [good])]))
    dest = tmp_path / "models" / "demucs" / "htdemucs.yaml"
    assert download(entries, tmp_path / "models") == [(dest, "copied")]
    assert dest.read_bytes() == data
    assert download(entries, tmp_path / "models") == [(dest, "skipped")]

    bad = dict(good, path="demucs/other.yaml", sha256="a" * 64)
    entries = load_manifest(write_manifest(tmp_path, [entry("demucs:other", [bad])]))
    with pytest.raises(ChecksumError, match="demucs/other.yaml"):
        download(entries, tmp_path / "models")
    assert not (tmp_path / "models" / "demucs" / "other.yaml").exists()


# ------------------------------------------------------- config -> models ---


def sep_config(enabled=True, backend="demucs", **extra) -> dict:
    return {"source_separation": {"enabled": enabled, "backend": backend, **extra}}


def test_required_models_by_backend():
    assert required_models(sep_config(demucs={"model": "htdemucs"})) == ["demucs:htdemucs"]
    assert required_models(sep_config(demucs={"model": "htdemucs_ft"})) == ["demucs:htdemucs_ft"]
    assert required_models(
        sep_config(backend="bs_roformer", bs_roformer={"model_file": "BS-Roformer-SW.ckpt"})
    ) == ["bs_roformer:BS-Roformer-SW.ckpt"]
    # Defaults when the sub-section is left out.
    assert required_models(sep_config()) == ["demucs:htdemucs"]
    assert required_models(sep_config(backend="bs_roformer")) == ["bs_roformer:BS-Roformer-SW.ckpt"]


def test_enabled_auto_is_fetched_but_not_required():
    auto = sep_config(enabled="auto", demucs={"model": "htdemucs_6s"})
    assert required_models(auto) == ["demucs:htdemucs_6s"]  # `make models` fetches it
    assert required_models(auto, include_auto=False) == []


def test_required_models_nothing_when_separation_is_off():
    assert required_models(sep_config(enabled=False, demucs={"model": "htdemucs"})) == []
    assert required_models({}) == []
    with pytest.raises(ValueError, match="unknown backend"):
        required_models(sep_config(backend="spleeter"))


def test_check_models_names_missing_files_and_the_command(tmp_path):
    models_dir = tmp_path / "models"
    config = sep_config(demucs={"model": "htdemucs_ft"})
    with pytest.raises(ModelNotFoundError) as info:
        check_models(config, REAL_MANIFEST, models_dir)
    message = str(info.value)
    assert "make models" in message and "python -m mirflow.models download" in message
    ft = next(e for e in load_manifest(REAL_MANIFEST) if e.name == "demucs:htdemucs_ft")
    for f in ft.files:
        assert str(models_dir / f.path) in message
    assert "\n" not in message

    # Disabled, or auto (off while the model is missing): nothing checked.
    assert check_models(sep_config(enabled=False), REAL_MANIFEST, models_dir) == []
    assert check_models(sep_config(enabled="auto"), REAL_MANIFEST, models_dir) == []


def test_the_projects_config_file_needs_a_real_manifest_entry():
    config = model_cli.load_config([REPO / "config" / "config.yaml"])
    names = {e.name for e in load_manifest(REAL_MANIFEST)}
    assert set(required_models(config)) <= names


def test_check_models_passes_when_files_are_there(tmp_path):
    files = [{"path": "demucs/a.th", "url": "https://example.invalid/a", "sha256": GOOD_SHA}]
    manifest = write_manifest(tmp_path, [entry("demucs:htdemucs", files)])
    (tmp_path / "models" / "demucs").mkdir(parents=True)
    (tmp_path / "models" / "demucs" / "a.th").write_bytes(GOOD)
    entries = check_models(sep_config(), manifest, tmp_path / "models")
    assert [e.name for e in entries] == ["demucs:htdemucs"]


def test_check_models_unknown_model_name(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no entry for demucs:nope"):
        check_models(sep_config(demucs={"model": "nope"}), REAL_MANIFEST, tmp_path)


# ---------------------------------------------------------------- manifest ---


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"sha256": "ABC"}, "64 lower-case hex"),
        ({"sha256": None, "sha256_prefix": None}, "needs 'sha256' or 'sha256_prefix'"),
        ({"sha265": GOOD_SHA}, "unknown key"),
        ({"path": "../escape.th"}, "relative to models/"),
        ({"from_package": "demucs/remote/x.yaml"}, "exactly one of 'url' and 'from_package'"),
        ({"sha256_prefix": "deadbeef"}, "does not start with"),
        ({"size": -1}, "positive number"),
    ],
)
def test_malformed_manifest_is_rejected(tmp_path, bad, match):
    spec = {"path": "demucs/a.th", "url": "https://example.invalid/a", "sha256": GOOD_SHA}
    spec = {k: v for k, v in {**spec, **bad}.items() if v is not None}
    with pytest.raises(ManifestError, match=re.escape(match)):
        load_manifest(write_manifest(tmp_path, [entry("demucs:a", [spec])]))


def test_real_manifest_is_complete_and_consistent():
    entries = load_manifest(REAL_MANIFEST)
    names = {e.name for e in entries}
    for needed in (
        "demucs:htdemucs",
        "demucs:htdemucs_ft",
        "demucs:htdemucs_6s",
        "demucs:mdx_extra",
        "bs_roformer:BS-Roformer-SW.ckpt",
    ):
        assert needed in names
    # The names the default configs of both backends ask for exist.
    assert set(required_models(sep_config())) <= names
    assert set(required_models(sep_config(backend="bs_roformer"))) <= names

    paths = {}
    for e in entries:
        assert e.name.startswith(f"{e.backend}:")
        assert e.licence and e.source and e.description
        assert e.licence != "MIT"  # neither the Demucs nor the RoFormer weights are MIT
        for f in e.files:
            assert (f.url and (f.sha256 or f.sha256_prefix)) or f.from_package, f.path
            # A file shared by entries (Music Flamingo's one mmproj) is the same file.
            assert paths.setdefault(f.path, f) == f, f"{f.path} listed twice, differently"
            name = Path(f.path).name
            if e.backend == "demucs" and name.endswith(".th"):
                match = re.fullmatch(r"([0-9a-f]{8})-([0-9a-f]{8})\.th", name)
                assert match, name
                assert (f.sha256 or f.sha256_prefix)[:8] == match.group(2), name
                assert f.url.endswith("/" + name)
                assert f.url.startswith("https://dl.fbaipublicfiles.com/demucs/")


def test_real_manifest_bag_yamls_match_the_installed_demucs():
    remote = Path(next(iter(importlib.util.find_spec("demucs").submodule_search_locations)))
    for e in load_manifest(REAL_MANIFEST):
        if e.backend != "demucs":
            continue
        shipped = [f for f in e.files if f.from_package]
        assert len(shipped) == 1, e.name
        source = remote / shipped[0].from_package.partition("/")[2]
        data = source.read_bytes()
        assert hashlib.sha256(data).hexdigest() == shipped[0].sha256
        assert len(data) == shipped[0].size
        # Every signature the bag names has its .th file in the entry.
        sigs = yaml.safe_load(data)["models"]
        th = {Path(f.path).name.split("-")[0] for f in e.files if f.path.endswith(".th")}
        assert set(sigs) == th, e.name


# --------------------------------------------------------------------- CLI ---


def test_cli_download_list_and_one_line_errors(tmp_path, server, capsys):
    base, root, _ = server
    serve(root, "c.th", GOOD)
    manifest = write_manifest(
        tmp_path,
        [
            entry("demucs:c", [{"path": "demucs/c.th", "url": f"{base}/c.th", "sha256": GOOD_SHA}]),
            entry(
                "bs_roformer:bad.ckpt",
                [{"path": "audio-separator/bad.ckpt", "url": f"{base}/c.th", "sha256": "b" * 64}],
                backend="bs_roformer",
            ),
        ],
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"source_separation": {"enabled": True, "demucs": {"model": "c"}}})
    )
    models_dir = tmp_path / "models"
    common = ["--config", str(config), "--models-dir", str(models_dir)]

    assert model_cli.main(["--manifest", str(manifest), "check", *common]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "make models" in err

    assert model_cli.main(["--manifest", str(manifest), "download", *common]) == 0
    assert (models_dir / "demucs" / "c.th").read_bytes() == GOOD
    assert model_cli.main(["--manifest", str(manifest), "check", *common]) == 0

    capsys.readouterr()
    assert model_cli.main(["--manifest", str(manifest), "list", *common]) == 0
    table = capsys.readouterr().out
    assert re.search(r"demucs:c\s+yes\s+1\s+.*present\s+test-only", table)
    assert re.search(r"bs_roformer:bad.ckpt\s+1\s+.*missing 1/1", table)

    auto = tmp_path / "auto.yaml"
    auto.write_text(yaml.safe_dump({"source_separation": {"enabled": "auto"}}))
    argv = ["--manifest", str(manifest), "list", "--config", str(config), str(auto)]
    assert model_cli.main([*argv, "--models-dir", str(models_dir)]) == 0
    assert re.search(r"demucs:c\s+auto\s", capsys.readouterr().out)  # later file wins

    argv = ["--manifest", str(manifest), "download", "--all", *common]
    assert model_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: sha256 mismatch for audio-separator/bad.ckpt")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all_files(models_dir) == ["demucs/c.th"]


def test_the_rhythm_backend_asks_for_beat_this_only_when_chosen():
    assert required_models({"rhythm": {"backend": "madmom"}}) == []
    chosen = {"rhythm": {"backend": "beat_this", "beat_this": {"model": "small0"}}}
    assert required_models(chosen) == ["beat_this:small0"]
    assert required_models({"rhythm": {"backend": "beat_this"}}) == ["beat_this:final0"]
    own = {"rhythm": {"backend": "beat_this", "beat_this": {"model": "/data/tuned.ckpt"}}}
    assert required_models(own) == []  # the user's own file: no manifest entry
    listed = {e.name for e in load_manifest(REAL_MANIFEST)}
    assert {"beat_this:final0", "beat_this:small0"} <= listed


def test_missing_for_answers_for_every_stage(tmp_path):
    """One answer to "are the model files there?", for the parse-time check and
    every pass's ``missing`` alike."""
    config = model_cli.load_config([REPO / "config" / "config.yaml"])
    models_dir = tmp_path / "models"
    assert missing_for("aesthetics", config["aesthetics"], models_dir) == [
        models_dir / config["aesthetics"]["checkpoint"]
    ]
    essentia = missing_for("classifiers", config["classifiers"], models_dir)
    assert essentia and all(p.parent == models_dir / "essentia" for p in essentia)
    assert missing_for("transcription", config["transcription"], models_dir) == []
    flamingo = models_dir / "music-flamingo"
    quantised = {**config["captions"], "model": "Q8_0"}
    assert missing_for("captions", quantised, models_dir) == [
        flamingo / "*Q8_0*.gguf (+ its *mmproj*.gguf)"
    ]
    assert missing_for("captions", {"model": "auto"}, models_dir) == [
        flamingo / "<model>.gguf (+ its *mmproj*.gguf)"
    ]
    for path in essentia:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # existence is all that is checked: `make models` hashes
    flamingo.mkdir()
    (flamingo / "m.Q8_0.gguf").write_bytes(b"x")
    (flamingo / "m.mmproj-f16.gguf").write_bytes(b"x")
    assert missing_for("classifiers", config["classifiers"], models_dir) == []
    assert missing_for("captions", quantised, models_dir) == []
    # A manifest-listed stage: present, and of the manifest's size.
    beat_this = {"backend": "beat_this", "beat_this": {"model": "final0"}}
    assert missing_for("rhythm", beat_this, models_dir) == [models_dir / "beat_this/final0.ckpt"]
    (models_dir / "beat_this").mkdir()
    (models_dir / "beat_this/final0.ckpt").write_bytes(b"cut short")
    assert missing_for("rhythm", beat_this, models_dir) == [models_dir / "beat_this/final0.ckpt"]
