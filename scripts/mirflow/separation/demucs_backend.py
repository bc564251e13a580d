"""Demucs (htdemucs, htdemucs_ft, htdemucs_6s, mdx_extra, ...) as a separation backend.

Model files live in ``<models_dir>/demucs/`` laid out exactly as demucs's own model repo lays
them out: a bag file ``<model>.yaml`` (``models: [<sig>, ...]``, optional ``weights`` and
``segment``) and one checkpoint ``<sig>-<first 8 hex of its sha256>.th`` per signature. They are
loaded with ``demucs.pretrained.get_model(model, repo=<models_dir>/demucs)``, which reads only
that folder (without ``repo``, demucs 4.1.0 goes to the Hugging Face hub first) and verifies each
file's sha256 prefix against its name on every load.

Separation mirrors ``demucs.api.Separator.separate_tensor`` (normalise by the mono reference's
mean and std, ``apply_model``, undo) followed by the CLI's clipping guard.
"""

from __future__ import annotations

import logging
import math
import random
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import yaml
from demucs.apply import BagOfModels, apply_model
from demucs.htdemucs import HTDemucs
from demucs.pretrained import REMOTE_ROOT, get_model

from mirflow.audio import resample, to_stereo
from mirflow.devices import resolve_device
from mirflow.errors import MAKE_MODELS, ModelNotFoundError
from mirflow.separation import CLAMP_LIMIT, SeparationError, rescale_divisor

log = logging.getLogger(__name__)

#: The official models mirflow supports out of the box (``make models`` downloads them). Any
#: other name works too when its yaml and .th files are in ``<models_dir>/demucs/``.
OFFICIAL_MODELS = ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra")

#: Clipping guards, as demucs's CLI ``--clip-mode`` (``demucs.audio.prevent_clip``).
CLIP_MODES = ("rescale", "clamp", "none")


#: Seed of the random time shifts (``shifts``): the same track always gives the same stems.
_SHIFT_SEED = 0


