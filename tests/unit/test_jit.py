"""numba's JIT cache under parallel jobs (mirflow.jit): private, seeded caches.

The regression this guards against: two processes compiling librosa's jitted
functions at once on a cold shared cache left an index pointing one signature
at another's machine code, and every later process segfaulted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from mirflow import jit

#: A process's first use of the features stage's numba code paths (chroma_cqt ->
#: estimate_tuning -> _parabolic_interpolation, onset strength, localmax, the
#: time series). Processes differ in dtype and order, as jobs on different
#: tracks and crops do, so that they compile different signatures at once.
FIRST_USE = textwrap.dedent("""
    import sys
    import mirflow  # the mechanism under test: its hook acts on numba's import
    if sys.argv[3] == "bare":  # the control: numba's own caching, as before mirflow.jit
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_BeforeNumba"]
    import librosa
    import numpy as np
    from mirflow import features
    dtype = np.float32 if sys.argv[1] == "32" else np.float64
    sr = 22050
    t = np.arange(3 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)
         + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(dtype)
    steps = [lambda: features.chroma(y, sr), lambda: features.spectral_shape(y, sr),
             lambda: librosa.onset.onset_detect(y=y, sr=sr),
             lambda: librosa.util.localmax(np.abs(y[::2]))]
    for step in steps if sys.argv[2] == "forward" else steps[::-1]:
        step()
    print("ok")
