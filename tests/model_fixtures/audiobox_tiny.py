"""A tiny, randomly initialised AudioBox Aesthetics model saved in the official checkpoint format.

``write_tiny_audiobox(path)`` writes one ``torch.save``\\d dict, as the official
``checkpoint.pt`` (facebook/audiobox-aesthetics) holds it and ``AesPredictor.setup_model`` reads
it:

* ``state_dict``: ``{"model.<key>": float32 tensor}`` of a real
  ``audiobox_aesthetics.model.aes.AesMultiOutput``;
* ``model_cfg``: the nine constructor arguments the package passes on (``proj_num_layer`` ...
  ``output_dim``);
* ``target_transform``: ``{axis: {"mean", "std"}}`` for CE, CU, PC, PQ (known values, so tests
  can check the inverse normalisation);

plus one entry the official file does not have, ``mirflow_wavlm_cfg``: the WavLM config fields
that differ from ``aes.DEFAULT_AUDIO_CFG``. The package always builds its encoder from that
module global, so a smaller encoder has to say so; ``mirflow.aesthetics`` applies it while it
builds the model and builds the official checkpoint (no such entry) exactly as the package does.

The network is the real class with the real WavLM code path (conv feature extractor with the
same kernels and strides, so the same 320-sample frame rate and padding-mask arithmetic,
post-extraction projection, convolutional positional embedding, gated relative position bias,
weighted layer sum, per-axis heads) at a tiny width: about 75 k parameters, a 0.3 MB file,
built and saved in well under a second. Its scores are noise around the target means.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from audiobox_aesthetics.model import aes
from audiobox_aesthetics.model.wavlm import WavLMConfig

#: WavLM fields that differ from aes.DEFAULT_AUDIO_CFG (768-d, 12 layers, 512-channel convs).
#: Conv kernels/strides are the official ones (total stride 320: 50 frames per second); the conv
#: width (32) differs from the embedding (48) so post_extract_proj exists, as in the real model.
TINY_WAVLM_CFG = {
    "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
    "encoder_layers": 2,
    "encoder_embed_dim": 48,
    "encoder_ffn_embed_dim": 96,
    "encoder_attention_heads": 2,
    "conv_pos": 16,
    "conv_pos_groups": 4,
}

#: AesMultiOutput arguments, as stored in model_cfg. nth_layer counts the encoder input plus
#: every layer (13 for the official 12 layers): here 2 layers -> 3.
TINY_MODEL_CFG = {
    "proj_num_layer": 1,
    "proj_ln": False,
    "proj_act_fn": "gelu",
    "proj_dropout": 0.0,
    "nth_layer": 3,
    "use_weighted_layer_sum": True,
    "precision": "32",
    "normalize_embed": True,
    "output_dim": 1,
}

#: Known de-normalisation constants (distinct per axis).
TINY_TARGET_TRANSFORM = {
    "CE": {"mean": 5.5, "std": 1.5},
    "CU": {"mean": 6.0, "std": 1.25},
    "PC": {"mean": 3.0, "std": 2.0},
    "PQ": {"mean": 7.0, "std": 0.75},
}


def build_tiny_aesmultioutput(
    seed: int = 0, target_transform: dict | None = None
) -> aes.AesMultiOutput:
    """The tiny network (real class, tiny WavLM), weights a deterministic function of ``seed``.

    The global torch RNG is left untouched. The layer-sum weights are perturbed from the
    package's uniform initialisation so that loading them matters.
    """
    target_transform = target_transform or TINY_TARGET_TRANSFORM
    original = aes.DEFAULT_AUDIO_CFG
    aes.DEFAULT_AUDIO_CFG = WavLMConfig({**original.__dict__, **TINY_WAVLM_CFG})
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # WavLM's positional conv uses the deprecated nn.utils.weight_norm (upstream code).
            warnings.filterwarnings("ignore", message=r"`torch\.nn\.utils\.weight_norm`")
            torch.manual_seed(seed)
            model = aes.AesMultiOutput(**TINY_MODEL_CFG, target_transform=target_transform)
            with torch.no_grad():
                for weights in model.layer_weights.values():
                    weights.add_(torch.randn_like(weights))
    finally:
        aes.DEFAULT_AUDIO_CFG = original
    return model.eval()


def write_tiny_audiobox(path: Path, seed: int = 0, target_transform: dict | None = None) -> Path:
    """Write a tiny checkpoint to ``path`` (folders created); return ``path``."""
    path = Path(path)
    target_transform = target_transform or TINY_TARGET_TRANSFORM
    model = build_tiny_aesmultioutput(seed, target_transform)
    package = {
        "state_dict": {
            f"model.{k}": v.detach().to("cpu", torch.float32).clone()
            for k, v in model.state_dict().items()
        },
        "model_cfg": dict(TINY_MODEL_CFG),
        "target_transform": {
            axis: {"mean": float(v["mean"]), "std": float(v["std"])}
            for axis, v in target_transform.items()
        },
        "mirflow_wavlm_cfg": dict(TINY_WAVLM_CFG),
    }
    buf = io.BytesIO()
    torch.save(package, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
