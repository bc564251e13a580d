"""write_audio on a full disk says so (libsndfile alone says "System error.")."""

import errno
import os
import subprocess

import numpy as np
import pytest

from mirflow.audio import write_audio


@pytest.fixture
def tiny_disk(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("mounting a 64 kB tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_an_enospc_oserror_and_leaves_nothing(tiny_disk):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 100_000)).astype(np.float32)
    with pytest.raises(OSError) as excinfo:
        write_audio(tiny_disk / "crop.flac", noise, 44100, "PCM_24")
    assert excinfo.value.errno == errno.ENOSPC
    assert "No space left on device" in str(excinfo.value)
    assert not list(tiny_disk.iterdir())  # no partial file, no temporary
