import os

import pytest

from mirflow.assemble import assemble_track
from mirflow.records import StageResult
from mirflow.summary import format_summary, mark_run_started, summarize, time_per_rule


def write_benchmark(path, seconds, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t10\n")
    os.utime(path, (mtime, mtime))


def test_time_per_rule_counts_only_this_run(tmp_path):
    write_benchmark(tmp_path / "rhythm" / "a.tsv", 2.5, 100)
    write_benchmark(tmp_path / "rhythm" / "b.tsv", 1.5, 300)
    write_benchmark(tmp_path / "ingest" / "a.tsv", 0.5, 50)
    assert time_per_rule(tmp_path, since=200) == {"rhythm": {"jobs": 1, "seconds": 1.5}}
    assert time_per_rule(tmp_path, since=None)["rhythm"] == {"jobs": 2, "seconds": 4.0}


def test_summary_counts_tracks_crops_failures_and_realtime_factor(tmp_path):
    out, library = tmp_path / "out", tmp_path / "lib"
    mark_run_started(out)
    for name in ("a_000", "a_001"):
        (tmp_path / f"{name}.flac").write_bytes(b"")
    ok = [
        StageResult("ingest", track={"source": "a.flac", "duration_s": 30.0}),
        StageResult(
            "crops", crops={n: {"crop": n, "audio_file": f"{n}.flac"} for n in ("a_000", "a_001")}
        ),
    ]
    bad = [
        StageResult(
            "ingest",
            status="failed",
            error="ingest: b.flac: cannot decode",
            track={"source": "b.flac"},
        )
    ]
    assemble_track("a", ok, None, tmp_path, out / "dataset" / "a")
    assemble_track("b", bad, None, tmp_path, out / "dataset" / "b")
    started = float((out / "logs" / "run_started").read_text())
    summary, manifest = summarize(
        out, library, [out / "dataset" / "a", out / "dataset" / "b"], now=started + 10
    )
    assert (summary.tracks, summary.tracks_ok, summary.tracks_failed) == (2, 1, 1)
    assert (summary.crops_processed, summary.crops_failed) == (2, 0)
    assert summary.audio_duration_s == 30.0 and summary.realtime_factor == pytest.approx(3.0)
    assert summary.failed_tracks[0].error == "ingest: b.flac: cannot decode"
    assert list(manifest["kind"]) == ["track", "track", "crop", "crop"]
    assert manifest.loc[0, "audio"] == os.path.join("..", "lib", "a.flac")
    table = format_summary(summary)
    assert "2 (1 ok, 1 failed)" in table and "b.flac: cannot decode" in table
