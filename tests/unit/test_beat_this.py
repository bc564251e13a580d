"""BeatThisAnalyzer on a tiny random Beat This! model loaded through the real network code.

The tiny model is the real ``beat_this.model.beat_tracker.BeatThis`` at a tiny width, saved in
the official checkpoint format (``model_fixtures.beat_this_tiny``). Its beats are noise, so these
tests check the plumbing: the mel front-end (against an independent NumPy transcription of
torchaudio's MelSpectrogram), loading, the chunked inference (against the package's own
``beat_this.inference`` functions, imported with a stand-in for torchaudio, which cannot be
installed here), the beat numbering and the errors.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_fixtures.beat_this_tiny import build_tiny_beat_this, write_tiny_beat_this

from mirflow import beat_this_tracker as bt
from mirflow.beat_this_tracker import BeatThisAnalyzer, LogMelSpect, split_predict_aggregate
from mirflow.errors import ModelNotFoundError
from mirflow.rhythm import Rhythm

SR = bt.SAMPLE_RATE


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_beat_this(tmp_path_factory.mktemp("models") / "beat_this" / "tiny.ckpt")


@pytest.fixture(scope="module")
def analyzer(checkpoint):
    return BeatThisAnalyzer(checkpoint)


def clicks(seconds: float, sr: int, bpm: float = 120.0) -> np.ndarray:
    """Short Hann-windowed clicks at ``bpm``, the first a quarter beat in."""
    x = np.zeros(int(round(seconds * sr)), dtype=np.float32)
    width = int(0.005 * sr)
    for t in np.arange(15.0 / bpm, seconds, 60.0 / bpm):
        i = int(round(t * sr))
        x[i : i + width] += np.hanning(width)[: len(x) - i]
    return x


# -- (a) mel front-end ---------------------------------------------------------------------------


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * 200.0 / 3)


def reference_fbank() -> np.ndarray:
    """torchaudio.functional.melscale_fbanks(513, 30, 11000, 128, 22050, norm=None,
    mel_scale="slaney"), transcribed: ``(n_freqs, n_mels)`` triangles on the Slaney scale."""
    all_freqs = np.linspace(0, SR // 2, bt.N_FFT // 2 + 1)
    m_pts = np.linspace(_hz_to_mel_slaney(bt.F_MIN), _hz_to_mel_slaney(bt.F_MAX), bt.N_MELS + 2)
    f_pts = _mel_to_hz_slaney(m_pts)
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def reference_log_mel(x: np.ndarray) -> np.ndarray:
    """LogMelSpect by the formula: reflect-padded frames, periodic Hann, |rfft| / sqrt(n_fft)
    (normalized="frame_length", power=1), mel triangles, log1p(1000 x). ``(frames, 128)``."""
    n_fft, hop = bt.N_FFT, bt.HOP_LENGTH
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + len(x) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) / np.sqrt(n_fft)
    return np.log1p(1000.0 * mag @ reference_fbank())


def test_mel_filterbank_is_torchaudios_slaney_scale_without_area_norm():
    fb = LogMelSpect().mel_fb.numpy().T  # (n_freqs, n_mels)
    np.testing.assert_allclose(fb, reference_fbank(), rtol=0, atol=2e-6)


def test_log_mel_matches_the_formula():
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size) + clicks(1.3, SR)
    x = x.astype(np.float32)
    ours = LogMelSpect()(torch.from_numpy(x)).numpy()
    ref = reference_log_mel(x)
    assert ours.shape == ref.shape == (1 + len(x) // bt.HOP_LENGTH, 128)  # 50 frames per second
    assert ref.max() > 3.0  # a loud enough signal for the comparison to mean something
    np.testing.assert_allclose(ours, ref, rtol=0, atol=5e-5)  # float32 STFT vs float64


# -- (b) loading and analysis --------------------------------------------------------------------


def test_checkpoint_loads_the_saved_weights(checkpoint):
    loaded = bt.load_beat_this(checkpoint)
    built = build_tiny_beat_this()
    spect = torch.randn(1, 120, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = loaded(spect), built(spect)
    torch.testing.assert_close(a["beat"], b["beat"], rtol=0, atol=0)
    torch.testing.assert_close(a["downbeat"], b["downbeat"], rtol=0, atol=0)


def test_compiled_model_keys_load(tmp_path, checkpoint):
    """Checkpoints of a torch.compile'd model have ``model._orig_mod.<key>``."""
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["state_dict"] = {
        k.replace("model.", "model._orig_mod.", 1): v for k, v in ckpt["state_dict"].items()
    }
    path = tmp_path / "compiled.ckpt"
    torch.save(ckpt, path)
    reference = bt.load_beat_this(checkpoint).state_dict()
    for key, value in bt.load_beat_this(path).state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


