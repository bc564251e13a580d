"""numba's JIT cache, safe when many mirflow processes start at once.

librosa (and resampy) compile their inner loops with numba's ``cache=True``.
numba's on-disk cache is not safe for concurrent writers: two processes that
compile different signatures of one function at the same moment both give
their entry the number 1, and the index can end up pointing one signature at
the other's machine code. Every process that later loads it segfaults. (Seen:
two processes on a cold cache, float32 and float64 audio, crashed in 2 of 3
tries; the features jobs of a fresh clone's first ``make run`` died this way.)

So mirflow never lets two processes share a writable numba cache:

- **Each process has a cache of its own.** On its first import of numba, a
  mirflow process points ``NUMBA_CACHE_DIR`` at a fresh temporary directory,
  removed at exit (and, if the process was killed, by the next mirflow process
  on the host). Cache files anywhere else, the ``__pycache__`` beside librosa's
  sources included, are never read, so a corrupt one left by an older run is
  harmless. A ``NUMBA_CACHE_DIR`` set by the user is overridden for the same
  reason.
- **It starts as a copy of a seed**, so a job does not pay the cold compile
  (about 40 s of the features stage's first call, against 6 s warm): a cache
  compiled once, serially, by one process (:func:`warm`), for one CPU and one
  set of package versions. ``make setup`` builds the seed for the machine it
  runs on, inside the environment. On a CPU without one (a cluster node of
  another kind), the first mirflow process to need it builds it under a file
  lock while the others on that kind of CPU wait, and all then copy it. Where
  the environment is read-only the seed goes to the user's cache directory.
- Anything the seed does not hold is compiled into the process's own
  directory: slower, never unsafe.

``mirflow``'s ``__init__`` registers the hook that calls :func:`private_cache`
when numba is first imported; this module is imported only then.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

#: Set in the one process that builds a seed: it compiles straight into this directory.
SEED_BUILD_ENV = "MIRFLOW_NUMBA_SEED_BUILD"
#: Where seeds live, when set (e.g. node-local or shared storage on a cluster).
SEED_DIR_ENV = "MIRFLOW_NUMBA_SEED_DIR"
#: The pid whose private cache ``NUMBA_CACHE_DIR`` names (a child must not share it).
OWNER_ENV = "MIRFLOW_NUMBA_CACHE_OWNER"
#: The packages whose jitted code the seed holds; a reinstall of one makes a new seed.
JITTED_PACKAGES = ("numba", "llvmlite", "librosa", "resampy")


def _cpu() -> str:
    """What numba's machine code depends on: the CPU's model and features."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features", "CPU part"):
                fields.setdefault(key, value.strip())
    return "|".join([platform.machine(), *sorted(f"{k}={v}" for k, v in fields.items())])


def _stamp(package: str) -> str:
    """The package's version on disk: its ``__init__``'s mtime and size (located, not imported)."""
    spec = find_spec(package)
    if spec is None or not spec.origin:
        return f"{package}:absent"
    stat = os.stat(spec.origin)
    return f"{package}:{stat.st_mtime_ns}:{stat.st_size}"


def seed_key() -> str:
    """Names the seed for this interpreter, CPU and set of jitted packages."""
    parts = [sys.version, _cpu(), *(_stamp(p) for p in JITTED_PACKAGES)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def seed_roots() -> list[Path]:
    """Where seeds live, in order: inside the environment, then the user's cache
    (or only ``$MIRFLOW_NUMBA_SEED_DIR``, when set)."""
    if os.environ.get(SEED_DIR_ENV):
        return [Path(os.environ[SEED_DIR_ENV])]
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path(sys.prefix) / "var" / "mirflow-numba", user_cache / "mirflow" / "numba"]


def find_seed(key: str | None = None) -> Path | None:
    key = key or seed_key()
    return next((root / key for root in seed_roots() if (root / key).is_dir()), None)


def ensure_seed() -> Path | None:
    """The seed for this machine, built now (once, under a lock) if there is none.

    None when no seed can be had (nowhere writable, or the build failed): the
    caller then compiles into its private cache, which is slow but safe.
    """
    key = seed_key()
    found = find_seed(key)
    if found:
        return found
    for root in seed_roots():
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock = open(root / f"{key}.lock", "a")  # noqa: SIM115 (held across the build)
        except OSError:
            continue  # read-only: try the next place
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other processes of this CPU wait here
            if (root / key).is_dir():
                return root / key  # built while we waited
            return _build_seed(root, key)
    return None


