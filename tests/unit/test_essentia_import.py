"""essentia.standard through mirflow.essentia_import: its classes made on first
use are essentia's own, and every algorithm is still there."""

import numpy as np
import pytest

from mirflow.essentia_import import essentia_standard


def test_every_algorithm_is_there_as_essentia_makes_it():
    from essentia import _essentia

    es = essentia_standard()
    names = es.algorithmNames()
    assert len(names) > 200 and "HPCP" in names
    for name in names:
        assert getattr(es, name).__struct__ == _essentia.Algorithm(name).getStruct(), name
    assert es.HPCP is es.HPCP  # made once
    assert [frame.size for frame in es.FrameGenerator(np.zeros(4096, np.float32), 2048, 1024)]
    with pytest.raises(AttributeError, match="NoSuchAlgorithm"):
        es.NoSuchAlgorithm  # noqa: B018


def test_a_class_made_on_first_use_computes():
    es = essentia_standard()
    hpcp = es.HPCP(size=12)(np.array([440.0], np.float32), np.array([1.0], np.float32))
    assert int(np.argmax(hpcp)) == 0  # A first, essentia's default reference
