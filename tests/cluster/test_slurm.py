"""The workflow on a real SLURM: a one-node cluster on 127.0.0.1 (slurm_cluster.py)
runs the demo library through ``snakemake --profile profiles/slurm``; its
``.INFO`` files must equal a local run's, SLURM must have run the jobs, and a
job SLURM kills must show up in the run's summary with its stage and cause.

Skipped when the SLURM programs are missing (``envs/install-slurm-test.sh``
installs them), unless ``MIRFLOW_REQUIRE_SLURM=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import LIBRARY, REPO

sys.path.insert(0, str(REPO / "tests" / "workflow"))
from slurm_cluster import GPU_PARTITION, PARTITION, missing_programs, start_cluster  # noqa: E402

from snakemake_runner import SNAKEMAKE, run_snakemake, write_config  # noqa: E402

pytestmark = pytest.mark.slow

BROKEN = "broken.flac"  # not audio: ingest records it as failed, the run goes on


@pytest.fixture(scope="module")
def cluster():
    missing = missing_programs()
    if missing:
        reason = (
            f"SLURM not installed ({', '.join(missing)} missing): "
            "bash envs/install-slurm-test.sh installs it"
        )
        if os.environ.get("MIRFLOW_REQUIRE_SLURM") == "1":
            pytest.fail(f"MIRFLOW_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    started = start_cluster()
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(started.root, ignore_errors=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The demo library and a file that is not audio."""
    library = tmp_path_factory.mktemp("slurm") / "library"
    shutil.copytree(LIBRARY, library, ignore=shutil.ignore_patterns("*.md"))
    (library / BROKEN).write_bytes(b"fLaC" + bytes(range(256)) * 40)
    return library


