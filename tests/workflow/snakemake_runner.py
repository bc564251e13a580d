"""Run the real workflow through Snakemake's command line on small libraries."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def make_library(root: Path, files: dict[str, Path]) -> Path:
    """``root/library`` holding a copy of each source under its new name."""
    library = root / "library"
    library.mkdir()
    for name, source in files.items():
        shutil.copy(source, library / name)
    return library


def write_config(path: Path, library: Path, output: Path, **sections) -> Path:
    config = {"input": str(library), "output": str(output), **sections}
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(config: Path, *args: str) -> list[str]:
    """The command line a user runs: the repo's workflow and local profile."""
    return [
        str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config),
        "--profile", str(REPO / "profiles" / "local"), "--cores", "2", *args,
    ]  # fmt: skip


def snakemake_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_snakemake(workdir: Path, config: Path, *args: str, check: bool = True):
    """Snakemake on the repo's workflow, run from ``workdir`` (its own .snakemake)."""
    cmd = snakemake_command(config, *args)
    # One stream: Snakemake prints errors to stdout, jobs to stderr.
    result = subprocess.run(
        cmd,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=snakemake_env(),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-6000:]}")
    return result


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    counts = {}
    table = dry_run_output.split("Job stats:", 1)
    if len(table) < 2:
        return counts
    for line in table[1].splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file below ``folder``."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(folder))] = (digest, path.stat().st_mtime_ns)
    return state
