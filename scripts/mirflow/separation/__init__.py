"""Source separation: a mix in, named stems out.

A backend loads its model once (``__init__``) and then separates any number
of tracks (``separate``): the batch rule keeps one backend resident for a
whole batch. Backends take ``(channels, samples)`` float32 audio at any rate
and return stereo stems at their own ``sample_rate``, each exactly as long as
the mix resampled to that rate; mirflow.stems folds them into its four
``STEMS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mirflow.errors import TrackError

#: The clipping guard of demucs's CLI (``demucs.audio.prevent_clip``): "clamp" clips
#: stems to +-CLAMP_LIMIT; "rescale" divides every stem by :func:`rescale_divisor` of
#: their loudest peak, so the stems keep their balance.
CLAMP_LIMIT = 0.99


def rescale_divisor(peak: float) -> float:
    """What "rescale" divides the stems by, given their loudest peak (1: none)."""
    return max(1.01 * peak, 1.0)


class SeparationError(TrackError):
    """The backend could not separate this track (e.g. a bad checkpoint)."""


class SeparationBackend(Protocol):
    name: str  # e.g. "demucs:htdemucs"
    sample_rate: int
    #: Samples between the starts of the model's own overlapping chunks: a long
    #: track's windows start on multiples of it (mirflow.separation.batch), so a
    #: window's chunks are the whole track's.
    window_unit: int
    #: The clipping guard ("rescale", "clamp" or "none") that ``separate`` applies
    #: with ``prevent_clip``, and that a long track's windows leave to the caller.
    clip_mode: str

    def separate(
        self, audio: np.ndarray, sr: int, prevent_clip: bool = True
    ) -> dict[str, np.ndarray]: ...


def required_files(separation: dict[str, Any], models_dir: str | Path) -> list[Path]:
    """Files the configured backend loads, under ``models_dir`` (which of them
    are missing: ``mirflow.models.missing_for("source_separation", ...)``).

    Demucs: the model's bag yaml and every ``<sig>-<hash>.th`` it lists (the
    yaml shipped in the demucs package is read when the local one is absent);
    BS-RoFormer: the checkpoint and its yaml.
    """
    models_dir = Path(models_dir)
    if separation["backend"] == "bs_roformer":
        ckpt = models_dir / "audio-separator" / separation["bs_roformer"]["model_file"]
        return [ckpt, ckpt.with_suffix(".yaml")]
    name = separation["demucs"]["model"]
    folder = models_dir / "demucs"
    bag = folder / f"{name}.yaml"
    files = [bag]
    packaged = _packaged_bag(name)
    official = _official_files(packaged.parent) if packaged else {}
    for sig in _bag_signatures(bag if bag.exists() else packaged):
        matches = sorted(folder.glob(f"{sig}-*.th")) if folder.is_dir() else []
        files.append(matches[0] if matches else folder / official.get(sig, f"{sig}-<hash>.th"))
    return files


def _official_files(remote: Path) -> dict[str, str]:
    """Signature -> official file name, from the demucs package's ``files.txt``
    (read here rather than through demucs_backend: this runs at parse time and
    must not import torch)."""
    listing = remote / "files.txt"
    if not listing.exists():
        return {}
    names = [line.strip() for line in listing.read_text().splitlines()]
    return {n.split("-", 1)[0]: n for n in names if n.endswith(".th")}


def _packaged_bag(name: str) -> Path | None:
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("demucs")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "remote" / f"{name}.yaml"
    return path if path.exists() else None


def _bag_signatures(bag: Path | None) -> list[str]:
    if bag is None:
        return []
    import yaml  # noqa: PLC0415

    return [str(sig) for sig in (yaml.safe_load(bag.read_text()) or {}).get("models", [])]
