"""Shared fixtures: where the real test audio lives, and small synthetic files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # essentia's TensorFlow is chatty

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "tests" / "data" / "library"
TRUTH = REPO / "tests" / "data" / "truth"

GUITARSET = LIBRARY / "guitarset_00_BN1-129-Eb_comp_mic.flac"
VIBE_ACE = LIBRARY / "Kevin_MacLeod_-_Vibe_Ace.mp3"
TRUMPET = LIBRARY / "sorohanro_-_solo-trumpet-06.hq.ogg"


def write_tone(
    path: Path, seconds: float = 2.0, sr: int = 22050, channels: int = 1, freq: float = 440.0
) -> Path:
    """A sine tone file (format from the suffix), for unit tests of I/O only."""
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([tone] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine
    torch's OpenMP threads spin against other processes (several times slower
    calls): a module that runs them asks for this (``usefixtures``)."""
    import torch  # noqa: PLC0415

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tone_file(tmp_path):
    return write_tone(tmp_path / "tone.wav")
