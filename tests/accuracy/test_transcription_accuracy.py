"""Note transcription accuracy on annotated real audio (GuitarSet comping, vocadito singing).

Onset-only note F-measure (mir_eval: pitch within 50 cents, onset within 50 ms, offsets
ignored) of basic-pitch's bundled model through mirflow's own decoding path. Run with ``-s`` to
see the figures printed for the record.
"""

import mir_eval
import numpy as np
import pytest

from conftest import GUITARSET, LIBRARY, TRUTH
from mirflow.audio import load_audio
from mirflow.transcription import SAMPLE_RATE, NoteTranscriber, events_to_mir_eval

pytestmark = pytest.mark.slow

VOCADITO = LIBRARY / "vocadito_1.flac"
ONSET_TOLERANCE = 0.05  # seconds, mir_eval's default


@pytest.fixture(scope="module")
def transcriber():
    return NoteTranscriber.load({})


def estimate(transcriber, path):
    audio, _ = load_audio(path, sr=SAMPLE_RATE, mono=True)
    return events_to_mir_eval(transcriber.note_events(audio[0]))


def onset_scores(reference, estimated):
    (ref_intervals, ref_pitches), (est_intervals, est_pitches) = reference, estimated
    precision, recall, f_measure, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals,
        ref_pitches,
        est_intervals,
        est_pitches,
        onset_tolerance=ONSET_TOLERANCE,
        offset_ratio=None,
    )
    return precision, recall, f_measure


def guitarset_notes():
    """GuitarSet's notes.tsv: onset, offset (s), midi_pitch (fractional), string."""
    table = np.genfromtxt(TRUTH / "guitarset_00_BN1-129-Eb_comp.notes.tsv", names=True)
    intervals = np.stack([table["onset"], table["offset"]], axis=1)
    return intervals, mir_eval.util.midi_to_hz(table["midi_pitch"])


def vocadito_notes(annotator: str):
    """vocadito's notes CSV (no header): onset (s), pitch (Hz), duration (s)."""
    table = np.loadtxt(TRUTH / f"vocadito_1_notes{annotator}.csv", delimiter=",", ndmin=2)
    intervals = np.stack([table[:, 0], table[:, 0] + table[:, 2]], axis=1)
    return intervals, table[:, 1]


def test_guitarset_note_onsets(transcriber):
    reference = guitarset_notes()
    estimated = estimate(transcriber, GUITARSET)
    precision, recall, f_measure = onset_scores(reference, estimated)
    print(
        f"\nGuitarSet notes (onset-only): F={f_measure:.3f} P={precision:.3f} R={recall:.3f} "
        f"({len(estimated[1])} estimated, {len(reference[1])} annotated)"
    )
    assert f_measure >= 0.60


def test_vocadito_note_onsets(transcriber):
    """Solo singing is harder (glides, vibrato, soft onsets); two annotators disagree too.

    Measured here: F = 0.45 (annotator A1) and 0.51 (A2); the two annotations agree with each
    other at F = 0.86 under the same metric. The floor of 0.30 is far enough below the
    measurement to survive onnxruntime/resampler changes but catches a broken path
    (silence, wrong rate, wrong octave), which scores near 0.
    """
    estimated = estimate(transcriber, VOCADITO)
    a1, a2 = vocadito_notes("A1"), vocadito_notes("A2")
    agreement = onset_scores(a1, a2)[2]
    scores = {name: onset_scores(ref, estimated) for name, ref in (("A1", a1), ("A2", a2))}
    for name, (precision, recall, f_measure) in scores.items():
        print(
            f"\nvocadito_1 notes vs {name} (onset-only): F={f_measure:.3f} P={precision:.3f} "
            f"R={recall:.3f} ({len(estimated[1])} estimated)"
        )
    print(f"vocadito_1 annotator agreement A1 vs A2: F={agreement:.3f}")
    for _, _, f_measure in scores.values():
        assert f_measure >= 0.30
