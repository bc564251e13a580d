"""Polyphonic note transcription (audio -> MIDI) of crops and their stems, with basic-pitch.

basic-pitch 0.4.0 (Spotify, Apache-2.0) ships its trained model inside its wheel in four
formats; mirflow always loads the ONNX one (``saved_models/icassp_2022/nmp.onnx``, 230 kB) on
onnxruntime's CPU provider. The path is passed explicitly because basic-pitch otherwise picks
the first runtime it can import (TensorFlow, then CoreML, TFLite, ONNX), so the backend would
depend on what else happens to be installed. Importing basic-pitch is also done with TensorFlow,
CoreML and TFLite hidden (:func:`_import_basic_pitch`): it never imports TensorFlow, and its
"X is not installed" import-time warnings do not reach the job log.

The model is loaded once (:meth:`NoteTranscriber.load`) and reused for every file of a batch.
Audio is decoded by :mod:`mirflow.audio` (so a bad file is a :class:`~mirflow.errors.TrackError`
naming it, and formats soundfile cannot read go through ffmpeg) and fed to the model as an array:
:func:`model_output` does what ``basic_pitch.inference.run_inference`` does after its own
``librosa.load`` (same padding, windows, overlap and unwrapping), only with the windows
batched. Notes come from basic-pitch's own ``model_output_to_notes``, so thresholds mean exactly
what they mean in basic-pitch's CLI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.atomic import atomic_path
from mirflow.errors import TrackError

log = logging.getLogger(__name__)

#: basic-pitch's input rate (``basic_pitch.constants.AUDIO_SAMPLE_RATE``).
SAMPLE_RATE = 22050

#: Model frames that consecutive windows share, as in ``run_inference`` (30 frames of 256).
_OVERLAP_FRAMES = 30

#: Windows sent to onnxruntime per call: a 5 min track is ~37 windows of 2 s.
_WINDOWS_PER_BATCH = 16

#: Runtimes basic-pitch probes at import; hidden so that only onnxruntime can be chosen.
_HIDDEN_RUNTIMES = ("tensorflow", "coremltools", "tflite_runtime")

#: One note: (start_s, end_s, MIDI pitch, amplitude 0..1, pitch bends or None), basic-pitch's shape.
NoteEvent = tuple[float, float, int, float, list[int] | None]


@dataclass(frozen=True)
class TranscriptionOptions:
    """The ``transcription`` config section (defaults are basic-pitch's own)."""

    onset_threshold: float = 0.5  # onset activation needed to start a note (higher: fewer notes)
    frame_threshold: float = 0.3  # frame activation needed to keep a note sounding
    minimum_note_length_ms: float = 127.70  # shorter notes are dropped
    minimum_frequency: float | None = None  # Hz; notes below are dropped (None: no limit)
    maximum_frequency: float | None = None  # Hz; notes above are dropped (None: no limit)
    melodia_trick: bool = True  # basic-pitch's melodia post-processing (recovers weak notes)
    multiple_pitch_bends: bool = False  # one MIDI track per pitch so overlapping notes bend
    stems: tuple[str, ...] = ("bass", "other", "vocals")  # stems transcribed when present
    threads: int = 0  # onnxruntime intra-op threads; 0: onnxruntime's default (all cores)

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None) -> TranscriptionOptions:
        """The options from the config section; its other keys (enabled, batch_size, mem_mb,
        ...) are the workflow's and are ignored here (the config schema checks names)."""
        known = {f.name for f in fields(cls)}
        options = {key: value for key, value in (options or {}).items() if key in known}
        if "stems" in options:
            stems = options["stems"]
            if isinstance(stems, str):
                raise ValueError("transcription.stems must be a list of stem names")
            options["stems"] = tuple(stems)
        opts = cls(**options)
        if not 0.0 < opts.onset_threshold <= 1.0 or not 0.0 < opts.frame_threshold <= 1.0:
            raise ValueError("transcription thresholds must lie in (0, 1]")
        if opts.threads < 0:
            raise ValueError("transcription.threads must be >= 0 (0: onnxruntime's default)")
        if opts.minimum_note_length_ms < 0:
            raise ValueError("transcription.minimum_note_length_ms must be >= 0")
        low, high = opts.minimum_frequency, opts.maximum_frequency
        if (low is not None and low <= 0) or (high is not None and high <= 0):
            raise ValueError("transcription frequency limits must be positive (or null)")
        if low is not None and high is not None and low >= high:
            raise ValueError("transcription.minimum_frequency must be below maximum_frequency")
        return opts


