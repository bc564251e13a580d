"""Benchmark: the demo library through the workflow vs. the same work done directly.

    .venv/bin/python benchmarks/demo_pipeline.py [--library DIR] [--repeat N]

"Direct" calls the same package functions (madmom, librosa, essentia... via
mirflow) for every track in plain Python processes, with no Snakemake: one
process for the 1-core figure, a pool of two for the 2-core one. The ratio
workflow / direct is what the workflow costs on top of the work (job start-up,
imports per job, scheduling, bookkeeping). Prints one table per comparison.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

STAGES = ["ingest", "rhythm", "crops", "features", "assemble"]


def load_config(overrides: dict) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(overrides)
    return config


def direct_track(args) -> dict[str, float]:
    """Every stage of one track, in this process; returns seconds per stage."""
    track_id, path, relpath, config, out = args
    from mirflow.assemble import assemble_track
    from mirflow.crops import CropOptions, crop_track
    from mirflow.feature_records import features_record
    from mirflow.ingest import ingest_track
    from mirflow.records import run_stage
    from mirflow.rhythm import analyze_track

    analyzer = _analyzer(config)
    base = Path(out) / "tracks" / track_id
    crops_dir = base / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    beats = base / f"{track_id}.BEATS"
    times: dict[str, float] = {}

    def timed(stage, upstream, compute):
        start = time.perf_counter()
        result = run_stage(stage, upstream, compute)
        times[stage] = time.perf_counter() - start
        return result

    various = tuple(config["metadata"]["various_artists"])
    source = timed("ingest", [], lambda: ingest_track(path, relpath, track_id, various))
    rhythm = timed("rhythm", [source], lambda: analyze_track(analyzer, path, beats))
    onsets = rhythm.data.get("onsets", [])
    options = CropOptions(**config["crops"])
    crops = timed(
        "crops", [source, rhythm], lambda: crop_track(track_id, path, beats, {}, options, crops_dir)
    )
    features = timed(
        "features",
        [source, rhythm, crops],
        lambda: features_record(
            path,
            beats,
            onsets,
            config["features"],
            crops.crops,
            time_series_path=base / f"{track_id}.timeseries.parquet",
        ),
    )
    start = time.perf_counter()
    assemble_track(
        track_id,
        [source, rhythm, crops, features],
        beats,
        crops_dir,
        Path(out) / "dataset" / track_id,
    )
    times["assemble"] = time.perf_counter() - start
    times["duration_s"] = float(source.track.get("duration_s") or 0.0)
    return times


_ANALYZER = None


def _analyzer(config):
    # One madmom model load per process, as a long-lived direct script would do.
    global _ANALYZER
    if _ANALYZER is None:
        from mirflow.rhythm import RhythmAnalyzer

        _ANALYZER = RhythmAnalyzer(
            tuple(config["rhythm"]["beats_per_bar"]), config["rhythm"]["onset_threshold"]
        )
    return _ANALYZER


def run_direct(library: Path, processes: int, config: dict) -> tuple[float, dict, float]:
    from mirflow.discovery import discover

    out = Path(tempfile.mkdtemp(prefix="mirflow-bench-direct-"))
    jobs = [(t.track, str(t.path), t.relpath, config, str(out)) for t in discover(library)]
    start = time.perf_counter()
    if processes == 1:
        results = [direct_track(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.map(direct_track, jobs, chunksize=1)
    wall = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    per_stage = defaultdict(float)
    for times in results:
        for stage in STAGES:
            per_stage[stage] += times.get(stage, 0.0)
    audio = sum(t["duration_s"] for t in results)
    return wall, dict(per_stage), audio


def run_workflow(library: Path, cores: int) -> tuple[float, dict, float]:
    work = Path(tempfile.mkdtemp(prefix="mirflow-bench-wf-"))
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({"input": str(library), "output": str(work / "out")}))
    cmd = [
        str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config),
        "--profile", str(REPO / "profiles" / "local"), "--cores", str(cores), "--quiet", "all",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=work,
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    wall = time.perf_counter() - start
    summary = json.loads((work / "out" / "summary.json").read_text())
    per_stage = {rule: t["seconds"] for rule, t in summary["time_per_rule"].items()}
    shutil.rmtree(work, ignore_errors=True)
    return wall, per_stage, summary["audio_duration_s"]


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def looped_library(library: Path, repeat: int) -> Path:
    """The library's recordings, each played ``repeat`` times back to back.

    Real music at the length of real songs: the workflow's cost per job is
    fixed, so its share shrinks as tracks get longer.
    """
    import numpy as np
    import soundfile as sf

    from mirflow.audio import load_audio
    from mirflow.discovery import find_audio_files

    target = Path(tempfile.mkdtemp(prefix=f"mirflow-bench-x{repeat}-"))
    for path in find_audio_files(library):
        audio, sr = load_audio(path)
        sf.write(target / f"{path.stem}.flac", np.tile(audio, repeat).T, sr, subtype="PCM_16")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=REPO / "tests" / "data" / "library")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="loop every recording this many times (4: the demo at typical song length)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.repeat > 1:
        args.library = looped_library(args.library, args.repeat)
    config = load_config({"input": str(args.library)})

    results = {}
    for cores in (1, 2):
        results[("workflow", cores)] = run_workflow(args.library, cores)
        results[("direct", cores)] = run_direct(args.library, cores, config)
        print(f"measured {cores} core(s)", file=sys.stderr)

    audio = results[("direct", 1)][2]
    for cores in (1, 2):
        rows = []
        for stage in STAGES:
            wf = results[("workflow", cores)][1].get(stage, 0.0)
            direct = results[("direct", cores)][1].get(stage, 0.0)
            rows.append(
                [
                    stage,
                    f"{wf:.1f}",
                    f"{audio / wf:.1f}x" if wf else "-",
                    f"{direct:.1f}",
                    f"{audio / direct:.1f}x" if direct else "-",
                    f"{wf / direct:.2f}" if direct else "-",
                ]
            )
        # Seconds summed over jobs (or tracks), so rtf is realtime per core.
        print(
            table(
                f"Per stage, {cores} core(s) ({audio:.1f} s of audio; seconds summed over "
                "jobs or tracks, so rtf is per core)",
                ["stage", "workflow s", "workflow rtf", "direct s", "direct rtf", "wf/direct"],
                rows,
            )
        )
        print()
    rows = []
    for cores in (1, 2):
        wf_wall = results[("workflow", cores)][0]
        d_wall = results[("direct", cores)][0]
        rows.append(
            [
                cores,
                f"{wf_wall:.1f}",
                f"{audio / wf_wall:.1f}x",
                f"{d_wall:.1f}",
                f"{audio / d_wall:.1f}x",
                f"{wf_wall / d_wall:.2f}",
            ]
        )
    print(
        table(
            "Whole run (wall clock)",
            ["cores", "workflow s", "workflow rtf", "direct s", "direct rtf", "wf/direct"],
            rows,
        )
    )
    speedup_wf = results[("workflow", 1)][0] / results[("workflow", 2)][0]
    speedup_direct = results[("direct", 1)][0] / results[("direct", 2)][0]
    print(f"\nspeed-up 1 -> 2 cores: workflow {speedup_wf:.2f}x, direct {speedup_direct:.2f}x")


if __name__ == "__main__":
    main()
