"""The tempo the workflow writes, on patterns whose tempo is known exactly
(mirflow.synthetic) and on the real recordings with a tempo annotation.

The figures over many tempi are benchmarks/rhythm_accuracy.py's; these are
the cases that must not regress: the metrical octave of a hip-hop loop, a
fast backbeat that must not be halved, a 6/8, a waltz, a metronome, and no
tempo for noise.
"""

import numpy as np
import pytest

from conftest import GUITARSET, TRUTH, VIBE_ACE
from mirflow.audio import load_audio
from mirflow.rhythm import RhythmAnalyzer, with_tempo
from mirflow.synthetic import render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analyzer():
    return RhythmAnalyzer()


def tempo(analyzer, audio):
    rhythm, fields = with_tempo(analyzer.analyze(audio, 44100))
    return rhythm, fields


@pytest.mark.parametrize(
    "pattern, bpm",
    [
        ("hiphop_4_4", 90.0),  # madmom alone: 182 (the sixteenth-note hats)
        ("rock_4_4", 150.0),  # Essentia alone: 75 (it halves the backbeat)
        ("compound_6_8", 90.0),  # madmom alone: 136, a 3/4 of the eighths
        ("waltz_3_4", 120.0),
        ("click_4_4", 180.0),  # both Essentia estimators: 90
        ("click_4_4", 60.0),  # both Essentia estimators: 120
    ],
)
def test_synthetic_tempo(analyzer, pattern, bpm):
    audio, _ = render(pattern, bpm, 20.0)
    rhythm, fields = tempo(analyzer, audio)
    print(f"\n{pattern} @{bpm}: {fields}")
    assert fields["bpm_is_defined"]
    assert fields["bpm"] == pytest.approx(bpm, rel=0.04)
    # The grid written to .BEATS is at the tempo the .INFO states.
    assert 60.0 / np.median(np.diff(rhythm.beats[:, 0])) == pytest.approx(fields["bpm"], rel=0.02)


def test_the_octave_choice_is_stable(analyzer):
    """Another rendering (other noise, other length) of the same loop: same octave."""
    choices = {
        round(tempo(analyzer, render("hiphop_4_4", 92.0, seconds, seed=seed)[0])[1]["bpm"])
        for seconds, seed in ((16.0, 1), (24.0, 2))
    }
    assert len(choices) == 1 and abs(choices.pop() - 92) <= 92 * 0.04


def test_noise_has_no_tempo(analyzer):
    noise = (np.random.default_rng(0).standard_normal(44100 * 15) * 0.1).astype(np.float32)
    _, fields = tempo(analyzer, noise)
    assert fields["bpm_is_defined"] is False and fields["bpm"] is None
    assert fields["bpm_madmom"] is not None  # the tracker's figure is still recorded


def test_silence_has_no_tempo(analyzer):
    _, fields = tempo(analyzer, np.zeros(44100 * 5, dtype=np.float32))
    assert fields["bpm_is_defined"] is False and fields["bpm"] is None


@pytest.mark.parametrize(
    "path, truth",
    [(GUITARSET, float((TRUTH / "guitarset_00_BN1-129-Eb_comp.bpm").read_text())), (VIBE_ACE, 130)],
)
def test_recorded_tempo(analyzer, path, truth):
    mono, sr = load_audio(path, sr=44100, mono=True)
    _, fields = tempo(analyzer, mono[0])
    print(f"\n{path.name}: {fields}")
    assert fields["bpm"] == pytest.approx(truth, rel=0.04)
    assert fields["bpm_confidence"] > 0.5
