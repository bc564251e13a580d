"""Which torch device a model runs on: the one answer for every stage."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def resolve_device(device: str, task: str = "running the model", threads: int | None = None) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu" (logged: slower).

    ``threads``: torch's CPU threads, set to the job's share of cores (torch
    otherwise takes every core, and jobs side by side fight over them).
    """
    import torch  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    log.warning("no CUDA GPU visible: %s on the CPU, which is slower", task)
    return "cpu"
