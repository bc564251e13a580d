"""Memory requests from the track's probed length (mirflow.memory)."""

from __future__ import annotations

import json

from mirflow.memory import job_mem_mb, longest_minutes, track_minutes

RESOURCES = {"mem_mb": {"rhythm": 900}, "mem_mb_per_minute": {"rhythm": 2.5}}


def source_record(path, seconds):
    path.write_text(json.dumps({"stage": "ingest", "track": {"duration_s": seconds}}))
    return path


def test_a_request_grows_with_the_track_and_with_each_retry():
    assert job_mem_mb("rhythm", 0.0, RESOURCES) == 900
    assert job_mem_mb("rhythm", 120.0, RESOURCES) == 900 + 300
    assert job_mem_mb("rhythm", 120.0, RESOURCES, attempt=2) == 2 * 1200
    assert job_mem_mb("summary", 60.0, RESOURCES) == 2000  # a rule left out


def test_minutes_come_from_ingests_record(tmp_path):
    short = source_record(tmp_path / "a.json", 90.0)
    long = source_record(tmp_path / "b.json", 7200.0)
    assert track_minutes(short) == 1.5
    assert longest_minutes([short, long, tmp_path / "not-yet.json"]) == 120.0
    assert track_minutes(tmp_path / "not-yet.json") == 0.0  # a dry run, before ingest
    (tmp_path / "bad.json").write_text("{")
    assert track_minutes(tmp_path / "bad.json") == 0.0


def test_a_rule_that_works_in_windows_stops_growing_at_its_window():
    resources = {"mem_mb": {"features_batch": 1300}, "mem_mb_per_minute": {"features_batch": 160}}
    song = job_mem_mb("features_batch", 4.0, resources)
    assert song == 1300 + 160 * 4
    assert job_mem_mb("features_batch", 120.0, resources) == job_mem_mb(
        "features_batch", 6.0, resources
    )
    assert job_mem_mb("features_batch", 120.0, resources) == int(1300 + 160 * 5.5)


def test_a_job_in_its_own_snakemake_process_asks_for_that_process_too():
    from mirflow.memory import JOB_PROCESS_MB

    local = job_mem_mb("rhythm", 10.0, RESOURCES)
    cluster = job_mem_mb("rhythm", 10.0, RESOURCES, own_process=True)
    assert cluster == local + JOB_PROCESS_MB
    # A retry asks for twice the whole of it: the process is part of what was killed.
    assert job_mem_mb("rhythm", 10.0, RESOURCES, attempt=2, own_process=True) == 2 * cluster
