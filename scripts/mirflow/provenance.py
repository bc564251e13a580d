"""What made a stage's fields: one shape for every stage (README, "Provenance").

Each stage record carries ``provenance``::

    {"tools": {"<distribution>": "<version>", ...},
     "models": {"<file name>": "<sha256, first 12 hex>", ...},
     "params": {<the settings that change the stage's output>}}

and assemble gathers them into the ``.INFO`` as ``provenance: {stage: ...}``.
Model files are named by their file name only and params hold no paths, so a
``.INFO`` never names a path outside the output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: Length of the sha256 prefix that names a model file.
SHA_PREFIX = 12


def tool_versions(*distributions: str) -> dict[str, str]:
    """``{distribution: installed version}`` ("not installed" when absent)."""
    versions = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def model_digest(path: str | os.PathLike) -> str:
    """The first :data:`SHA_PREFIX` hex of a file's sha256.

    Hashed once per process per file state (path, size, mtime): a batch job
    that loads a multi-GB model once does not hash it per track.
    """
    stat = os.stat(path)
    return _digest(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:SHA_PREFIX]


def model_digests(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """``{file name: digest}`` of model files; a folder stands for the files in it."""
    digests = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digests[file.name] = model_digest(file)
    return digests


def provenance(
    tools: Iterable[str],
    models: Iterable[str | os.PathLike] = (),
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A stage's provenance block (the module docstring's shape)."""
    return {
        "tools": tool_versions(*tools),
        "models": model_digests(models),
        "params": dict(params or {}),
    }
