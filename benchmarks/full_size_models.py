"""Full-size, randomly initialised models of the real architectures, in the on-disk formats
the workflow loads (for throughput benchmarks: speed does not depend on the weight values).

    from full_size_models import build_models_dir
    built = build_models_dir(models_dir, beat_this=True)   # {pass: BuiltModel}

Each builder reuses the test fixtures' writers (tests/model_fixtures) or another benchmark's
builder, so the files go through exactly the loading code the fixtures are checked against:

- htdemucs: demucs's HTDemucs with the hyper-parameters of the official htdemucs (signature
  955717e8), written as a bag yaml + ``<sig>-<sha256[:8]>.th`` (half precision, as the official
  checkpoints) by ``demucs_tiny.write_tiny_htdemucs``;
- AudioBox Aesthetics: ``AesMultiOutput`` with the package's default WavLM (the official
  checkpoint's shape), as benchmarks/model_passes.py --full-size-aesthetics writes it;
- Essentia Discogs-EffNet embedding: an EfficientNet-B0 (the architecture the model card
  names) on the real input, 1280-d embeddings and the real node names, written as the bs64
  TensorFlow freeze and the dynamic-batch ONNX (benchmarks/classifier_backends.py builds it);
  a *comparable* network, not the published graph. The heads stay the tiny fixtures' (one
  dense layer each; the real heads are small too);
- Beat This! final0: ``BeatThis()`` with its default arguments (the final0 shape), in the
  stripped Lightning checkpoint format of ``beat_this_tiny.py``;
- Music Flamingo: no full-size builder (a 7 B decoder); the tiny GGUF pair of the tests.
"""

from __future__ import annotations

import inspect
import sys
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "scripts", REPO / "tests", REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

#: The official htdemucs's HTDemucs arguments (the kwargs its checkpoint records). All but
#: ``bottom_channels`` are also the class's defaults; they are spelled out so the shape is
#: visible here. segment 39/5 s is the training segment (and the longest chunk apply_model
#: feeds it).
HTDEMUCS_KWARGS = dict(
    channels=48,
    growth=2,
    nfft=4096,
    cac=True,
    depth=4,
    kernel_size=8,
    stride=4,
    time_stride=2,
    context=1,
    freq_emb=0.2,
    emb_scale=10,
    dconv_depth=2,
    dconv_comp=8,
    bottom_channels=512,
    t_layers=5,
    t_heads=8,
    t_hidden_scale=4.0,
)
HTDEMUCS_SEGMENT = Fraction(39, 5)
HTDEMUCS_NAME = "htdemucs_random"


#: Where the full-size Beat This! goes, under models_dir.
BEAT_THIS_FILE = "beat_this_full.ckpt"


@dataclass(frozen=True)
class BuiltModel:
    """What was written for one pass, for the benchmark's table."""

    label: str  # e.g. "htdemucs, full size" (every model here has random weights)
    params: int | None  # parameters of the network that was written (None: not counted)
    full_size: bool  # False: a tiny stand-in
    note: str = ""  # why a stand-in, or what differs from the published model
    build_s: float = 0.0

    def describe(self) -> str:
        size = f", {self.params / 1e6:.1f} M" if self.params else ""
        return f"{self.label}{size}"


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def write_full_htdemucs(repo_dir: Path, name: str = HTDEMUCS_NAME) -> BuiltModel:
    """The official htdemucs shape, random weights, in ``repo_dir`` (models_dir/demucs)."""
    import torch
    from demucs.htdemucs import HTDemucs
    from model_fixtures import demucs_tiny

    start = time.perf_counter()
    # The fixture's writer packages HTDemucs as demucs's repo does; the real arguments.
    demucs_tiny.write_tiny_htdemucs(
        repo_dir, name=name, segment=HTDEMUCS_SEGMENT, architecture=HTDEMUCS_KWARGS
    )
    with torch.device("meta"):
        params = _params(HTDemucs(sources=["drums", "bass", "other", "vocals"], **HTDEMUCS_KWARGS))
    return BuiltModel(
        "htdemucs, full size",
        params,
        True,
        build_s=time.perf_counter() - start,
    )


def write_full_audiobox(path: Path) -> BuiltModel:
    """AudioBox Aesthetics at its real size (WavLM base encoder), random weights."""
    import torch
    from model_passes import full_size_audiobox

    start = time.perf_counter()
    with warnings.catch_warnings():
        # WavLM's positional conv uses the deprecated nn.utils.weight_norm (upstream code).
        warnings.filterwarnings("ignore", message=r"`torch\.nn\.utils\.weight_norm`")
        full_size_audiobox(path)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    params = sum(v.numel() for k, v in state.items() if v.is_floating_point())
    return BuiltModel(
        "AudioBox Aesthetics (WavLM base), full size",
        params,
        True,
        build_s=time.perf_counter() - start,
    )


