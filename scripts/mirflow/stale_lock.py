"""What to tell the user when Snakemake's lock of an earlier run is still there.

A run killed with ``kill -9`` (or a power loss) leaves ``.snakemake/locks/``
behind, and the next run stops with Snakemake's "Directory cannot be locked".
Before that happens, mirflow looks for the lock and for the run that would hold
it: a live Snakemake process working in the same directory on this host. With
none, the message names the exact command that removes the lock (the user's
own command line plus ``--unlock``); with one, it says which process it is and
that its lock is left alone. mirflow never removes a lock itself: a run on
another host sharing the directory (a cluster) cannot be seen from here.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

LOCKS = Path(".snakemake") / "locks"


def locked_paths(workdir: Path) -> list[str]:
    """The files named by the lock files in ``workdir`` (none: no lock)."""
    paths: list[str] = []
    for lock in sorted((workdir / LOCKS).glob("*.lock")):
        try:
            paths += [line for line in lock.read_text().splitlines() if line]
        except OSError:
            continue
    return paths


def _ancestors(pid: int) -> set[int]:
    seen = {pid}
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the command name: ppid
        seen.add(pid)
    return seen


def snakemake_processes(workdir: Path, own_pid: int | None = None) -> list[int] | None:
    """Live Snakemake processes working in ``workdir`` on this host, other than
    this one and its parents; None where processes cannot be listed (no /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    mine = _ancestors(own_pid or os.getpid())
    target = workdir.resolve()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue
        if cwd == target and any(
            Path(a.decode(errors="replace")).name == "snakemake" for a in argv[:3]
        ):
            found.append(int(entry.name))
    return sorted(found)


def lock_advice(
    workdir: Path, output: str, argv: list[str], own_pid: int | None = None
) -> str | None:
    """The message for a lock of an earlier run on ``output`` in ``workdir``;
    None when there is no such lock."""
    out = os.path.normpath(workdir.resolve() / output)
    locked = [os.path.normpath(workdir.resolve() / p) for p in locked_paths(workdir)]
    if not any(p == out or p.startswith(out + os.sep) for p in locked):
        return None
    holders = snakemake_processes(workdir, own_pid)
    where = workdir.resolve() / LOCKS
    if holders:
        return (
            f"mirflow: another Snakemake run (pid {', '.join(map(str, holders))}) is working "
            f"on {output} in this directory and holds its lock ({where}). Wait for it to "
            "finish or stop it; its lock is left alone."
        )
    unlock = shlex.join([*argv, "--unlock"])
    seen = (
        "no Snakemake process is running here"
        if holders is not None
        else "no process list on this system to check for a live run"
    )
    return (
        f"mirflow: an earlier run on {output} left its lock ({where}) and {seen}: it was "
        f"stopped by a kill or a power loss. If no run is going on from another machine, "
        f"remove the lock and run again:\n    {unlock}"
    )
