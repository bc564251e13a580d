"""Benchmark: the whole workflow's throughput with full-size random models, GPU or CPU.

    .venv/bin/python benchmarks/gpu_pipeline.py [--minutes 30] [--device auto|cpu|cuda]
        [--beat-this] [--separation demucs|bs_roformer|none]

It writes into a temporary folder (removed at the end):

- models: full-size, randomly initialised networks of the real architectures, in the files
  the workflow loads (benchmarks/full_size_models.py): htdemucs (41.5 M parameters), AudioBox
  Aesthetics (94 M), an EfficientNet-B0 Discogs-EffNet stand-in (bs64 .pb and .onnx) with the
  tiny heads, Beat This! final0 (20.3 M; with --beat-this). basic-pitch and madmom are the
  real models (they ship in their wheels). Music Flamingo is the TINY GGUF pair of the tests,
  and --separation bs_roformer uses the TINY BS-RoFormer (the SW model's yaml is not
  available offline): the table labels both as stand-ins;
- a library of --minutes of music: the demo recordings (tests/data/library), each looped to
  a song of 3, 4 or 5 minutes (the last one takes what is left), 44.1 kHz stereo FLAC;
- a config with every pass on and those models, on the GPU (--device auto: when nvidia-smi
  exists and torch sees CUDA) or the CPU.

Then it runs the workflow once, as `snakemake --profile profiles/local --configfile <cfg>`
(.venv's Snakemake, the repo's Snakefile and profile, run in the temporary folder so that
.snakemake/ stays out of the repo), and prints one table from Snakemake's per-job benchmark
files (<output>/benchmarks/<rule>/*.tsv): per rule, jobs, the sum of the jobs' seconds, the
wall span from the first job's start to the last one's end, and the realtime factor (library
audio seconds / the rule's summed seconds: above 1x is faster than real time); the last row is
the whole run (audio seconds / Snakemake's wall time, start-up and DAG included). With a GPU,
`nvidia-smi ... -lms 500` samples utilisation and memory in the background; a rule's GPU
columns are the samples taken while one of its jobs ran (a job's window is its benchmark
file's modification time minus its seconds), so rules that run side by side share samples,
and memory is the whole card's (other processes included; the idle figure is printed).

What the figures mean: the cost of the real networks' shapes through the real code paths
(loading, chunking, batching, the workflow's jobs), on this machine. What they do not mean:
anything about output quality (random weights give noise; beats, crops and captions follow
from noise), nor the speed of a full-size Music Flamingo (only the tiny one runs: the
prompt-evaluation rate a full model would need per audio second is printed instead, from the
audio positions the real projector type gives an 11.9 s crop). Full-size htdemucs on a CPU is
slow (minutes per track): `--device cpu --minutes 2` takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO / "benchmarks")]

#: Song lengths in seconds, in turn (3, 4, 5 minutes).
SONG_SECONDS = (180, 240, 300)
SAMPLE_RATE = 44100
#: Benchmark folder -> rule name (the batch rules write under their pass's name).
RULE_NAMES = {
    "separate": "separate",
    "aesthetics": "aesthetics_batch",
    "classifiers": "classifiers_batch",
    "transcription": "transcription_batch",
    "captions": "captions_batch",
}
RULE_ORDER = ["ingest", "separate", "stems", "rhythm", "crops", "features", "aesthetics",
              "classifiers", "transcription", "captions", "assemble"]  # fmt: skip
#: A field each pass writes into every crop .INFO (the correctness check).
CROP_FIELDS = {
    "aesthetics": "production_quality",
    "classifiers": "essentia_genre",
    "transcription": "midi_note_count",
    "captions": "music_flamingo_caption",
}


# ---- device ----------------------------------------------------------------


def choose_device(wanted: str) -> tuple[str, str]:
    """("cuda" | "cpu", why)."""
    if wanted == "cpu":
        return "cpu", "--device cpu"
    if shutil.which("nvidia-smi") is None:
        return "cpu", "no nvidia-smi"
    import torch

    if not torch.cuda.is_available():
        return "cpu", f"torch {torch.__version__} sees no CUDA device"
    return "cuda", torch.cuda.get_device_name(0)


class GpuSampler:
    """``nvidia-smi --query-gpu=utilization.gpu,memory.used -lms 500`` in the background;
    ``samples``: ``(time.time(), utilisation %, memory used MiB)``."""

    def __init__(self) -> None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        self.index = visible if visible.isdigit() else "0"
        self.samples: list[tuple[float, float, float]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        cmd = ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu,memory.used",
               "--format=csv,noheader,nounits", "-lms", "500"]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                self.samples.append((time.time(), float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue  # "[N/A]" or a partial line

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def between(self, windows: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
        return [s for s in self.samples if any(a <= s[0] <= b for a, b in windows)]


# ---- library and config ----------------------------------------------------


def make_library(folder: Path, minutes: float) -> list[tuple[str, float]]:
    """FLAC songs of 3-5 minutes looping the demo recordings; ``[(file, seconds)]``."""
    import numpy as np
    import soundfile as sf

    from mirflow.audio import load_audio
    from mirflow.discovery import find_audio_files

    folder.mkdir(parents=True)
    sources = []
    for path in sorted(find_audio_files(REPO / "tests" / "data" / "library")):
        audio, _ = load_audio(path, sr=SAMPLE_RATE)
        if audio.shape[1] >= 20 * SAMPLE_RATE:  # loop real pieces, not a 5 s phrase
            sources.append((path.stem, audio if audio.shape[0] == 2 else audio[[0, 0]]))
    songs, left = [], int(round(minutes * 60 * SAMPLE_RATE))
    for i, seconds in enumerate(itertools.cycle(SONG_SECONDS)):
        if left <= 0:
            break
        length = min(seconds * SAMPLE_RATE, left)
        name, audio = sources[i % len(sources)]
        repeats = -(-length // audio.shape[1])
        song = np.tile(audio, repeats)[:, :length]
        path = folder / f"song_{i:02d}_{name[:40]}.flac"
        sf.write(path, song.T, SAMPLE_RATE, subtype="PCM_16")
        songs.append((path.name, length / SAMPLE_RATE))
        left -= length
    return songs


def write_config(path: Path, tmp: Path, device: str, args, n_gpu_layers: int) -> dict:
    from full_size_models import BEAT_THIS_FILE, HTDEMUCS_NAME

    separation = {"enabled": args.separation != "none", "device": device}
    if args.separation == "demucs":
        separation |= {"backend": "demucs", "demucs": {"model": HTDEMUCS_NAME}}
    elif args.separation == "bs_roformer":
        separation |= {"backend": "bs_roformer",
                       "bs_roformer": {"model_file": "tiny_bs_roformer.ckpt"}}  # fmt: skip
    config = {
        "input": str(tmp / "library"),
        "output": str(tmp / "out"),
        "models_dir": str(tmp / "models"),
        "source_separation": separation,
        "rhythm": {
            "backend": "beat_this" if args.beat_this else "madmom",
            "beat_this": {"model": str(tmp / "models" / BEAT_THIS_FILE), "device": device},
        },
        "aesthetics": {"enabled": True, "device": device},
        "classifiers": {"enabled": True, "backend": args.classifiers_backend},
        "transcription": {"enabled": True},
        "captions": {"enabled": True, "n_gpu_layers": n_gpu_layers},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def run_snakemake(tmp: Path, config_file: Path, log: Path) -> tuple[int, float, float]:
    """Run the workflow; ``(returncode, start time.time(), wall seconds)``."""
    snakemake = REPO / ".venv" / "bin" / "snakemake"
    if not snakemake.exists():
        snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [
        str(snakemake), "-s", str(REPO / "workflow" / "Snakefile"),
        "--profile", str(REPO / "profiles" / "local"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(config_file),
    ]  # fmt: skip
    print(f"running: {' '.join(cmd)}\n  (in {tmp})", file=sys.stderr, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start_wall, start = time.time(), time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=env)
    return done.returncode, start_wall, time.perf_counter() - start


# ---- results ---------------------------------------------------------------


def read_jobs(benchmarks: Path) -> dict[str, list[tuple[float, float]]]:
    """``{benchmark folder: [(start, end) per job]}``; end is the file's mtime."""
    jobs: dict[str, list[tuple[float, float]]] = {}
    if not benchmarks.is_dir():
        return jobs
    for folder in sorted(p for p in benchmarks.iterdir() if p.is_dir()):
        for tsv in sorted(folder.glob("*.tsv")):
            with tsv.open() as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
            if rows and rows[-1].get("s"):
                end = tsv.stat().st_mtime
                jobs.setdefault(folder.name, []).append((end - float(rows[-1]["s"]), end))
    return jobs