def test_analyze_returns_a_well_formed_rhythm(analyzer):
    sr = 44100  # resampled to 22050 inside
    mono = clicks(4.0, sr)
    rhythm = analyzer.analyze(mono, sr)
    assert isinstance(rhythm, Rhythm)
    assert rhythm.duration_s == pytest.approx(4.0)
    assert rhythm.onsets.shape == (0,)
    beats = rhythm.beats
    assert beats.ndim == 2 and beats.shape[1] == 2
    assert len(beats) > 0, "the tiny fixture (seed 0) finds beats in clicks"
    times, numbers = beats[:, 0], beats[:, 1]
    assert np.all(np.diff(times) > 0)
    assert times[0] >= 0 and times[-1] <= rhythm.duration_s
    assert np.all(numbers >= 1) and np.array_equal(numbers, np.round(numbers))

    beat_times, downbeat_times = analyzer.beats_and_downbeats(mono, sr)
    np.testing.assert_array_equal(beat_times, times)
    assert np.all(np.isin(downbeat_times, beat_times))
    np.testing.assert_array_equal(rhythm.downbeats, downbeat_times)


def test_dbn_postprocessing(checkpoint):
    """dbn=True: madmom's downbeat DBN (3/4 and 4/4), so every bar has 3 or 4 beats."""
    rhythm = BeatThisAnalyzer(checkpoint, dbn=True).analyze(clicks(6.0, SR), SR)
    assert rhythm.beats.ndim == 2 and rhythm.beats.shape[1] == 2
    assert len(rhythm.beats) > 0
    assert np.all(np.diff(rhythm.beats[:, 0]) > 0)
    assert set(np.unique(rhythm.beats[:, 1])) <= {1.0, 2.0, 3.0, 4.0}


def test_model_is_loaded_once(checkpoint, monkeypatch):
    loads = []
    real = bt.load_beat_this
    monkeypatch.setattr(bt, "load_beat_this", lambda *a, **k: loads.append(1) or real(*a, **k))
    analyzer = BeatThisAnalyzer(checkpoint)
    assert loads == []  # lazy
    for seconds in (1.0, 2.0):
        analyzer.analyze(clicks(seconds, SR), SR)
    assert loads == [1]


def test_beat_numbers_follow_the_downbeats(analyzer, monkeypatch):
    """3/4 with a one-beat pickup: the pickup is beat 3 (counted back from the first full bar)."""
    beats = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    downbeats = np.array([1.0, 2.5])
    monkeypatch.setattr(analyzer, "beats_and_downbeats", lambda mono, sr: (beats, downbeats))
    rhythm = analyzer.analyze(np.zeros(4 * SR, dtype=np.float32), SR)
    np.testing.assert_array_equal(rhythm.beats[:, 0], beats)
    np.testing.assert_array_equal(rhythm.beats[:, 1], [3, 1, 2, 3, 1, 2, 3])
    assert rhythm.beats_per_bar == 3


