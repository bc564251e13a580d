"""Tracks a run left without a dataset, the stage each stopped at, and why.

A bad file is recorded by its own stage (``status: failed`` in the ``.INFO``).
A job that fails outright (a bug, a full disk, a job the cluster killed for
its time or memory limit) writes nothing, so the run's summary rule never
runs. When that happens, the run's error hook finds each track without its
``.INFO``, takes the first of its records that is missing as the stage that
failed, and reads the cause from Snakemake's log of the run (the job's error
message, e.g. ``SLURM status is: 'OUT_OF_MEMORY'``), the end of the job's own
log, and the cluster's log of the job (``.snakemake/slurm_logs/...``).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

#: Record file -> the rule that writes it, where the names differ.
RECORD_RULE = {"source.json": "ingest"}

#: Stage -> the batch rule its record comes from (a model pass's is <pass>_batch).
BATCH_RULE = {"stems": "separate"}

#: Lines of a cluster log that say why SLURM stopped a job.
SLURM_KILL = re.compile(
    r"slurmstepd: error: .*|.*\bCANCELLED AT .*|.*[Ee]xceeded .*memory.*|srun: (?:fatal|error): .*"
)


#: What the SLURM plugin adds when squeue (not sacct) reported the state.
SQUEUE_NO_REASON = " Detailed failure reason unavailable (status command is not 'sacct')."


@dataclass
class JobError:
    """One "Error in rule/group" report of Snakemake's log."""

    rule: str
    text: str  # the report as logged
    message: str  # its "message:" line (the executor's cause), or ""
    logs: list[str]  # the job's logs: the rule's own and the cluster's


@dataclass
class Unfinished:
    track: str
    stage: str  # the rule that did not finish
    cause: str  # one line: what failed, why, where to look


#: A log Snakemake prints after an error (show-failed-logs), framed by 80 "=".
PRINTED_LOG = re.compile(r"^Logfile [^\n]*:\n={80}\n.*?^={80}$", flags=re.M | re.S)

#: Where a report starts: a rule's, or a group job's (whose first line is
#: its message, "Error in group <name>", indented).
REPORT_HEAD = re.compile(r"^(?:\s*Error in rule (\w+):|\s+message: Error in group (\S+))$")


def parse_job_errors(log_text: str) -> list[JobError]:
    """The job errors of a Snakemake log, in order. A group job's report
    lists its rules; its logs (the cluster's among them) apply to each."""
    lines = PRINTED_LOG.sub("", log_text).splitlines()
    errors = []
    for index, line in enumerate(lines):
        head = REPORT_HEAD.match(line)
        if not head:
            continue
        # The report's lines: indented below a rule's head, or beside a
        # group's (its head is its first indented line).
        indent = len(line) - len(line.lstrip()) + (1 if head.group(1) else 0)
        inside = lambda ln, n=indent: ln.strip() and len(ln) - len(ln.lstrip()) >= n  # noqa: E731
        body = list(itertools.takewhile(inside, lines[index + 1 :]))
        block = "\n".join([line, *body])
        message = re.search(r"^\s+message: (.*)$", block, flags=re.M)
        message = message.group(1).strip() if message and head.group(1) else ""
        logs = [
            path.strip()
            for found in re.findall(r"^\s+log: (.*?)(?: \(check log file.*)?$", block, flags=re.M)
            for path in found.split(", ")
        ]
        rules = [head.group(1)] if head.group(1) else re.findall(r"^\s+rule (\w+):$", block, re.M)
        errors += [JobError(rule, block, message, logs) for rule in rules]
    return errors


def _has_cluster_log(error: JobError) -> bool:
    return any("slurm_logs" in Path(log).parts for log in error.logs)


def _last_line(path: Path, pattern: re.Pattern | None = None) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip()]
    if pattern is not None:
        lines = [m.group(0).strip() for line in lines if (m := pattern.search(line))]
    return lines[-1] if lines else ""


def _short(message: str) -> str:
    """The executor's message without its generic advice."""
    message = message.split("For further error details", 1)[0]
    return message.replace(SQUEUE_NO_REASON, "").strip()


def describe(stage: str, error: JobError | None, rule_log: Path, since: float | None = None) -> str:
    """``stage did not finish: <cause> (logs: ...)``. The rule's own log
    counts only if this run wrote it (``since``): an old one tells of an old run."""
    parts, logs = [], []
    if error is not None:
        if error.message and error.message != "None":
            parts.append(_short(error.message).rstrip("."))
        for log in error.logs:
            path = Path(log)
            if "slurm_logs" in path.parts:
                why = _last_line(path, SLURM_KILL)
                parts += [why] if why else []
            logs.append(log)
    fresh = rule_log.exists() and (since is None or rule_log.stat().st_mtime >= since)
    if fresh and str(rule_log) not in logs:
        logs.insert(0, str(rule_log))
    last = _last_line(rule_log) if fresh else ""
    if last and not any(last in part for part in parts):
        parts.append(last)
    cause = "; ".join(parts) if parts else "no job error was reported (the run stopped first)"
    where = f" (logs: {', '.join(logs)})" if logs else ""
    return f"{stage} did not finish: {cause}{where}"


def find_unfinished(
    output_root: str | os.PathLike,
    records: dict[str, list[str]],
    log_text: str,
    since: float | None = None,
) -> list[Unfinished]:
    """``records``: each track's records in the order the stages make them
    (common.smk's track_records, filled in). A track whose ``.INFO`` is missing
    stopped at the first missing record's stage, or at assemble. ``since``:
    when the run started (logs older than that are not its own)."""
    out = Path(output_root)
    errors = parse_job_errors(log_text)
    unfinished = []
    for track, track_records in records.items():
        if (out / "dataset" / track / f"{track}.INFO").exists():
            continue
        missing = [r for r in track_records if not Path(r).exists()]
        name = Path(missing[0]).name if missing else ""
        stage = RECORD_RULE.get(name, Path(name).stem) if missing else "assemble"
        marker = f"/dataset/{track}" if not missing else f"/tracks/{track}/"
        # A batch job (separation, a model pass) lists its tracks' records as input.
        rules = {stage, f"{stage}_batch", BATCH_RULE.get(stage)}
        mine = [e for e in errors if marker in e.text and e.rule in rules]
        # The most telling report: one with the executor's message, or the
        # cluster's log (a group's); the latest of those.
        mine.sort(key=lambda e: (e.message not in ("", "None"), _has_cluster_log(e)))
        rule_log = out / "logs" / stage / f"{track}.log"
        cause = describe(stage, mine[-1] if mine else None, rule_log, since)
        unfinished.append(Unfinished(track, stage, cause))
    return unfinished


def read_logs(paths: str | os.PathLike | list) -> str:
    """The text of Snakemake's log file(s) of this run (onerror's ``log``)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or [])
    texts = []
    for path in paths:
        try:
            texts.append(Path(path).read_text(errors="replace"))
        except OSError:
            continue
    return "\n".join(texts)