def model_path() -> Path:
    """The ONNX model inside the installed basic-pitch package (found without importing it)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "basic-pitch is not installed; run `make setup` (it is installed with --no-deps)"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "saved_models" / "icassp_2022" / "nmp.onnx"


_ABSENT = object()  # "was not in sys.modules", as opposed to a None entry


@contextlib.contextmanager
def _runtimes_hidden() -> Iterator[None]:
    """Make ``import tensorflow`` (and CoreML, TFLite) fail, and drop basic-pitch's warnings.

    A ``None`` entry in ``sys.modules`` makes an import raise ImportError; the previous entries
    are put back afterwards, so code imported later sees the real modules. basic-pitch warns
    through the root logger at import ("Coremltools is not installed ..."), which would also
    configure the root logger when nothing has yet: a temporary handler prevents that and a
    filter drops those three lines.
    """
    saved = {name: sys.modules.get(name, _ABSENT) for name in _HIDDEN_RUNTIMES}
    root = logging.getLogger()
    handler = logging.NullHandler()
    quiet = _DropNotInstalledWarnings()
    root.addHandler(handler)
    root.addFilter(quiet)
    try:
        for name in _HIDDEN_RUNTIMES:
            sys.modules[name] = None  # type: ignore[assignment]
        yield
    finally:
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        root.removeFilter(quiet)
        root.removeHandler(handler)


class _DropNotInstalledWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "is not installed" not in record.getMessage()


def _import_basic_pitch():
    """``basic_pitch.inference`` imported with only onnxruntime visible to it."""
    if "basic_pitch.inference" not in sys.modules:
        with _runtimes_hidden():
            import basic_pitch.inference  # noqa: F401, PLC0415
    import basic_pitch  # noqa: PLC0415
    import basic_pitch.inference as inference  # noqa: PLC0415

    if basic_pitch.TF_PRESENT or basic_pitch.CT_PRESENT or basic_pitch.TFLITE_PRESENT:
        # Imported earlier by someone else with TensorFlow & co. visible: Model() would try
        # each runtime on the .onnx file before onnxruntime. Still correct, only slower.
        log.warning("basic-pitch was imported with TensorFlow/CoreML/TFLite visible")
    if not basic_pitch.ONNX_PRESENT:
        raise ModuleNotFoundError("onnxruntime is not installed; basic-pitch needs it")
    return inference


class NoteTranscriber:
    """basic-pitch's model, loaded once, transcribing any number of files to MIDI."""

    #: Models loaded in this process (all instances together); tests count loads with it.
    load_count: int = 0

    def __init__(self, model: Any, options: TranscriptionOptions) -> None:
        self.model = model  # a basic_pitch.inference.Model on onnxruntime
        self.options = options
        self.name = "basic-pitch:icassp_2022"

    @classmethod
    def load(cls, options: Mapping[str, Any] | None = None) -> NoteTranscriber:
        """Load basic-pitch's bundled ONNX model on onnxruntime's CPU provider."""
        from mirflow.errors import ModelNotFoundError  # noqa: PLC0415

        if isinstance(options, TranscriptionOptions):
            opts = options
        else:
            opts = TranscriptionOptions.from_dict(options)
        path = model_path()
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path}: basic-pitch's bundled model file not found; it ships inside the "
                "basic-pitch wheel: reinstall it (`make setup`), `make models` cannot fetch it"
            )
        inference = _import_basic_pitch()
        model = inference.Model(path)
        if model.model_type != inference.Model.MODEL_TYPES.ONNX:
            raise RuntimeError(f"{path} loaded as {model.model_type.name}, expected ONNX")
        if opts.threads:
            import onnxruntime as ort  # noqa: PLC0415

            # basic-pitch's Model takes no session options: replace its session by the same
            # one with a thread limit, so a job uses the cores the scheduler gave it.
            session_options = ort.SessionOptions()
            session_options.intra_op_num_threads = opts.threads
            session_options.inter_op_num_threads = 1
            model.model = ort.InferenceSession(
                str(path), sess_options=session_options, providers=["CPUExecutionProvider"]
            )
        NoteTranscriber.load_count += 1
        log.info("loaded basic-pitch from %s (onnxruntime)", path)
        return cls(model, opts)

    def note_events(self, audio: np.ndarray) -> list[NoteEvent]:
        """Notes of mono float32 audio at :data:`SAMPLE_RATE`, sorted by start then pitch."""
        return self._notes(audio)[1]

    def _notes(self, audio: np.ndarray) -> tuple[Any, list[NoteEvent]]:
        from basic_pitch.constants import AUDIO_SAMPLE_RATE, FFT_HOP  # noqa: PLC0415
        from basic_pitch.note_creation import model_output_to_notes  # noqa: PLC0415

        opts = self.options
        output = model_output(self.model, audio)
        frames_per_second = AUDIO_SAMPLE_RATE / FFT_HOP
        # On silence basic-pitch rescales its inferred onsets by max(frame diff) == 0; the
        # NaNs that gives find no peak (no notes), so the RuntimeWarning is only noise.
        with np.errstate(invalid="ignore", divide="ignore"):
            midi, events = model_output_to_notes(
                output,
                onset_thresh=opts.onset_threshold,
                frame_thresh=opts.frame_threshold,
                # Same ms -> frames rounding as basic_pitch.inference.predict.
                min_note_len=int(np.round(opts.minimum_note_length_ms / 1000 * frames_per_second)),
                min_freq=opts.minimum_frequency,
                max_freq=opts.maximum_frequency,
                multiple_pitch_bends=opts.multiple_pitch_bends,
                melodia_trick=opts.melodia_trick,
            )
        events = [
            (float(start), float(end), int(pitch), float(amplitude), bends)
            for start, end, pitch, amplitude, bends in events
        ]
        events.sort(key=lambda event: (event[0], event[2]))
        return midi, events

    def transcribe(
        self, audio_path: str | os.PathLike, midi_path: str | os.PathLike, part: str = "mix"
    ) -> dict[str, Any]:
        """Transcribe one file to ``midi_path`` (written atomically); return note statistics.

        ``part`` ("mix" or a stem name) names the MIDI track. Silence gives a valid MIDI file
        with no notes. A file that cannot be decoded, or holds non-finite samples, raises
        :class:`~mirflow.errors.TrackError` naming it, and nothing is written.
        """
        from mirflow.audio import load_audio  # noqa: PLC0415

        audio_path = Path(audio_path)
        audio, _ = load_audio(audio_path, sr=SAMPLE_RATE, mono=True)
        audio = audio[0]
        if not np.isfinite(audio).all():
            raise TrackError(f"{audio_path}: audio holds NaN or infinite samples")
        midi, events = self._notes(audio)
        for instrument in midi.instruments:
            instrument.name = part
        with atomic_path(midi_path) as tmp:
            midi.write(str(tmp))
        return note_statistics(events, len(audio) / SAMPLE_RATE)


