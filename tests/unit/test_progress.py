"""Progress of a batch job (mirflow.progress): lines with the count, the rate
and the time left reach the console and the job's log while the job runs."""

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mirflow.progress import Progress

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
LINE = re.compile(
    r"aesthetics b0001: (\d+)/300 crops \(\d+%\), [\d.]+crops/s, \S+ elapsed, \S+ left"
)

# A model pass over 300 crops (30 tracks of 10), 10 ms a crop, through the real
# batch driver and the real job logging (log file + console).
JOB = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mirflow.logs import log_to_file
    from mirflow.passes import PassMember, PassRunner, run_pass_batch
    from mirflow.records import StageResult, write_result

    root = Path(sys.argv[1])
    log_to_file(root / "job.log")
    members = []
    for t in range(30):
        crops = {f"t{t}_{c}": {"crop": f"t{t}_{c}", "audio_file": "x.flac"} for c in range(10)}
        (root / f"t{t}" / "crops").mkdir(parents=True)
        write_result(root / f"t{t}" / "crops.json", StageResult("crops", crops=crops))
        members.append(PassMember(f"t{t}", "/x.flac", str(root / f"t{t}" / "crops"),
                                  str(root / f"t{t}" / "crops.json")))

    def crop(crop_dir, fields, files_dir):
        time.sleep(0.01)
        return {"score": 1.0}

    run_pass_batch("aesthetics", lambda: PassRunner(crop=crop), members, root / "out", "b0001")
    print("done", flush=True)
    """
)


def test_a_batch_job_reports_progress_while_it_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), "MIRFLOW_PROGRESS_INTERVAL": "0.5"}
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, str(tmp_path)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    seen_while_running = []
    for line in job.stderr:
        if (match := LINE.search(line)) and job.poll() is None:
            seen_while_running.append(int(match.group(1)))
    assert job.wait(timeout=60) == 0
    # Several lines, before the end, counting up; not one per crop.
    partial = [n for n in seen_while_running if n < 300]
    assert len(partial) >= 2 and partial == sorted(partial), seen_while_running
    assert len(seen_while_running) < 30
    log = (tmp_path / "job.log").read_text()
    assert "aesthetics b0001: 300/300 crops (100%)" in log
    assert len([line for line in log.splitlines() if LINE.search(line)]) >= 3  # the same lines


def test_lines_are_spaced_by_the_interval_and_the_last_one_is_always_written(caplog):
    caplog.set_level("INFO", logger="mirflow.progress")
    with Progress(1000, "separate b1", unit="tracks", interval=3600) as bar:
        for _ in range(1000):
            bar.update()
    lines = [r.getMessage() for r in caplog.records if r.name == "mirflow.progress"]
    assert lines == [lines[-1]] and lines[-1].startswith("separate b1: 1000/1000 tracks (100%)")

    caplog.clear()
    with Progress(20, "features b2", unit="tracks", interval=0.05) as bar:
        for _ in range(20):
            time.sleep(0.01)
            bar.update()
    lines = [r.getMessage() for r in caplog.records if r.name == "mirflow.progress"]
    assert 2 <= len(lines) < 20 and "left" in lines[0]
