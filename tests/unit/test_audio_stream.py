"""stream_audio: load_audio's samples, block after block."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from mirflow import audio as audio_module
from mirflow.audio import load_audio, stream_audio
from mirflow.errors import AudioDecodeError


@pytest.fixture
def stereo_48k(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.flac"
    sf.write(path, rng.uniform(-0.5, 0.5, size=(48000 * 3 + 17, 2)), 48000, subtype="PCM_24")
    return path


@pytest.mark.parametrize("sr, mono", [(None, False), (44100, True), (22050, False)])
def test_blocks_join_into_load_audios_samples(stereo_48k, monkeypatch, sr, mono):
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 10_007)  # many blocks, odd sizes
    blocks = list(stream_audio(stereo_48k, sr=sr, mono=mono))
    assert len(blocks) > 5
    expected, _ = load_audio(stereo_48k, sr=sr, mono=mono)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), expected)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_what_libsndfile_cannot_read_streams_through_ffmpeg(stereo_48k, tmp_path):
    import subprocess

    m4a = tmp_path / "noise.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(stereo_48k), str(m4a)], check=True)
    expected, _ = load_audio(m4a, sr=44100, mono=True)
    got = np.concatenate(list(stream_audio(m4a, sr=44100, mono=True)), axis=1)
    np.testing.assert_array_equal(got, expected)


def test_a_file_that_is_not_audio_names_itself(tmp_path):
    bad = tmp_path / "notes.flac"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioDecodeError, match="notes.flac"):
        list(stream_audio(bad))
