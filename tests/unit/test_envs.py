"""envs/mirflow.yaml (conda, for clusters) must pin what envs/constraints.txt pins."""

import re

import yaml

from conftest import REPO

# Development and test tools, and basic-pitch (installed --no-deps, see README).
NOT_IN_CONDA = {"pytest", "ruff", "snakefmt", "stempeg", "basic-pitch"}


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
    return {name.lower(): version for name, version in (re.split("==", p) for p in pip)}


def test_conda_env_matches_constraints():
    expected = {k: v for k, v in constraints().items() if k not in NOT_IN_CONDA}
    assert conda_pins() == expected


def test_every_rule_uses_an_env_that_exists():
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', rule_file.read_text()):
            assert (rule_file.parent / env).resolve().is_file(), (rule_file.name, env)
