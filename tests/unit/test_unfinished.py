"""Tracks a failed job left unfinished: the stage, the cause, the logs, and the
summary and manifest written for such a run (mirflow.unfinished, mirflow.summary)."""

import json
import os

import pandas as pd

from mirflow.assemble import assemble_track
from mirflow.records import StageResult
from mirflow.summary import mark_run_started, run_started, write_unfinished_summary
from mirflow.unfinished import find_unfinished, parse_job_errors

# As Snakemake 9 logs a job the SLURM plugin saw fail, then the failed logs.
SLURM_ERROR = """\
[Mon Nov 23 09:13:17 2026]
Error in rule assemble:
    message: SLURM-job '7' failed, SLURM status is: 'FAILED'. Detailed failure reason \
unavailable (status command is not 'sacct').For further error details see the cluster/cloud \
log and the log files of the involved rule(s).
    jobid: 16
    input: {out}/tracks/b/source.json, {out}/tracks/b/rhythm.json
    output: {out}/dataset/b
    log: {out}/logs/assemble/b.log, {slurm_log} (check log file(s) for error details)
    external_jobid: 7
Logfile {out}/logs/assemble/b.log:
=====
mentions {out}/dataset/a, which is not the failed job's
"""

# A group job (a track's rhythm, crops and features) failing on SLURM, as
# Snakemake 9 logs it: the group's first line is its message, then the job's
# SLURM log printed in full (with the job's own Snakemake log inside), then
# each rule's own report, indented.
GROUP_ERROR = """\
[Mon Nov 23 09:42:12 2026]
    message: Error in group track
    log: {slurm_log} (check log file(s) for error details)
    jobs:
        rule rhythm:
            jobid: 4
            output: {out}/tracks/a/a.BEATS, {out}/tracks/a/rhythm.json
            log: {out}/logs/rhythm/a.log (check log file(s) for error details)
        rule crops:
            jobid: 5
            output: {out}/tracks/a/crops, {out}/tracks/a/crops.json
Logfile {slurm_log}:
================================================================================
Error in rule rhythm:
    message: None
    output: {out}/tracks/a/rhythm.json
================================================================================
    [Mon Nov 23 09:42:12 2026]
    Error in rule rhythm:
        message: None
        jobid: 4
        output: {out}/tracks/a/a.BEATS, {out}/tracks/a/rhythm.json
        log: {out}/logs/rhythm/a.log (check log file(s) for error details)
"""


def records(out, track):
    return [f"{out}/tracks/{track}/{name}.json" for name in ("source", "rhythm", "crops")]


def test_job_errors_are_parsed_with_their_message_and_logs(tmp_path):
    text = SLURM_ERROR.format(out=tmp_path, slurm_log=tmp_path / "7.log") + GROUP_ERROR.format(
        out=tmp_path, slurm_log=tmp_path / "8.log"
    )
    first, *group = parse_job_errors(text)
    assert first.rule == "assemble" and first.message.startswith("SLURM-job '7' failed")
    assert first.logs == [f"{tmp_path}/logs/assemble/b.log", str(tmp_path / "7.log")]
    assert "dataset/a" not in first.text  # the printed log is not part of the report
    # The group's report names its rules and the SLURM log; the printed log's
    # inner report is skipped; the indented report of rhythm stays.
    assert [e.rule for e in group] == ["rhythm", "crops", "rhythm"]
    assert group[0].logs == [str(tmp_path / "8.log"), f"{tmp_path}/logs/rhythm/a.log"]
    assert group[2].message == "None" and "jobid: 4" in group[2].text


