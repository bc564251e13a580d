"""The environment is the lock (envs/requirements.lock), and envs/mirflow.yaml
(conda, for clusters) pins what envs/constraints.txt pins."""

import importlib.util
import re

import yaml

from conftest import REPO

# Development and test tools; basic-pitch, beat-this and timbral-models
# (installed --no-deps, see README).
NOT_IN_CONDA = {
    "pytest",
    "ruff",
    "snakefmt",
    "stempeg",
    "basic-pitch",
    "beat-this",
    "timbral-models",
}


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "envs" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / "mirflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    requirements = [p for p in pip if not p.startswith("-")]  # pip options (an index)
    return {name.lower(): version for name, version in (re.split("==", p) for p in requirements)}


def test_conda_env_matches_constraints():
    # Exactly, build label included: the conda env takes torch's +cpu build
    # from PyTorch's CPU index, as the lock does.
    expected = {k: v for k, v in constraints().items() if k not in NOT_IN_CONDA}
    assert conda_pins() == expected


def test_every_rule_uses_an_env_that_exists():
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', rule_file.read_text()):
            assert (rule_file.parent / env).resolve().is_file(), (rule_file.name, env)


def _lock_tool():
    spec = importlib.util.spec_from_file_location("lock", REPO / "envs" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_environment_is_exactly_the_lock():
    """Every installed distribution is in the lock at its version, and every
    locked one is installed (the editable mirflow aside)."""
    lock = _lock_tool()
    assert lock.differences(lock.read(), lock.installed()) == []


def test_the_lock_check_finds_a_stray_a_missing_and_a_moved_version():
    lock = _lock_tool()
    pins = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "scipy": "1.17.1"}
    present = {
        "numpy": ("2.4.7", []),
        "torch": ("2.13.0+cu126", ["nvidia-cudnn-cu12"]),
        "nvidia-cudnn-cu12": ("9.1", []),
        "six": ("1.17.0", []),
        "mirflow": ("0.1.0", []),
    }
    assert lock.differences(pins, present) == [
        "numpy is 2.4.7, the lock says 2.4.6",
        "six==1.17.0 is installed but not in the lock",
        "scipy==1.17.1 is in the lock but not installed",
    ]  # a CUDA torch of the locked version, with the runtime it requires, passes


def test_the_lock_pins_every_top_level_pin():
    pins = _lock_tool().read()
    for name, version in constraints().items():
        assert pins[re.sub(r"[-_.]+", "-", name)] == version, name