def model_output(model: Any, audio: np.ndarray) -> dict[str, np.ndarray]:
    """basic-pitch's activations ("note", "onset", "contour": (frames, bins)) for mono audio.

    ``run_inference`` without its file reading: pad half an overlap in front, cut windows of
    ``AUDIO_N_SAMPLES`` every ``AUDIO_N_SAMPLES - overlap``, run, drop the overlapping frames
    and trim to the audio's length.
    """
    from basic_pitch.constants import AUDIO_N_SAMPLES, FFT_HOP  # noqa: PLC0415
    from basic_pitch.inference import unwrap_output, window_audio_file  # noqa: PLC0415

    audio = np.asarray(audio, dtype=np.float32)
    overlap_len = _OVERLAP_FRAMES * FFT_HOP
    hop_size = AUDIO_N_SAMPLES - overlap_len
    padded = np.concatenate([np.zeros(overlap_len // 2, dtype=np.float32), audio])
    windows = np.stack([window for window, _ in window_audio_file(padded, hop_size)])
    outputs: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    for first in range(0, len(windows), _WINDOWS_PER_BATCH):
        for key, value in model.predict(windows[first : first + _WINDOWS_PER_BATCH]).items():
            outputs[key].append(value)
    return {
        key: unwrap_output(np.concatenate(values), len(audio), _OVERLAP_FRAMES)
        for key, values in outputs.items()
    }


def note_statistics(events: Sequence[NoteEvent], duration_s: float) -> dict[str, Any]:
    """Counts a dataset filter or a report can use without opening the MIDI file."""
    pitches = [event[2] for event in events]
    return {
        "note_count": len(events),
        "pitch_range": [min(pitches), max(pitches)] if pitches else None,
        "notes_per_second": len(events) / duration_s if duration_s > 0 else 0.0,
        "duration_s": duration_s,
    }


def events_to_mir_eval(events: Sequence[NoteEvent]) -> tuple[np.ndarray, np.ndarray]:
    """Note events -> (intervals (n, 2) in s, pitches (n,) in Hz) for mir_eval.transcription."""
    if not events:
        return np.zeros((0, 2)), np.zeros(0)
    intervals = np.array([[event[0], event[1]] for event in events], dtype=float)
    pitches = 440.0 * 2.0 ** ((np.array([event[2] for event in events], dtype=float) - 69) / 12)
    return intervals, pitches


def transcribe_crop(
    transcriber: NoteTranscriber,
    crop_dir: str | os.PathLike,
    crop_fields: Mapping[str, Any],
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Transcribe a crop's mix and its configured stems that exist; return its .INFO fields.

    ``crop_fields`` are the crop's fields from :func:`mirflow.crops.cut_crops` ("crop",
    "audio_file", "stem_files"), file names relative to ``crop_dir``. MIDI files are written to
    ``out_dir`` as ``<crop>.mid`` and ``<crop>_<stem>.mid``.
    """
    crop_dir, out_dir = Path(crop_dir), Path(out_dir)
    crop = crop_fields["crop"]
    midi_file = f"{crop}.mid"
    mix = transcriber.transcribe(crop_dir / crop_fields["audio_file"], out_dir / midi_file)
    stem_files: dict[str, str] = {}
    stem_counts: dict[str, int] = {}
    available = crop_fields.get("stem_files") or {}
    for stem in transcriber.options.stems:
        if stem not in available:
            continue
        stem_midi = f"{crop}_{stem}.mid"
        stats = transcriber.transcribe(crop_dir / available[stem], out_dir / stem_midi, stem)
        stem_files[stem] = stem_midi
        stem_counts[stem] = stats["note_count"]
    return {
        "midi_file": midi_file,
        "midi_note_count": mix["note_count"],
        "midi_stem_files": stem_files,
        "midi_stem_note_counts": stem_counts,
    }