def test_unfinished_tracks_name_the_stage_the_cause_and_the_logs(tmp_path):
    out = tmp_path
    for track, made in (("a", ["source"]), ("b", ["source", "rhythm", "crops"])):
        for name in made:
            (out / "tracks" / track).mkdir(parents=True, exist_ok=True)
            (out / "tracks" / track / f"{name}.json").write_text("{}")
    (out / "dataset" / "c").mkdir(parents=True)
    (out / "dataset" / "c" / "c.INFO").write_text("{}")
    slurm_log = out / "slurm_logs" / "rule_assemble" / "b" / "7.log"
    slurm_log.parent.mkdir(parents=True)
    slurm_log.write_text(
        "Building DAG of jobs...\n"
        "slurmstepd-vm: error: StepId=7.batch exceeded memory limit (167284736 > 20971520)\n"
        "slurmstepd-vm: error: Exceeded job memory limit\n"
    )
    rhythm_log = out / "logs" / "rhythm" / "a.log"
    rhythm_log.parent.mkdir(parents=True)
    rhythm_log.write_text("Traceback (most recent call last):\nRuntimeError: madmom fell over\n")
    old_log = out / "logs" / "assemble" / "b.log"
    old_log.parent.mkdir(parents=True)
    old_log.write_text("INFO b: ok, 3 crops\n")  # from an earlier run
    os.utime(old_log, (100, 100))
    group_log = out / "slurm_logs" / "group_track" / "8.log"
    group_log.parent.mkdir(parents=True)
    group_log.write_text("srun: fatal: Could not establish a configuration source\n")
    text = SLURM_ERROR.format(out=out, slurm_log=slurm_log) + GROUP_ERROR.format(
        out=out, slurm_log=group_log
    )

    found = find_unfinished(
        out, {t: records(out, t) for t in "abc"}, text, since=rhythm_log.stat().st_mtime - 1
    )
    by_track = {u.track: u for u in found}
    assert set(by_track) == {"a", "b"}  # c has its .INFO
    assert by_track["a"].stage == "rhythm"
    assert "RuntimeError: madmom fell over" in by_track["a"].cause
    assert "srun: fatal: Could not establish" in by_track["a"].cause
    assert str(rhythm_log) in by_track["a"].cause and str(group_log) in by_track["a"].cause
    b = by_track["b"]
    assert b.stage == "assemble"
    assert b.cause.startswith("assemble did not finish: SLURM-job '7' failed, SLURM status is")
    assert "Exceeded job memory limit" in b.cause and str(slurm_log) in b.cause
    assert "ok, 3 crops" not in b.cause and "not 'sacct'" not in b.cause


def test_summary_of_an_unfinished_run_lists_those_tracks(tmp_path):
    out, library = tmp_path / "out", tmp_path / "lib"
    mark_run_started(out)
    (tmp_path / "a_000.flac").write_bytes(b"")
    ok = [
        StageResult("ingest", track={"source": "a.flac", "duration_s": 30.0}),
        StageResult("crops", crops={"a_000": {"crop": "a_000", "audio_file": "a_000.flac"}}),
    ]
    assemble_track("a", ok, None, tmp_path, out / "dataset" / "a")
    cause = "rhythm did not finish: RuntimeError (logs: logs/rhythm/b.log)"
    summary = write_unfinished_summary(out, library, ["a", "b"], {"b": ("b.flac", cause)})
    assert (summary.tracks, summary.tracks_ok, summary.tracks_failed) == (2, 1, 1)
    assert run_started(out) is not None and summary.crops_processed == 1
    written = json.loads((out / "summary.json").read_text())
    assert written["failed_tracks"] == [{"track": "b", "source": "b.flac", "error": cause}]
    assert "did not finish" in written["notes"][-1]
    manifest = pd.read_parquet(out / "manifest.parquet")
    b = manifest[manifest["track"] == "b"].iloc[0]
    assert (b["kind"], b["status"], b["error"], b["info"]) == ("track", "failed", cause, "")


def test_a_failed_batch_is_the_cause_for_its_tracks(tmp_path):
    out = tmp_path
    (out / "tracks" / "a").mkdir(parents=True)
    (out / "tracks" / "a" / "source.json").write_text("{}")
    text = (
        "Error in rule separate:\n"
        "    message: SLURM-job '3' failed, SLURM status is: 'TIMEOUT'\n"
        f"    input: {out}/tracks/a/source.json, {out}/tracks/z/source.json\n"
        f"    output: {out}/separation/b0a1\n"
    )
    records = {"a": [f"{out}/tracks/a/source.json", f"{out}/tracks/a/stems.json"]}
    [a] = find_unfinished(out, records, text)
    assert a.stage == "stems" and "TIMEOUT" in a.cause
    [quiet] = find_unfinished(out, records, "")
    assert "no job error was reported" in quiet.cause
