"""Benchmark: separation per backend, tiny models of the real architectures, CPU.

    .venv/bin/python benchmarks/separation.py [--tracks N]

For each backend it builds a tiny random model (the test fixtures), then
separates the first N demo tracks two ways:

- direct: one Python process that imports the backend, loads the model and
  calls it on each file (load, separate, fold, write the stems): the
  backend's own API with nothing around it;
- workflow: the `separate` rule's job (Snakemake's per-job benchmark), which
  does the same work inside the workflow.

It prints seconds per audio second, model loads per job, and the ratio
workflow / direct (the rule's overhead). Real weights are far slower per
second than the tiny models: these figures measure the plumbing, not a model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

DIRECT = """
import sys, time, json
start = time.perf_counter()
sys.path[:0] = {paths!r}
from pathlib import Path
from mirflow.separation.batch import run_batch, loads_in_this_process
model, results = run_batch({members!r}, Path({out!r}), {config!r}, {models!r})
print(json.dumps({{"seconds": time.perf_counter() - start, "loads": loads_in_this_process(),
                  "failed": [t for t, r in results.items() if not r.ok]}}))
"""


def build_models(models_dir: Path) -> dict[str, dict]:
    from model_fixtures.demucs_tiny import write_tiny_htdemucs
    from model_fixtures.roformer_tiny import write_tiny_bs_roformer

    demucs_name = write_tiny_htdemucs(models_dir / "demucs", name="tiny_htdemucs")
    roformer_file = write_tiny_bs_roformer(models_dir)
    return {
        "demucs": {"backend": "demucs", "demucs": {"model": demucs_name}},
        "bs_roformer": {"backend": "bs_roformer", "bs_roformer": {"model_file": roformer_file}},
    }


def separation_config(backend_options: dict) -> dict:
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["source_separation"]
    base.update({"enabled": True, "device": "cpu", "threads": 1, "batch_size": 64})
    for key, value in backend_options.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


def run_direct(members, config, models_dir) -> dict:
    out = Path(tempfile.mkdtemp(prefix="mirflow-bench-sep-"))
    code = DIRECT.format(
        paths=[str(REPO / "scripts")], members=members, out=str(out), config=config,
        models=str(models_dir),
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_workflow(library: Path, config: dict, models_dir: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mirflow-bench-sepwf-"))
    config_file = work / "config.yaml"
    config_file.write_text(
        yaml.safe_dump({
            "input": str(library), "output": str(work / "out"), "models_dir": str(models_dir),
            "source_separation": config,
            "stages": {"features": False, "crops": False, "crop_features": False},
        })
    )  # fmt: skip
    cmd = [
        str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config_file),
        "--profile", str(REPO / "profiles" / "local"), "--cores", "1", "--quiet", "all",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=work, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    summary = json.loads((work / "out" / "summary.json").read_text())
    log = "\n".join(p.read_text() for p in (work / "out" / "logs" / "separate").glob("*.log"))
    loads = [int(line.rsplit("=", 1)[1]) for line in log.splitlines() if "model_loads=" in line]
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": summary["time_per_rule"]["separate"]["seconds"], "loads": loads,
            "failed": summary["tracks_failed"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=3, help="first N demo tracks (sorted)")
    args = parser.parse_args()

    from mirflow.discovery import discover
    from mirflow.ingest import probe

    demo = discover(REPO / "tests" / "data" / "library")
    chosen = sorted(demo, key=lambda t: t.track)[: args.tracks]
    library = Path(tempfile.mkdtemp(prefix="mirflow-bench-lib-"))
    for track in chosen:
        shutil.copy(track.path, library / track.path.name)
    audio_s = sum(probe(t.path)["duration_s"] for t in chosen)
    models_dir = Path(tempfile.mkdtemp(prefix="mirflow-bench-models-"))
    backends = build_models(models_dir)
    members = [[t.track, str(library / t.path.name)] for t in chosen]

    rows = []
    for name, options in backends.items():
        config = separation_config(options)
        direct = run_direct(members, config, models_dir)
        workflow = run_workflow(library, config, models_dir)
        rows.append([
            name, f"{direct['seconds'] / audio_s:.3f}", f"{workflow['seconds'] / audio_s:.3f}",
            str(direct["loads"]), ",".join(map(str, workflow["loads"])),
            f"{workflow['seconds'] / direct['seconds']:.2f}",
        ])  # fmt: skip
    header = ["backend", "direct s/audio s", "rule s/audio s", "loads direct", "loads per job",
              "rule/direct"]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"Separation, tiny models, CPU, 1 thread: {len(chosen)} tracks, {audio_s:.1f} s of audio")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    shutil.rmtree(models_dir, ignore_errors=True)
    shutil.rmtree(library, ignore_errors=True)


if __name__ == "__main__":
    main()