def gpu_cells(sampler: GpuSampler | None, windows) -> list[str]:
    if sampler is None:
        return ["", ""]
    samples = sampler.between(windows)
    if not samples:
        return ["-", "-"]
    return [f"{statistics.mean(s[1] for s in samples):.0f}", f"{max(s[2] for s in samples):.0f}"]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def check_dataset(out: Path, passes: list[str]) -> str:
    summary = (
        json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    )
    infos = [json.loads(p.read_text()) for p in (out / "dataset").glob("*/crops/*.INFO")]
    complete = sum(all(CROP_FIELDS[p] in info for p in passes) for info in infos)
    stems = sum(bool(info.get("stem_files")) for info in infos)
    return (
        f"tracks ok {summary.get('tracks_ok', '?')} of {summary.get('tracks', '?')}, "
        f"{len(infos)} crops; {complete} crop .INFO hold every pass's field "
        f"({', '.join(CROP_FIELDS[p] for p in passes)}); {stems} crops list stems"
    )


def measure_captions(out: Path, models: Path, n_gpu_layers: int, config: dict) -> list[str]:
    """The tiny Music Flamingo on two of the run's crops, with the prompts the run used, and
    the rates a full-size model would need (lines to print)."""
    from mirflow.audio import load_audio
    from mirflow.captions import Captioner, find_model

    crops = sorted((out / "dataset").glob("*/crops/*.INFO"))[:2]
    if not crops:
        return ["captions: no crops, nothing measured"]
    options = config["captions"]
    model_path, mmproj = find_model(models)
    captioner = Captioner.load(model_path, mmproj, n_ctx=options["n_ctx"],
                               n_gpu_layers=n_gpu_layers, n_threads=options["threads"])  # fmt: skip
    runs, crop_s = [], []
    for info_path in crops:
        info = json.loads(info_path.read_text())
        audio, _ = load_audio(info_path.parent / info["audio_file"], sr=captioner.sample_rate,
                              mono=True)  # fmt: skip
        crop_s.append(audio.shape[1] / captioner.sample_rate)
        runs.append(captioner.generate(audio[0], info["caption_prompt_caption"],
                                       options["max_tokens"]))  # fmt: skip
    captioner.close()
    n_prompt = statistics.mean(r.n_prompt for r in runs)
    n_audio = statistics.mean(r.n_audio for r in runs)
    seconds = statistics.mean(crop_s)
    prompt_rate = sum(r.n_prompt for r in runs) / sum(r.prompt_seconds for r in runs)
    gen_rate = sum(r.n_generated for r in runs) / sum(r.generate_seconds for r in runs)
    return [
        f"captions, TINY stand-in measured on {len(runs)} of the run's crops (the run's prompt, "
        f"n_gpu_layers {n_gpu_layers}): prompt eval {prompt_rate:.0f} positions/s, generation "
        f"{gen_rate:.0f} tokens/s; {n_prompt:.0f} prompt positions per {seconds:.1f} s crop, "
        f"{n_audio:.0f} of them audio.",
        f"  A full-size Music Flamingo (Qwen2.5-7B decoder) captions 1 s of crop audio per "
        f"second only if it prompt-evaluates >= {n_prompt / seconds:.0f} positions/s "
        f"({n_audio / seconds:.0f} of them audio) and generates >= "
        f"{options['max_tokens'] / seconds:.0f} tokens/s (max_tokens {options['max_tokens']}, "
        f"an upper bound: a real model stops at end-of-text), one prompt after another, its "
        f"audio encoder's time on top. Assumption: the audio positions per crop depend on the "
        f"projector type and window (musicflamingo: 750 per 30 s window, config captions.n_ctx), "
        f"not on the width, so the tiny pair gives the real count. Full-size speed: not measured.",
    ]