def official_files() -> dict[str, str]:
    """Signature -> file name of every official checkpoint, from demucs's own ``files.txt``."""
    files: dict[str, str] = {}
    for line in (REMOTE_ROOT / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("root:"):
            continue
        files[line.split("-", 1)[0]] = line
    return files


def official_signatures(model: str) -> list[str] | None:
    """The signatures an official bag needs (from demucs's packaged yaml), or None if unknown."""
    bag_file = REMOTE_ROOT / f"{model}.yaml"
    if not bag_file.is_file():
        return None
    return [str(sig) for sig in yaml.safe_load(bag_file.read_text())["models"]]


class DemucsBackend:
    """One Demucs model (a bag of one or more networks), loaded once, separating many tracks."""

    #: Models loaded in this process (all instances together); tests count loads with it.
    load_count: int = 0

    def __init__(
        self,
        model: str,
        models_dir: str | Path,
        device: str = "auto",
        shifts: int = 1,
        segment: float | None = None,
        overlap: float = 0.25,
        clip_mode: str = "rescale",
        threads: int = 1,
    ) -> None:
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {CLIP_MODES}, not {clip_mode!r}")
        if shifts < 0:
            raise ValueError(f"shifts must be >= 0, not {shifts}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), not {overlap}")
        if segment is not None and segment <= 0:
            raise ValueError(f"segment must be > 0 seconds, not {segment}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        self.model_name = model
        self.models_dir = Path(models_dir)
        self.repo = self.models_dir / "demucs"
        self.shifts = int(shifts)
        self.overlap = float(overlap)
        self.clip_mode = clip_mode
        self.threads = int(threads)

        self._files = self._check_files()  # ModelNotFoundError before any loading
        self.device = resolve_device(device, "separating (minutes per track with full-size models)")
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        started = time.perf_counter()
        self.model = self._load()
        DemucsBackend.load_count += 1
        log.info(
            "loaded demucs:%s (%d network(s)) on %s in %.1f s",
            model,
            len(self.model.models) if isinstance(self.model, BagOfModels) else 1,
            self.device,
            time.perf_counter() - started,
        )

        self.name = f"demucs:{model}"
        self.sample_rate = int(self.model.samplerate)
        self.sources = list(self.model.sources)
        self.audio_channels = int(self.model.audio_channels)
        # Transformer models cannot take chunks longer than they were trained on (demucs's
        # CLI refuses the same); apply_model uses the model's own segment when None.
        max_segment = self._max_segment()
        if segment is not None and segment > max_segment:
            raise ValueError(
                f"segment {segment} s is longer than demucs:{model} allows "
                f"({float(max_segment):g} s, its training segment)"
            )
        self.segment = segment

    # -- loading -------------------------------------------------------------------------------

    def _missing(self, paths: list[Path], extra: str = "") -> ModelNotFoundError:
        names = ", ".join(str(p) for p in paths)
        verb = "is" if len(paths) == 1 else "are"
        hint = MAKE_MODELS
        if self.model_name not in OFFICIAL_MODELS:
            hint += (
                f"; '{self.model_name}' is not one of the official models "
                f"({', '.join(OFFICIAL_MODELS)}), so copy its files into {self.repo}/ yourself"
            )
        return ModelNotFoundError(f"{names} {verb} missing{extra}: {hint}")

    def _check_files(self) -> list[Path]:
        """Every file the model needs is there (named as demucs expects), or ModelNotFoundError.

        demucs itself would ``sys.exit`` on a missing folder and say only "could not find
        signature ..." for a missing checkpoint; this names the files and the fix instead.
        """
        official = official_files()
        bag_file = self.repo / f"{self.model_name}.yaml"
        if not self.repo.is_dir():
            needed = [bag_file]
            sigs = official_signatures(self.model_name) or []
            needed += [self.repo / official.get(s, f"{s}-<sha8>.th") for s in sigs]
            raise self._missing(needed, f" (the folder {self.repo}/ does not exist)")
        checkpoints = sorted(self.repo.glob("*.th"))
        if bag_file.is_file():
            try:
                bag = yaml.safe_load(bag_file.read_text())
                sigs = [str(sig) for sig in bag["models"]]
            except (yaml.YAMLError, TypeError, KeyError, OSError) as exc:
                raise ModelNotFoundError(
                    f"{bag_file} is not a demucs bag file (needs `models: [<sig>, ...]`: "
                    f"{exc}); delete it and {MAKE_MODELS}"
                ) from exc
        elif any(_signature(p) == self.model_name for p in checkpoints):
            sigs = [self.model_name]  # a single network named by its signature
        else:
            sigs = official_signatures(self.model_name) or []
            needed = [bag_file] + [self.repo / official.get(s, s) for s in sigs]
            needed = [p for p in needed if not p.exists()]
            extra = "" if self.model_name in OFFICIAL_MODELS else " (unknown Demucs model name)"
            raise self._missing(needed, extra)

        found: list[Path] = []
        missing: list[Path] = []
        for sig in sigs:
            matches = [p for p in checkpoints if _signature(p) == sig]
            expected = official.get(sig)
            if len(matches) > 1:
                raise ModelNotFoundError(
                    f"{len(matches)} checkpoints for signature {sig} in {self.repo}/ "
                    f"({', '.join(p.name for p in matches)}): demucs refuses duplicates; "
                    f"delete all but {expected or 'one'}"
                )
            if not matches:
                missing.append(self.repo / (expected or f"{sig}-<sha256[:8]>.th"))
            elif expected is not None and matches[0].name != expected:
                raise ModelNotFoundError(
                    f"{matches[0]} is not the official checkpoint {expected} (its name carries "
                    f"a different checksum, or none): delete it and {MAKE_MODELS}"
                )
            else:
                found.append(matches[0])
        if missing:
            raise self._missing(missing)
        return found

    def _load(self) -> torch.nn.Module:
        try:
            model = get_model(self.model_name, repo=self.repo)
        except SystemExit as exc:
            # demucs calls sys.exit (utils.fatal) e.g. for a quantized (diffq) checkpoint when
            # diffq is not installed: never let that end a batch silently.
            raise ModelNotFoundError(
                f"demucs gave up loading '{self.model_name}' from {self.repo}/ (exit {exc.code}; "
                "a quantized model needs the diffq package, which mirflow does not install)"
            ) from exc
        except Exception as exc:  # every load failure means "bad model files"
            files = ", ".join(str(p) for p in self._files)
            raise ModelNotFoundError(
                f"could not load Demucs model '{self.model_name}' from {files}: {exc}. "
                f"The file is corrupt or incompletely downloaded: delete it and {MAKE_MODELS}"
            ) from exc
        return model.eval().to(self.device)

    def _max_segment(self) -> float | Fraction:
        if isinstance(self.model, BagOfModels):
            return self.model.max_allowed_segment
        if isinstance(self.model, HTDemucs):
            return self.model.segment
        return float("inf")

    @property
    def window_unit(self) -> int:
        """Samples between the starts of apply_model's overlapping chunks (the least common
        multiple over a bag's networks). A long track's windows start on multiples of it, so
        each window's chunks are the whole track's chunks (mirflow.separation.batch)."""
        models = self.model.models if isinstance(self.model, BagOfModels) else [self.model]
        unit = 1
        for network in models:
            length = int(network.samplerate * (self.segment or network.segment))
            unit = math.lcm(unit, max(1, int((1 - self.overlap) * length)))
        return unit

    # -- separation ----------------------------------------------------------------------------

    def separate(
        self, audio: np.ndarray, sr: int, prevent_clip: bool = True
    ) -> dict[str, np.ndarray]:
        """``(channels, samples)`` float audio at ``sr`` -> {stem: float32 ``(2, n)``}.

        ``n`` is the length of the mix resampled to :attr:`sample_rate`. Mono is duplicated
        to stereo, more channels are down-mixed to stereo (ITU-R BS.775, as the crops are).
        ``prevent_clip=False`` leaves the clipping guard (``clip_mode``) to the caller: a
        window of a long track must not be rescaled on its own.
        """
        mix = self._prepare(audio, sr)
        if self.device == "cpu":
            torch.set_num_threads(self.threads)  # process-wide: another stage may have changed it
        wav = torch.from_numpy(mix)
        ref = wav.mean(0)
        mean = ref.mean()
        std = ref.std() + 1e-8
        rng_state = random.getstate()  # apply_model draws its shifts from the global `random`
        random.seed(_SHIFT_SEED)
        try:
            with torch.inference_mode():
                out = apply_model(
                    self.model,
                    ((wav - mean) / std)[None],
                    shifts=self.shifts,
                    split=True,
                    overlap=self.overlap,
                    segment=self.segment,
                    device=self.device,
                    progress=False,
                )
                out = out[0] * std + mean
                if prevent_clip:
                    out = _prevent_clip(out, self.clip_mode)
        finally:
            random.setstate(rng_state)
        stems = out.to("cpu", torch.float32).numpy()
        return {name: np.ascontiguousarray(stems[i]) for i, name in enumerate(self.sources)}

    def _prepare(self, audio: np.ndarray, sr: int) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
        if audio.shape[0] == 0 or audio.shape[1] == 0:
            raise SeparationError("no audio samples to separate")
        if audio.shape[0] > audio.shape[1]:
            raise ValueError(
                f"audio of shape {audio.shape} has more channels than samples: "
                "expected (channels, samples), not (samples, channels)"
            )
        if sr <= 0:
            raise ValueError(f"sample rate must be > 0, not {sr}")
        if not np.isfinite(audio).all():
            raise SeparationError("the audio contains NaN or infinite samples")
        audio = to_stereo(audio)
        mix = resample(np.ascontiguousarray(audio), int(sr), self.sample_rate)
        if mix.shape[1] < 2:
            raise SeparationError(f"too short to separate ({audio.shape[1]} samples at {sr} Hz)")
        return np.ascontiguousarray(mix, dtype=np.float32)


def _signature(path: Path) -> str:
    """The signature demucs's LocalRepo reads from a checkpoint name (``<sig>[-<sha8>].th``)."""
    return path.stem.rsplit("-", 1)[0] if "-" in path.stem else path.stem


def _prevent_clip(stems: torch.Tensor, mode: str) -> torch.Tensor:
    """demucs's ``prevent_clip`` on ``(sources, channels, samples)``.

    demucs's CLI applies it to each stem file separately; here "rescale" uses one factor for
    all stems (the loudest peak), so the stems keep their balance and still add up to a
    (scaled) mix. "clamp" clips to +-0.99 as demucs does.
    """
    if mode == "none":
        return stems
    if mode == "rescale":
        return stems / rescale_divisor(float(stems.abs().max()))
    if mode == "clamp":
        return stems.clamp(-CLAMP_LIMIT, CLAMP_LIMIT)
    raise ValueError(f"clip_mode must be one of {CLIP_MODES}, not {mode!r}")
