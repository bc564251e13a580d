"""A tiny, randomly initialised BS-RoFormer that audio-separator loads like a real one.

The network is built by audio-separator's own ``RoformerLoader`` from the same
yaml it will read at load time (normalised and validated the same way), so the
checkpoint's parameter names and shapes are exactly what it rebuilds. Only the
sizes are tiny: a 512-point STFT (257 bins in 16 bands), one 16-wide layer
with 2 heads, and 256-frame chunks (0.74 s at 44.1 kHz), so a checkpoint is
about 2 MB and builds in well under a second.
"""

from __future__ import annotations

import warnings
from pathlib import Path

SIX_STEMS = ("bass", "drums", "other", "vocals", "guitar", "piano")

N_FFT = 512
HOP = 128
DIM_T = 256  # frames per chunk: chunk = HOP * (DIM_T - 1) = 32640 samples
# 16 bands covering the N_FFT // 2 + 1 = 257 STFT bins, narrow at the bottom.
FREQS_PER_BANDS = (4,) * 4 + (8,) * 4 + (16,) * 4 + (32,) * 3 + (49,)


def tiny_bs_roformer_config(instruments=SIX_STEMS, target_instrument=None) -> dict:
    """The yaml content: the layout of real BS-RoFormer yamls, tiny numbers."""
    assert sum(FREQS_PER_BANDS) == N_FFT // 2 + 1
    return {
        "audio": {
            "chunk_size": HOP * (DIM_T - 1),
            "dim_f": N_FFT // 2,
            "dim_t": DIM_T,
            "hop_length": HOP,
            "n_fft": N_FFT,
            "num_channels": 2,
            "sample_rate": 44100,
            "min_mean_abs": 0.0,
        },
        "model": {
            "dim": 16,
            "depth": 1,
            "stereo": True,
            "num_stems": 1 if target_instrument else len(instruments),
            "time_transformer_depth": 1,
            "freq_transformer_depth": 1,
            "linear_transformer_depth": 0,
            "freqs_per_bands": FREQS_PER_BANDS,  # a tuple: dumped as !!python/tuple
            "dim_head": 8,
            "heads": 2,
            "attn_dropout": 0.0,
            "ff_dropout": 0.0,
            "flash_attn": True,
            "mask_estimator_depth": 1,
            "mlp_expansion_factor": 2,
            "stft_n_fft": N_FFT,
            "stft_hop_length": HOP,
            "stft_win_length": N_FFT,
            "stft_normalized": False,
        },
        "training": {
            "instruments": list(instruments),
            "target_instrument": target_instrument,
        },
        "inference": {"batch_size": 1, "dim_t": DIM_T, "num_overlap": 2},
    }


def write_tiny_bs_roformer(
    models_dir: Path,
    model_file: str = "tiny_bs_roformer.ckpt",
    instruments=SIX_STEMS,
    seed: int = 0,
    target_instrument: str | None = None,
) -> str:
    """Write ``<models_dir>/audio-separator/<model_file>`` and its yaml; return model_file.

    ``target_instrument`` makes a single-target model (one output, the other
    instrument is the residual), like the vocal models.
    """
    import torch  # noqa: PLC0415
    import yaml  # noqa: PLC0415
    from audio_separator.separator.roformer.roformer_loader import (  # noqa: PLC0415
        RoformerLoader,
    )

    folder = Path(models_dir) / "audio-separator"
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / model_file
    yaml_path = ckpt.with_suffix(".yaml")

    text = yaml.dump(tiny_bs_roformer_config(instruments, target_instrument), sort_keys=False)
    yaml_path.write_text(text, encoding="utf-8")

    # Exactly what RoformerLoader.load_model does before loading weights.
    config = yaml.load(text, Loader=yaml.FullLoader)
    loader = RoformerLoader()
    model_type = loader.config_normalizer.resolve_model_type(config, str(ckpt))
    assert model_type == "bs_roformer", model_type
    normalized = loader.config_normalizer.normalize_config(
        config, model_type, apply_defaults=True, validate=True
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # BSRoformer.__init__ probes torch.stft without a window (a UserWarning).
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(seed)
        model = loader._create_bs_roformer(normalized)
    # A plain state dict of tensors: what torch.load(weights_only=True) accepts.
    torch.save(model.state_dict(), ckpt)
    return model_file
