"""Beats and downbeats with Beat This! (Foscarin, Schlüter & Widmer, ISMIR 2024).

Why a second backend: Beat This! is a transformer trained on 16 data sets that tracks beats and
downbeats accurately *without* a DBN. Its default ("minimal") postprocessing only picks peaks of
the frame-wise predictions, so it imposes no tempo range and no metre: bars of 3, 4 or any other
number of beats, and tempo changes, come from the network's output (madmom's DBN, in
:mod:`mirflow.rhythm`, decodes only the bar lengths and tempo range it is given). The optional
DBN postprocessing (``dbn=True``) is madmom's downbeat DBN over 3/4 and 4/4, as in the package.

Only the network (``beat_this.model.beat_tracker.BeatThis``), its postprocessor and
``beat_this.utils`` are imported from the ``beat-this`` package (1.1.0, MIT): its
``preprocessing`` and ``inference`` modules import torchaudio at module level, and torchaudio is
not installable beside this project's CPU torch. The two pieces of those modules inference needs
are therefore re-implemented here, faithfully:

* :class:`LogMelSpect`: the package's ``LogMelSpect`` (torchaudio ``MelSpectrogram`` at 22050
  Hz, then ``log1p(1000 x)``) with ``torch.stft`` and librosa's mel filterbank;
* :func:`split_predict_aggregate`: the package's chunked inference (1500-frame chunks, 6-frame
  borders, earlier chunk wins where they overlap).

Checkpoints are read from a local file only (no ``torch.hub``, no URL), in the official format
that ``beat_this.inference.load_model`` reads (see :func:`load_beat_this`). Onsets are
not this model's job: :meth:`BeatThisAnalyzer.analyze` returns none, and the caller adds them
(e.g. from madmom's onset detector); :meth:`BeatThisAnalyzer.beats_and_downbeats` gives the raw
times.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from mirflow.audio import resample, to_mono
from mirflow.checkpoints import usable_checkpoint
from mirflow.errors import MAKE_MODELS, ModelNotFoundError

if TYPE_CHECKING:
    from mirflow.rhythm import Rhythm

log = logging.getLogger(__name__)

#: The model's input: 22050 Hz mono, 1024-point STFT every 441 samples (50 frames per second),
#: 128 Slaney-scale mel bands from 30 Hz to 11 kHz (beat_this.preprocessing.LogMelSpect).
SAMPLE_RATE = 22050
N_FFT = 1024
HOP_LENGTH = 441
FPS = SAMPLE_RATE // HOP_LENGTH  # 50
F_MIN = 30.0
F_MAX = 11000.0
N_MELS = 128
LOG_MULTIPLIER = 1000.0

#: beat_this.inference.Spect2Frames: chunks of 1500 frames (30 s), of which
#: 6 frames on either side are discarded, overlapping so every frame is predicted once.
CHUNK_SIZE = 1500
BORDER_SIZE = 6


class LogMelSpect(torch.nn.Module):
    """The package's ``LogMelSpect`` without torchaudio: ``(samples,)`` -> ``(frames, 128)``.

    The package computes ``torchaudio.transforms.MelSpectrogram(sample_rate=22050, n_fft=1024,
    hop_length=441, f_min=30, f_max=11000, n_mels=128, mel_scale="slaney",
    normalized="frame_length", power=1)`` and then ``log1p(1000 x)``. The torchaudio defaults it
    leaves in place: periodic Hann window of ``n_fft`` samples, ``center=True`` with reflect
    padding, one-sided spectrum, and ``norm=None`` (unit-height triangles, no Slaney area
    normalisation). ``normalized="frame_length"`` is ``torch.stft(normalized=True)``, i.e. the
    spectrum divided by ``sqrt(n_fft)``; power 1 is the magnitude. librosa's filterbank with
    ``htk=False, norm=None`` is the same triangles (librosa's own default is ``norm="slaney"``,
    torchaudio's default scale is ``"htk"``: both are overridden here as in the package).
    """

    def __init__(self) -> None:
        super().__init__()
        import librosa  # noqa: PLC0415  (only the filterbank; numba stays unloaded)

        fb = librosa.filters.mel(
            sr=SAMPLE_RATE,
            n_fft=N_FFT,
            n_mels=N_MELS,
            fmin=F_MIN,
            fmax=F_MAX,
            htk=False,
            norm=None,
            dtype=np.float32,
        )  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("mel_fb", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            signal,
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            win_length=N_FFT,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=True,
            onesided=True,
            return_complex=True,
        ).abs()  # (n_fft // 2 + 1, frames)
        return torch.log1p(LOG_MULTIPLIER * (self.mel_fb @ spec).T)


# -- chunked inference: beat_this.inference.split_piece / aggregate_prediction /
#    split_predict_aggregate (overlap_mode="keep_first", avoid_short_end=True) -----------------


def split_piece(
    spect: torch.Tensor, chunk_size: int = CHUNK_SIZE, border_size: int = BORDER_SIZE
) -> tuple[list[torch.Tensor], list[int]]:
    """Chunks of a ``(frames, bins)`` spectrogram and their start frames (``split_piece``).

    The first and last chunk are zero-padded by ``border_size`` frames; consecutive chunks
    overlap by ``2 * border_size``; the last chunk is moved left to end at the piece's end. A
    piece shorter than a chunk is a single shorter chunk.
    """
    n = len(spect)
    starts = np.arange(-border_size, n - border_size, chunk_size - 2 * border_size)
    if n > chunk_size - 2 * border_size:
        starts[-1] = n - (chunk_size - border_size)
    chunks = [
        F.pad(
            spect[max(start, 0) : min(start + chunk_size, n)],
            (0, 0, max(0, -start), max(0, min(border_size, start + chunk_size - n))),
        )
        for start in starts
    ]
    return chunks, [int(s) for s in starts]


def aggregate_prediction(
    pred_chunks: list[dict[str, torch.Tensor]],
    starts: list[int],
    full_size: int,
    chunk_size: int = CHUNK_SIZE,
    border_size: int = BORDER_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-piece beat and downbeat logits from per-chunk ones (``aggregate_prediction``).

    Each chunk loses ``border_size`` frames on either side; where chunks overlap the earlier
    one wins ("keep_first"). Frames no chunk covers would stay at -1000 (none, with
    :func:`split_piece`'s chunks).
    """
    device = pred_chunks[0]["beat"].device
    beat = torch.full((full_size,), -1000.0, device=device)
    downbeat = torch.full((full_size,), -1000.0, device=device)
    inner = slice(border_size, -border_size) if border_size > 0 else slice(None)
    for start, pred in reversed(list(zip(starts, pred_chunks, strict=True))):
        where = slice(start + border_size, start + chunk_size - border_size)
        beat[where] = pred["beat"][inner]
        downbeat[where] = pred["downbeat"][inner]
    return beat, downbeat


def split_predict_aggregate(
    spect: torch.Tensor,
    model: torch.nn.Module,
    chunk_size: int = CHUNK_SIZE,
    border_size: int = BORDER_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-wise beat and downbeat logits ``(frames,)`` of an unbatched ``(frames, bins)``."""
    chunks, starts = split_piece(spect, chunk_size, border_size)
    preds = []
    for chunk in chunks:
        out = model(chunk.unsqueeze(0))
        preds.append({"beat": out["beat"][0], "downbeat": out["downbeat"][0]})
    return aggregate_prediction(preds, starts, len(spect), chunk_size, border_size)


def _existing(checkpoint: str | os.PathLike) -> Path:
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelNotFoundError(f"Beat This! checkpoint {path} is missing: {MAKE_MODELS}")
    return path


def load_beat_this(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """A ``BeatThis`` from a local checkpoint, as ``beat_this.inference.load_model`` builds it.

    The file is a (stripped) PyTorch Lightning checkpoint: ``{"state_dict": {"model.<key>":
    tensor}, "hyper_parameters": {...}, ...}``; the ``hyper_parameters`` that are ``BeatThis``
    arguments (so the small model loads too) build the network, ``model.`` is removed from the
    keys (``_orig_mod.`` of compiled models is removed by ``BeatThis`` itself) and the weights are
    loaded strictly. A missing or unusable file raises :class:`ModelNotFoundError`.
    """
    with warnings.catch_warnings():
        # rotary-embedding-torch decorates with the deprecated torch.cuda.amp.autocast.
        warnings.filterwarnings(
            "ignore", message=r"`torch\.cuda\.amp\.autocast", category=FutureWarning
        )
        from beat_this.model.beat_tracker import BeatThis  # noqa: PLC0415
    from beat_this.utils import replace_state_dict_key  # noqa: PLC0415

    path = _existing(checkpoint)
    with usable_checkpoint(path, "Beat This!", MAKE_MODELS):
        ckpt = torch.load(path, map_location=device, weights_only=True)
        accepted = set(inspect.signature(BeatThis).parameters)
        hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in accepted}
        model = BeatThis(**hparams)
        model.load_state_dict(replace_state_dict_key(dict(ckpt["state_dict"]), "model.", ""))
    return model.to(device).eval()


class BeatThisAnalyzer:
    """Holds one Beat This! model (loaded on first use), so one object serves many tracks.

    ``checkpoint``: a local ``.ckpt`` in the official format (``final0.ckpt``, ``small0.ckpt``
    ...). ``device``: "cpu", "cuda", "cuda:1", ... ``dbn``: madmom's DBN postprocessing (3/4 and
    4/4) instead of the default peak picking. A missing checkpoint raises
    :class:`ModelNotFoundError` here, before any track is read.
    """

    def __init__(
        self, checkpoint: str | os.PathLike, device: str = "cpu", dbn: bool = False
    ) -> None:
        self.checkpoint = _existing(checkpoint)
        self.device = torch.device(device)
        self.dbn = dbn

    @cached_property
    def model(self) -> torch.nn.Module:
        model = load_beat_this(self.checkpoint, self.device)
        log.info("loaded Beat This! %s on %s", self.checkpoint, self.device)
        return model

    @cached_property
    def front_end(self) -> LogMelSpect:
        return LogMelSpect().to(self.device)

    @cached_property
    def postprocessor(self):
        from beat_this.model.postprocessor import Postprocessor  # noqa: PLC0415

        if self.dbn:  # Postprocessor imports madmom.features.downbeats itself
            from mirflow.madmom_import import import_madmom  # noqa: PLC0415

            import_madmom()
        return Postprocessor(type="dbn" if self.dbn else "minimal", fps=FPS)

    def spectrogram(self, mono: np.ndarray, sr: int) -> torch.Tensor:
        """The model input ``(frames, 128)`` of a mono signal at any rate (soxr to 22050 Hz)."""
        signal = np.asarray(mono, dtype=np.float32)
        if signal.ndim not in (1, 2):
            raise ValueError(f"expected (samples,) or (channels, samples), got {signal.shape}")
        signal = resample(to_mono(signal)[np.newaxis], sr, SAMPLE_RATE)[0]  # soxr HQ, as upstream
        signal = torch.tensor(signal, dtype=torch.float32, device=self.device)
        if len(signal) <= N_FFT // 2:  # too short for the STFT's reflect padding: no frames
            return torch.zeros((0, N_MELS), device=self.device)
        return self.front_end(signal)

    def frame_logits(self, mono: np.ndarray, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Beat and downbeat logits at 50 frames per second (``Audio2Frames``)."""
        with torch.inference_mode():
            spect = self.spectrogram(mono, sr)
            if len(spect) == 0:
                return torch.empty(0), torch.empty(0)
            return split_predict_aggregate(spect, self.model)

    def beats_and_downbeats(self, mono: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """Beat and downbeat times in seconds (every downbeat is also a beat), as ``Audio2Beats``.

        Audio of at most half an STFT frame (512 samples at 22050 Hz) has no beats.
        """
        beat, downbeat = self.frame_logits(mono, sr)
        if len(beat) == 0:
            return np.empty(0), np.empty(0)
        beats, downbeats = self.postprocessor(beat.float(), downbeat.float())
        return np.asarray(beats, dtype=float), np.asarray(downbeats, dtype=float)

    def analyze(self, mono: np.ndarray, sr: int) -> Rhythm:
        """Beats as ``(n, 2)`` ``[time_s, beat_in_bar]`` (1 = downbeat); no onsets (see module).

        Beat numbers are ``beat_this.utils.infer_beat_numbers``: 1 at each downbeat, counting up
        to the next; beats before the first downbeat count back from the first full bar's length.
        With fewer than two downbeats, or a pickup longer than the first bar, the package starts
        counting at 2 and does not wrap (its warning is logged, not printed).
        """
        from beat_this.utils import infer_beat_numbers  # noqa: PLC0415

        from mirflow.rhythm import Rhythm  # noqa: PLC0415

        beats, downbeats = self.beats_and_downbeats(mono, sr)
        if len(beats):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                numbers = infer_beat_numbers(beats, downbeats)
            if printed.getvalue().strip():
                log.warning("Beat This!: %s", printed.getvalue().strip())
            grid = np.column_stack([beats, numbers]).astype(float)
            if len(downbeats) < 2:
                # The package's numbering does not wrap with fewer than two
                # downbeats: say "position unknown" (0) rather than claim a long bar.
                grid[:, 1] = 0
        else:
            grid = np.empty((0, 2))
        return Rhythm(beats=grid, onsets=np.empty(0), duration_s=np.shape(mono)[-1] / sr)
