"""Meta AudioBox Aesthetics: four quality scores (CE, CU, PC, PQ) for a crop or a whole track.

The model (``audiobox_aesthetics.model.aes.AesMultiOutput``: a WavLM encoder, a learned
softmax-weighted sum of its layer outputs, one linear head per axis) is used directly. The
package's own inference code (``audiobox_aesthetics.infer``) imports torchaudio, which mirflow's
environment cannot import (a CUDA build beside CPU torch), so its steps are reproduced here,
one by one, from audiobox-aesthetics 0.0.4 ``infer.py``:

1. ``AesPredictor.setup_model``: ``torch.load`` the checkpoint, strip ``model.`` from the
   state-dict keys, build ``AesMultiOutput(**model_cfg[9 keys], target_transform=...)`` and
   ``load_state_dict`` strictly; eval mode.
2. ``audio_resample_mono``: resample to 16 kHz, average the channels.
3. ``make_inference_batch(wavs, hop_size=10, window_size=10, sample_rate=16000)``: windows of
   10 s every 10 s (no overlap); the last one is zero-padded to 10 s and carries a mask of its
   real samples and a weight ``real samples / 160000``.
4. ``forward``: the model on the windows (in ``torch.inference_mode``), each axis un-normalised
   with ``Normalize.inverse`` (``x * std + mean`` from ``target_transform``), then the
   weight-averaged mean over one clip's windows.

So a clip of any length > 0 is scored: a clip shorter than 10 s is one zero-padded, masked
window (the package does the same); silence is scored like any other audio. A clip with no
samples at all has no window (the package would fail on an empty ``torch.stack``): it raises
``AestheticsError`` (a ``TrackError``), as does audio with NaN or infinite samples.

Cost (full-size architecture, 94.4 M parameters, float32; measured with random weights of the
official shapes): about 28 ms per 11.9 s crop and 0.25 s per 4-minute track on one H100
(about 210 windows/s at ``batch_size`` 16, 3.4 GiB peak; 240/s at 32, 6.3 GiB); on a CPU about
0.2 s per window with 16 threads and 4 s with 2. Loading takes about 2 s.

Precision: ``AesMultiOutput`` maps ``model_cfg["precision"]`` to a torch dtype and then tests
``str(dtype) in {"16", "bf16"}``, which is never true (``str(torch.bfloat16)`` is
``"torch.bfloat16"``), so the package never enables autocast and always runs in float32. The
same class is used here, so mirflow runs in float32 too, exactly as the package does.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mirflow.audio import resample, sample_windows, stream_audio, to_mono
from mirflow.checkpoints import usable_checkpoint
from mirflow.devices import resolve_device
from mirflow.errors import MAKE_MODELS, ModelNotFoundError, TrackError

log = logging.getLogger(__name__)

#: Short axis names (the package's, and its output keys) -> the keys mirflow returns.
AXES = {
    "CE": "content_enjoyment",
    "CU": "content_usefulness",
    "PC": "production_complexity",
    "PQ": "production_quality",
}

#: Where ``make models`` puts the official checkpoint, relative to the models folder.
DEFAULT_CHECKPOINT = "audiobox-aesthetics/checkpoint.pt"

SAMPLE_RATE = 16000  # AesPredictor.sample_rate ("const")
WINDOW_SECONDS = 10  # make_inference_batch(window_size=10) as AesPredictor.forward calls it
HOP_SECONDS = 10  # make_inference_batch(hop_size=10)
WINDOW = WINDOW_SECONDS * SAMPLE_RATE
HOP = HOP_SECONDS * SAMPLE_RATE
#: Samples of a file scored at a time (30 windows, 300 s): windows never straddle two.
FILE_CHUNK = 30 * HOP

#: Decimals kept in returned scores (the scores live on a 1-10 scale).
DECIMALS = 4

#: The ``model_cfg`` entries ``AesPredictor.setup_model`` passes to ``AesMultiOutput``.
MODEL_CFG_KEYS = (
    "proj_num_layer",
    "proj_ln",
    "proj_act_fn",
    "proj_dropout",
    "nth_layer",
    "use_weighted_layer_sum",
    "precision",
    "normalize_embed",
    "output_dim",
)

#: Optional top-level checkpoint entry: WavLM config fields that differ from the package's
#: ``aes.DEFAULT_AUDIO_CFG``. The official checkpoint has no such entry (the package always
#: builds the encoder from ``DEFAULT_AUDIO_CFG``) and is built exactly as the package builds it;
#: only the tiny test model (tests/model_fixtures/audiobox_tiny.py) writes one.
ENCODER_CFG_KEY = "mirflow_wavlm_cfg"


# aes.DEFAULT_AUDIO_CFG is a module global read while AesMultiOutput is built: swapping it is
# serialised so two threads cannot build with each other's encoder config.
_BUILD_LOCK = threading.Lock()


class AestheticsError(TrackError):
    """This audio cannot be scored (no samples, or NaN/infinite samples)."""


# -- preprocessing (pure numpy: unit-tested against hand computations) --------------------------


def resampled_length(n_samples: int, sr: int, sr_out: int = SAMPLE_RATE) -> int:
    """Samples after resampling, as torchaudio.functional.resample counts them (ceil)."""
    return -(-n_samples * sr_out // sr)


def to_model_input(audio: np.ndarray, sr: int) -> np.ndarray:
    """``(channels, samples)`` or ``(samples,)`` at ``sr`` -> 16 kHz mono float32 ``(samples,)``.

    The package resamples each channel with torchaudio, then averages the channels; both steps
    are linear, so averaging first (one channel to resample, not two) gives the same signal up
    to float rounding.

    Resampling is soxr ("HQ", via mirflow.audio.resample), not torchaudio's
    ``functional.resample`` (windowed sinc, Hann window, 6 zero crossings, rolloff 0.99). They
    differ in two ways:

    * the filter: soxr's is long and steep; torchaudio's short one starts rolling off below
      6 kHz and lets some energy alias back near 8 kHz. On the seven test-library files
      (22.05/44.1 kHz music, first 60 s) the two 16 kHz signals differ by -30 to -54 dB
      (relative RMS), nearly all of it above 6 kHz: below 4 kHz the difference is about
      -67 dB, in 7-8 kHz the two disagree by about -3 to -8 dB of that band's energy. On the
      tiny random test model, scores of 44.1/48 kHz clips moved by up to 0.004 against the
      package run with real torchaudio (16 kHz clips: 3e-5, i.e. rounding); the effect on the
      trained model is not measured (no weights here);
    * the length: soxr returns ``round(n * 16000 / sr)`` samples, torchaudio
      ``ceil(n * 16000 / sr)``. The result is zero-padded (or trimmed) to torchaudio's length
      here, so the windows, masks and weights are exactly the package's.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be (channels, samples) or (samples,), not {audio.shape}")
    mono = to_mono(audio)
    if sr != SAMPLE_RATE:
        target = resampled_length(mono.shape[-1], sr)
        mono = resample(mono[None, :], sr, SAMPLE_RATE)[0]
        if mono.shape[0] < target:
            mono = np.pad(mono, (0, target - mono.shape[0]))
        mono = mono[:target]
    return np.ascontiguousarray(mono, dtype=np.float32)


