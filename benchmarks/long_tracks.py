"""Benchmark: how each CPU stage's time and memory grow with the length of a track.

    .venv/bin/python benchmarks/long_tracks.py [--minutes 5 20 60 120] [--keep DIR]

For each length, a library of one track: the demo recordings back to back,
looped until the length is reached, as a mono 44.1 kHz 16-bit FLAC (written
block by block, so this script never holds the whole track). The workflow
runs on it as benchmarks/demo_pipeline.py runs it (2 cores, the default
stages, with rhythm.max_track_minutes raised so ingest takes the track).
Snakemake's benchmark file of each job gives its seconds and peak RSS, set
beside the memory the job declares (mirflow.memory on the run's config).

Prints one table per length, a summary table, and per rule a least-squares
line peak RSS = a + b x minutes (a for resources.mem_mb, b for
resources.mem_mb_per_minute), then flags each job that declares less than its
peak or more than 2.5x it. A failed run prints the failed rule and the tail of
Snakemake's stderr; its rows are marked failed and the next length runs.
``--keep DIR`` keeps each length's library and run under DIR/<minutes>min.
``--stems`` also separates the track (the tiny random HTDemucs of the tests,
on the CPU: the plumbing's memory and time, not a real model's) and runs the
stems rule, so the separate and stems rows appear.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "benchmarks"), str(REPO / "tests")]

from demo_pipeline import table  # noqa: E402

from mirflow.audio import load_audio  # noqa: E402
from mirflow.discovery import find_audio_files  # noqa: E402
from mirflow.memory import job_mem_mb  # noqa: E402

SAMPLE_RATE = 44100
DEMO_LIBRARY = REPO / "tests" / "data" / "library"
#: Benchmark folder (workflow/rules/*.smk ``benchmark:``) -> the rule's key in
#: config ``resources``: the batch rules write under their stage's name.
RESOURCE_KEYS = {
    "features": "features_batch",
    "aesthetics": "aesthetics_batch",
    "classifiers": "classifiers_batch",
    "transcription": "transcription_batch",
    "captions": "captions_batch",
}
#: A declared mem_mb above this many times the peak is flagged as wasteful.
OVER_RESERVE = 2.5


def write_long_track(library: Path, minutes: float, target: Path) -> float:
    """The library's recordings, looped to ``minutes``, as one FLAC; returns its seconds."""
    total = int(round(minutes * 60 * SAMPLE_RATE))
    written = 0
    with sf.SoundFile(target, "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC") as out:
        for path in itertools.cycle(find_audio_files(library)):
            if written >= total:
                break
            audio, _ = load_audio(path, sr=SAMPLE_RATE, mono=True)
            block = audio[0, : total - written]
            out.write(block)
            written += len(block)
    return written / SAMPLE_RATE


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in key by key, as Snakemake merges config files."""
    merged = dict(base)
    for key, value in overrides.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if nested else value
    return merged


def run_workflow(work: Path, overrides: dict) -> subprocess.CompletedProcess:
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(overrides))
    cmd = [
        str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config),
        "--profile", str(REPO / "profiles" / "local"), "--cores", "2", "--quiet", "all",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):  # "NA": the job ended before the first sample
        return None


def read_benchmarks(folder: Path) -> dict[str, tuple[float, float | None]]:
    """``{benchmark folder: (seconds, peak RSS MB)}``: seconds summed over its jobs, RSS the max."""
    measured = {}
    for rule_dir in sorted(p for p in folder.glob("*") if p.is_dir()):
        seconds, peaks = 0.0, []
        for tsv in sorted(rule_dir.glob("*.tsv")):
            with tsv.open() as handle:
                for row in csv.DictReader(handle, delimiter="\t"):
                    seconds += _number(row.get("s")) or 0.0
                    peaks.append(_number(row.get("max_rss")))
        peaks = [p for p in peaks if p is not None]
        measured[rule_dir.name] = (seconds, max(peaks) if peaks else None)
    return measured


def failed_rules(stderr: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"Error in rule (\w+)", stderr)))


def stems_config(models_dir: Path) -> dict:
    """Config that separates with the tests' tiny HTDemucs, written into ``models_dir``."""
    from model_fixtures.demucs_tiny import write_tiny_htdemucs  # noqa: PLC0415

    name = write_tiny_htdemucs(models_dir / "demucs", name="tiny_htdemucs")
    return {
        "models_dir": str(models_dir),
        "source_separation": {
            "enabled": True, "backend": "demucs", "device": "cpu", "threads": 2,
            "demucs": {"model": name},
        },
    }  # fmt: skip


