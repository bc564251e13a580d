"""A library run as two shards and a merge (README, "Large libraries"): the
same datasets, summary and manifest as one run over the whole library."""

import json

import pandas as pd
import pytest

from conftest import GUITARSET, TRUMPET
from mirflow.shards import shard_of
from snakemake_runner import job_counts, make_library, run_snakemake, write_config

pytestmark = pytest.mark.slow


def summary_and_manifest(out):
    summary = json.loads((out / "summary.json").read_text())
    manifest = pd.read_parquet(out / "manifest.parquet")
    return summary, manifest


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    # guitar falls in shard 1 of 2, trumpet and broken in shard 0
    library = make_library(root, {"guitar.flac": GUITARSET, "trumpet.ogg": TRUMPET})
    (library / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 40)
    assert {shard_of(t, 2) for t in ("guitar", "trumpet", "broken")} == {0, 1}
    config = write_config(root / "config.yaml", library, root / "out",
                          crops={"length_samples": 65536})  # fmt: skip
    runs = {}
    for shard in ("0/2", "1/2", "merge"):
        runs[shard] = run_snakemake(root, config, "--config", f"shard={shard}")
    return root, config, root / "out", runs


def test_a_shard_runs_only_its_tracks_and_no_library_wide_output(sharded):
    root, config, out, runs = sharded
    assert "guitar" not in runs["0/2"].stdout and "guitar" in runs["1/2"].stdout
    assert (out / ".mirflow" / "plan-shard-0-of-2.json").is_file()
    assert (out / ".mirflow" / "plan-shard-1-of-2.json").is_file()
    assert not (out / ".mirflow" / "plan.json").exists()
    dry = run_snakemake(root, config, "--dry-run", "--config", "shard=0/2")
    assert "Nothing to be done" in dry.stdout


def test_merge_runs_no_track_job_and_matches_an_unsharded_run(sharded):
    root, config, out, runs = sharded
    assert set(job_counts(runs["merge"].stdout)) <= {
        "track_table", "duplicates", "summary", "export", "report_plots", "all",
    }  # fmt: skip
    merged, merged_manifest = summary_and_manifest(out)
    assert merged["tracks"] == 3 and merged["tracks_failed"] == 1 and merged["tracks_pending"] == 0
    # The whole library in one run: every track's analysis is done already; the
    # library-wide outputs run again (their inputs are now the datasets), and
    # assemble, which in a whole run also writes each track's duplicate group
    # (a shard cannot know the library's groups).
    dry = run_snakemake(root, config, "--dry-run")
    assert set(job_counts(dry.stdout)) <= {
        "duplicates", "assemble", "summary", "export", "report_plots", "all",
    }  # fmt: skip
    run_snakemake(root, config)
    whole, whole_manifest = summary_and_manifest(out)
    for key in ("tracks", "tracks_ok", "tracks_failed", "crops_processed", "crops_failed"):
        assert merged[key] == whole[key], key
    columns = ["kind", "track", "crop", "status"]
    assert merged_manifest[columns].sort_values(columns).values.tolist() == (
        whole_manifest[columns].sort_values(columns).values.tolist()
    )
    assert len(merged_manifest[merged_manifest["kind"] == "crop"]) > 3


def test_merge_lists_unfinished_tracks_as_pending_and_reruns_when_they_finish(tmp_path):
    library = make_library(tmp_path, {"guitar.flac": GUITARSET, "trumpet.ogg": TRUMPET})
    config = write_config(tmp_path / "config.yaml", library, tmp_path / "out",
                          crops={"length_samples": 65536})  # fmt: skip
    run_snakemake(tmp_path, config, "--config", "shard=1/2")  # guitar only
    run_snakemake(tmp_path, config, "--config", "shard=merge")
    summary, manifest = summary_and_manifest(tmp_path / "out")
    assert summary["tracks"] == 1 and summary["pending_tracks"] == ["trumpet"]
    assert set(manifest["track"]) == {"guitar"}
    dry = run_snakemake(tmp_path, config, "--dry-run", "--config", "shard=merge")
    assert "Nothing to be done" in dry.stdout
    run_snakemake(tmp_path, config, "--config", "shard=0/2")
    dry = run_snakemake(tmp_path, config, "--dry-run", "--config", "shard=merge")
    assert {"summary", "export"} <= set(job_counts(dry.stdout))