def test_stereo_and_too_short_input(analyzer):
    stereo = np.stack([clicks(1.0, SR), clicks(1.0, SR)])
    assert analyzer.spectrogram(stereo, SR).shape == (1 + SR // bt.HOP_LENGTH, 128)
    short = analyzer.analyze(np.zeros(400, dtype=np.float32), SR)
    assert short.beats.shape == (0, 2) and short.duration_s == pytest.approx(400 / SR)


# -- (c) chunked inference -----------------------------------------------------------------------


@pytest.fixture
def upstream_inference(monkeypatch):
    """The package's ``beat_this.inference``, imported with an empty stand-in for torchaudio
    (it is only used by LogMelSpect and load_audio, which are not called here)."""
    names = ("beat_this.inference", "beat_this.preprocessing")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    monkeypatch.setitem(sys.modules, "torchaudio", types.ModuleType("torchaudio"))
    try:
        yield importlib.import_module("beat_this.inference")
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


class ContextModel(torch.nn.Module):
    """A cheap stand-in with the model's interface whose output depends on each frame, its
    neighbours and the whole chunk (so chunk boundaries and padding show in the result)."""

    def forward(self, x):  # (1, T, 128)
        local = F.avg_pool1d(x.mean(-1, keepdim=True).transpose(1, 2), 5, 1, 2)[:, 0]
        context = x.mean(dim=(1, 2))[:, None]
        position = torch.arange(x.shape[1], dtype=x.dtype)[None] / 1000
        return {"beat": local + context + position, "downbeat": local - context - position}


@pytest.mark.parametrize("frames", [1, 7, 300, 1488, 1489, 1500, 1501, 2000, 3100])
def test_chunking_matches_the_package(upstream_inference, frames):
    spect = torch.randn(frames, 128, generator=torch.Generator().manual_seed(frames))
    model = ContextModel()
    beat, downbeat = split_predict_aggregate(spect, model)
    ref = upstream_inference.split_predict_aggregate(
        spect, chunk_size=1500, border_size=6, overlap_mode="keep_first", model=model
    )
    torch.testing.assert_close(beat, ref["beat"], rtol=0, atol=0)
    torch.testing.assert_close(downbeat, ref["downbeat"], rtol=0, atol=0)
    assert beat.shape == downbeat.shape == (frames,)


def test_chunking_of_the_real_network(analyzer):
    model = analyzer.model
    gen = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        # Shorter than a chunk: one pass over the piece zero-padded by the 6-frame borders.
        short = torch.randn(300, 128, generator=gen)
        beat, downbeat = split_predict_aggregate(short, model)
        single = model(F.pad(short, (0, 0, 6, 6))[None])
        torch.testing.assert_close(beat, single["beat"][0, 6:-6], rtol=0, atol=0)
        torch.testing.assert_close(downbeat, single["downbeat"][0, 6:-6], rtol=0, atol=0)

        # Longer than a chunk: two chunks, [-6, 1494) and [506, 2006) with zero padding; the
        # first keeps frames 0..1487, the second the rest.
        long = torch.randn(2000, 128, generator=gen)
        beat, downbeat = split_predict_aggregate(long, model)
        assert beat.shape == downbeat.shape == (2000,)
        assert bool(torch.all(beat > -1000)) and bool(torch.all(downbeat > -1000))
        first = model(F.pad(long[:1494], (0, 0, 6, 0))[None])
        second = model(F.pad(long[506:], (0, 0, 0, 6))[None])
        torch.testing.assert_close(beat[:1488], first["beat"][0, 6:-6], rtol=0, atol=0)
        torch.testing.assert_close(beat[1488:], second["beat"][0, 982:-6], rtol=0, atol=0)
        torch.testing.assert_close(downbeat[1488:], second["downbeat"][0, 982:-6], rtol=0, atol=0)


# -- (d) errors ----------------------------------------------------------------------------------


def test_missing_checkpoint_names_the_file_and_make_models(tmp_path):
    missing = tmp_path / "models" / "beat_this" / "final0.ckpt"
    with pytest.raises(ModelNotFoundError, match="make models") as info:
        BeatThisAnalyzer(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ModelNotFoundError, match="make models") as info:
        bt.load_beat_this(missing)
    assert str(missing) in str(info.value)


def test_damaged_checkpoint(tmp_path):
    bad = tmp_path / "final0.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFoundError, match="not a usable Beat This! checkpoint") as info:
        BeatThisAnalyzer(bad).model  # noqa: B018  (loading is lazy)
    assert str(bad) in str(info.value)


def test_the_rhythm_stage_runs_on_beat_this(checkpoint, tmp_path):
    """rhythm.backend beat_this: the stage's own path (RhythmAnalyzer, the tempo
    vote, the .BEATS file), with madmom's onsets beside Beat This!'s beats."""
    import soundfile as sf

    from mirflow.rhythm import RhythmAnalyzer, analyze_track, read_beats

    audio = tmp_path / "clicks.wav"
    sf.write(audio, clicks(8.0, 44100), 44100)
    analyzer = RhythmAnalyzer(backend="beat_this", checkpoint=checkpoint)
    result = analyze_track(analyzer, audio, tmp_path / "clicks.BEATS")
    assert "bpm_beat_this" in result.track and "bpm_madmom" not in result.track
    assert isinstance(result.track["bpm_is_defined"], bool)
    assert len(result.data["onsets"]) > 0  # madmom's CNN onsets
    beats = read_beats(tmp_path / "clicks.BEATS")
    assert beats.shape[1] == 2 and np.all(np.diff(beats[:, 0]) > 0)


def test_an_unknown_backend_is_refused():
    from mirflow.rhythm import RhythmAnalyzer

    with pytest.raises(ValueError, match="rhythm.backend"):
        RhythmAnalyzer(backend="librosa")
