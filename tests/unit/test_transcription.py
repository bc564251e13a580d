"""NoteTranscriber with basic-pitch's real bundled model (230 kB, ONNX, fast on CPU).

Synthetic tone sequences have known pitches and onsets; the crop helper, load counting, errors
and the atomic MIDI write are checked on them. Real-audio accuracy is in tests/accuracy.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from conftest import REPO
from mirflow import transcription
from mirflow.audio import load_audio
from mirflow.errors import ModelNotFoundError, TrackError
from mirflow.transcription import (
    SAMPLE_RATE,
    NoteTranscriber,
    TranscriptionOptions,
    events_to_mir_eval,
    transcribe_crop,
)

SR = 44100
#: (onset s, MIDI pitch) of the synthetic sequence: C4 E4 G4 C5 C3.
NOTES = [(0.25, 60), (0.85, 64), (1.45, 67), (2.05, 72), (2.65, 48)]


def tone_sequence(notes=NOTES, seconds: float = 3.4, sr: int = SR, channels: int = 2):
    """Plucked harmonic tones (3 partials, 1/k amplitudes, 0.45 s exponential decay)."""
    audio = np.zeros(int(seconds * sr))
    length = int(0.45 * sr)
    t = np.arange(length) / sr
    envelope = np.exp(-3 * t) * np.minimum(1.0, t / 0.005)
    for onset, midi in notes:
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
        start = int(onset * sr)
        audio[start : start + length] += 0.4 * envelope * tone
    return np.stack([audio] * channels, axis=1)


def write_sequence(path, notes=NOTES, sr: int = SR, channels: int = 2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone_sequence(notes, sr=sr, channels=channels), sr)
    return path


@pytest.fixture(scope="module")
def transcriber():
    return NoteTranscriber.load({})


@pytest.fixture(scope="module")
def sequence_file(tmp_path_factory):
    # 44.1 kHz stereo FLAC: decoding, downmix and resampling to 22.05 kHz are on the path.
    return write_sequence(tmp_path_factory.mktemp("audio") / "sequence.flac")


def midi_notes(path) -> list[pretty_midi.Note]:
    midi = pretty_midi.PrettyMIDI(str(path))
    return sorted((n for inst in midi.instruments for n in inst.notes), key=lambda n: n.start)


def test_tone_sequence_gives_its_pitches_and_onsets(transcriber, sequence_file):
    audio, _ = load_audio(sequence_file, sr=SAMPLE_RATE, mono=True)
    events = transcriber.note_events(audio[0])
    assert [event[2] for event in events] == [midi for _, midi in NOTES]
    for (start, end, *_), (onset, _) in zip(events, NOTES, strict=True):
        assert start == pytest.approx(onset, abs=0.03)
        assert end > start + 0.2


def test_midi_file_holds_the_returned_notes(transcriber, sequence_file, tmp_path):
    midi_path = tmp_path / "out" / "sequence.mid"
    stats = transcriber.transcribe(sequence_file, midi_path, part="bass")
    notes = midi_notes(midi_path)
    assert stats["note_count"] == len(notes) == len(NOTES)
    assert [n.pitch for n in notes] == [midi for _, midi in NOTES]
    assert stats["pitch_range"] == [48, 72]
    assert stats["duration_s"] == pytest.approx(3.4, abs=1e-3)
    assert stats["notes_per_second"] == pytest.approx(len(NOTES) / 3.4, rel=1e-3)
    assert [inst.name for inst in pretty_midi.PrettyMIDI(str(midi_path)).instruments] == ["bass"]
    for note, (onset, _) in zip(notes, NOTES, strict=True):
        assert note.start == pytest.approx(onset, abs=0.03)


def test_same_notes_as_basic_pitch_own_predict(transcriber, tmp_path):
    """The array path (mirflow decoding, batched windows) matches basic-pitch's file path."""
    from basic_pitch.inference import predict

    path = write_sequence(tmp_path / "mono22k.wav", sr=SAMPLE_RATE, channels=1)
    _, _, expected = predict(path, transcriber.model)
    audio, _ = load_audio(path, sr=SAMPLE_RATE, mono=True)
    ours = transcriber.note_events(audio[0])
    expected = sorted(expected, key=lambda e: (e[0], e[2]))
    assert [e[2] for e in ours] == [int(e[2]) for e in expected]
    np.testing.assert_allclose([e[:2] for e in ours], [e[:2] for e in expected], atol=1e-6)
    np.testing.assert_allclose([e[3] for e in ours], [e[3] for e in expected], atol=1e-4)


@pytest.mark.filterwarnings("error")  # basic-pitch divides 0 by 0 on silence: kept quiet
def test_silence_gives_an_empty_valid_midi(transcriber, tmp_path):
    path = tmp_path / "silence.flac"  # a silent stem (vocals of an instrumental) is common
    sf.write(path, np.zeros((int(SR * 11.9), 2)), SR)  # 2 s did not show the 0/0
    stats = transcriber.transcribe(path, tmp_path / "silence.mid")
    assert stats["note_count"] == 0 and stats["pitch_range"] is None
    assert stats["notes_per_second"] == 0.0
    assert midi_notes(tmp_path / "silence.mid") == []