def window_plan(n_samples: int, window: int = WINDOW, hop: int = HOP) -> list[tuple[int, int]]:
    """``(start, real length)`` of every window, as ``make_inference_batch`` cuts them.

    ``range(0, n, hop)`` starts; each window holds up to ``window`` samples, so with the
    package's 10 s/10 s a 25 s clip gives (0, 10 s), (10 s, 10 s), (20 s, 5 s).
    """
    return [(start, min(window, n_samples - start)) for start in range(0, n_samples, hop)]


def make_windows(
    wav: np.ndarray, plan: Sequence[tuple[int, int]] | None = None, window: int = WINDOW
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a mono clip into the package's windows (``plan``: the ``window_plan`` entries to
    cut, all of them by default).

    Returns ``windows`` (n, window) float32, zero-padded at the end; ``masks`` (n, window) bool,
    True on real samples; ``weights`` (n,) float64, real samples / window.
    """
    if plan is None:
        plan = window_plan(wav.shape[-1], window)
    windows = np.zeros((len(plan), window), dtype=np.float32)
    masks = np.zeros((len(plan), window), dtype=bool)
    for i, (start, length) in enumerate(plan):
        windows[i, :length] = wav[start : start + length]
        masks[i, :length] = True
    weights = np.array([length / window for _, length in plan], dtype=np.float64)
    return windows, masks, weights


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """``(values * weights).sum() / weights.sum()``: one clip's score from its windows'."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return float((values * weights).sum() / weights.sum())


