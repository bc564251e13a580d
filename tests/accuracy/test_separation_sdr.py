"""Separation quality with the real weights, on a real multitrack.

The multitrack ("The Easton Ellises - Falcon 69", 6 s, CC BY-NC-SA) ships
inside the stempeg package: mixture + drums, bass, other, vocals. Each test
is skipped when its model's weights are not in models/ (`make models`).
Run with ``-s`` to see the figures.
"""

from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from mirflow.models import missing_for
from mirflow.separation.batch import make_backend
from mirflow.stems import STEMS

pytestmark = pytest.mark.slow

MODELS = REPO / "models"
CONFIGS = {
    "demucs:htdemucs": {"backend": "demucs", "demucs": {"model": "htdemucs"}},
    "bs_roformer:BS-Roformer-SW": {
        "backend": "bs_roformer", "bs_roformer": {"model_file": "BS-Roformer-SW.ckpt"},
    },
}  # fmt: skip
BASE = {
    "device": "auto", "threads": 2, "save_extra_stems": False, "discard_stems": [],
    "demucs": {"model": "htdemucs", "shifts": 1, "segment": None, "overlap": 0.25,
               "clip_mode": "rescale"},
    "bs_roformer": {"model_file": "BS-Roformer-SW.ckpt"},
}  # fmt: skip


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB (the MUSDB "new SDR": no projection)."""
    error = np.sum((reference - estimate) ** 2) + 1e-9
    return float(10 * np.log10((np.sum(reference**2) + 1e-9) / error))


@pytest.fixture(scope="module")
def multitrack():
    stempeg = pytest.importorskip("stempeg")
    stems, rate = stempeg.read_stems(stempeg.example_stem_path())
    names = ("mixture", *STEMS)  # stempeg's order: mixture, drums, bass, other, vocals
    return {name: stems[i].T.astype(np.float32) for i, name in enumerate(names)}, rate


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sdr_with_real_weights(name, multitrack):
    from mirflow.stems import fold_stems

    config = {**BASE, **CONFIGS[name]}
    missing = missing_for("source_separation", config, MODELS)
    if missing:
        pytest.skip(f"{name}: weights not in models/ ({Path(missing[0]).name}; `make models`)")
    tracks, rate = multitrack
    backend = make_backend(config, MODELS)
    estimate = fold_stems(backend.separate(tracks["mixture"], rate))
    scores = {stem: sdr(tracks[stem], estimate[stem][:, : tracks[stem].shape[1]]) for stem in STEMS}
    print(f"\n{name} SDR (dB): " + ", ".join(f"{s} {v:.1f}" for s, v in scores.items()))
    # Published figures are 7-10 dB on MUSDB18; a working model is well above 0 here.
    assert np.mean(list(scores.values())) > 3.0
