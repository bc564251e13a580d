"""Rhythm in bounded memory: the exact bar decoder, the frame windows, the stitched grid."""

from __future__ import annotations

import numpy as np
import pytest

from mirflow.madmom_import import import_madmom
from mirflow.rhythm import HOP, RhythmAnalyzer, frame_windows
from mirflow.synthetic import render

SR = 44100


@pytest.fixture(scope="module")
def madmom_dbn():
    import_madmom()
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

    return RNNDownBeatProcessor(), DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)


@pytest.mark.parametrize("pattern, bpm", [("rock_4_4", 118.0), ("waltz_3_4", 96.0)])
def test_bar_decoder_gives_madmoms_beats_bit_for_bit(madmom_dbn, pattern, bpm):
    from madmom.audio.signal import Signal

    from mirflow.bar_decoder import BarDecoder

    rnn, dbn = madmom_dbn
    audio, _ = render(pattern, bpm, 12.0)
    activations = rnn(Signal(audio, sample_rate=SR, num_channels=1))
    expected = dbn(activations)
    assert len(expected) > 10
    # Chunks of 97 frames: the backtrack crosses a dozen chunk edges.
    for chunk in (97, 100_000):
        np.testing.assert_array_equal(BarDecoder(dbn, chunk)(activations), expected)


def test_bar_decoder_finds_nothing_in_flat_activations(madmom_dbn):
    from mirflow.bar_decoder import BarDecoder

    assert BarDecoder(madmom_dbn[1])(np.zeros((500, 2))).shape == (0, 2)


@pytest.mark.parametrize("samples", [1, 440, 441, 44_100, 123_457, 1_000_000])
def test_frame_windows_join_into_the_whole_signals_frames(samples):
    signal = np.arange(samples, dtype=np.float32)
    rng = np.random.default_rng(samples)
    cuts = np.sort(rng.integers(0, samples, size=7))
    blocks = np.split(signal, cuts)  # uneven blocks, some empty
    frames, previous_end = [], 0
    for audio, keep in frame_windows(blocks, window_s=2.0, context_s=0.5):
        first = int(audio[0]) // HOP  # the window's audio starts on a frame
        assert int(audio[0]) % HOP == 0
        assert np.array_equal(audio, signal[int(audio[0]) : int(audio[0]) + len(audio)])
        assert keep.start + first == previous_end  # no frame missing or repeated
        assert keep.stop - keep.start <= 200
        assert len(audio) <= (200 + 2 * 50) * HOP  # a window and its context, never more
        previous_end = keep.stop + first
        frames.append(keep.stop - keep.start)
    assert sum(frames) == -(-samples // HOP)


@pytest.mark.slow
def test_windowed_grid_has_no_seam_where_windows_end_mid_bar():
    """Windows of 7.3 s on a 4/4 groove at 123 bpm (a bar is 1.95 s): every
    seam falls inside a bar. The grid comes out as regular as the whole-track
    analysis's: no beat doubled or dropped, bars of four throughout."""
    import mir_eval

    audio, truth = render("rock_4_4", 123.0, 45.0)
    windowed = RhythmAnalyzer(window_s=7.3, context_s=3.0).analyze(audio, SR)
    whole = RhythmAnalyzer().analyze(audio, SR)
    times, positions = windowed.beats[:, 0], windowed.beats[:, 1].astype(int)
    period = 60.0 / 123.0
    intervals = np.diff(times)
    assert np.all(np.abs(intervals - period) < 0.1 * period), intervals
    assert np.all(np.diff(positions) % 4 == 1 % 4)  # 1, 2, 3, 4, 1, ...
    assert mir_eval.beat.f_measure(whole.beats[:, 0], times) >= 0.99
    assert mir_eval.beat.f_measure(truth[:, 0], times) >= 0.95
    seams = np.arange(7.3, 45.0, 7.3)
    assert all(np.any(np.abs(times - s) < period) for s in seams)  # beats go on across each
