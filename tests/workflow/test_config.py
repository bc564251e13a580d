"""Configuration errors stop the run before any job, with a message naming the cause."""

import pytest

from conftest import LIBRARY
from snakemake_runner import run_snakemake, write_config


def test_wrong_value_names_the_key(tmp_path):
    config = write_config(
        tmp_path / "c.yaml", LIBRARY, tmp_path / "out", crops={"mode": "diagonal"}
    )
    result = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert result.returncode != 0
    assert "mode" in result.stdout and "diagonal" in result.stdout


def test_unknown_option_is_refused(tmp_path):
    config = write_config(tmp_path / "c.yaml", LIBRARY, tmp_path / "out", crop={"x": 1})
    result = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert result.returncode != 0 and "crop" in result.stdout


@pytest.mark.parametrize(
    "make_library, message",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no audio files"),
    ],
)
def test_missing_or_empty_library_is_a_clear_error(tmp_path, make_library, message):
    config = write_config(tmp_path / "c.yaml", make_library(tmp_path), tmp_path / "out")
    result = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert result.returncode != 0
    assert message in result.stdout and "Traceback" not in result.stdout


def test_defaults_fill_in_and_dry_run_lists_jobs_per_rule(tmp_path):
    from snakemake_runner import job_counts

    config = write_config(tmp_path / "c.yaml", LIBRARY, tmp_path / "out")
    result = run_snakemake(tmp_path, config, "--dry-run")
    counts = job_counts(result.stdout)
    assert counts["ingest"] == counts["rhythm"] == counts["assemble"] == 7
    assert counts["summary"] == 1
