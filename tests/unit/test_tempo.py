"""The octave vote (mirflow.tempo): candidates, votes, grid rescaling, and what
reaches the prompts when a tempo is not defined."""

import numpy as np
import pytest

from mirflow.export import bpm_of, tag_list
from mirflow.tempo import (
    accent_contrast,
    agrees,
    bar_subdivisions,
    choose_tempo,
    closeness,
    combine_tempi,
    doubling_supported,
    rescale_grid,
)


def grid(bpm: float, bars: int, beats_per_bar: int, upbeat: int = 0) -> np.ndarray:
    """A steady grid; ``upbeat`` beats before the first downbeat."""
    n = bars * beats_per_bar + upbeat
    positions = (np.arange(n) - upbeat) % beats_per_bar + 1
    return np.column_stack([np.arange(n) * 60.0 / bpm, positions]).astype(float)


def test_agreement_is_relative_and_symmetric():
    assert agrees(100.0, 103.9) and agrees(103.9, 100.0)
    assert not agrees(100.0, 104.5)
    assert not agrees(None, 100.0) and not agrees(100.0, 0.0)


def test_closeness_counts_an_octave_half():
    assert closeness(120.0, 120.0) == pytest.approx(1.0)
    assert closeness(60.0, 120.0) == pytest.approx(0.5)
    assert closeness(150.0, 120.0) == 0.0
    assert closeness(None, 120.0) == 0.0


def test_candidates_keep_bars_whole():
    assert sorted(bar_subdivisions(4)) == [2, 4, 8]
    assert sorted(bar_subdivisions(3)) == [2, 3, 6]  # 2: a 6/8's two dotted quarters
    assert sorted(bar_subdivisions(2)) == [1, 2, 4]


def test_the_estimators_outvote_a_doubled_tracker():
    choice = choose_tempo(176.0, [88.5, 89.1], 4)
    assert choice.is_defined and choice.bpm == pytest.approx(88.0)
    assert choice.beats_per_bar == 2


def test_a_tie_keeps_the_trackers_grid():
    # Both Essentia estimators halve a fast backbeat; its accent says the
    # dropped beats are the strong ones (contrast < 1): two votes each.
    choice = choose_tempo(180.0, [90.0, 90.0], 4, accent=0.4)
    assert choice.bpm == pytest.approx(180.0)
    # The same estimates with the odd beats accented: the half wins.
    assert choose_tempo(180.0, [90.0, 90.0], 4, accent=2.0).bpm == pytest.approx(90.0)


def test_an_odd_bar_is_never_halved_but_may_be_two_thirds():
    # Half of a 3-beat bar is no grid: the estimators' 90 is no candidate, and
    # nothing else agrees with the tracker.
    odd = choose_tempo(180.0, [90.0, 90.0], 3)
    assert not odd.is_defined and odd.beats_per_bar == 3
    compound = choose_tempo(136.0, [90.5, 91.0], 3)
    assert compound.bpm == pytest.approx(136.0 * 2 / 3) and compound.beats_per_bar == 2


def test_doubling_needs_onsets_between_the_beats():
    beats = grid(60.0, 8, 4)
    clicks = beats[:, 0]  # a metronome: nothing in between
    assert not doubling_supported(beats, clicks)
    eighths = np.arange(0, beats[-1, 0] + 0.5, 0.5)
    assert doubling_supported(beats, eighths)
    # The onsets refuse the double Essentia hears: the tracker's 60 stands.
    assert choose_tempo(60.0, [120.0, 120.0], 4, doubling_ok=False).bpm == pytest.approx(60.0)
    assert choose_tempo(60.0, [120.0, 120.0], 4, doubling_ok=True).bpm == pytest.approx(120.0)


def test_no_agreement_means_no_tempo():
    choice = choose_tempo(65.6, [123.5, 94.8], 4)
    assert not choice.is_defined and choice.bpm is None
    assert choice.beats_per_bar == 4  # the tracker's grid is kept
    assert 0.0 <= choice.confidence < 0.5
    assert not choose_tempo(None, [120.0, 120.0], 4).is_defined