# -- the model --------------------------------------------------------------------------------


@contextmanager
def _quiet_upstream() -> Iterator[None]:
    """Silence two deprecation warnings the package's WavLM code raises on today's torch
    (old ``nn.utils.weight_norm``; a bool padding mask beside a float attention bias): they
    say nothing about the audio and would repeat for every batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.nn\.utils\.weight_norm` is deprecated")
        warnings.filterwarnings("ignore", message=r"Support for mismatched key_padding_mask")
        yield


@contextmanager
def _encoder_config(overrides: dict | None) -> Iterator[None]:
    """Build AesMultiOutput with ``aes.DEFAULT_AUDIO_CFG`` updated by ``overrides`` (if any)."""
    from audiobox_aesthetics.model import aes  # noqa: PLC0415
    from audiobox_aesthetics.model.wavlm import WavLMConfig  # noqa: PLC0415

    with _BUILD_LOCK:
        if not overrides:
            yield
            return
        original = aes.DEFAULT_AUDIO_CFG
        aes.DEFAULT_AUDIO_CFG = WavLMConfig({**original.__dict__, **overrides})
        try:
            yield
        finally:
            aes.DEFAULT_AUDIO_CFG = original


class AestheticsModel:
    """One AudioBox Aesthetics checkpoint, loaded once, scoring any number of clips."""

    #: Models loaded in this process (all instances together); tests count loads with it.
    load_count: int = 0

    def __init__(self, model, target_transform: dict, device: str, batch_size: int, path: Path):
        # Use AestheticsModel.load(checkpoint): this only stores what it built.
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.model = model
        self.target_transform = {
            axis: (float(target_transform[axis]["mean"]), float(target_transform[axis]["std"]))
            for axis in AXES
        }
        self.device = device
        self.batch_size = int(batch_size)
        self.checkpoint = path

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        device: str = "auto",
        batch_size: int = 16,
        threads: int | None = None,
    ) -> AestheticsModel:
        """Load a checkpoint in the official format, as ``AesPredictor.setup_model`` does:
        ``{"state_dict": {"model.<key>": tensor}, "model_cfg": {...},
        "target_transform": {axis: {"mean", "std"}}}``.

        ``device``: "auto" (CUDA if visible, else CPU), "cpu", "cuda", "cuda:1", ...
        ``batch_size``: 10 s windows per forward pass. ``threads``: torch CPU threads
        (``torch.set_num_threads``, process-wide) when on the CPU; None keeps torch's default.

        A missing file raises ModelNotFoundError naming it; a file that is not such a checkpoint
        raises ModelNotFoundError too (delete it and download again).
        """
        import torch  # noqa: PLC0415
        from audiobox_aesthetics.model.aes import AesMultiOutput  # noqa: PLC0415

        path = Path(checkpoint)
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing: {MAKE_MODELS}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        device = resolve_device(device, "scoring aesthetics (seconds per 10 s window)")
        if device == "cpu" and threads is not None:
            torch.set_num_threads(int(threads))
        started = time.perf_counter()
        with usable_checkpoint(path, "audiobox-aesthetics", MAKE_MODELS):
            # The official file pickles only dicts, OrderedDict and float32 tensors (its Hugging
            # Face page lists those pickle imports): weights_only loads it, and nothing else.
            ckpt = torch.load(path, map_location=device, weights_only=True)
            # The package's own regex (its "." matches any character).
            state_dict = {re.sub("^model.", "", k): v for k, v in ckpt["state_dict"].items()}
            model_cfg = {k: ckpt["model_cfg"][k] for k in MODEL_CFG_KEYS}
            target_transform = ckpt["target_transform"]
            missing_axes = [axis for axis in AXES if axis not in target_transform]
            if missing_axes:
                raise KeyError(f"target_transform lacks {', '.join(missing_axes)}")
            with _encoder_config(ckpt.get(ENCODER_CFG_KEY)), _quiet_upstream():
                model = AesMultiOutput(**model_cfg, target_transform=target_transform)
            model.load_state_dict(state_dict)  # strict, as the package loads it
        model.to(device)
        model.eval()
        cls.load_count += 1
        log.info(
            "loaded audiobox-aesthetics %s on %s in %.2f s",
            path,
            device,
            time.perf_counter() - started,
        )
        return cls(model, target_transform, device, batch_size, path)

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """The four scores of one clip ((channels, samples) or (samples,) at ``sr``)."""
        return self.score_many([(audio, sr)])[0]

    def score_file(self, path: str | Path) -> dict[str, float]:
        """Decode ``path`` (AudioDecodeError, a TrackError naming it, if it cannot) and score it.

        The file is decoded and scored :data:`FILE_CHUNK` samples at a time (16 kHz
        mono), whole windows each, so a two-hour track holds one chunk, not the
        track; the windows and weights are the whole file's (the last window may
        differ by the one sample that soxr's and torchaudio's lengths differ by).
        """
        sums = dict.fromkeys(AXES, 0.0)
        total = 0.0
        try:
            chunks = sample_windows(stream_audio(path, sr=SAMPLE_RATE, mono=True), FILE_CHUNK, 0)
            for chunk in chunks:
                wav = np.ascontiguousarray(chunk.audio[0])
                if not np.isfinite(wav).all():
                    raise AestheticsError("audio has NaN or infinite samples")
                plan = window_plan(wav.shape[0])
                preds = self._predict([wav], [(0, start, length) for start, length in plan])
                weights = np.array([length / WINDOW for _, length in plan], dtype=np.float64)
                for axis in AXES:
                    sums[axis] += float((preds[axis].astype(np.float64) * weights).sum())
                total += float(weights.sum())
        except AestheticsError as exc:
            raise AestheticsError(f"{path}: {exc}") from exc
        return {name: round(sums[axis] / total, DECIMALS) for axis, name in AXES.items()}

    def score_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> list[dict[str, float]]:
        """Score several clips, pooling their windows into forward passes of ``batch_size``.

        Each window is scored on its own (fixed length, its own mask), so the result of a
        clip does not depend on which clips share its batch. One bad clip (see
        ``AestheticsError``) fails the call before any forward pass.
        """
        wavs, windows = [], []  # windows: (clip index, start, real length)
        for index, (audio, sr) in enumerate(clips):
            wav = to_model_input(audio, sr)
            if wav.shape[0] == 0:
                raise AestheticsError("no audio samples to score")
            if not np.isfinite(wav).all():
                raise AestheticsError("audio has NaN or infinite samples")
            wavs.append(wav)
            windows += [(index, start, length) for start, length in window_plan(wav.shape[0])]
        if not windows:
            return []
        preds = self._predict(wavs, windows)
        owner = np.array([index for index, _, _ in windows])
        weights = np.array([length / WINDOW for _, _, length in windows], dtype=np.float64)
        results = []
        for index in range(len(clips)):
            mine = owner == index
            results.append(
                {
                    name: round(weighted_mean(preds[axis][mine], weights[mine]), DECIMALS)
                    for axis, name in AXES.items()
                }
            )
        return results

    def _predict(
        self, wavs: list[np.ndarray], windows: list[tuple[int, int, int]]
    ) -> dict[str, np.ndarray]:
        """Un-normalised predictions of every window, ``{axis: (n_windows,)}``.

        Windows are cut (``make_windows``) one batch at a time: a long track never holds all
        its padded windows in memory at once.
        """
        import torch  # noqa: PLC0415

        out: dict[str, list[np.ndarray]] = {axis: [] for axis in AXES}
        with torch.inference_mode(), _quiet_upstream():
            for first in range(0, len(windows), self.batch_size):
                cut = [
                    make_windows(wavs[index], [(start, length)])
                    for index, start, length in windows[first : first + self.batch_size]
                ]
                # (B, 1, T), like the package's torch.stack of (1, T) windows and masks.
                wav = torch.from_numpy(np.concatenate([w for w, _, _ in cut])[:, None])
                mask = torch.from_numpy(np.concatenate([m for _, m, _ in cut])[:, None])
                preds = self.model({"wav": wav.to(self.device), "mask": mask.to(self.device)})
                for axis in AXES:
                    mean, std = self.target_transform[axis]
                    # Normalize.inverse, on the device and in float32 as the package does it.
                    values = preds[axis].float() * std + mean
                    out[axis].append(values.reshape(-1).cpu().numpy())
        return {axis: np.concatenate(chunks) for axis, chunks in out.items()}
