"""A run killed with SIGKILL at several points, and a run whose disk fills up:
the next run completes with nothing cleaned by hand, its result equals an
uninterrupted run's (every ``.INFO`` and record, every audio byte), and no
partial file survives anywhere in the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from corpus import FAST_CONFIG, _write, music

from conftest import GUITARSET
from mirflow.atomic import TEMP_PREFIX
from snakemake_runner import run_snakemake, snakemake_command, snakemake_env, write_config

pytestmark = pytest.mark.slow

CROP_FRAMES = FAST_CONFIG["crops"]["length_samples"]

#: summary.json fields about this run (its clock, what it redid), not the dataset.
RUN_FIELDS = {
    "run_started",
    "wall_time_s",
    "realtime_factor",
    "time_per_rule",
    "tracks_processed_this_run",
    "audio_processed_this_run_s",
}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    library = tmp_path_factory.mktemp("interrupt") / "library"
    library.mkdir()
    shutil.copy(GUITARSET, library / "guitar.flac")  # 22 s: 13 crops, a long assembly
    _write(library / "beat.wav", music(8.0, 44100), 44100)
    return library


def _config(root: Path, library: Path, out: Path) -> Path:
    return write_config(root / "config.yaml", library, out, **FAST_CONFIG)


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory):
    """The uninterrupted run's dataset."""
    root = tmp_path_factory.mktemp("reference")
    run_snakemake(root, _config(root, library, root / "out"))
    return dataset_state(root / "out")


def dataset_state(out: Path) -> dict[str, object]:
    """What a run produced: dataset/ and tracks/ (JSON parsed, every other
    file by sha256), the manifest's rows, and the summary less its run fields.
    Logs and benchmarks hold timings and are left out."""
    state: dict[str, object] = {}
    for top in ("dataset", "tracks"):
        for path in sorted((out / top).rglob("*")):
            if path.is_dir() or path.name == ".snakemake_timestamp":
                continue
            key = str(path.relative_to(out))
            if path.suffix in (".json", ".INFO"):
                state[key] = json.loads(path.read_text())
            else:
                state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    summary = json.loads((out / "summary.json").read_text())
    state["summary.json"] = {k: v for k, v in summary.items() if k not in RUN_FIELDS}
    state["manifest.parquet"] = pd.read_parquet(out / "manifest.parquet").to_dict("records")
    return state


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX) or p.name.endswith(".part")]


def assert_nothing_partial(out: Path) -> None:
    """Every file under its final name is whole: JSON parses, audio decodes
    to its full length. (Hidden temporaries may lie beside them until the
    next run.)"""
    for path in out.rglob("*"):
        if path.is_dir() or path.name.startswith(TEMP_PREFIX):
            continue
        if TEMP_PREFIX in str(path.relative_to(out)):
            continue  # inside a temporary folder
        if path.suffix in (".json", ".INFO"):
            json.loads(path.read_text())
        elif path.suffix == ".flac":
            frames = sf.info(path).frames
            assert frames == CROP_FRAMES, (path, frames)
            assert len(sf.read(path)[0]) == CROP_FRAMES, path


# ---- kill -9 ------------------------------------------------------------------


def kill_when(workdir: Path, config: Path, point: Callable[[], str | None], limit_s=300) -> str:
    """Run the workflow as a user would; SIGKILL its whole process group (Snakemake
    and every job) the moment ``point()`` names what it sees. Returns that."""
    log = (workdir / "killed-run.log").open("a")
    proc = subprocess.Popen(
        snakemake_command(config),
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=snakemake_env(),
        start_new_session=True,  # its own process group: jobs included
    )
    deadline = time.monotonic() + limit_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            seen = point()
            if seen:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return seen
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _wait_group_gone(proc.pid)
    raise AssertionError(f"the run ended (rc {proc.returncode}) before the kill point")


def _wait_group_gone(pgid: int, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        # Jobs whose parent died may linger as zombies where PID 1 does not reap:
        # they hold no files.
        if _group_is_zombies(pgid):
            return
        time.sleep(0.05)


def _group_is_zombies(pgid: int) -> bool:
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


def _entries(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)}
    except FileNotFoundError:  # not made yet, or just removed by Snakemake
        return set()


def rhythm_running(out: Path) -> Callable[[], str | None]:
    def point():
        for log in (out / "logs" / "rhythm").glob("*.log"):
            if not (out / "tracks" / log.stem / "rhythm.json").exists():
                return f"rhythm of {log.stem} running"
        return None

    return point


def crop_being_written(out: Path) -> Callable[[], str | None]:
    """A crop file's temporary appears (one a killed run left does not count)."""
    stale = {(p, n) for p in (out / "tracks").glob("*/crops") for n in _entries(p)}

    def point():
        for crops in (out / "tracks").glob("*/crops"):
            for name in _entries(crops):
                if name.startswith(TEMP_PREFIX) and (crops, name) not in stale:
                    return f"crop being written: {crops.parent.name}/crops/{name}"
        return None

    return point