def test_halving_keeps_the_downbeats_and_their_phase():
    beats = grid(176.0, 6, 4, upbeat=2)
    halved = rescale_grid(beats, 2)
    np.testing.assert_allclose(halved[:, 0], beats[beats[:, 1] % 2 == 1, 0])
    downbeats = beats[beats[:, 1] == 1, 0]
    np.testing.assert_allclose(halved[halved[:, 1] == 1, 0], downbeats)
    assert set(halved[:, 1]) == {1.0, 2.0}
    assert 60.0 / np.median(np.diff(halved[:, 0])) == pytest.approx(88.0)


def test_doubling_fills_in_midpoints():
    beats = grid(60.0, 4, 4)
    doubled = rescale_grid(beats, 8)
    assert len(doubled) == 2 * len(beats) - 1
    np.testing.assert_allclose(doubled[::2, 0], beats[:, 0])
    np.testing.assert_allclose(doubled[doubled[:, 1] == 1, 0], beats[beats[:, 1] == 1, 0])


def test_two_thirds_of_a_three_beat_bar():
    beats = grid(135.0, 4, 3)
    compound = rescale_grid(beats, 2)
    bar = 3 * 60.0 / 135.0
    np.testing.assert_allclose(compound[:4, 0], [0, bar / 2, bar, 1.5 * bar])
    np.testing.assert_allclose(compound[:4, 1], [1, 2, 1, 2])


def test_bars_of_changing_length_are_rescaled_each_on_its_own():
    beats = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 1], [5, 2], [6, 3], [7, 1], [8, 2.0]])
    halved = rescale_grid(beats, 2)
    assert list(halved[halved[:, 1] == 1, 0]) == [0.0, 4.0, 7.0]


def test_an_undefined_tempo_reaches_no_prompt():
    crop = {"bpm": 120.0, "track_bpm": None, "bpm_is_defined": False, "track_key": "E:major"}
    assert bpm_of(crop) is None
    assert not any("bpm" in tag for tag in tag_list(crop))
    assert bpm_of({"bpm": 88.0, "bpm_is_defined": True}) == 88.0


def test_one_windows_tempi_are_the_tracks():
    one = {"bpm_essentia": 121.3, "bpm_essentia_confidence": 3.1, "bpm_percival": 60.7}
    assert combine_tempi([(one, 1000)]) == one


def test_a_long_tracks_tempo_is_its_windows_weighted_median():
    # Three windows at 128 bpm and a shorter one at 90 (a transition): the
    # median keeps 128; the confidence is the length-weighted mean.
    windows = [
        ({"bpm_essentia": 128.0, "bpm_essentia_confidence": 3.0, "bpm_percival": 128.5}, 300),
        ({"bpm_essentia": 90.0, "bpm_essentia_confidence": 1.0, "bpm_percival": None}, 100),
        ({"bpm_essentia": 127.8, "bpm_essentia_confidence": 3.0, "bpm_percival": 64.0}, 300),
        ({"bpm_essentia": 128.2, "bpm_essentia_confidence": 3.0, "bpm_percival": 128.0}, 300),
    ]
    tempi = combine_tempi(windows)
    assert tempi["bpm_essentia"] == 128.0
    assert tempi["bpm_percival"] == 128.0
    assert tempi["bpm_essentia_confidence"] == pytest.approx(2.8)
    assert combine_tempi([({"bpm_essentia": None}, 10), ({"bpm_essentia": None}, 5)]) == {
        "bpm_essentia": None,
        "bpm_essentia_confidence": None,
        "bpm_percival": None,
    }


def test_accent_is_read_from_the_flux_at_the_beats():
    flux = np.zeros(1000)
    beats = np.array([[t, 1 + i % 4] for i, t in enumerate(np.arange(0.5, 9.5, 0.5))])
    flux[np.round(beats[beats[:, 1] % 2 == 1, 0] * 100).astype(int) + 2] = 2.0  # 20 ms late
    flux[np.round(beats[beats[:, 1] % 2 == 0, 0] * 100).astype(int)] = 1.0
    assert accent_contrast(flux, beats) == pytest.approx(2.0)
    one_beat_bars = np.column_stack([beats[:, 0], np.ones(len(beats))])
    assert accent_contrast(flux, one_beat_bars) is None  # an odd bar: no half to vote on
