"""Import ``essentia.standard``: the one place that knows how.

The ``essentia-tensorflow`` build loads TensorFlow's libraries on import
(~1 s), so callers import it on first use, through here, with TensorFlow's
C++ logs and essentia's start-up INFO lines silenced (they would otherwise
fill every job's log).
"""

from __future__ import annotations

import os
from types import ModuleType


def essentia_standard() -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    import essentia  # noqa: PLC0415

    essentia.log.infoActive = False  # before .standard, which logs while loading
    import essentia.standard  # noqa: PLC0415

    return essentia.standard