def run_on_slurm(cluster, workdir: Path, config: Path, *args: str, check: bool = True):
    """snakemake --profile profiles/slurm, partitions set for the test cluster.
    Without slurmdbd, job states come from squeue (MinJobAge keeps finished
    jobs listed); status checks start after 2 s instead of 40 s."""
    cmd = [
        str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config),
        "--profile", str(REPO / "profiles" / "slurm"),
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--cores", "2",  # a group job may ask for no more CPUs than the node has
        *args,
    ]  # fmt: skip
    env = {
        **cluster.env(),
        "MIRFLOW_SLURM_PARTITION": PARTITION,
        "MIRFLOW_SLURM_GPU_PARTITION": GPU_PARTITION,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    started = time.monotonic()
    result = subprocess.run(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    result.wall_s = time.monotonic() - started
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake on SLURM failed ({result.returncode}):\n{result.stdout[-6000:]}\n"
            f"{cluster.logs()}"
        )
    return result


@pytest.fixture(scope="module")
def local_run(library, tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    config = write_config(root / "config.yaml", library, root / "out")
    started = time.monotonic()
    result = run_snakemake(root, config)
    result.wall_s = time.monotonic() - started
    return {"out": root / "out", "result": result}


@pytest.fixture(scope="module")
def slurm_run(cluster, library, tmp_path_factory):
    root = tmp_path_factory.mktemp("onslurm")
    config = write_config(root / "config.yaml", library, root / "out")
    result = run_on_slurm(cluster, root, config, "--slurm-keep-successful-logs")
    return {"root": root, "out": root / "out", "config": config, "result": result,
            "jobs": cluster.jobs()}  # fmt: skip


def infos(out: Path) -> dict[str, dict]:
    """Every .INFO of the dataset (tracks and crops) by its path."""
    return {
        str(path.relative_to(out)): json.loads(path.read_text())
        for path in sorted((out / "dataset").rglob("*.INFO"))
    }


def test_slurm_run_writes_the_same_info_files_as_a_local_run(cluster, local_run, slurm_run):
    # cluster first: without SLURM the test skips before the local run.
    local, cluster = infos(local_run["out"]), infos(slurm_run["out"])
    assert len(local) > 8 and local.keys() == cluster.keys()
    # No .INFO field holds a time or a host name: every one must match.
    for path, info in local.items():
        assert cluster[path] == info, path
    print(f"\nwall time: local {local_run['result'].wall_s:.0f} s, "
          f"SLURM {slurm_run['result'].wall_s:.0f} s")  # fmt: skip


def test_slurm_ran_the_jobs_in_groups(slurm_run):
    jobs = slurm_run["jobs"]
    comments = [job["comment"] for job in jobs]
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    assert all(job["partition"] == PARTITION for job in jobs), jobs
    # A track's rhythm and crops ran as one SLURM job (group "track"), the
    # ingests of up to 8 tracks as another, the features in batches.
    assert comments.count("rule_track_crops_rhythm") == 8, comments
    assert sum(c.startswith("rule_ingest_") for c in comments) == 1, comments
    rules = {c.split("_wildcards")[0] for c in comments}
    assert {"rule_features_batch", "rule_transcription_batch", "rule_summary",
            "rule_assemble"} <= rules, rules  # fmt: skip
    assert sum(c.startswith("rule_features_batch") for c in comments) <= 2, comments
    # Snakemake's log names each SLURM job id it waited for.
    for job in jobs:
        assert f"SLURM jobid {job['id']} " in slurm_run["result"].stdout


def test_bad_file_is_listed_as_on_a_local_run(cluster, local_run, slurm_run):
    local = json.loads((local_run["out"] / "summary.json").read_text())
    cluster = json.loads((slurm_run["out"] / "summary.json").read_text())
    assert cluster["failed_tracks"] == local["failed_tracks"]
    [failed] = cluster["failed_tracks"]
    assert failed["source"] == BROKEN and "ingest" in failed["error"]


def test_job_slurm_kills_is_in_the_summary_with_its_cause(cluster, slurm_run):
    """A track's assemble, asked to fit in 20 MB, is killed by SLURM; the
    summary and manifest name the track, the stage, SLURM's reason and the log,
    as they name a bad file (a local run's failed job is reported the same way)."""
    out = slurm_run["out"]
    track = "vocadito_1"
    shutil.rmtree(out / "dataset" / track)
    result = run_on_slurm(
        cluster, slurm_run["root"], slurm_run["config"],
        "--set-resources", "assemble:mem_mb=20", "--retries", "0", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    summary = json.loads((out / "summary.json").read_text())
    failed = {f["track"]: f["error"] for f in summary["failed_tracks"]}
    assert set(failed) == {"broken", track}, failed
    error = failed[track]
    assert error.startswith("assemble did not finish: SLURM-job"), error
    # Killed by slurmstepd's memory polling (no cgroups here): state FAILED,
    # and the reason from the job's SLURM log. slurmstepd words it by which
    # limit its poll saw first: "Exceeded job memory limit" (the job's) or
    # "StepId=N.batch exceeded memory limit (A > B), being killed" (the step's).
    assert re.search(r"exceeded (job )?memory limit", error, re.IGNORECASE), error
    assert f"slurm_logs/rule_assemble/{track}/" in error, error
    assert summary["tracks"] == 8 and summary["tracks_ok"] == 6
    manifest = pd.read_parquet(out / "manifest.parquet")
    row = manifest[(manifest["kind"] == "track") & (manifest["track"] == track)].iloc[0]
    assert row["status"] == "failed" and row["error"] == error
    # The next run, with its memory back, finishes the track.
    run_on_slurm(cluster, slurm_run["root"], slurm_run["config"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks_ok"] == 7
    # What is pending, as the README shows it: nothing now.
    dry = run_on_slurm(cluster, slurm_run["root"], slurm_run["config"], "-n")
    assert "Nothing to be done" in dry.stdout
    detailed = run_on_slurm(cluster, slurm_run["root"], slurm_run["config"], "--summary")
    assert f"dataset/{track}" in detailed.stdout and "ok" in detailed.stdout


def test_gpu_rule_goes_to_the_gpu_partition_with_a_gpu(cluster, tmp_path):
    """Separation (a tiny random HTDemucs, run on the CPU) is a GPU rule: its
    job must reach the GPU partition asking for one GPU, and the track's
    stems then reach its crops."""
    if not cluster.gpu:
        pytest.skip("this Slurm would not declare a GPU without hardware (see slurm_cluster.py)")
    from model_fixtures.demucs_tiny import write_tiny_htdemucs

    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(LIBRARY / "sorohanro_-_solo-trumpet-06.hq.ogg", library / "trumpet.ogg")
    name = write_tiny_htdemucs(tmp_path / "models" / "demucs", name="tiny_htdemucs")
    config = write_config(
        tmp_path / "config.yaml", library, tmp_path / "out", models_dir=str(tmp_path / "models"),
        source_separation={"enabled": True, "device": "cpu", "threads": 1,
                           "demucs": {"model": name}},
        resources={"mem_mb": {"separate": 2000}},
        crops={"length_samples": 65536},
    )  # fmt: skip
    before = {job["id"] for job in cluster.jobs()}
    run_on_slurm(cluster, tmp_path, config)
    jobs = [job for job in cluster.jobs() if job["id"] not in before]
    [separate] = [job for job in jobs if job["comment"].startswith("rule_separate_")]
    assert separate["partition"] == GPU_PARTITION and separate["gpus"] == "gres:gpu:1", separate
    assert all(job["partition"] == PARTITION for job in jobs if job is not separate), jobs
    info = json.loads((tmp_path / "out" / "dataset" / "trumpet" / "trumpet.INFO").read_text())
    assert info["status"] == "ok" and info["stems_origin"] == "separated"
