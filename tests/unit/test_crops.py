import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from mirflow.audio import to_stereo
from mirflow.crops import (
    CropOptions,
    beats_in_window,
    crop_track,
    cut_crops,
    cut_spans,
    fit_channels,
    plan_crops,
)
from mirflow.errors import AudioDecodeError

SR = 1000


def options(**kw):
    return CropOptions(**{"length_samples": 4000, "sample_rate": SR, **kw})


def test_sequential_full_crops_only():
    plan = plan_crops(10_500, np.array([]), options(mode="sequential"))
    assert plan.starts == [0, 4000]  # the 2500-sample tail is never a crop
    plan = plan_crops(10_500, np.array([]), options(mode="sequential", overlap=True))
    assert plan.starts == [0, 2000, 4000, 6000]


def test_beat_mode_starts_on_downbeats():
    downbeats = np.arange(500, 20_000, 1500)  # a bar every 1.5 s, first at 0.5 s
    plan = plan_crops(20_000, downbeats, options())
    assert plan.alignment == "beat"
    assert all(s in downbeats for s in plan.starts)
    assert plan.starts[0] == 500
    assert np.all(np.diff(plan.starts) >= 4000)
    assert plan.starts[-1] + 4000 <= 20_000


def test_div4_starts_are_multiples_of_four_bars_apart():
    downbeats = np.arange(0, 40_000, 1000)
    plan = plan_crops(40_000, downbeats, options(div4=True, length_samples=5000))
    bars = [int(np.where(downbeats == s)[0][0]) for s in plan.starts]
    assert plan.alignment == "beat-div4"
    assert bars == [0, 8, 16, 24, 32][: len(bars)] and len(bars) >= 4
    assert all(b % 4 == 0 for b in bars)


def test_no_downbeats_falls_back_to_sequential_and_short_track_has_none():
    plan = plan_crops(9000, np.array([]), options())
    assert plan.starts == [0, 4000] and "sequential" in plan.alignment
    assert plan_crops(3999, np.array([0]), options()).starts == []


def test_planning_ends_on_degenerate_grids():
    # Repeated and unsorted downbeats, all at one place: must still terminate.
    plan = plan_crops(100_000, np.array([10, 10, 10, 5, 5]), options(div4=True))
    assert plan.starts == [5]


def test_beats_in_window_are_relative():
    beats = np.array([[0.5, 1], [1.0, 2], [1.5, 3], [2.0, 4], [2.5, 1]])
    window = beats_in_window(beats, 1.0, 2.5)
    assert window.tolist() == [[0.0, 2], [0.5, 3], [1.0, 4]]


def test_fit_channels():
    mono = np.ones((1, 10))
    assert fit_channels(mono, 2).shape == (2, 10)
    six = np.arange(60, dtype=float).reshape(6, 10)
    assert fit_channels(six, 2).shape == (2, 10)
    assert fit_channels(six, 1).shape == (1, 10)
    assert fit_channels(six, None) is six


def test_surround_is_down_mixed_not_cut_to_its_first_two_channels():
    # 5.1 in WAV/FLAC order: FL FR FC LFE BL BR. Music only in the centre (as
    # dialogue and vocals often are) must reach both sides, equally.
    centre = np.zeros((6, 100), dtype=np.float32)
    centre[2] = 0.5
    stereo = fit_channels(centre, 2)
    assert stereo.dtype == np.float32
    assert np.allclose(stereo[0], stereo[1]) and stereo[0, 0] > 0.1
    # Full scale in every channel cannot clip; the LFE is left out.
    assert np.abs(fit_channels(np.ones((6, 10), np.float32), 2)).max() <= 1.0 + 1e-6
    lfe = np.zeros((6, 10), np.float32)
    lfe[3] = 1.0
    assert not np.any(fit_channels(lfe, 2))
    # Front left stays on the left only.
    left = np.zeros((6, 10), np.float32)
    left[0] = 1.0
    assert fit_channels(left, 2)[1].max() == 0 and fit_channels(left, 2)[0].max() > 0
    # No standard layout (16 channels): every channel counts, on both sides.
    many = np.zeros((16, 10), np.float32)
    many[15] = 1.0
    assert np.allclose(fit_channels(many, 2), 1 / 16)
    assert np.array_equal(fit_channels(centre, 2), to_stereo(centre))  # one down-mix for all


@pytest.mark.parametrize("channels", [3, 4, 5, 7, 8])
def test_every_standard_layout_down_mixes_without_clipping(channels):
    stereo = fit_channels(np.ones((channels, 10), np.float32), 2)
    assert stereo.shape == (2, 10) and 0.3 < stereo.max() <= 1.0 + 1e-6