def _build_seed(root: Path, key: str) -> Path | None:
    build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    env = {**os.environ, SEED_BUILD_ENV: str(build)}
    env.pop("NUMBA_CACHE_DIR", None)
    log.info("mirflow: compiling numba's cache for this CPU once (%s)", root / key)
    proc = subprocess.run(
        [sys.executable, "-m", "mirflow.jit", "warm"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        shutil.rmtree(build, ignore_errors=True)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        log.warning(
            "mirflow: could not build numba's cache seed (exit %d: %s); "
            "each process compiles its own",
            proc.returncode,
            tail[0],
        )
        return None
    build.rename(root / key)  # whole or absent: never a half-built seed
    return root / key


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(parent: Path) -> None:
    """Remove the private caches of processes on this host that are gone (killed)."""
    for entry in parent.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def private_cache() -> Path:
    """Point this process's numba at a cache of its own, seeded; return it."""
    building = os.environ.get(SEED_BUILD_ENV)
    if building:  # the one process building a seed writes into it directly
        os.environ["NUMBA_CACHE_DIR"] = building
        return Path(building)
    parent = Path(tempfile.gettempdir()) / f"mirflow-numba-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    _prune(parent)
    private = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))
    atexit.register(shutil.rmtree, private, True)
    seed = ensure_seed()
    if seed:
        shutil.copytree(seed, private, dirs_exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(private)
    os.environ[OWNER_ENV] = str(os.getpid())
    return private


def private_cache_safely() -> None:
    """:func:`private_cache`, called by ``mirflow``'s import hook just before numba's
    first import; with no temporary space, numba keeps its own default."""
    try:
        private_cache()
    except OSError as exc:
        log.warning("mirflow: no private numba cache (%s)", exc)


def adopt_loaded_numba() -> None:
    """For a process that imported numba before mirflow: the functions decorated
    from now on (librosa loads its submodules lazily) get the private cache."""
    if os.environ.get(OWNER_ENV) != str(os.getpid()):
        import numba.core.config  # noqa: PLC0415

        numba.core.config.CACHE_DIR = str(private_cache())


# ---- the seed's contents ------------------------------------------------------


def warm() -> None:
    """Compile what the workflow compiles: the features stage on a short synthetic
    track and crop, read back from files as the stage reads them (float32, mono and
    stereo), every default feature group on, with time series and stems. (The
    timbral models, off by default, compile what they use in their own job.)"""
    import numpy as np  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    from mirflow.audio import load_audio  # noqa: PLC0415
    from mirflow.feature_records import ANALYSIS_SAMPLE_RATE, stem_features, switches  # noqa: PLC0415
    from mirflow.features import Analysis, describe  # noqa: PLC0415
    from mirflow.time_series import track_curves  # noqa: PLC0415

    sr = ANALYSIS_SAMPLE_RATE
    t = np.arange(4 * sr) / sr
    rng = np.random.default_rng(0)
    clicks = (np.sin(2 * np.pi * 2 * t) > 0.99) * rng.standard_normal(t.size)
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t) + 0.5 * clicks
    beats = np.column_stack([np.arange(0.25, 4, 0.5), np.tile([1, 2, 3, 4], 4)[:8]])
    onsets = beats[:, 0]
    enabled = switches({})
    with tempfile.TemporaryDirectory() as tmp:
        for channels in (1, 2):
            path = Path(tmp) / f"warm-{channels}.wav"
            sf.write(path, np.tile(tone, (channels, 1)).T.astype(np.float32), sr)
            audio, rate = load_audio(path, sr=sr)
            analysis = Analysis(audio, rate, harmonic=audio)
            describe(audio, rate, beats, onsets, enabled, analysis)
            track_curves(analysis, beats)
            stem_features({"drums": analysis, "bass": analysis.span(0, rate)}, beats, enabled)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m mirflow.jit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "command",
        choices=["warm", "seed"],
        help="warm: compile into this process's cache (what a seed build runs); "
        "seed: make sure this machine has a seed, print where",
    )
    args = parser.parse_args(argv)
    if args.command == "warm":
        warm()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed = ensure_seed()
    print(
        f"mirflow: numba cache seed {seed}"
        if seed
        else "mirflow: no numba cache seed could be built"
    )
    return 0 if seed else 1


if __name__ == "__main__":
    sys.exit(main())
