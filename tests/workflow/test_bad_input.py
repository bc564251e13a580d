"""The corpus of awkward inputs (tests/workflow/corpus.py) through the whole
workflow, in one run over a read-only library: every good file finishes, every
bad one is a failed track with a one-line cause, odd shapes are handled, no
file name becomes a command, and the library is left exactly as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from corpus import (
    FAILED,
    FAST_CONFIG,
    NO_CROPS,
    NOT_A_TRACK,
    OK,
    build_corpus,
    corpus_cases,
    library_state,
    make_read_only,
    make_writable,
)

from conftest import REPO
from mirflow.atomic import TEMP_PREFIX
from mirflow.discovery import discover
from snakemake_runner import run_snakemake, write_config

pytestmark = pytest.mark.slow

CASES = {case.name: case for case in corpus_cases()}


def _read_only_view(library: Path, mountpoint: Path) -> Path | None:
    """A read-only bind mount of ``library`` (root ignores file modes), or None."""
    if os.geteuid() != 0:
        return None
    mountpoint.mkdir()
    for cmd in (
        ["mount", "--bind", str(library), str(mountpoint)],
        ["mount", "-o", "remount,bind,ro", str(mountpoint)],
    ):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(mountpoint)], capture_output=True)
            return None
    return mountpoint


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    library = root / "library"
    cases = build_corpus(library)
    # Read only twice over: no write bits (chmod -R a-w), and, as root (who
    # writes anyway), seen through a read-only bind mount.
    make_read_only(library)
    mounted = _read_only_view(library, root / "library-ro")
    source = mounted or library
    before = library_state(library)
    work = root / "work"
    work.mkdir()
    config = write_config(root / "config.yaml", source, root / "out", **FAST_CONFIG)
    result = run_snakemake(work, config, check=False)
    dry = run_snakemake(work, config, "--dry-run", check=False)
    yield {
        "root": root,
        "library": library,
        "read_only_mount": mounted is not None,
        "out": root / "out",
        "cases": cases,
        "before": before,
        "after": library_state(library),
        "result": result,
        "dry": dry,
        "ids": {t.relpath: t.track for t in discover(library)},
    }
    if mounted:
        subprocess.run(["umount", str(mounted)], check=True)
    make_writable(library)


def _info(run, relpath):
    track = run["ids"][relpath]
    folder = run["out"] / "dataset" / track
    return folder, json.loads((folder / f"{track}.INFO").read_text())


def test_run_finishes_and_summarises(corpus_run):
    result = corpus_run["result"]
    assert result.returncode == 0, result.stdout[-6000:]
    assert "mirflow summary" in result.stdout
    summary = json.loads((corpus_run["out"] / "summary.json").read_text())
    tracks = [f for c in corpus_run["cases"] if c.outcome != NOT_A_TRACK for f in c.files]
    failed = [f for c in corpus_run["cases"] if c.outcome == FAILED for f in c.files]
    assert summary["tracks"] == len(tracks) == len(corpus_run["ids"])
    assert summary["tracks_failed"] == len(failed)
    assert summary["crops_failed"] == 0


def test_no_traceback_anywhere(corpus_run):
    """Bad files are records with causes, never a job's traceback."""
    assert "Traceback" not in corpus_run["result"].stdout
    for log in (corpus_run["out"] / "logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log


@pytest.mark.parametrize("name", list(CASES))
def test_case_outcome(corpus_run, name):
    case = CASES[name]
    run = corpus_run
    if case.outcome == NOT_A_TRACK:
        for relpath in case.files:
            assert relpath not in run["ids"]
        return
    summary = json.loads((run["out"] / "summary.json").read_text())
    failed = {f["source"]: f["error"] for f in summary["failed_tracks"]}
    manifest = pd.read_parquet(run["out"] / "manifest.parquet")
    for relpath in case.files:
        folder, info = _info(run, relpath)
        assert info["source"] == relpath
        row = manifest[(manifest["kind"] == "track") & (manifest["source"] == relpath)]
        assert len(row) == 1
        if case.outcome == FAILED:
            assert info["status"] == "failed"
            error = info["error"]
            assert case.cause in error
            assert len(error.splitlines()) == 1, error  # one line, whatever the file's name
            name_shown = Path(relpath).name.replace("\n", "\\n")
            assert name_shown in error  # which file
            assert "replace it" in error or "split it" in error  # what the user can do
            assert failed[relpath] == error
            assert row.iloc[0]["status"] == "failed" and row.iloc[0]["error"] == error
            assert not (folder / "crops").exists()
        else:
            assert info["status"] == "ok" and info["error"] == "", info["error"]
            assert relpath not in failed and row.iloc[0]["status"] == "ok"
            if case.outcome == OK:
                assert info["crop_count"] > 0
            elif case.outcome == NO_CROPS:
                assert info["crop_count"] == 0 and case.cause in info["crop_alignment"]
        for key, value in case.info.items():
            assert info[key] == value, (key, info[key], value)
        if case.check:
            case.check(folder, info)


def test_ids_of_colliding_names_differ(corpus_run):
    ids = corpus_run["ids"]
    assert ids["Cafe.flac"] == "Cafe" and ids["Café.flac"].startswith("Cafe-")


def test_library_untouched(corpus_run):
    """Every byte, mtime, mode and link of the library, before and after."""
    assert corpus_run["after"] == corpus_run["before"]


def test_read_only_library_was_read_only(corpus_run):
    library = corpus_run["library"]
    assert not any(os.lstat(p).st_mode & 0o222 for p in library.rglob("*") if not p.is_symlink())
    if os.geteuid() == 0:
        assert corpus_run["read_only_mount"], "could not mount the library read-only"


def test_no_command_ran_from_a_name(corpus_run):
    """``$(touch pwned)`` and backticks in names created no file anywhere."""
    places = [corpus_run["root"], Path.cwd(), Path.home(), REPO, Path("/tmp")]
    for place in places:
        assert not (place / "pwned").exists(), place
    assert not list(corpus_run["root"].rglob("pwned"))


def test_no_temporaries_in_the_output(corpus_run):
    leftovers = [
        p
        for p in corpus_run["out"].rglob("*")
        if p.name.startswith(TEMP_PREFIX) or p.name.endswith(".part")
    ]
    assert not leftovers


def test_rerun_is_a_noop(corpus_run):
    """Failed tracks and odd names are finished too: nothing to redo."""
    assert "Nothing to be done" in corpus_run["dry"].stdout, corpus_run["dry"].stdout[-3000:]
