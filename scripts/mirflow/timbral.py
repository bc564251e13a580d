"""The timbral feature group: Audio Commons' timbral models (``timbral-models``
0.4.0, Pearce et al., AudioCommons D5.8) on a signal, as the older pipeline
wrote them: ``brightness``, ``roughness``, ``hardness``, ``depth``,
``booming``, ``reverberation``, ``sharpness``, ``warmth``, each 0-100.

The package is used as published. Its last release predates NumPy 2 and
librosa 0.10, so four of its models call APIs those removed (``np.lib.pad``;
librosa's ``onset_detect``/``onset_strength``/``resample`` with positional
arguments). :func:`_models` hands those modules a view of numpy and librosa
with the old spellings, mapped onto the new calls with the same meaning;
nothing outside timbral_models sees it.

The models cost about as much as the audio is long (see README, "Timbral
models"), so the group is off by default.
"""

from __future__ import annotations

import functools
import logging
import types
import warnings
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: The .INFO keys, each the package's ``timbral_<key>`` (but for reverberation).
KEYS = (
    "brightness",
    "roughness",
    "hardness",
    "depth",
    "booming",
    "reverberation",
    "sharpness",
    "warmth",
)
_PACKAGE_NAMES = {"reverberation": "reverb"}


class _Over(types.ModuleType):
    """``module`` with some attributes replaced (a view; the module is untouched)."""

    def __init__(self, module: types.ModuleType, **replaced: Any) -> None:
        super().__init__(module.__name__)
        self.__dict__.update(replaced)
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _old_librosa():
    """librosa as timbral-models calls it: ``(y, sr)`` and ``(y, orig, target)`` positionally."""
    import librosa  # noqa: PLC0415

    def onset_detect(y, sr=22050, **kwargs):
        return librosa.onset.onset_detect(y=y, sr=sr, **kwargs)

    def onset_strength(y, sr=22050, **kwargs):
        return librosa.onset.onset_strength(y=y, sr=sr, **kwargs)

    def resample(y, orig_sr, target_sr, **kwargs):
        return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, **kwargs)

    return _Over(
        librosa,
        onset=_Over(librosa.onset, onset_detect=onset_detect, onset_strength=onset_strength),
        core=_Over(librosa.core, resample=resample),
    )


@functools.cache
def _models() -> dict[str, Any]:
    """.INFO key -> model function, with the modules' numpy and librosa views in place."""
    import timbral_models  # noqa: PLC0415
    from timbral_models import Timbral_Hardness, Timbral_Roughness, timbral_util  # noqa: PLC0415

    librosa_view = _old_librosa()
    numpy_view = _Over(np, lib=_Over(np.lib, pad=np.pad))
    for module in (timbral_util, Timbral_Hardness):
        module.librosa = librosa_view
    for module in (Timbral_Hardness, Timbral_Roughness):
        module.np = numpy_view
    return {key: getattr(timbral_models, f"timbral_{_PACKAGE_NAMES.get(key, key)}") for key in KEYS}


def timbre(audio: np.ndarray, sr: int) -> dict[str, float | None]:
    """The eight timbral attributes of ``audio`` (channels x samples), 0-100;
    all None for silence (the models refuse it), and one None where its
    model is undefined on the audio (a constant signal has no spectral peaks
    for warmth; a near-silent one no power to weight by, or a gain its
    loudness normalisation overflows).
    ``reverberation`` is 100 x the reverb model's probability that the audio
    sounds reverberant (the package's own output rounds it to 0 or 1)."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if not np.any(audio):
        return dict.fromkeys(KEYS)
    from librosa import ParameterError  # noqa: PLC0415

    samples = audio.T if audio.shape[0] > 1 else audio[0]  # the package's (samples, channels)
    mono = samples.sum(axis=1) if samples.ndim > 1 else samples  # its channel_reduction
    out: dict[str, float | None] = {}
    for key, model in _models().items():
        # The research code warns on every empty frame and log of zero.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if key == "reverberation":  # every channel, as the package's extractor does
                    value = 100.0 * float(model(samples, fs=sr, dev_output=True)[1])
                else:
                    value = float(model(mono, fs=sr, clip_output=True))
            except (ValueError, ZeroDivisionError, IndexError, ParameterError) as error:
                log.warning("timbral %s undefined on this audio (%s): None", key, error)
                value = float("nan")
        out[key] = value if np.isfinite(value) else None
    return out