def test_digital_silence_gets_no_crops_and_says_why(tmp_path):
    silent = np.zeros((2, 20_000), dtype=np.float32)
    plan, crops = cut_crops(
        "s", lambda: [silent], np.empty((0, 2)), {}, options(format="wav"), tmp_path
    )
    assert crops == {} and plan.alignment == "none (digital silence)"
    assert not list(tmp_path.iterdir())
    quiet = silent.copy()
    quiet[0, 5] = 1e-6  # not digital silence: cut as usual
    plan, crops = cut_crops(
        "q", lambda: [quiet], np.empty((0, 2)), {}, options(format="wav"), tmp_path
    )
    assert len(crops) == 5


def test_cut_crops_writes_exact_lengths_with_stems_on_same_boundaries(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (2, 20_000)).astype(np.float32)
    stems = {"drums": audio * 0.5, "bass": audio[:, :19_990] * 0.25}  # bass a bit short
    beats = np.array([[t, (i % 4) + 1] for i, t in enumerate(np.arange(0.25, 20, 0.5))])
    opts = options(format="wav", subtype="FLOAT")
    blocks = {
        name: (lambda stem=stem: np.array_split(stem, 7, axis=1)) for name, stem in stems.items()
    }
    plan, crops = cut_crops(
        "t", lambda: np.array_split(audio, 3, axis=1), beats, blocks, opts, tmp_path
    )
    assert len(crops) == len(plan.starts) >= 3
    for crop in crops.values():
        data, sr = sf.read(tmp_path / crop["audio_file"], always_2d=True)
        assert sr == SR and data.shape == (4000, 2)
        start = crop["start_sample"]
        np.testing.assert_allclose(data.T, audio[:, start : start + 4000], atol=1e-7)
        drums, _ = sf.read(tmp_path / crop["stem_files"]["drums"], always_2d=True)
        np.testing.assert_allclose(drums.T, stems["drums"][:, start : start + 4000], atol=1e-7)
        bass, _ = sf.read(tmp_path / crop["stem_files"]["bass"], always_2d=True)
        assert bass.shape == (4000, 2)
        assert crop["position_in_file"] == pytest.approx(start / 20_000)
        crop_beats = np.loadtxt(tmp_path / crop["beats_file"], ndmin=2)
        assert crop_beats[0, 0] == pytest.approx(0.0)  # starts on a downbeat
        assert crop_beats[0, 1] == 1
        assert np.all(crop_beats[:, 0] < 4.0)
    assert not list(tmp_path.glob(".mirflow-tmp-*"))


def test_cut_spans_gives_the_slices_of_the_whole_array():
    audio = np.random.default_rng(3).standard_normal((2, 10_000)).astype(np.float32)
    # Overlapping, straddling block edges, touching, past the end and beyond it.
    spans = [(0, 1500), (900, 2100), (1999, 2101), (2500, 2600), (2999, 5001), (4000, 6000)]
    spans += [(6000, 7000), (9000, 10_000), (9500, 10_500), (10_200, 10_300)]
    for blocks in (np.split(audio, 10, axis=1), np.array_split(audio, 37, axis=1), [audio]):
        cut = list(cut_spans(iter(blocks), spans))
        assert [index for index, _ in cut] == list(range(len(spans)))
        for (_, piece), (start, end) in zip(cut, spans, strict=True):
            assert np.array_equal(piece, audio[:, start:end])


def test_crop_memory_is_bounded_by_a_crop_not_the_track(tmp_path):
    sr, seconds = 44100, 600
    track = tmp_path / "long.wav"
    with sf.SoundFile(track, "w", sr, 1, "PCM_16") as out:  # written a minute at a time
        rng = np.random.default_rng(0)
        for _ in range(seconds // 60):
            out.write(rng.uniform(-0.5, 0.5, 60 * sr).astype(np.float32))
    (tmp_path / "none.BEATS").write_text("")
    opts = CropOptions(2**19, sr, mode="sequential", channels=None, format="wav", subtype="PCM_16")
    tracemalloc.start()
    try:
        result = crop_track(
            "long", track, tmp_path / "none.BEATS", {"drums": str(track)}, opts, tmp_path
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.crops) == seconds * sr // 2**19
    decoded = seconds * sr * 4  # the whole track as float32
    assert peak < 0.25 * decoded, f"peak {peak / 1e6:.0f} MB of a {decoded / 1e6:.0f} MB track"


def test_a_stem_failing_midway_leaves_no_crops(tmp_path):
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 20_000)).astype(np.float32)

    def truncated_stem():
        yield audio[:, :10_000]
        raise AudioDecodeError("bass.m4a: ffmpeg cannot decode: truncated")

    opts = options(mode="sequential", format="wav")
    with pytest.raises(AudioDecodeError, match="truncated"):
        cut_crops("t", lambda: [audio], np.empty((0, 2)), {"bass": truncated_stem}, opts, tmp_path)
    assert not list(tmp_path.iterdir())  # two crops were written, then taken back
