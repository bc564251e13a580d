"""Benchmark: beat, downbeat and tempo accuracy per rhythm backend, on every
annotated recording the project can use and on synthetic patterns.

    .venv/bin/python benchmarks/rhythm_accuracy.py [--tempi 60 80 ...] [--seconds 20] [--cases]

Recordings (tests/data): GuitarSet's bossa nova comping (beats, downbeats,
129 bpm), Kevin MacLeod's Vibe Ace (130 bpm, its TBPM tag), sorohanro's
trumpet loop (90 bpm, the sample's description). Synthetic
(:mod:`mirflow.synthetic`): clicks in 4/4 and 3/4, rock, waltz, 6/8, hip-hop
and samba patterns at each tempo of ``--tempi``, where beats, downbeats and
tempo are known exactly.

Backends:
- ``madmom``: what the workflow writes (the tracker's grid at the tempo
  :mod:`mirflow.tempo` chooses, see README "Tempo");
- ``madmom raw``: madmom's own grid and tempo, before that choice;
- ``beat_this`` (and ``beat_this raw``): when its checkpoint is in
  ``--models-dir`` (``make models`` with ``rhythm.backend: beat_this``).

Scores are mir_eval's (its defaults: the first 5 s of each clip are not
scored): beat F-measure, CMLt, AMLt, downbeat F-measure, tempo within 4 %
(Acc1) and within 4 % of 1, 2, 3, 1/2 or 1/3 times it (Acc2). A clip whose
tempo comes out undefined counts as a tempo miss. It prints one table, per
backend and set; ``--cases`` adds a line per clip.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts")]

DATA = REPO / "tests" / "data"


@dataclass
class Case:
    name: str
    group: str  # "recordings" or "synthetic"
    audio: np.ndarray
    bpm: float | None
    beats: np.ndarray | None  # (n, 2) time, beat in bar; None: tempo only


def recordings() -> list[Case]:
    from mirflow.audio import load_audio

    def mono(name: str) -> np.ndarray:
        return load_audio(DATA / "library" / name, sr=44100, mono=True)[0][0]

    guitarset = "guitarset_00_BN1-129-Eb_comp"
    return [
        Case(
            "guitarset bossa",
            "recordings",
            mono(f"{guitarset}_mic.flac"),
            float((DATA / "truth" / f"{guitarset}.bpm").read_text()),
            np.loadtxt(DATA / "truth" / f"{guitarset}.beats").reshape(-1, 2),
        ),
        Case("vibe ace (TBPM)", "recordings", mono("Kevin_MacLeod_-_Vibe_Ace.mp3"), 130.0, None),
        Case("trumpet loop", "recordings", mono("sorohanro_-_solo-trumpet-06.hq.ogg"), 90.0, None),
    ]


def synthetic(tempi: list[float], seconds: float) -> list[Case]:
    from mirflow.synthetic import PATTERNS, render

    cases = []
    for name in PATTERNS:
        for bpm in tempi:
            audio, beats = render(name, bpm, seconds)
            cases.append(Case(f"{name} @{bpm:g}", "synthetic", audio, bpm, beats))
    return cases


def tempo_hits(estimate: float | None, truth: float | None) -> tuple[bool, bool]:
    from mirflow.tempo import agrees

    if not estimate or not truth:
        return False, False
    acc1 = agrees(estimate, truth)
    acc2 = any(agrees(estimate, truth * k) for k in (1, 2, 3, 1 / 2, 1 / 3))
    return acc1, acc2


def beat_scores(reference: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    import mir_eval

    ref = mir_eval.beat.trim_beats(reference[:, 0])
    est = mir_eval.beat.trim_beats(estimated[:, 0]) if len(estimated) else np.empty(0)
    _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
    ref_down = mir_eval.beat.trim_beats(reference[reference[:, 1] == 1, 0])
    est_down = mir_eval.beat.trim_beats(
        estimated[estimated[:, 1] == 1, 0] if len(estimated) else np.empty(0)
    )
    return {
        "F": mir_eval.beat.f_measure(ref, est),
        "CMLt": cmlt,
        "AMLt": amlt,
        "downbeat F": mir_eval.beat.f_measure(ref_down, est_down),
    }


def analyzers(models_dir: Path):
    from mirflow.rhythm import RhythmAnalyzer

    yield "madmom", RhythmAnalyzer()
    checkpoint = models_dir / "beat_this" / "final0.ckpt"
    if checkpoint.is_file():
        yield "beat_this", RhythmAnalyzer(backend="beat_this", checkpoint=checkpoint)
    else:
        print(f"beat_this: skipped, no {checkpoint} (make models with rhythm.backend: beat_this)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tempi", type=float, nargs="+", default=[60, 80, 100, 120, 140, 160, 180])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a synthetic clip")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--cases", action="store_true", help="also print a line per clip")
    args = parser.parse_args(argv)

    import pandas as pd

    from mirflow.rhythm import with_tempo

    cases = recordings() + synthetic(args.tempi, args.seconds)
    rows = []
    for backend, analyzer in analyzers(args.models_dir):
        start = time.perf_counter()
        audio_s = 0.0
        for case in cases:
            raw = analyzer.analyze(case.audio, 44100)
            chosen, fields = with_tempo(raw, backend)
            audio_s += len(case.audio) / 44100
            for label, rhythm, bpm in (
                (backend, chosen, fields["bpm"]),
                (f"{backend} raw", raw, raw.bpm),
            ):
                acc1, acc2 = tempo_hits(bpm, case.bpm)
                row = {"backend": label, "set": case.group, "clip": case.name, "bpm": bpm}
                row |= {"truth bpm": case.bpm, "Acc1": acc1, "Acc2": acc2}
                if case.beats is not None:
                    row |= beat_scores(case.beats, rhythm.beats)
                rows.append(row)
        seconds = time.perf_counter() - start
        print(f"{backend}: {len(cases)} clips, {audio_s:.0f} s of audio in {seconds:.0f} s")

    table = pd.DataFrame(rows)
    if args.cases:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.round(3).to_string(index=False))
    summary = table.groupby(["backend", "set"], sort=False).agg(
        clips=("clip", "size"),
        F=("F", "mean"),
        CMLt=("CMLt", "mean"),
        AMLt=("AMLt", "mean"),
        downbeat_F=("downbeat F", "mean"),
        Acc1=("Acc1", "mean"),
        Acc2=("Acc2", "mean"),
    )
    print()
    print(summary.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
