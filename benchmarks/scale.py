"""Benchmark: dry-run time and peak memory of the workflow on large synthetic libraries.

    .venv/bin/python benchmarks/scale.py [--tracks 1000 10000] [--passes default all]
        [--noop 1000] [--timeout S] [--max-rss-gb G] [--repo DIR] [--set KEY=VALUE]
        [--keep DIR]

Discovery and DAG building never read audio, so a library of empty files named
like audio (``Artist 0001/Album 03/07 Title.flac``, nested as a real library
is) costs the workflow what a real one does before the first job. For each
size and pass set it runs the command the README gives,

    snakemake -n --profile profiles/local --configfile <size's config>

in a fresh working folder, and reports the wall time, split in two where the
log shows the step: start-up + parse (Python and Snakemake import, the
Snakefile, discovery and the batch plan of common.smk, up to "Building DAG of
jobs...") and DAG + dry-run (jobs, needrun, the per-job listing), the CPU
time (steadier than wall time on a shared machine), the jobs per track, and
the peak RSS (the child's own rusage).

Pass sets: ``default`` is config/config.yaml as shipped with no models in
models_dir (separation, aesthetics, classifiers and captions are off,
transcription is on); ``all`` turns every stage and pass on, with empty
placeholder model files (a dry-run loads no model).

The no-op re-run (``--noop N``) needs a finished library of N tracks. Making
one for real would take hours (madmom per track), so it is fabricated: the
workflow first runs for real on two short generated tracks (about half a
minute), then each output file of the first track is replicated for the N
synthetic track ids (ids in file names and records replaced, audio files
sparse: nothing reads them), keeping the real run's modification times so
every output is newer than its inputs; the aggregate outputs (tracks.tsv,
exports, summary, report) are copied as they are. Each finished track names
its transcription batch in transcription.json, as a real one does, batched
like a real run. Snakemake's records (.snakemake/metadata: code, params,
input of each output) are the model track's with paths, id and batch
replaced, so the re-run reads and compares them as it would after a real
run. It then times `snakemake -n` and the real `snakemake` on it; the
"result" column is Snakemake's own verdict ("nothing to be done").

A run is stopped past ``--timeout`` seconds or ``--max-rss-gb`` of memory and
reported as such, with how far it got. ``--repo`` measures another checkout's
workflow (a patched copy, say) with this script; ``--set`` adds a config
option to every run (``--set shard=0/16``: one shard's dry-run; ``--set
shard=merge``: the merge, README "Large libraries (10k-100k tracks)").

Measured here (2 shared cores, Snakemake 9.27.1; about 10 % run to run):

    tracks  run                           jobs     parse s  total s  peak RSS MB
    1k      dry-run, default passes        6,068    1.4      12.7      311
    1k      dry-run, all passes           10,382    1.6      20.4      405
    10k     dry-run, default passes       60,630    2.3     109.8    1,502
    10k     dry-run, all passes          103,755    3.2     181.9    2,494
    10k     dry-run, shard=0/16            3,451    1.7       8.1      260
    100k    dry-run, shard=0/100           5,912    5.7      16.1      365
    100k    dry-run, shard=0/16           37,298    6.2      68.9    1,033
    100k    dry-run, shard=merge               5    7.0       7.5      343
    1k      no-op re-run (snakemake)           0    1.4       8.1      308
    1k      no-op re-run, shard=0/2            0    1.3       4.8      242

The time is Snakemake's, about 1.1 ms (no-op) to 1.8 ms (dry-run) per job;
the workflow's own parse (discovery, ids, batch plan) is 0.4 s at 1k and
about 4 s at 100k tracks. Hence shards of 500-1,000 tracks for large
libraries: one graph of 100k tracks does not fit in 6 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

#: Targets from issue 6, for the note under the table.
TARGETS = "targets: 10k-track dry-run <= 10 s and <= 1 GB; 1k-track no-op re-run <= 5 s"

#: Words of the synthetic titles; some are not ASCII, as in real libraries
#: (discovery transliterates them into ids).
WORDS = ["Night", "Café", "Blue", "Überall", "River", "Señor", "Echo", "Ørsted", "Light", "Déjà"]
EXTENSIONS = [".flac"] * 6 + [".mp3"] * 3 + [".ogg"]

#: Log lines that end a phase of a run.
PARSED = "Building DAG of jobs..."
DAG_BUILT = ("Job stats:", "Nothing to be done")


# ---- synthetic libraries --------------------------------------------------


def make_library(root: Path, tracks: int, mtime: float | None = None) -> None:
    """``tracks`` empty files in ``Artist/Album/NN Title.ext`` folders (10 tracks
    an album, 10 albums an artist), all with modification time ``mtime``."""
    for index in range(tracks):
        artist, album, number = index // 100, (index // 10) % 10, index % 10 + 1
        folder = root / f"Artist {artist:04d} {WORDS[artist % len(WORDS)]}" / f"Album {album:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{WORDS[index % len(WORDS)]} {WORDS[(index // 7) % len(WORDS)]} {index}"
        path = folder / f"{number:02d} {title}{EXTENSIONS[index % len(EXTENSIONS)]}"
        path.touch()
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def placeholder_models(models_dir: Path, config: dict) -> None:
    """Empty files wherever the config expects a model, so every pass is on."""
    from mirflow.models import missing_for
    from mirflow.passes import PASSES

    flamingo = models_dir / "music-flamingo"
    flamingo.mkdir(parents=True, exist_ok=True)
    (flamingo / "music-flamingo-hf.Q8_0.gguf").touch()
    (flamingo / "music-flamingo-hf.mmproj-f16.gguf").touch()
    for _ in range(3):  # a Demucs bag's yaml names the weights it needs: look again
        missing = [
            p
            for section in ("source_separation", *PASSES)
            for p in missing_for(section, config[section], models_dir)
        ]
        for path in missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        if not missing:
            return
    raise RuntimeError(f"placeholder models: still missing {missing}")


def pass_config(passes: str) -> dict:
    """Config overrides of a pass set (see the module docstring)."""
    if passes == "default":
        return {}
    everything = {"enabled": True}
    return {
        "source_separation": everything,
        **{name: everything for name in ["aesthetics", "classifiers", "transcription", "captions"]},
    }


def write_config(folder: Path, library: Path, passes: str, models_dir: Path | None,
                 extra: dict | None = None) -> Path:  # fmt: skip
    config = {"input": str(library), "output": str(folder / "out"), **pass_config(passes)}
    config.update(extra or {})
    if models_dir is not None:
        config["models_dir"] = str(models_dir)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---- running Snakemake ------------------------------------------------------


def snakemake_command(repo: Path, config_file: Path, dry_run: bool) -> list[str]:
    return [
        str(Path(sys.executable).parent / "snakemake"), "-s", str(repo / "workflow" / "Snakefile"),
        "--configfile", str(repo / "config" / "config.yaml"), str(config_file),
        "--profile", str(repo / "profiles" / "local"), "--cores", "2",
        *(["-n"] if dry_run else []),
    ]  # fmt: skip


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def run_snakemake(cmd: list[str], cwd: Path, timeout: float, max_rss_mb: float) -> dict:
    """Run ``cmd``; wall time, phase times, jobs and peak RSS (the child's rusage).

    The log is read as it comes, so the phases are timed by when their lines
    appear; a run past ``timeout`` or ``max_rss_mb`` is killed and reported.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, start_new_session=True,
    )  # fmt: skip
    marks: dict[str, float] = {}
    tail: list[str] = []
    found: dict[str, str] = {}

    def read_log() -> None:
        in_stats = False
        for line in proc.stdout:
            now = time.perf_counter() - start
            text = line.strip()
            if text == PARSED:
                marks.setdefault("parsed", now)
            if text.startswith(DAG_BUILT):
                marks.setdefault("dag", now)
                in_stats = text.startswith("Job stats:")
            if text.startswith("Nothing to be done"):
                found["verdict"] = "nothing to be done"
            if in_stats and text.startswith("total"):
                found.setdefault("jobs", text.split()[-1])
                in_stats = False
            tail[:] = [*tail[-20:], line.rstrip()]

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    stopped, peak_seen = "", 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - start
        peak_seen = max(peak_seen, rss_mb(proc.pid))
        if not stopped and (elapsed > timeout or peak_seen > max_rss_mb):
            stopped = "timeout" if elapsed > timeout else "memory cap"
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=10)
    result = {
        "seconds": seconds,
        "parse_s": marks.get("parsed"),
        "dag_s": marks.get("dag"),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": max(usage.ru_maxrss / 1024, peak_seen),
        "jobs": int(found["jobs"]) if "jobs" in found else None,
        "returncode": proc.returncode,
    }
    if stopped:
        reached = "DAG built" if "dag" in marks else "parsed" if "parsed" in marks else "parsing"
        result["result"] = f"stopped ({stopped}, {reached})"
    elif proc.returncode != 0:
        result["result"] = f"failed ({proc.returncode})"
        print("\n".join(tail), file=sys.stderr)
    else:
        result["result"] = found.get("verdict", "ok")
    return result


