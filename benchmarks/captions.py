"""Benchmark: Music Flamingo captions through llama.cpp's mtmd, one resident model.

    .venv/bin/python benchmarks/captions.py [--crops N] [--model M.gguf --mmproj P.gguf]

Without --model it builds the tiny random model of the tests (a 2-layer qwen2 decoder and a
1-block musicflamingo audio projector) in a temporary folder; with --model/--mmproj it times
real files. It loads the model once, then captions an 11.9 s crop of each of the first N demo
tracks (tests/data/library, sorted), and prints a Markdown table: model load time, decode
time per crop (file -> 16 kHz mono), seconds per crop and its parts: tokenization (the chat
text, and the audio as a log-mel spectrogram of 30 s windows), prompt evaluation (the audio
encoder and projector, then the audio and text positions through the decoder) and generation,
given as generated tokens per second.

The tiny model never emits end-of-generation, so it always writes --max-tokens tokens; its
figures measure the plumbing (the 30 s mel window and mtmd calls), not Music Flamingo.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=3, help="first N demo tracks (sorted)")
    parser.add_argument("--seconds", type=float, default=11.9, help="crop length")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens generated per crop")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--n-gpu-layers", type=int, default=0, help="-1: all layers on the GPU")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--model", type=Path, help="a real language-model GGUF")
    parser.add_argument("--mmproj", type=Path, help="its audio projector GGUF")
    args = parser.parse_args()

    from mirflow.audio import load_audio
    from mirflow.caption_prompts import DEFAULT_PROMPTS, fill_prompt
    from mirflow.captions import Captioner
    from mirflow.discovery import discover

    if (args.model is None) != (args.mmproj is None):
        parser.error("--model and --mmproj go together")
    if args.model is None:
        from model_fixtures.flamingo_tiny import write_tiny_flamingo

        model_path, mmproj_path = write_tiny_flamingo(Path(tempfile.mkdtemp(prefix="mf-bench-")))
        label = "tiny random model"
    else:
        model_path, mmproj_path = args.model, args.mmproj
        label = model_path.name

    start = time.perf_counter()
    captioner = Captioner.load(
        model_path, mmproj_path, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers,
        n_threads=args.threads,
    )  # fmt: skip
    load_s = time.perf_counter() - start

    tracks = sorted(discover(REPO / "tests" / "data" / "library"), key=lambda t: t.track)
    prompt = fill_prompt(DEFAULT_PROMPTS["caption"], ["jazz"], {"year": 1999})
    decode_s, caption_s, tokenize_s, prompt_s, gen_s = [], [], [], [], []
    n_gen, n_audio = 0, []
    for track in tracks[: args.crops]:
        start = time.perf_counter()
        audio, sr = load_audio(track.path, sr=captioner.sample_rate, mono=True)
        offset = max(0, min(audio.shape[1] - int(args.seconds * sr), int(5 * sr)))
        crop = audio[0, offset : offset + int(args.seconds * sr)]
        decode_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = captioner.generate(crop, prompt, args.max_tokens)
        caption_s.append(time.perf_counter() - start)
        tokenize_s.append(result.tokenize_seconds)
        prompt_s.append(result.prompt_seconds)
        gen_s.append(result.generate_seconds)
        n_gen += result.n_generated
        n_audio.append(result.n_audio)
    captioner.close()

    n = len(caption_s)
    rows = [
        ("model load (s)", f"{load_s:.3f}"),
        ("decode per crop (s)", f"{sum(decode_s) / n:.3f}"),
        ("seconds per crop (tokenize + prompt eval + generation)", f"{sum(caption_s) / n:.3f}"),
        ("tokenize per crop, mel spectrogram included (s)", f"{sum(tokenize_s) / n:.3f}"),
        ("prompt eval per crop: audio encoder + decoder (s)", f"{sum(prompt_s) / n:.3f}"),
        ("audio positions per crop", f"{sum(n_audio) / n:.0f}"),
        ("generated tokens per second", f"{n_gen / sum(gen_s):.1f}"),
        ("tokens generated per crop", f"{n_gen / n:.0f}"),
    ]
    threads = captioner.n_threads
    print(
        f"Music Flamingo captions, {label}, {n} crops of {args.seconds} s, "
        f"{threads} threads, n_gpu_layers {args.n_gpu_layers}\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"| {'-' * width} | ----: |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