def info_being_assembled(out: Path) -> Callable[[], str | None]:
    """A track's dataset folder is being assembled in its temporary folder."""
    stale = _entries(out / "dataset")

    def point():
        for name in _entries(out / "dataset") - stale:
            if name.startswith(TEMP_PREFIX):
                return f".INFO folder being assembled: dataset/{name}"
        return None

    return point


def rerun(workdir: Path, config: Path, unlocked: list[str]) -> subprocess.CompletedProcess:
    """The user's next run. A SIGKILLed Snakemake cannot remove its lock, and
    Snakemake has no stale-lock check: mirflow says no run holds it and names
    the user's own command with --unlock."""
    result = run_snakemake(workdir, config, check=False)
    if "Directory cannot be locked" in result.stdout:
        assert "no Snakemake process is running here" in result.stdout
        assert shlex.join([*snakemake_command(config), "--unlock"]) in result.stdout
        unlocked.append("unlock")
        run_snakemake(workdir, config, "--unlock")
        result = run_snakemake(workdir, config, check=False)
    return result


def test_killed_at_three_points_then_rerun_equals_an_uninterrupted_run(
    library, reference, tmp_path
):
    out = tmp_path / "out"
    config = _config(tmp_path, library, out)
    unlocked: list[str] = []
    seen = []
    for index, point in enumerate((rhythm_running, crop_being_written, info_being_assembled)):
        if index:
            run_snakemake(tmp_path, config, "--unlock")  # what rerun() shows a user must do
        seen.append(kill_when(tmp_path, config, point(out)))
        assert list((tmp_path / ".snakemake" / "locks").iterdir())  # the lock outlives a kill
        assert_nothing_partial(out)
    print("killed at:", *seen, sep="\n  ")
    result = rerun(tmp_path, config, unlocked)
    assert result.returncode == 0, result.stdout[-6000:]
    assert unlocked == ["unlock"], "a killed run's lock was expected to need --unlock"
    assert not temporaries(out)
    assert_nothing_partial(out)
    assert dataset_state(out) == reference
    dry = run_snakemake(tmp_path, config, "--dry-run")
    assert "Nothing to be done" in dry.stdout


# ---- disk full ------------------------------------------------------------------


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def test_disk_full_fails_cleanly_and_a_rerun_completes(library, reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if not _mount_tmpfs(out, "600k"):
        pytest.skip(
            "cannot mount a small tmpfs (needs root): the disk-full case is covered by "
            "test_write_failure_part_way_then_a_rerun_completes"
        )
    try:
        config = _config(tmp_path, library, out)
        result = run_snakemake(tmp_path, config, check=False)
        assert result.returncode != 0
        assert "No space left on device" in result.stdout, result.stdout[-6000:]
        assert "mirflow: the disk is full" in result.stdout  # the one line that says so
        assert_nothing_partial(out)
        # Space returns (the same filesystem, grown: what was written stays).
        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)
        result = run_snakemake(tmp_path, config, check=False)
        assert result.returncode == 0, result.stdout[-6000:]
        assert not temporaries(out)
        assert dataset_state(out) == reference
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_write_failure_part_way_then_a_rerun_completes(library, reference, tmp_path):
    """The dataset folder cannot be written (read-only for a user; root writes
    anyway, so for root a read-only bind mount): the stages before assembly
    run, the run fails naming the folder, and once it is writable again the
    next run assembles without redoing what finished.

    (Snakemake itself stops, with its own traceback ending in the OSError,
    when it cannot clear a job's output path; a job that fails to write is
    shown with its log.)"""
    out = tmp_path / "out"
    config = _config(tmp_path, library, out)
    dataset = out / "dataset"
    dataset.mkdir(parents=True)
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(dataset), str(dataset)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(dataset)], check=True)
    else:
        dataset.chmod(0o555)
    try:
        result = run_snakemake(tmp_path, config, check=False)
        assert result.returncode != 0
        assert any(
            f"{reason}: '{dataset}/" in result.stdout
            for reason in ("Read-only file system", "Permission denied")
        ), result.stdout[-6000:]
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(dataset)], check=True)
        else:
            dataset.chmod(0o755)
    assert_nothing_partial(out)
    # Ingest finished for both tracks before any assembly (a job still running
    # when Snakemake stopped is incomplete, and rightly redone).
    finished = {p: p.stat().st_mtime_ns for p in (out / "tracks").glob("*/source.json")}
    assert len(finished) == 2
    result = run_snakemake(tmp_path, config, check=False)
    assert result.returncode == 0, result.stdout[-6000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not redone
    assert not temporaries(out)
    assert dataset_state(out) == reference
