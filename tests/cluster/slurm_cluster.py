"""A one-node SLURM cluster on 127.0.0.1, for tests: munged, slurmctld and slurmd
started from config files written to a private folder, stopped by ``stop()``.

Nothing outside that folder is read or written: munge gets its own key and
socket, and the SLURM commands (sbatch, squeue, scontrol) find the cluster
through the ``SLURM_CONF`` variable of ``env()``. There is no slurmdbd, so
jobs are followed with ``squeue`` (``MinJobAge`` keeps finished jobs visible
long enough; see profiles/slurm/config.yaml).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")
PARTITION = "mirflow_test"
GPU_PARTITION = "mirflow_test_gpu"


def _die_with_parent() -> None:
    """In a daemon's child process before exec: SIGTERM when the test process
    dies, so a test killed before its finalizer leaves no daemon behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def missing_programs() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """``CPUs``, ``RealMemory`` ... of this machine as slurmd detects them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))


@dataclass
class SlurmCluster:
    root: Path
    # slurmctld checks that it runs on SlurmctldHost, by short host name.
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    gpu: bool = False  # whether the node declares a (hardware-less) GRES gpu

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def env(self) -> dict[str, str]:
        """The environment SLURM commands need to reach this cluster."""
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def write_srun_shim(self) -> None:
        """An ``srun`` that knows the cluster's config. Inside a job,
        snakemake-executor-plugin-slurm-jobstep runs each rule through srun with
        every SLURM_* variable but the job's ids removed, SLURM_CONF included;
        a real cluster's srun finds /etc/slurm/slurm.conf (or asks slurmd, when
        configless), this one's config lives in a temporary folder."""
        shim = self.root / "bin" / "srun"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {shutil.which("srun")} "$@"\n')
        shim.chmod(0o755)

    # ---- config ----------------------------------------------------------

    def write_config(self, gpu: bool) -> None:
        hw = node_hardware()
        gres = "Gres=gpu:1 " if gpu else ""
        self.conf.write_text(
            f"""\
ClusterName=mirflowtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# Memory limits are enforced by polling each job's processes (no cgroups here).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# No slurmdbd: squeue reports finished jobs for MinJobAge seconds.
MinJobAge=600
KillWait=5
InactiveLimit=0
{"GresTypes=gpu" if gpu else ""}
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={hw["CPUs"]} Boards={hw["Boards"]} \
SocketsPerBoard={hw["SocketsPerBoard"]} CoresPerSocket={hw["CoresPerSocket"]} \
ThreadsPerCore={hw["ThreadsPerCore"]} RealMemory={hw["RealMemory"]} {gres}State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName={GPU_PARTITION} Nodes={self.node} MaxTime=INFINITE State=UP
"""
        )
        # A GPU without a device file: slurmd counts it, nothing checks hardware.
        (self.root / "gres.conf").write_text(
            f"NodeName={self.node} Name=gpu Count=1 File=/dev/null\n" if gpu else ""
        )

    # ---- daemons ---------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (kept by Popen)
        self.processes[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        m = self.root / "munge"
        self._spawn("munged", [
            "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={self.munge_socket}", f"--pid-file={m}/munged.pid",
            f"--log-file={m}/munged.log", f"--seed-file={m}/seed",
        ])  # fmt: skip
        self._wait(lambda: self.munge_socket.exists(), "munged", 10)

    def start_slurm(self) -> None:
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._run("scontrol", "ping").returncode == 0, "slurmctld", 30)
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(self._node_idle, "slurmd", 60)

    def _node_idle(self) -> bool:
        out = self._run("sinfo", "-h", "-N", "-o", "%T", "-p", PARTITION).stdout
        return out.strip().startswith(("idle", "mixed"))

    def _wait(self, ready, name: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {seconds} s:\n{self.logs()}")

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env())

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def start(self, gpu: bool = True) -> SlurmCluster:
        """Start the cluster; with ``gpu``, try a hardware-less GRES gpu first
        and fall back to a node without one if slurmd will not have it."""
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
        self.write_srun_shim()
        self.start_munge()
        for with_gpu in (True, False) if gpu else (False,):
            self.write_config(with_gpu)
            try:
                self.start_slurm()
                self.gpu = with_gpu
                return self
            except RuntimeError:
                if not with_gpu:
                    raise
                self._stop_slurm()
                shutil.rmtree(self.root / "state")
                (self.root / "state").mkdir(mode=0o700)
        return self

    # ---- jobs ------------------------------------------------------------

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld knows (finished ones for MinJobAge): id, name,
        state, partition, gpus (``gres:gpu:1``, or ``N/A``) and comment (the
        plugin's ``rule_<rule or group>_wildcards_<...>``)."""
        keys = ("id", "name", "state", "partition", "gpus", "comment")
        fmt = "JobID:|,Name:|,State:|,Partition:|,tres-per-job:|,Comment:1000"
        out = self._run("squeue", "--states=all", "-h", "-O", fmt).stdout
        return [
            dict(zip(keys, [v.strip() for v in line.split("|", 5)], strict=True))
            for line in out.splitlines()
        ]

    # ---- teardown --------------------------------------------------------

    def _stop_slurm(self) -> None:
        if shutil.which("scancel") and self.conf.exists():
            self._run("scancel", "--full", "--user=root")
        for name in ("slurmd", "slurmctld"):
            self._terminate(name)

    def _terminate(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        # Each daemon leads its own session: its process group holds what it
        # started (slurmstepd and the jobs' processes with proctrack/linuxproc).
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        self._stop_slurm()
        self._terminate("munged")


def start_cluster(gpu: bool = True) -> SlurmCluster:
    """A started cluster in a fresh folder under /tmp (short: munge's socket
    path must fit in 108 bytes)."""
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="mirflow-slurm-")))
    try:
        return cluster.start(gpu=gpu)
    except BaseException:
        cluster.stop()
        raise