def write_full_effnet(models_dir: Path) -> BuiltModel:
    """Essentia's files for the classifiers pass: the tiny heads and metadata of the test
    fixtures, with the embedding model replaced by a full-size EfficientNet-B0 (bs64 .pb and
    dynamic-batch .onnx, same weights)."""
    import onnx
    from classifier_backends import build
    from model_fixtures.essentia_tiny import (
        EMBEDDING_MODEL,
        ONNX_EMBEDDING_MODEL,
        write_tiny_essentia_models,
    )

    start = time.perf_counter()
    write_tiny_essentia_models(models_dir)
    graph, model = build(64)
    folder = Path(models_dir) / "essentia"
    (folder / f"{EMBEDDING_MODEL}.pb").write_bytes(graph)
    onnx.save(model, str(folder / f"{ONNX_EMBEDDING_MODEL}.onnx"))
    params = sum(
        int(_prod(init.dims))
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT
    )
    return BuiltModel(
        "EfficientNet-B0 embedding, full size; heads tiny",
        params,
        True,
        note=(
            "EfficientNet-B0 of the real input and output sizes, not the published graph "
            "(benchmarks/classifier_backends.py); the heads are the tiny fixtures' dense layers"
        ),
        build_s=time.perf_counter() - start,
    )


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def write_full_beat_this(models_dir: Path) -> BuiltModel:
    """``BeatThis()`` (the final0 shape), random weights, at ``models_dir/beat_this_full.ckpt``,
    in the official checkpoint format; the config names the file (``rhythm.beat_this.model``
    takes a path), so no manifest size applies."""
    import torch
    from model_fixtures.beat_this_tiny import TRAINING_HPARAMS

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        from beat_this.model.beat_tracker import BeatThis

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = BeatThis().eval()
    hparams = {
        name: p.default
        for name, p in inspect.signature(BeatThis).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    package = {
        "epoch": 0,
        "global_step": 0,
        "state_dict": {f"model.{k}": v.detach().clone() for k, v in network.state_dict().items()},
        "hyper_parameters": {**hparams, **TRAINING_HPARAMS},
        "datamodule_hyper_parameters": {},
    }
    path = Path(models_dir) / BEAT_THIS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(package, path)
    return BuiltModel(
        "Beat This! final0 shape, full size",
        _params(network),
        True,
        build_s=time.perf_counter() - start,
    )


def write_tiny_captions(models_dir: Path) -> BuiltModel:
    from model_fixtures.flamingo_tiny import write_tiny_flamingo

    start = time.perf_counter()
    write_tiny_flamingo(Path(models_dir) / "music-flamingo")
    return BuiltModel(
        "Music Flamingo: TINY stand-in",
        None,
        False,
        note="2-layer qwen2 + 1-block mmproj (tests/model_fixtures/flamingo_tiny.py); the real "
        "model is a 7 B decoder GGUF of several GB, not built at random here",
        build_s=time.perf_counter() - start,
    )


def write_tiny_roformer(models_dir: Path) -> BuiltModel:
    from model_fixtures.roformer_tiny import write_tiny_bs_roformer

    start = time.perf_counter()
    write_tiny_bs_roformer(models_dir)
    return BuiltModel(
        "BS-RoFormer: TINY stand-in",
        None,
        False,
        note="tests/model_fixtures/roformer_tiny.py; BS-Roformer-SW.yaml (the real shape) is "
        "not available offline, and a guessed shape would not be the real model's",
        build_s=time.perf_counter() - start,
    )


def build_models_dir(
    models_dir: Path, separation: str = "demucs", beat_this: bool = False
) -> dict[str, BuiltModel]:
    """Write every model the benchmark's config uses into ``models_dir``; ``{pass: BuiltModel}``."""
    models_dir = Path(models_dir)
    built: dict[str, BuiltModel] = {}
    if separation == "demucs":
        built["separate"] = write_full_htdemucs(models_dir / "demucs")
    elif separation == "bs_roformer":
        built["separate"] = write_tiny_roformer(models_dir)
    built["aesthetics"] = write_full_audiobox(models_dir / "audiobox-aesthetics" / "checkpoint.pt")
    built["classifiers"] = write_full_effnet(models_dir)
    built["captions"] = write_tiny_captions(models_dir)
    if beat_this:
        built["rhythm"] = write_full_beat_this(models_dir)
    return built
