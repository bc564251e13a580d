"""A model file torch cannot use is a missing model: one answer for every loader."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mirflow.errors import ModelNotFoundError

#: What torch.load and load_state_dict raise for a truncated, damaged or foreign file.
UNUSABLE = (
    OSError,
    EOFError,
    pickle.UnpicklingError,
    RuntimeError,
    KeyError,
    TypeError,
    AttributeError,
    ValueError,
)


@contextmanager
def usable_checkpoint(path: str | Path, what: str, hint: str) -> Iterator[None]:
    """Turn a load failure into ModelNotFoundError naming the file, the cause and
    ``hint`` (how to fetch it again); running out of GPU memory is not the file's fault."""
    try:
        yield
    except UNUSABLE as exc:
        import torch  # noqa: PLC0415

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise
        raise ModelNotFoundError(
            f"{path} is not a usable {what} checkpoint ({type(exc).__name__}: {exc}); "
            f"delete it and {hint}"
        ) from exc