def measure(minutes: float, base: Path, library: Path, stems: bool = False) -> list[dict]:
    """One run of a ``minutes``-long track; a row per benchmarked rule (and per failed rule)."""
    (base / "library").mkdir(parents=True)
    (base / "run").mkdir()
    track = base / "library" / f"long_{minutes:g}min.flac"
    audio_s = write_long_track(library, minutes, track)
    output = base / "run" / "out"
    overrides = {
        "input": str(track.parent),
        "output": str(output),
        "rhythm": {"max_track_minutes": minutes + 1},
    }
    if stems:
        overrides.update(stems_config(base / "models"))
    print(f"running {minutes:g} min ({track.stat().st_size / 2**20:.0f} MB FLAC) ...",
          file=sys.stderr, flush=True)  # fmt: skip
    done = run_workflow(base / "run", overrides)
    failed = []  # benchmark folders of the failed rules
    if done.returncode:
        rules = failed_rules(done.stderr)
        folders = {key: folder for folder, key in RESOURCE_KEYS.items()}
        failed = [folders.get(rule, rule) for rule in rules]
        tail = "\n".join(done.stderr.rstrip().splitlines()[-25:])
        print(f"{minutes:g} min: the run failed (exit {done.returncode}), rule(s): "
              f"{', '.join(rules) or 'unknown'}\n{tail}\n", file=sys.stderr)  # fmt: skip
    config = deep_merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), overrides)
    measured = read_benchmarks(output / "benchmarks")
    rows = []
    for rule in dict.fromkeys([*measured, *failed]):
        seconds, peak = measured.get(rule, (None, None))
        rows.append({
            "rule": rule,
            "minutes": audio_s / 60,
            "seconds": seconds,
            "rtf": audio_s / seconds if seconds else None,
            "peak": peak,
            "declared": job_mem_mb(RESOURCE_KEYS.get(rule, rule), audio_s / 60,
                                   config.get("resources", {})),
            "status": "FAILED" if rule in failed else "failed" if done.returncode else "ok",
        })  # fmt: skip
    return rows


def cells(row: dict) -> list[str]:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    ratio = row["declared"] / row["peak"] if row["peak"] else None
    return [row["rule"], fmt(row["minutes"], ".1f"), fmt(row["seconds"], ".1f"),
            fmt(row["rtf"], ".1f") + ("x" if row["rtf"] else ""), fmt(row["peak"], ".0f"),
            str(row["declared"]), fmt(ratio, ".2f"), row["status"]]  # fmt: skip


HEADER = ["rule", "minutes", "s", "realtime", "peak MB", "mem_mb", "mem_mb/peak", "run"]


def fits(rows: list[dict]) -> list[str]:
    """Per rule, ``a MB + b MB/min`` fitted to its peaks over the lengths measured."""
    lines = []
    for rule in dict.fromkeys(r["rule"] for r in rows):
        points = sorted({(r["minutes"], r["peak"]) for r in rows
                         if r["rule"] == rule and r["peak"] is not None})  # fmt: skip
        if len({minutes for minutes, _ in points}) < 2:
            measured = ", ".join(f"{peak:.0f} MB at {minutes:.1f} min" for minutes, peak in points)
            lines.append(f"{rule}: fewer than two lengths measured ({measured or 'none'})")
            continue
        slope, intercept = np.polyfit(*zip(*points, strict=True), 1)
        lines.append(f"{rule}: {intercept:.0f} MB + {slope:.1f} MB/min")
    return lines


def flags(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r["peak"] is None:
            continue
        if r["declared"] < r["peak"]:
            why = "below its peak"
        elif r["declared"] > OVER_RESERVE * r["peak"]:
            why = f"over {OVER_RESERVE}x its peak"
        else:
            continue
        lines.append(f"{r['rule']} at {r['minutes']:.1f} min: declares {r['declared']} MB, "
                     f"peak {r['peak']:.0f} MB ({why})")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 20, 60, 120])
    parser.add_argument("--keep", type=Path, help="keep each length's library and run here")
    parser.add_argument("--stems", action="store_true", help="separate too (tiny HTDemucs, CPU)")
    args = parser.parse_args()

    rows = []
    for minutes in args.minutes:
        parent = args.keep or Path(tempfile.mkdtemp(prefix="mirflow-bench-long-"))
        base = parent / f"{minutes:g}min"
        try:
            length_rows = measure(minutes, base, DEMO_LIBRARY, args.stems)
        finally:
            if not args.keep:
                shutil.rmtree(parent, ignore_errors=True)
        print(table(f"{minutes:g}-minute track", HEADER, [cells(r) for r in length_rows]))
        print(flush=True)
        rows += length_rows

    order = list(dict.fromkeys(r["rule"] for r in rows))
    by_rule = sorted(rows, key=lambda r: (order.index(r["rule"]), r["minutes"]))
    print(table("Summary (every length)", HEADER, [cells(r) for r in by_rule]))
    print("\nPeak RSS = a + b x minutes (least squares; resources.mem_mb, mem_mb_per_minute):")
    print("\n".join(f"  {line}" for line in fits(rows)))
    flagged = flags(rows)
    print(f"\nDeclared mem_mb below the peak or above {OVER_RESERVE}x it:")
    print("\n".join(f"  {line}" for line in flagged) if flagged else "  none")


if __name__ == "__main__":
    main()
