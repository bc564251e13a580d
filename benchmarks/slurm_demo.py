"""Benchmark: the demo library on one machine vs. on a one-node SLURM cluster.

    .venv/bin/python benchmarks/slurm_demo.py

Starts the test cluster of tests/cluster/slurm_cluster.py (munge, slurmctld,
slurmd on 127.0.0.1; `bash envs/install-slurm-test.sh` installs SLURM), runs
the demo library with `--profile profiles/local` and with
`--profile profiles/slurm` (squeue for job states, status checks from 2 s),
and prints both wall times and the SLURM jobs it took. The difference is what
the cluster path costs on top of the work: sbatch, a Snakemake start-up and
workflow parse per job, srun, and the plugin's polling (its wait between
status checks grows by 10 s while no job finishes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from slurm_cluster import GPU_PARTITION, PARTITION, start_cluster  # noqa: E402

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def run(workdir: Path, profile: str, env: dict, *args: str) -> float:
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"input": str(REPO / "tests" / "data" / "library"),
                                      "output": str(workdir / "out")}))  # fmt: skip
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"),
           "--configfile", str(REPO / "config" / "config.yaml"), str(config),
           "--profile", str(REPO / "profiles" / profile), "--cores", "2", *args]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{profile} run failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return time.monotonic() - started


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="mirflow-bench-slurm-"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    (root / "local").mkdir()
    local = run(root / "local", "local", env)
    cluster = start_cluster()
    try:
        # cluster.env() last but for these: its PATH holds the srun the jobs need.
        slurm_env = {**env, **cluster.env(), "PYTHONPATH": env["PYTHONPATH"],
                     "MIRFLOW_SLURM_PARTITION": PARTITION,
                     "MIRFLOW_SLURM_GPU_PARTITION": GPU_PARTITION}  # fmt: skip
        (root / "slurm").mkdir()
        on_slurm = run(root / "slurm", "slurm", slurm_env, "--slurm-status-command", "squeue",
                       "--slurm-init-seconds-before-status-checks", "2")  # fmt: skip
        jobs = len(cluster.jobs())
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    print("demo library (7 tracks, 421 s of audio), 2 cores")
    print(f"{'profile':<10}{'wall s':>8}")
    print(f"{'local':<10}{local:>8.0f}")
    print(f"{'slurm':<10}{on_slurm:>8.0f}   ({jobs} SLURM jobs, {on_slurm / local:.2f}x)")


if __name__ == "__main__":
    main()
