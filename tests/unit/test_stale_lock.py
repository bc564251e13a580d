"""The message for a lock an earlier run left (mirflow.stale_lock)."""

from __future__ import annotations

import subprocess
import time

import pytest

from mirflow.stale_lock import LOCKS, lock_advice

ARGV = ["/x/.venv/bin/snakemake", "--profile", "profiles/local", "--config", "output=results/my ds"]


def leave_lock(workdir, *paths):
    (workdir / LOCKS).mkdir(parents=True)
    (workdir / LOCKS / "0.output.lock").write_text("".join(f"{p}\n" for p in paths))


def test_no_lock_no_message(tmp_path):
    assert lock_advice(tmp_path, "results/my ds", ARGV) is None


def test_a_lock_on_other_outputs_is_not_ours(tmp_path):
    leave_lock(tmp_path, "results/other/summary.json")
    assert lock_advice(tmp_path, "results/my ds", ARGV) is None


def test_a_stale_lock_names_the_users_command_with_unlock(tmp_path):
    leave_lock(tmp_path, "results/my ds/summary.json")
    advice = lock_advice(tmp_path, "results/my ds", ARGV)
    assert "no Snakemake process is running here" in advice
    assert advice.endswith(
        "/x/.venv/bin/snakemake --profile profiles/local --config 'output=results/my ds' --unlock"
    )


def test_a_live_run_is_named_and_its_lock_left_alone(tmp_path):
    leave_lock(tmp_path, str(tmp_path / "results/my ds/summary.json"))  # absolute paths too
    # A process called snakemake, working in the same folder.
    live = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 30"], cwd=tmp_path)
    try:
        for _ in range(50):  # until exec has renamed it
            advice = lock_advice(tmp_path, "results/my ds", ARGV)
            if str(live.pid) in advice:
                break
            time.sleep(0.05)
        else:
            pytest.fail(advice)
        assert "--unlock" not in advice and "left alone" in advice
    finally:
        live.kill()
        live.wait()
    assert "--unlock" in lock_advice(tmp_path, "results/my ds", ARGV)
    assert (tmp_path / LOCKS / "0.output.lock").exists()  # never removed by mirflow
