"""Import ``essentia.standard``: the one place that knows how.

The ``essentia-tensorflow`` build loads TensorFlow's libraries on import
(~0.1 s), so callers import it on first use, through here, with TensorFlow's
C++ logs and essentia's start-up INFO lines silenced (they would otherwise
fill every job's log).

``essentia.standard`` also makes a Python class for every one of essentia's
algorithms as it is imported, instantiating each to read its documentation:
0.8 s of every job that uses a few of them. Here the module is imported with
only the algorithm its own Python ones are built on (FrameCutter), and any
other class is made the first time its name is looked up (by essentia's own
``_create_essentia_class``), so ``essentia_standard().HPCP`` is what
``essentia.standard.HPCP`` would be.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def essentia_standard() -> ModuleType:
    loaded = sys.modules.get("essentia.standard")
    if loaded is not None:
        return loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    import essentia  # noqa: PLC0415
    from essentia import _essentia  # noqa: PLC0415

    essentia.log.infoActive = False  # before .standard, which logs while loading
    names = _essentia.keys
    _essentia.keys = lambda: ["FrameCutter"]  # FrameGenerator's, made at import
    try:
        import essentia.standard as standard  # noqa: PLC0415
    finally:
        _essentia.keys = names
    standard.algorithmNames = names
    algorithms = frozenset(names())

    def make_on_first_use(name: str):  # a module __getattr__ (PEP 562)
        if name not in algorithms:
            raise AttributeError(f"module 'essentia.standard' has no attribute {name!r}")
        return standard._create_essentia_class(name)  # which also sets it on the module

    standard.__getattr__ = make_on_first_use
    return standard