# ---- a finished library, fabricated ----------------------------------------


def tone_tracks(library: Path, count: int = 2, seconds: float = 14.0) -> None:
    """Short click-and-tone tracks, each long enough for one crop."""
    import numpy as np
    import soundfile as sf

    sr = 44100
    folder = library / "Template Artist" / "Template Album"
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    for index in range(count):
        audio = 0.2 * np.sin(2 * np.pi * 220 * (index + 1) * t)
        beat = 60 / (120 - 20 * index)
        click = 0.8 * np.exp(-np.arange(2000) / 200)
        for k in range(int(seconds / beat)):
            start = int(k * beat * sr)
            audio[start : start + 2000] += click[: len(audio[start : start + 2000])]
        stereo = np.stack([audio, audio], axis=1).astype(np.float32)
        sf.write(folder / f"{index + 1:02d} Template {index + 1}.flac", stereo, sr)


def finished_template(work: Path, repo: Path, timeout: float):
    """A finished output of two real tracks, and its first track (a discovery Track)."""
    from mirflow.discovery import discover

    library = work / "library"
    tone_tracks(library)
    config_file = write_config(work, library, "default", None)
    started = time.perf_counter()
    result = run_snakemake(snakemake_command(repo, config_file, dry_run=False), work, timeout,
                           float("inf"))  # fmt: skip
    if result["returncode"] != 0:
        raise RuntimeError("the template run failed (log above)")
    print(f"template: 2 real tracks finished in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)  # fmt: skip
    return discover(library)[0]


def replicate(src: Path, dest: Path, old: str, new: str, replace_text: bool) -> None:
    """Copy ``src`` to ``dest`` with ``old`` replaced by ``new`` in JSON text;
    audio and MIDI become sparse files of the same size (nothing reads them;
    the planner compares stem sizes with stems.json's). Keeps the mtime."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if replace_text and src.suffix in {".json", ".BEATS", ".INFO", ".tsv"}:
        dest.write_text(src.read_text().replace(old, new))
    elif src.suffix in {".flac", ".wav", ".mp3", ".mid"} or src.name == ".snakemake_timestamp":
        dest.touch()
        os.truncate(dest, src.stat().st_size)
    else:
        shutil.copyfile(src, dest)
    mtime = src.stat().st_mtime
    os.utime(dest, (mtime, mtime))


def fabricate_finished(template: Path, model, output: Path, tracks: list, batch_size: int) -> None:
    """Make ``output`` look like a finished run over ``tracks`` (module docstring):
    ``model`` is the template's track whose outputs are replicated."""
    from mirflow.batches import make_batches

    per_track = [
        path for base in ("tracks", "dataset")
        for path in sorted((template / base / model.track).rglob("*")) if path.is_file()
    ]  # fmt: skip
    ids = [t.track for t in tracks]
    batch_of = {t: b for b, members in make_batches(ids, batch_size).items() for t in members}
    for track in ids:
        for src in per_track:
            relative = str(src.relative_to(template)).replace(model.track, track)
            replicate(src, output / relative, model.track, track, replace_text=True)
        record_file = output / "tracks" / track / "transcription.json"
        record = json.loads(record_file.read_text())
        record["data"]["batch"] = batch_of[track]
        mtime = record_file.stat().st_mtime
        record_file.write_text(json.dumps(record))
        os.utime(record_file, (mtime, mtime))
    aggregates = ["tracks.tsv", "exports.json", "summary.json", "manifest.parquet", "exports",
                  "report"]  # fmt: skip
    for name in aggregates:
        src = template / name
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for path in files:
            replicate(path, output / path.relative_to(template), "", "", replace_text=False)
    fabricate_metadata(template, model, output, tracks, batch_of)


def metadata_records(folder: Path) -> dict[str, str]:
    """Snakemake's per-output records in ``folder``/.snakemake/metadata: {output: JSON text}.

    A record's file name is the urlsafe base64 of the output's path, cut into
    folders (``@`` + chunk) when longer than a file name may be
    (snakemake.persistence.file).
    """
    root = folder / ".snakemake" / "metadata"
    records = {}
    for path in root.rglob("*"):
        if path.is_file():
            parts = [part.removeprefix("@") for part in path.relative_to(root).parts]
            records[urlsafe_b64decode("".join(parts)).decode()] = path.read_text()
    return records


def write_metadata_record(folder: Path, output: str, text: str) -> None:
    encoded = urlsafe_b64encode(output.encode()).decode()
    chunks = [encoded[i : i + 254] for i in range(0, len(encoded), 254)]
    path = folder.joinpath(".snakemake", "metadata", *["@" + c for c in chunks[:-1]], chunks[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fabricate_metadata(template: Path, model, output: Path, tracks: list, batch_of: dict) -> None:
    """Snakemake's records of each track's outputs, as the model track's with its
    paths, id and batch replaced (rule, code, params and input as a real run
    records them). Aggregate outputs (tracks.tsv, summary, exports, report) get
    none: their records list every track, and a missing record triggers nothing."""
    records = metadata_records(template.parent)
    own = {path: text for path, text in records.items()
           if model.track in path and "/passes/" not in path}  # fmt: skip
    model_batch = json.loads((template / "tracks" / model.track / "transcription.json")
                             .read_text())["data"]["batch"]  # fmt: skip

    def escaped(text: str) -> str:  # as the text appears inside a JSON string
        return json.dumps(str(text))[1:-1]

    for track in tracks:
        pairs = [(model.path, track.path), (model.relpath, track.relpath),
                 (template.parent, output.parent), (model.track, track.track),
                 (model_batch, batch_of[track.track])]  # fmt: skip
        for path, text in own.items():
            for old, new in pairs:
                path = path.replace(str(old), str(new))
                text = text.replace(escaped(old), escaped(new))
            write_metadata_record(output.parent, path, text)


def oldest_mtime(folder: Path) -> float:
    return min(p.stat().st_mtime for p in folder.rglob("*") if p.is_file())


# ---- the benchmark ----------------------------------------------------------


def dry_run_row(work: Path, repo: Path, tracks: int, passes: str, args) -> dict:
    folder = work / f"dry-{passes}-{tracks}"
    folder.mkdir(parents=True)
    make_library(folder / "library", tracks)
    models_dir = None
    if passes == "all":
        models_dir = folder / "models"
        config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
        for key, value in pass_config(passes).items():
            config[key] = {**config[key], **value}
        placeholder_models(models_dir, config)
    config_file = write_config(folder, folder / "library", passes, models_dir, args.set)
    result = run_snakemake(snakemake_command(repo, config_file, dry_run=True), folder,
                           args.timeout, args.max_rss_gb * 1024)  # fmt: skip
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return {"tracks": tracks, "passes": passes, **result}


def noop_rows(work: Path, repo: Path, sizes: list[int], args) -> list[dict]:
    from mirflow.discovery import discover

    model = finished_template(work / "template", repo, args.timeout)
    template = work / "template" / "out"
    batch_size = yaml.safe_load((repo / "config" / "config.yaml").read_text())["transcription"][
        "batch_size"
    ]
    rows = []
    for tracks in sizes:
        folder = work / f"noop-{tracks}"
        make_library(folder / "library", tracks, mtime=oldest_mtime(template) - 3600)
        started = time.perf_counter()
        fabricate_finished(template, model, folder / "out", discover(folder / "library"),
                           batch_size)  # fmt: skip
        print(f"fabricated {tracks} finished tracks in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        config_file = write_config(folder, folder / "library", "default", None, args.set)
        for dry_run in (True, False):
            result = run_snakemake(snakemake_command(repo, config_file, dry_run), folder,
                                   args.timeout, args.max_rss_gb * 1024)  # fmt: skip
            rows.append({"tracks": tracks, "command": "snakemake -n" if dry_run else "snakemake",
                         **result})  # fmt: skip
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, nargs="*", default=[1000, 10000],
                        help="library sizes to dry-run")  # fmt: skip
    parser.add_argument("--passes", nargs="+", choices=["default", "all"],
                        default=["default", "all"],
                        help="default: the shipped config; all: every pass on")  # fmt: skip
    parser.add_argument("--noop", type=int, nargs="*", default=[1000],
                        help="finished library sizes to re-run (none: skip)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900, help="seconds per Snakemake run")
    parser.add_argument("--max-rss-gb", type=float, default=8, help="memory cap per run")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout whose workflow is measured")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config option of every run (a YAML value)")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args()
    args.set = dict(
        (key, yaml.safe_load(value)) for key, value in (item.split("=", 1) for item in args.set)
    )
    args.repo = args.repo.resolve()

    work = args.keep or Path(tempfile.mkdtemp(prefix="mirflow-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        dry = [dry_run_row(work, args.repo, n, p, args) for n in args.tracks for p in args.passes]
        noop = noop_rows(work, args.repo, args.noop, args) if args.noop else []
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"Synthetic libraries, workflow of {args.repo}, 2 cores; {TARGETS}")
    if dry:
        print("\nDry-run (`snakemake -n --profile profiles/local`)\n")
        print(markdown(
            ["tracks", "passes", "jobs", "jobs/track", "parse s", "DAG + dry-run s", "total s",
             "CPU s", "peak RSS MB", "result"],
            [[str(r["tracks"]), r["passes"], str(r["jobs"] or "-"),
              f"{r['jobs'] / r['tracks']:.2f}" if r["jobs"] else "-", seconds(r["parse_s"]),
              seconds(r["seconds"] - r["parse_s"] if r["parse_s"] else None),
              seconds(r["seconds"]), seconds(r["cpu_s"]), f"{r['peak_rss_mb']:.0f}", r["result"]]
             for r in dry],
        ))  # fmt: skip
    if noop:
        print("\nNo-op re-run of a finished library (fabricated; default passes)\n")
        print(markdown(
            ["tracks", "command", "parse s", "total s", "CPU s", "peak RSS MB", "result"],
            [[str(r["tracks"]), r["command"], seconds(r["parse_s"]), seconds(r["seconds"]),
              seconds(r["cpu_s"]), f"{r['peak_rss_mb']:.0f}", r["result"]] for r in noop],
        ))  # fmt: skip


if __name__ == "__main__":
    main()