""")

VARIANTS = [("32", "forward"), ("64", "backward"), ("64", "forward"), ("32", "backward")]


def start(
    variant: tuple[str, str], env: dict[str, str], protected: bool = True
) -> subprocess.Popen:
    args = [sys.executable, "-c", FIRST_USE, *variant, "mirflow" if protected else "bare"]
    return subprocess.Popen(
        args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", jit.OWNER_ENV)}
    env.update(TMPDIR=str(tmp_path / "tmp"), **extra)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_at_once_on_a_cold_cache_all_succeed(tmp_path, round_):
    """Four processes at once, no seed and a shared NUMBA_CACHE_DIR inherited
    from the environment (as a cluster's default might set): every one finishes.
    Without mirflow's private caches this set-up crashed in 2 of 3 rounds."""
    shared = tmp_path / "shared-numba-cache"
    env = child_env(
        tmp_path, NUMBA_CACHE_DIR=str(shared), **{jit.SEED_DIR_ENV: str(tmp_path / "seeds")}
    )
    procs = [start(variant, env) for variant in VARIANTS]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for variant, (rc, out, err) in zip(VARIANTS, results, strict=True):
        assert rc == 0 and out.strip() == "ok", (variant, rc, err[-2000:])
    # One seed was built (by one process, the others waited), nothing was
    # written to the shared directory, and the private caches are gone.
    assert len(list((tmp_path / "seeds").glob("*/"))) == 1
    assert not shared.exists() or not any(shared.rglob("*.nb*"))
    assert not any((tmp_path / "tmp").rglob("*.nb*"))


@pytest.mark.slow
def test_leftover_corrupt_cache_files_are_never_read(tmp_path):
    """A cache corrupted as the race corrupts one (each index entry pointing at
    another signature's machine code), where numba would read it
    (NUMBA_CACHE_DIR): a process with numba's own caching fails on it, a
    mirflow process finishes."""
    seed = jit.ensure_seed()
    assert seed is not None
    corrupt = tmp_path / "corrupt-cache"
    shutil.copytree(seed, corrupt)
    swapped = 0
    for first in corrupt.rglob("*.1.nbc"):
        second = first.with_name(first.name.replace(".1.nbc", ".2.nbc"))
        if second.exists():
            data = first.read_bytes()
            first.write_bytes(second.read_bytes())
            second.write_bytes(data)
            swapped += 1
    assert swapped
    env = child_env(tmp_path, NUMBA_CACHE_DIR=str(corrupt))
    bare = start(VARIANTS[0], env, protected=False)
    assert bare.wait(timeout=600) != 0, "the corrupt files should break a process that reads them"
    protected = start(VARIANTS[0], env)
    rc = protected.wait(timeout=600)
    out, err = protected.communicate()
    assert rc == 0 and out.strip() == "ok", err[-2000:]


def test_each_process_gets_its_own_cache_seeded_from_the_seed(tmp_path):
    seed = jit.ensure_seed()
    assert seed is not None
    code = "import mirflow, numba, os; print(os.environ['NUMBA_CACHE_DIR'])"
    env = child_env(tmp_path)
    code += "; print(len(os.listdir(os.environ['NUMBA_CACHE_DIR'])))"
    dirs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert dirs[0][0] != dirs[1][0]
    assert all(int(n) == len(os.listdir(seed)) for _, n in dirs)
    assert not Path(dirs[0][0]).exists(), "a private cache is removed at exit"


def test_an_inherited_private_cache_is_replaced(tmp_path):
    """A child of a mirflow process (a Snakemake job of the main process) does
    not share its parent's cache."""
    code = "import mirflow, numba, os; print(os.environ['NUMBA_CACHE_DIR'])"
    parent_dir = str(tmp_path / "parents-cache")
    env = child_env(tmp_path, NUMBA_CACHE_DIR=parent_dir, **{jit.OWNER_ENV: "1"})
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out != parent_dir


def test_the_caches_of_killed_processes_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(jit.tempfile, "tempdir", None)
    parent = tmp_path / f"mirflow-numba-{os.getuid()}"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (parent / f"{dead}-abc").mkdir(parents=True)
    (parent / f"{os.getpid()}-live").mkdir()
    monkeypatch.setattr(jit, "ensure_seed", lambda: None)
    for name in ("NUMBA_CACHE_DIR", jit.OWNER_ENV):  # restored after the test
        monkeypatch.setenv(name, os.environ.get(name, ""))
    mine = jit.private_cache()
    names = {p.name for p in parent.iterdir()}
    assert f"{dead}-abc" not in names and f"{os.getpid()}-live" in names and mine.name in names


def test_seed_key_follows_the_cpu_and_the_packages(monkeypatch):
    key = jit.seed_key()
    assert key == jit.seed_key()
    monkeypatch.setattr(jit, "_cpu", lambda: "another-cpu")
    assert jit.seed_key() != key


def test_a_read_only_environment_seeds_in_the_users_cache(tmp_path, monkeypatch):
    """With the environment's seed folder unwritable the seed goes to the next
    place; the build itself is stubbed here (the slow tests build real ones)."""
    (tmp_path / "venv").write_text("")  # a file where a folder would go: mkdir fails, even as root
    read_only, user = tmp_path / "venv" / "var", tmp_path / "user-cache"
    monkeypatch.setattr(jit, "seed_roots", lambda: [read_only, user])
    monkeypatch.setattr(jit, "seed_key", lambda: "k")
    built = []

    def fake_build(root, key):
        built.append(root)
        (root / key).mkdir()
        return root / key

    monkeypatch.setattr(jit, "_build_seed", fake_build)
    assert jit.ensure_seed() == user / "k"
    monkeypatch.setattr(jit, "find_seed", lambda key=None: user / "k")
    assert jit.ensure_seed() == user / "k" and built == [user]  # found, not rebuilt


def test_waiting_processes_reuse_the_seed_one_process_built(tmp_path, monkeypatch):
    """The lock: a seed that appears while a process waits is not built again."""
    monkeypatch.setattr(jit, "seed_roots", lambda: [tmp_path])
    monkeypatch.setattr(jit, "seed_key", lambda: "k")
    monkeypatch.setattr(jit, "find_seed", lambda key=None: None)  # as if it was missing at first
    (tmp_path / "k").mkdir()  # ...and built by another process while this one waited
    monkeypatch.setattr(jit, "_build_seed", lambda root, key: pytest.fail("built twice"))
    assert jit.ensure_seed() == tmp_path / "k"
    assert (tmp_path / "k.lock").exists()
