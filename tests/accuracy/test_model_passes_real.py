"""With the real AudioBox and Essentia weights in models/ (`make models`), the
demo library's scores are in range and differ between recordings. Skipped
when the weights are absent (the tiny-model tests cover the code paths)."""

import numpy as np
import pytest

from conftest import LIBRARY, REPO

pytestmark = pytest.mark.slow

MODELS = REPO / "models"
DEMO = sorted(p for p in LIBRARY.iterdir() if p.suffix != ".md")


def need(files):
    missing = [f for f in files if not (MODELS / f).is_file()]
    if missing:
        pytest.skip(f"real weights not in models/ ({', '.join(missing)}; `make models`)")


def test_audiobox_scores_of_the_demo_library_are_in_range_and_vary():
    from mirflow.aesthetics import AXES, DEFAULT_CHECKPOINT, AestheticsModel

    need([DEFAULT_CHECKPOINT])
    model = AestheticsModel.load(MODELS / DEFAULT_CHECKPOINT, device="auto")
    scores = [model.score_file(path) for path in DEMO]
    for name in AXES.values():
        values = np.array([s[name] for s in scores])
        print(f"{name}: {np.round(values, 2).tolist()}")
        assert np.all((values >= 0.5) & (values <= 10.5)), name  # the model's 1-10 scale
        assert values.std() > 0.05, f"{name} is constant across recordings"


def test_essentia_labels_of_the_demo_library_are_probabilities_and_vary():
    from mirflow.classifiers import EssentiaClassifiers, required_files

    need(required_files({}))
    model = EssentiaClassifiers.load(MODELS, {})
    results = [model.classify_file(path) for path in DEMO]
    for path, result in zip(DEMO, results, strict=True):
        print(path.name, list(result["essentia_genre"])[:3], round(result["voice_probability"], 2))
        assert result["essentia_genre"], path.name
        for field in ("voice_probability", "instrumental_probability", "danceability"):
            assert 0.0 <= result[field] <= 1.0
    voice = np.array([r["voice_probability"] for r in results])
    assert voice.std() > 0.01
    assert len({next(iter(r["essentia_genre"])) for r in results}) > 1  # not one genre for all
