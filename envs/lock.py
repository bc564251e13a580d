"""The environment lock, envs/requirements.lock: write it, or check an environment against it.

    python3 envs/lock.py              # resolve afresh and rewrite the lock (needs the registry)
    .venv/bin/python envs/lock.py --check   # exit 1 unless .venv holds exactly the lock
    .venv/bin/python envs/lock.py --sync    # remove what the lock does not hold, then --check

The lock is pip's own resolution, read from its report (`pip install --dry-run
--report`, run in an empty virtual environment): the project with its test
tools under the top-level pins of envs/constraints.txt, plus basic-pitch,
beat-this and timbral-models, which are installed --no-deps (basic-pitch's
declared dependencies pull TensorFlow and numpy 1.x; beat-this's, torchaudio,
which mirflow does not import: see mirflow.beat_this_tracker; timbral-models
asks for the retired `sklearn` package, whose install fails, where what it
imports is scikit-learn, already in the lock). The set-up (envs/setup.sh) installs the
lock --no-deps, so the environment is exactly the lock, whatever the registry
serves on the day.

Two deliberate gaps, each said in the lock's header:
- torchvision and torchaudio: pip resolves them (audio-separator's chain asks
  for them) as CUDA builds that cannot load beside the CPU torch, and no
  mirflow code path imports them; they are left out, so never installed.
- torch's build: the lock holds this machine's CPU wheel (2.13.0+cpu). The
  set-up's TORCH_INDEX route installs a CUDA build of the same version
  instead, which brings its runtime wheels (nvidia-*, triton) pinned exactly
  by torch's own metadata; --check accepts that build label and those wheels,
  and nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ENVS = Path(__file__).resolve().parent
REPO = ENVS.parent
LOCK = ENVS / "requirements.lock"
CONSTRAINTS = ENVS / "constraints.txt"
#: Installed with --no-deps (see the module docstring).
NO_DEPS = ["basic-pitch", "beat-this", "timbral-models"]
#: Resolved but never installed (see the module docstring).
LEFT_OUT = {"torchvision", "torchaudio"}
#: The project itself is installed editable, from the work tree.
PROJECT = "mirflow"

HEADER = """\
# mirflow's environment, locked: every distribution `make setup` installs into
# .venv, at one exact version. Written by `python3 envs/lock.py` from pip's
# resolver report, on Linux x86_64 with CPython 3.11, from pyproject.toml and the
# top-level pins in envs/constraints.txt. Do not edit by hand: change those and
# regenerate (README "What the set-up does").
# - envs/setup.sh installs these lines with --no-deps, torch first. Compare with
#   `.venv/bin/pip freeze --all --exclude-editable`: the same lines.
# - torch is this machine's CPU wheel; TORCH_INDEX=<PyTorch index> installs a
#   CUDA build of the same version, with the runtime wheels it pins.
# - torchvision and torchaudio are left out on purpose: resolved as CUDA builds
#   that cannot load beside the CPU torch, and imported by no mirflow code path.
"""


def canonical(name: str) -> str:
    """PEP 503 normalised name: what pip compares."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """A version without its local build label (2.13.0+cpu -> 2.13.0)."""
    return version.split("+", 1)[0]


# ---- writing ----------------------------------------------------------------


def _resolve(python: Path, report: Path, args: list[str]) -> list[dict]:
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--quiet",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        "--constraint",
        str(CONSTRAINTS),
        *args,
    ]
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads(report.read_text())["install"]


def resolve() -> dict[str, str]:
    """``{name: version}`` of every distribution the set-up installs, as pip resolves it now."""
    with tempfile.TemporaryDirectory(prefix="mirflow-lock-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        installs = _resolve(
            python, Path(tmp) / "main.json", ["pip", "setuptools", "wheel", ".[test]"]
        )
        installs += _resolve(python, Path(tmp) / "nodeps.json", ["--no-deps", *NO_DEPS])
    pins = {item["metadata"]["name"]: item["metadata"]["version"] for item in installs}
    return {
        name: version
        for name, version in pins.items()
        if canonical(name) not in LEFT_OUT | {PROJECT}
    }


def write(pins: dict[str, str], path: Path = LOCK) -> None:
    """One ``name==version`` line each, as ``pip freeze --all`` prints them."""
    lines = [f"{name}=={pins[name]}\n" for name in sorted(pins, key=str.lower)]
    body = HEADER + "".join(lines)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body)
    tmp.replace(path)


# ---- checking ---------------------------------------------------------------


def read(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def installed() -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, requirement names)}`` of this interpreter's environment."""
    from importlib.metadata import distributions  # noqa: PLC0415

    from packaging.requirements import Requirement  # noqa: PLC0415

    found = {}
    for dist in distributions():
        requires = [canonical(Requirement(r).name) for r in dist.requires or []]
        found[canonical(dist.metadata["Name"])] = (dist.version, requires)
    return found


def differences(pins: dict[str, str], present: dict[str, tuple[str, list[str]]]) -> list[str]:
    """What keeps ``present`` from being exactly the lock ``pins``; empty when it is.

    Versions must be equal, but for torch's build label (the TORCH_INDEX route
    installs 2.13.0+cu126 where the lock says 2.13.0+cpu); the runtime wheels an
    installed torch requires are accepted (a CUDA build's nvidia-* and triton).
    """
    found = {name: f"{name}=={present[name][0]} is installed but not in the lock"
             for name in extras(pins, present)}
    for name, (version, _) in present.items():
        if name in pins and version != pins[name] and not (
            name == "torch" and public(version) == public(pins[name])
        ):
            found[name] = f"{name} is {version}, the lock says {pins[name]}"
    problems = [found[name] for name in sorted(found)]
    problems += [
        f"{name}=={pins[name]} is in the lock but not installed"
        for name in sorted(set(pins) - set(present))
    ]
    return problems


def extras(pins: dict[str, str], present: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Installed distributions the lock does not hold (an older set-up's leftovers)."""
    torch_runtime = set(present.get("torch", ("", []))[1])
    return sorted(set(present) - set(pins) - torch_runtime - {PROJECT})


def check() -> int:
    problems = differences(read(), installed())
    for problem in problems:
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        print(
            f"lock: {sys.prefix} differs from {LOCK.relative_to(REPO)} in {len(problems)} "
            "distribution(s); `make setup` reinstalls from the lock",
            file=sys.stderr,
        )
        return 1
    print(
        f"lock: {sys.prefix} holds exactly {LOCK.relative_to(REPO)} ({len(read())} distributions)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare this interpreter's environment with the lock; exit 1 on any difference",
    )
    parser.add_argument(
        "--sync", action="store_true", help="uninstall what the lock does not hold, then --check"
    )
    args = parser.parse_args(argv)
    if args.sync:
        leftovers = extras(read(), installed())
        if leftovers:
            print(
                f"lock: removing {len(leftovers)} distribution(s) not in the lock:",
                *leftovers,
            )
            subprocess.run(
                [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *leftovers],
                check=True,
            )
        return check()
    if args.check:
        return check()
    pins = resolve()
    write(pins)
    print(f"lock: wrote {LOCK.relative_to(REPO)} ({len(pins)} distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