def test_transcribe_crop_writes_midi_for_configured_stems_that_exist(transcriber, tmp_path):
    crop_dir, out_dir = tmp_path / "crops", tmp_path / "midi"
    write_sequence(crop_dir / "song_000.flac")
    write_sequence(crop_dir / "song_000_bass.flac", notes=[(0.25, 48), (1.25, 55)])
    write_sequence(crop_dir / "song_000_drums.flac", notes=[(0.5, 36)])
    crop_fields = {
        "crop": "song_000",
        "audio_file": "song_000.flac",
        # No "other" or "vocals" stem; "drums" exists but is not configured.
        "stem_files": {"bass": "song_000_bass.flac", "drums": "song_000_drums.flac"},
    }
    fields = transcribe_crop(transcriber, crop_dir, crop_fields, out_dir)
    assert fields == {
        "midi_file": "song_000.mid",
        "midi_note_count": len(NOTES),
        "midi_stem_files": {"bass": "song_000_bass.mid"},
        "midi_stem_note_counts": {"bass": 2},
    }
    assert sorted(p.name for p in out_dir.iterdir()) == ["song_000.mid", "song_000_bass.mid"]
    assert [n.pitch for n in midi_notes(out_dir / "song_000_bass.mid")] == [48, 55]


def test_transcribe_crop_without_stems(transcriber, sequence_file, tmp_path):
    crop_fields = {"crop": "c_001", "audio_file": sequence_file.name, "stem_files": {}}
    fields = transcribe_crop(transcriber, sequence_file.parent, crop_fields, tmp_path)
    assert fields["midi_stem_files"] == {} and fields["midi_stem_note_counts"] == {}
    assert (tmp_path / "c_001.mid").is_file()


def test_load_counts_each_load_once(sequence_file, tmp_path):
    before = NoteTranscriber.load_count
    transcriber = NoteTranscriber.load({"threads": 1})
    assert NoteTranscriber.load_count == before + 1
    for index in range(3):
        transcriber.transcribe(sequence_file, tmp_path / f"{index}.mid")
    assert NoteTranscriber.load_count == before + 1


@pytest.mark.parametrize("content", [b"", b"fLaC not really a flac file" * 10])
def test_corrupt_audio_raises_track_error_naming_the_file(transcriber, tmp_path, content):
    bad = tmp_path / "broken crop.flac"
    bad.write_bytes(content)
    with pytest.raises(TrackError, match="broken crop.flac"):
        transcriber.transcribe(bad, tmp_path / "broken.mid")
    assert not (tmp_path / "broken.mid").exists()


def test_non_finite_audio_raises_track_error(transcriber, tmp_path):
    path = tmp_path / "nan.wav"
    data = np.zeros((SR, 1), dtype=np.float32)
    data[100] = np.nan
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(TrackError, match="nan.wav"):
        transcriber.transcribe(path, tmp_path / "nan.mid")


def test_midi_write_is_atomic(transcriber, sequence_file, tmp_path, monkeypatch):
    dest = tmp_path / "song.mid"
    dest.write_bytes(b"previous complete file")

    def failing_write(self, filename):
        with open(filename, "wb") as handle:
            handle.write(b"MThd partial")
        raise OSError("disk full")

    monkeypatch.setattr(pretty_midi.PrettyMIDI, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        transcriber.transcribe(sequence_file, dest)
    assert dest.read_bytes() == b"previous complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]  # no temporary left


def test_onnx_backend_and_no_tensorflow_import():
    """In a fresh interpreter: the ONNX model on onnxruntime, no TensorFlow, no stray warnings."""
    code = (
        "import sys\n"
        "from mirflow.transcription import NoteTranscriber\n"
        "t = NoteTranscriber.load()\n"
        "print(t.model.model_type.name, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.split() == ["ONNX", "False"]
    assert "is not installed" not in result.stderr


def test_model_path_is_the_bundled_onnx_file():
    path = transcription.model_path()
    assert path.name == "nmp.onnx" and path.is_file()
    assert path.parent.name == "icassp_2022"


def test_missing_model_raises_model_not_found(monkeypatch, tmp_path):
    missing = tmp_path / "nmp.onnx"
    monkeypatch.setattr(transcription, "model_path", lambda: missing)
    with pytest.raises(ModelNotFoundError, match="nmp.onnx"):
        NoteTranscriber.load()


def test_options_defaults_and_validation():
    opts = TranscriptionOptions.from_dict({})
    assert opts.onset_threshold == 0.5 and opts.frame_threshold == 0.3
    assert opts.minimum_note_length_ms == pytest.approx(127.70)
    assert opts.minimum_frequency is None and opts.maximum_frequency is None
    assert opts.melodia_trick is True
    assert opts.stems == ("bass", "other", "vocals")
    assert TranscriptionOptions.from_dict({"stems": ["vocals"]}).stems == ("vocals",)
    # The config section's workflow keys are not the transcriber's business.
    workflow_keys = {"enabled": True, "batch_size": 16, "mem_mb": 3000, "threads": 1}
    assert TranscriptionOptions.from_dict(workflow_keys).threads == 1
    for bad in (
        {"stems": "bass"},
        {"onset_threshold": 0.0},
        {"frame_threshold": 1.5},
        {"minimum_note_length_ms": -1},
        {"minimum_frequency": 500, "maximum_frequency": 100},
        {"maximum_frequency": 0},
        {"threads": -1},
    ):
        with pytest.raises(ValueError):
            TranscriptionOptions.from_dict(bad)


def test_frequency_limits_drop_notes_outside(sequence_file, tmp_path):
    limited = NoteTranscriber.load({"minimum_frequency": 200.0})  # C3 (131 Hz) goes
    stats = limited.transcribe(sequence_file, tmp_path / "limited.mid")
    assert stats["pitch_range"] == [60, 72] and stats["note_count"] == len(NOTES) - 1


def test_events_to_mir_eval():
    intervals, pitches = events_to_mir_eval([(0.5, 1.0, 69, 0.8, None), (1.0, 1.5, 57, 0.5, [1])])
    np.testing.assert_allclose(intervals, [[0.5, 1.0], [1.0, 1.5]])
    np.testing.assert_allclose(pitches, [440.0, 220.0])
    intervals, pitches = events_to_mir_eval([])
    assert intervals.shape == (0, 2) and pitches.shape == (0,)
