"""A tiny, randomly initialised HTDemucs saved the way demucs's own model repo lays it out.

``write_tiny_htdemucs(repo_dir)`` writes

* ``<sig>-<first 8 hex of sha256>.th``: a checkpoint in demucs's format (a ``torch.save``\\d
  dict with ``klass``, ``args``, ``kwargs``, ``state``), named exactly as
  ``demucs.states.save_with_checksum`` names it, so ``demucs.repo.LocalRepo`` verifies it;
* ``<name>.yaml``: a bag of one model (``models: ['<sig>']``), like ``demucs/remote/htdemucs.yaml``,

so that ``demucs.pretrained.get_model(name, repo=repo_dir)`` loads it through demucs's real
loading code (LocalRepo + BagOnlyRepo -> ``BagOfModels``). The network is the real
``demucs.htdemucs.HTDemucs`` at a tiny width; its output is noise, but every shape, the STFT
branch, the cross-transformer, chunking and the bag code path are the ones the official models use.
"""

from __future__ import annotations

import hashlib
import io
from fractions import Fraction
from pathlib import Path

import torch
from demucs.htdemucs import HTDemucs

#: Architecture of the tiny model: real HTDemucs, tiny width. depth stays 4 (the official value):
#: with a lower depth the frequency axis is not reduced enough and the transformer sequence
#: (freq bins x frames) explodes. Checkpoint is about 0.4 MB; building + saving takes ~0.1 s.
TINY_KWARGS = dict(
    channels=8,
    depth=4,
    t_layers=1,
    t_heads=2,
    t_hidden_scale=2.0,
    dconv_comp=4,
)


def tiny_signature(name: str, seed: int) -> str:
    """An 8-hex "XP signature" (the role dora signatures play for the official models)."""
    return hashlib.sha1(f"{name}:{seed}".encode()).hexdigest()[:8]


def write_tiny_htdemucs(
    repo_dir: Path,
    name: str = "tiny_htdemucs",
    sources=("drums", "bass", "other", "vocals"),
    samplerate: int = 44100,
    seed: int = 0,
    segment: Fraction | float = Fraction(39, 5),
    architecture: dict | None = None,
) -> str:
    """Write a tiny HTDemucs checkpoint and its bag yaml into ``repo_dir``; return the model name.

    ``segment`` is the training segment in seconds (the official htdemucs uses 39/5 = 7.8 s,
    which is also the longest chunk ``apply_model`` may feed a transformer model).
    The weights are a deterministic function of ``seed`` (the global torch RNG is left untouched).
    ``architecture``: HTDemucs arguments in place of TINY_KWARGS (e.g. the full-size ones).
    """
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HTDemucs(
            sources=list(sources),
            samplerate=samplerate,
            segment=segment,
            **(TINY_KWARGS if architecture is None else architecture),
        )
    args, kwargs = model._init_args_kwargs  # recorded by demucs.states.capture_init
    package = {
        "klass": HTDemucs,
        "args": args,
        "kwargs": kwargs,
        # Official checkpoints are stored in half precision (serialize_model(half=True)).
        "state": {k: v.detach().to("cpu", torch.half) for k, v in model.state_dict().items()},
        "training_args": {},
    }
    buf = io.BytesIO()
    torch.save(package, buf)
    data = buf.getvalue()
    sig = tiny_signature(name, seed)
    checksum = hashlib.sha256(data).hexdigest()[:8]
    for stale in repo_dir.glob(f"{sig}-*.th"):  # LocalRepo refuses duplicate signatures
        stale.unlink()
    (repo_dir / f"{sig}-{checksum}.th").write_bytes(data)
    (repo_dir / f"{name}.yaml").write_text(f"models: ['{sig}']\n")
    return name