# ---- main ------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="minutes of music in the library (default 30)")  # fmt: skip
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--beat-this", action="store_true",
                        help="rhythm.backend beat_this with a full-size random final0")  # fmt: skip
    parser.add_argument(
        "--separation", choices=["demucs", "bs_roformer", "none"], default="demucs",
        help="demucs: full-size htdemucs; bs_roformer: the TINY stand-in",
    )  # fmt: skip
    parser.add_argument(
        "--classifiers-backend", choices=["tensorflow", "onnx"], default="tensorflow",
        help="classifiers.backend (default tensorflow)",
    )  # fmt: skip
    args = parser.parse_args()

    device, why = choose_device(args.device)
    if device == "cpu":
        if args.device == "cuda":
            print(f"--device cuda, but {why}: falling back to the CPU", file=sys.stderr)
        print(f"no GPU: CPU run, GPU columns empty ({why})")
    n_gpu_layers = 0
    if device == "cuda":
        import llama_cpp

        n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
    from full_size_models import build_models_dir

    with tempfile.TemporaryDirectory(prefix="mirflow-gpu-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        built = build_models_dir(tmp / "models", args.separation, args.beat_this)
        print(f"models written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        songs = make_library(tmp / "library", args.minutes)
        audio_s = sum(s for _, s in songs)
        config = write_config(tmp / "bench.yaml", tmp, device, args, n_gpu_layers)
        full_config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        full_config["captions"].update(config["captions"])

        sampler = GpuSampler() if device == "cuda" else None
        if sampler:
            sampler.start()
            time.sleep(1.5)
        idle = [s[2] for s in sampler.samples] if sampler else []
        rc, run_start, wall = run_snakemake(tmp, tmp / "bench.yaml", tmp / "snakemake.log")
        if sampler:
            sampler.stop()
        if rc != 0:
            tail = (tmp / "snakemake.log").read_text().splitlines()[-60:]
            print(f"snakemake failed (exit {rc}); the log's end:")
            print("\n".join(tail))

        out = tmp / "out"
        jobs = read_jobs(out / "benchmarks")
        labels = {
            "rhythm": built["rhythm"].describe() if "rhythm" in built
            else "madmom RNN + DBN (real weights, in its wheel)",
            "transcription": "basic-pitch (real weights, in its wheel)",
            **{k: v.describe() for k, v in built.items() if k != "rhythm"},
        }  # fmt: skip
        order = [r for r in RULE_ORDER if r in jobs] + sorted(set(jobs) - set(RULE_ORDER))
        rows = []
        for folder in order:
            windows = jobs[folder]
            total = sum(b - a for a, b in windows)
            span = max(b for _, b in windows) - min(a for a, _ in windows)
            rows.append([
                RULE_NAMES.get(folder, folder), labels.get(folder, "-"), str(len(windows)),
                f"{total:.1f}", f"{span:.1f}", f"{audio_s / total:.1f}x" if total else "-",
                *gpu_cells(sampler, windows),
            ])  # fmt: skip
        rows.append([
            "whole run (Snakemake wall)", "", str(sum(len(w) for w in jobs.values())), "",
            f"{wall:.1f}", f"{audio_s / wall:.2f}x",
            *gpu_cells(sampler, [(run_start, run_start + wall)]),
        ])  # fmt: skip
        gpu_name = f"GPU {why}" if device == "cuda" else "CPU"
        print(
            f"\nmirflow workflow, full-size random models, {gpu_name}, {os.cpu_count()} cores: "
            f"{len(songs)} tracks, {audio_s / 60:.1f} min of audio "
            f"({', '.join(f'{s / 60:.1f}' for _, s in songs)} min), wall {wall:.0f} s\n"
        )
        header = ["rule", "model", "jobs", "total s", "wall span s", "realtime factor",
                  "GPU util % (mean)", "peak VRAM MiB"]  # fmt: skip
        print(markdown(header, rows))
        print()
        if sampler:
            print(f"GPU memory used before the run: {max(idle, default=0):.0f} MiB; "
                  f"{len(sampler.samples)} samples every 0.5 s. GPU rules: separate, "
                  f"aesthetics_batch, captions_batch (n_gpu_layers {n_gpu_layers}), "
                  f"rhythm with --beat-this; the others share the samples of whatever "
                  f"ran beside them.")  # fmt: skip
            if n_gpu_layers == 0:
                print("llama-cpp-python here has no GPU offload: captions ran on the CPU.")
        print("realtime factor: library audio seconds / the rule's summed job seconds "
              "(the whole run: / wall seconds); above 1x is faster than real time.")  # fmt: skip
        for name, model in built.items():
            if model.note:
                stand_in = "" if model.full_size else "TINY stand-in: "
                print(f"{RULE_NAMES.get(name, name)}: {stand_in}{model.note}")
        passes = ["aesthetics", "classifiers", "transcription", "captions"]
        print(f"check: {check_dataset(out, passes)}")
        if rc == 0:
            for line in measure_captions(out, tmp / "models", n_gpu_layers, full_config):
                print(line)
    if rc != 0:
        sys.exit(rc)


if __name__ == "__main__":
    main()
