"""Benchmark: the model passes on CPU, and why they are batch rules.

    .venv/bin/python benchmarks/model_passes.py [--crops N] [--full-size-aesthetics]

For each pass it cuts N crops of the default length (524288 samples, 11.9 s
at 44.1 kHz) from the demo library and runs the pass's real code
(mirflow.passes.PASSES) two ways:

- one batch job: one Python process imports the pass, loads the model once
  and processes all N crops (what a `<pass>_batch` job does);
- one job per crop: N processes, each importing, loading and processing one
  crop (what a per-crop rule would cost).

It prints import and model-load time, seconds per crop, both wall times and
the speed-up of the batch job. Models: basic-pitch is the real model (it ships
in its wheel); AudioBox and Essentia use the tiny random models of the test
fixtures, so their per-crop times measure the plumbing, not the real network.
`--full-size-aesthetics` also runs AudioBox at its real size (94 M parameters,
random weights: the real cost per crop, meaningless scores; slow on CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

JOB = """
import sys, time, json, importlib
start = time.perf_counter()
sys.path[:0] = {paths!r}
from pathlib import Path
from mirflow.passes import PASSES
importlib.import_module(PASSES[{stage!r}].model_class[0])
imported = time.perf_counter()
runner = PASSES[{stage!r}].runner({options!r}, {models!r})
loaded = time.perf_counter()
per_crop = []
for crop in {crops!r}:
    begin = time.perf_counter()
    runner.crop(Path(crop).parent, {{"crop": Path(crop).stem, "audio_file": Path(crop).name,
                                     "stem_files": {{}}}}, Path({files!r}))
    per_crop.append(time.perf_counter() - begin)
print(json.dumps({{"import_s": imported - start, "load_s": loaded - imported,
                  "per_crop_s": per_crop}}))
"""


def cut_crops(folder: Path, count: int, length: int = 524288, sr: int = 44100) -> list[str]:
    """``count`` crops of ``length`` samples, taken in turn from the demo tracks."""
    from mirflow.audio import load_audio, write_audio

    folder.mkdir(parents=True)
    crops: list[str] = []
    sources = sorted((REPO / "tests" / "data" / "library").glob("*.*"))
    sources = [s for s in sources if s.suffix != ".md"]
    while len(crops) < count:
        for source in sources:
            audio, _ = load_audio(source, sr=sr)
            start = (len(crops) // len(sources)) * length
            if audio.shape[1] < start + length or len(crops) >= count:
                continue
            path = folder / f"crop_{len(crops):03d}.flac"
            write_audio(path, audio[:, start : start + length], sr, "PCM_24")
            crops.append(str(path))
    return crops


def full_size_audiobox(path: Path) -> Path:
    """The real AudioBox architecture at its real size, random weights."""
    import torch
    from audiobox_aesthetics.model import aes
    from model_fixtures.audiobox_tiny import TINY_TARGET_TRANSFORM

    from mirflow.aesthetics import MODEL_CFG_KEYS

    model = aes.AesMultiOutput(target_transform=TINY_TARGET_TRANSFORM)
    cfg = {key: getattr(model, key) for key in MODEL_CFG_KEYS}
    cfg["precision"] = "32"  # as the official checkpoint stores it (the class holds a dtype)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "model_cfg": cfg, "target_transform": TINY_TARGET_TRANSFORM},
               path)  # fmt: skip
    return path


def run_job(stage: str, options: dict, models: Path, crops: list[str], files: Path) -> dict:
    code = JOB.format(
        paths=[str(REPO / "scripts")], stage=stage, options=options, models=str(models),
        crops=crops, files=str(files),
    )  # fmt: skip
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"{stage} job failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=6, help="crops per pass (default 6)")
    parser.add_argument("--full-size-aesthetics", action="store_true",
                        help="also run AudioBox at its real size with random weights")  # fmt: skip
    args = parser.parse_args()

    from model_fixtures.audiobox_tiny import write_tiny_audiobox
    from model_fixtures.essentia_tiny import write_tiny_essentia_models

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="mirflow-bench-") as tmp:
        tmp = Path(tmp)
        models = tmp / "models"
        write_tiny_audiobox(models / "audiobox-aesthetics" / "tiny.pt")
        write_tiny_essentia_models(models)
        crops = cut_crops(tmp / "crops", args.crops)
        files = tmp / "files"
        files.mkdir()
        aesthetics = {
            **config["aesthetics"],
            "device": "cpu",
            "checkpoint": "audiobox-aesthetics/tiny.pt",
        }
        variants = [
            ("aesthetics", "AudioBox (tiny, random)", aesthetics),
            ("classifiers", "Essentia, TensorFlow (tiny)", {**config["classifiers"]}),
            ("classifiers", "Essentia, ONNX (tiny)", {**config["classifiers"], "backend": "onnx"}),
            ("transcription", "basic-pitch (real)", {**config["transcription"]}),
        ]
        if args.full_size_aesthetics:
            full_size_audiobox(models / "audiobox-aesthetics" / "full.pt")
            full = {**aesthetics, "checkpoint": "audiobox-aesthetics/full.pt"}
            variants.insert(1, ("aesthetics", "AudioBox (full size, random)", full))

        print(f"\n{len(crops)} crops of 11.9 s, CPU\n")
        print(
            "| pass | model | import s | load s | s per crop | batch job s "
            "| one job per crop s | batch speed-up |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for stage, label, options in variants:
            batch = run_job(stage, options, models, crops, files)
            singles = [run_job(stage, options, models, [crop], files) for crop in crops]
            per_crop_jobs = sum(s["wall_s"] for s in singles)
            print(
                f"| {stage} | {label} | {batch['import_s']:.2f} | {batch['load_s']:.2f} "
                f"| {statistics.median(batch['per_crop_s']):.3f} | {batch['wall_s']:.1f} "
                f"| {per_crop_jobs:.1f} | {per_crop_jobs / batch['wall_s']:.1f}x |"
            )


if __name__ == "__main__":
    main()
