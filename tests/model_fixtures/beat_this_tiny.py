"""A tiny, randomly initialised Beat This! model saved in the official checkpoint format.

``write_tiny_beat_this(path)`` writes one ``torch.save``\\d dict laid out like the official
``final0.ckpt`` / ``small0.ckpt`` (PyTorch Lightning checkpoints of ``PLBeatThis``, stripped of
the optimizer state), which ``beat_this.inference.load_model`` reads:

* ``state_dict``: ``{"model.<key>": float32 tensor}``, the ``BeatThis`` network's state dict
  under the LightningModule's ``model.`` attribute;
* ``hyper_parameters``: what ``PLBeatThis.save_hyperparameters()`` records, i.e. the
  ``BeatThis`` arguments *and* the training-only ones (``fps``, ``lr``, ``loss_type`` ...),
  which the loader must filter out;
* ``datamodule_hyper_parameters`` (the package README names it; its content is not reproduced
  here), ``epoch``, ``global_step``: Lightning bookkeeping (placeholder values), ignored.

The network is the real ``beat_this.model.beat_tracker.BeatThis`` (stem, three frontend blocks
with partial frequency/time transformers, roformer blocks, sum head) at a tiny width: 8 stem
channels, 8-wide heads, one 32-wide transformer layer; about 67 k parameters, a 0.4 MB file,
built and saved in well under a second. Its predictions are noise.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

with warnings.catch_warnings():
    # rotary-embedding-torch decorates with the deprecated torch.cuda.amp.autocast.
    warnings.filterwarnings(
        "ignore", message=r"`torch\.cuda\.amp\.autocast", category=FutureWarning
    )
    from beat_this.model.beat_tracker import BeatThis

#: BeatThis arguments. spect_dim stays 128 (the mel front-end's bands; the stem divides it by
#: 4 and each frontend block by 2). Every width must be a multiple of head_dim: frontend blocks
#: run at stem_dim, 2*stem_dim, 4*stem_dim (8, 16, 32 -> 1, 2, 4 heads) and the transformer at
#: transformer_dim (32 -> 4 heads).
TINY_MODEL_HPARAMS = {
    "spect_dim": 128,
    "transformer_dim": 32,
    "ff_mult": 2,
    "n_layers": 1,
    "head_dim": 8,
    "stem_dim": 8,
    "dropout": {"frontend": 0.1, "transformer": 0.2},
    "sum_head": True,
    "partial_transformers": True,
}

#: The other PLBeatThis.__init__ arguments, with the package's defaults.
TRAINING_HPARAMS = {
    "fps": 50,
    "lr": 0.0008,
    "weight_decay": 0.01,
    "pos_weights": {"beat": 1, "downbeat": 1},
    "loss_type": "shift_tolerant_weighted_bce",
    "warmup_steps": 1000,
    "max_epochs": 100,
    "use_dbn": False,
    "eval_trim_beats": 5,
}


def build_tiny_beat_this(seed: int = 0) -> BeatThis:
    """The tiny network, weights a deterministic function of ``seed`` (global RNG untouched).

    The BatchNorm statistics are perturbed from their initial values (zero mean, unit
    variance) so that loading them matters, and the sum head is re-drawn at a larger scale
    (its init, std 0.02, leaves every logit within 0.1 of its bias), so that the logits cross
    zero and the peak picking finds some beats and downbeats.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BeatThis(**TINY_MODEL_HPARAMS)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_mean.normal_(0.0, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
            model.task_heads.beat_downbeat_lin.weight.normal_(0.0, 1.0)
            model.task_heads.beat_downbeat_lin.bias.copy_(torch.tensor([0.0, -1.0]))
    return model.eval()


def write_tiny_beat_this(path: Path, seed: int = 0) -> Path:
    """Write a tiny checkpoint to ``path`` (folders created); return ``path``."""
    path = Path(path)
    model = build_tiny_beat_this(seed)
    package = {
        "epoch": 0,
        "global_step": 0,
        "state_dict": {
            f"model.{k}": v.detach().to("cpu").clone() for k, v in model.state_dict().items()
        },
        "hyper_parameters": {**TINY_MODEL_HPARAMS, **TRAINING_HPARAMS},
        "datamodule_hyper_parameters": {},
    }
    buf = io.BytesIO()
    torch.save(package, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
