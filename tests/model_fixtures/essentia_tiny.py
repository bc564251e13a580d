"""Tiny Essentia TensorFlow models with the real models' node names, shapes and metadata.

``write_tiny_essentia_models(models_dir)`` writes into ``models_dir/essentia/`` a frozen graph
(``.pb``) and its metadata (``.json``) for the Discogs-EffNet embedding model and for every
classification head mirflow uses, under the official file names. Essentia loads them through
exactly the algorithms and parameters it uses for the real files:

* ``discogs-effnet-bs64-1.pb`` is fed by ``TensorflowPredictEffnetDiscogs`` as the real model is:
  batches of 64 mel-spectrogram patches, ``serving_default_melspectrogram`` of shape
  ``[64, 128, 96]`` (64 patches x 128 frames x 96 mel bands, computed inside Essentia by
  ``TensorflowInputMusiCNN``); ``discogs-effnet-bs1-1.pb`` the same with batches of 1.
  Like the real graph, its node ``PartitionedCall`` has two outputs: ``:0`` style
  activations, ``:1`` the 1280-dimensional embeddings the heads read.
  Network: mean over time, a 96x32 dense layer, tanh, tiled to 1280 and scaled per dimension.
* each head is ``Placeholder [batch, 1280] -> MatMul -> BiasAdd -> Sigmoid|Softmax`` with the
  real head's input and output node names (``serving_default_model_Placeholder`` ->
  ``PartitionedCall`` for genre_discogs400, ``model/Placeholder`` -> ``model/Sigmoid`` or
  ``model/Softmax`` for the others) and a short class list in the real order where it is known.

No tensorflow package is needed: the GraphDef protobuf is encoded here by hand (field numbers
from tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape,types}.proto).
Weights are a deterministic function of ``seed``; their outputs mean nothing.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

#: The two published TensorFlow freezes of Discogs-EffNet: batches of 64 patches (Essentia's
#: examples) or 1. The ONNX export (dynamic batch) is ONNX_EMBEDDING_MODEL.
EMBEDDING_MODELS = {"discogs-effnet-bs64-1": 64, "discogs-effnet-bs1-1": 1}
ONNX_EMBEDDING_MODEL = "discogs-effnet-bsdynamic-1"
EMBEDDING_MODEL = "discogs-effnet-bs64-1"
EMBEDDING_DIM = 1280
PATCH_FRAMES, MEL_BANDS = 128, 96
_HIDDEN = 32  # width of the dense layer before tiling to EMBEDDING_DIM

#: Class lists of the tiny heads. Genre labels keep Discogs' "Genre---Style" form; the binary
#: heads have the real class names (mirflow looks them up by name, never by position).
TINY_CLASSES = {
    "genre_discogs400-discogs-effnet-1": [
        "Electronic---House",
        "Electronic---Techno",
        "Rock---Indie Rock",
        "Jazz---Bop",
        "Hip Hop---Trap",
        "Classical---Baroque",
    ],
    "mtg_jamendo_moodtheme-discogs-effnet-1": ["calm", "dark", "energetic", "happy", "sad"],
    "mtg_jamendo_instrument-discogs-effnet-1": ["bass", "drums", "guitar", "piano", "voice"],
    "voice_instrumental-discogs-effnet-1": ["instrumental", "voice"],
    "danceability-discogs-effnet-1": ["danceable", "not_danceable"],
    "tonal_atonal-discogs-effnet-1": ["atonal", "tonal"],
}

#: (input node, output node, output op) of each head, as in the real graphs.
HEAD_NODES = {
    "genre_discogs400-discogs-effnet-1": (
        "serving_default_model_Placeholder",
        "PartitionedCall:0",
        "Sigmoid",
    ),
    "mtg_jamendo_moodtheme-discogs-effnet-1": ("model/Placeholder", "model/Sigmoid", "Sigmoid"),
    "mtg_jamendo_instrument-discogs-effnet-1": ("model/Placeholder", "model/Sigmoid", "Sigmoid"),
    "voice_instrumental-discogs-effnet-1": ("model/Placeholder", "model/Softmax", "Softmax"),
    "danceability-discogs-effnet-1": ("model/Placeholder", "model/Softmax", "Softmax"),
    "tonal_atonal-discogs-effnet-1": ("model/Placeholder", "model/Softmax", "Softmax"),
}

_SITE = "https://essentia.upf.edu/models"
_EMBEDDING_LINK = f"{_SITE}/feature-extractors/discogs-effnet/{EMBEDDING_MODEL}.pb"


def write_tiny_essentia_models(models_dir: Path, seed: int = 0) -> Path:
    """Write the tiny embedding models and heads (``.pb`` + ``.json``) into
    ``models_dir/essentia/``; return ``models_dir``.

    Both embedding freezes (bs64, bs1) get the same weights, as the real ones do.
    """
    models_dir = Path(models_dir)
    folder = models_dir / "essentia"
    folder.mkdir(parents=True, exist_ok=True)
    for name, batch in EMBEDDING_MODELS.items():
        (folder / f"{name}.pb").write_bytes(embedding_graph(batch, seed))
        _write_json(folder / f"{name}.json", embedding_metadata(name, batch))
    (folder / f"{ONNX_EMBEDDING_MODEL}.onnx").write_bytes(embedding_onnx(seed))
    # The published .json of the ONNX export keeps the TensorFlow names and a batch dimension.
    _write_json(
        folder / f"{ONNX_EMBEDDING_MODEL}.json",
        embedding_metadata(ONNX_EMBEDDING_MODEL, "batch_size"),
    )
    for model, classes in TINY_CLASSES.items():
        input_name, output_name, op = HEAD_NODES[model]
        weights, bias = head_weights(model, seed)
        graph = head_graph(weights, bias, input_name, output_name.split(":")[0], op)
        (folder / f"{model}.pb").write_bytes(graph)
        _write_json(folder / f"{model}.json", head_metadata(model, classes))
    return models_dir


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def head_weights(model: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The dense layer of a tiny head: ``(weights [1280, classes], bias [classes])``, float32."""
    rng = _rng(seed, model)
    n_classes = len(TINY_CLASSES[model])
    weights = rng.normal(0, 1.0 / np.sqrt(EMBEDDING_DIM), (EMBEDDING_DIM, n_classes))
    bias = rng.normal(0, 0.5, n_classes)
    return weights.astype(np.float32), bias.astype(np.float32)


# -- graphs ------------------------------------------------------------------------------------


def embedding_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w_in [96, 32], scale [1280], w_style [32, styles])`` of the tiny embedding model."""
    rng = _rng(seed, "discogs-effnet")
    n_styles = len(TINY_CLASSES["genre_discogs400-discogs-effnet-1"])
    w_in = rng.normal(0, 1.0 / np.sqrt(MEL_BANDS), (MEL_BANDS, _HIDDEN)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, EMBEDDING_DIM).astype(np.float32)
    w_style = rng.normal(0, 0.3, (_HIDDEN, n_styles)).astype(np.float32)
    return w_in, scale, w_style


def embedding_graph(batch: int, seed: int = 0) -> bytes:
    """Placeholder [batch, 128, 96] -> ``PartitionedCall`` (:0 activations, :1 embeddings)."""
    w_in, scale, w_style = embedding_weights(seed)
    nodes = [
        placeholder("serving_default_melspectrogram", [batch, PATCH_FRAMES, MEL_BANDS]),
        const("time_axis", np.array([1], dtype=np.int32)),
        op_node(
            "mean_over_time",
            "Mean",
            ["serving_default_melspectrogram", "time_axis"],
            T=_float(),
            Tidx=_type(DT_INT32),
            keep_dims=_bool(False),
        ),
        # Centre the log-mel means so the tanh below is not saturated.
        const("offset", np.array([1.5], dtype=np.float32)),
        op_node("centred", "Sub", ["mean_over_time", "offset"], T=_float()),
        const("w_in", w_in),
        op_node("hidden", "MatMul", ["centred", "w_in"], T=_float()),
        op_node("hidden_tanh", "Tanh", ["hidden"], T=_float()),
        const("tile", np.array([1, EMBEDDING_DIM // _HIDDEN], dtype=np.int32)),
        op_node("tiled", "Tile", ["hidden_tanh", "tile"], T=_float(), Tmultiples=_type(DT_INT32)),
        const("scale", scale),
        op_node("embeddings", "Mul", ["tiled", "scale"], T=_float()),
        const("w_style", w_style),
        op_node("style_logits", "MatMul", ["hidden_tanh", "w_style"], T=_float()),
        op_node("styles", "Sigmoid", ["style_logits"], T=_float()),
        # One node, two outputs, like the real model's PartitionedCall.
        op_node(
            "PartitionedCall",
            "IdentityN",
            ["styles", "embeddings"],
            T=_type_list([DT_FLOAT, DT_FLOAT]),
        ),
    ]
    return graph_def(nodes)


def head_graph(
    weights: np.ndarray, bias: np.ndarray, input_name: str, output_name: str, activation: str
) -> bytes:
    """Placeholder [batch, 1280] -> MatMul -> BiasAdd -> ``activation`` named ``output_name``."""
    nodes = [
        placeholder(input_name, [-1, EMBEDDING_DIM]),
        const("dense/kernel", weights),
        op_node("dense/MatMul", "MatMul", [input_name, "dense/kernel"], T=_float()),
        const("dense/bias", bias),
        op_node("dense/BiasAdd", "BiasAdd", ["dense/MatMul", "dense/bias"], T=_float()),
        op_node(output_name, activation, ["dense/BiasAdd"], T=_float()),
    ]
    return graph_def(nodes)


# -- metadata (the structure of the published .json files) -------------------------------------


def embedding_metadata(name: str = EMBEDDING_MODEL, batch: int | str = 64) -> dict:
    n_styles = len(TINY_CLASSES["genre_discogs400-discogs-effnet-1"])
    return {
        "name": "Discogs-EffNet (tiny test model)",
        "type": "Music style classification and embeddings",
        "link": f"{_SITE}/feature-extractors/discogs-effnet/{name}.pb",
        "version": "1",
        "description": "mirflow test fixture with the real model's interface; random weights",
        "framework": "tensorflow",
        "classes": TINY_CLASSES["genre_discogs400-discogs-effnet-1"],
        "model_types": ["frozen_model"],
        "schema": {
            "inputs": [
                {
                    "name": "serving_default_melspectrogram",
                    "type": "float",
                    "shape": [batch, PATCH_FRAMES, MEL_BANDS],
                }
            ],
            "outputs": [
                {
                    "name": "PartitionedCall:0",
                    "type": "float",
                    "shape": [batch, n_styles],
                    "op": "Sigmoid",
                    "output_purpose": "predictions",
                },
                {
                    "name": "PartitionedCall:1",
                    "type": "float",
                    "shape": [batch, EMBEDDING_DIM],
                    "op": "fully connected",
                    "description": "penultimate layer",
                    "output_purpose": "embeddings",
                },
            ],
        },
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredictEffnetDiscogs"},
    }


def head_metadata(model: str, classes: list[str]) -> dict:
    family = model.split("-", 1)[0]
    input_name, output_name, op = HEAD_NODES[model]
    return {
        "name": f"{family} (tiny test model)",
        "type": "multi-label classifier" if op == "Sigmoid" else "multi-class classifier",
        "link": f"{_SITE}/classification-heads/{family}/{model}.pb",
        "version": "1",
        "description": "mirflow test fixture with the real head's interface; random weights",
        "framework": "tensorflow",
        "classes": list(classes),
        "model_types": ["frozen_model"],
        "schema": {
            "inputs": [
                {"name": input_name, "type": "float", "shape": ["batch_size", EMBEDDING_DIM]}
            ],
            "outputs": [
                {
                    "name": output_name,
                    "type": "float",
                    "shape": ["batch_size", len(classes)],
                    "op": op,
                    "output_purpose": "predictions",
                }
            ],
        },
        "inference": {
            "sample_rate": 16000,
            "algorithm": "TensorflowPredict2D",
            "embedding_model": {
                "algorithm": "TensorflowPredictEffnetDiscogs",
                "model_name": EMBEDDING_MODEL,
                "link": _EMBEDDING_LINK,
            },
        },
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


# -- a minimal protobuf encoder for GraphDef ---------------------------------------------------

DT_FLOAT, DT_INT32 = 1, 3  # tensorflow/core/framework/types.proto


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _shape(dims: list[int]) -> bytes:
    """TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}; -1 is an unknown size."""
    return b"".join(_field_bytes(2, _field_varint(1, d)) for d in dims)


def _tensor(array: np.ndarray) -> bytes:
    """TensorProto: dtype = 1, tensor_shape = 2, tensor_content = 4 (little-endian bytes)."""
    dtype = {np.dtype(np.float32): DT_FLOAT, np.dtype(np.int32): DT_INT32}[array.dtype]
    content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return (
        _field_varint(1, dtype)
        + _field_bytes(2, _shape(list(array.shape)))
        + _field_bytes(4, content)
    )


# AttrValue: list = 1, s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8.
def _type(dtype: int) -> bytes:
    return _field_varint(6, dtype)


def _float() -> bytes:
    return _type(DT_FLOAT)


def _bool(value: bool) -> bytes:
    return _field_varint(5, int(value))


def _type_list(dtypes: list[int]) -> bytes:
    """AttrValue.list (ListValue: repeated DataType type = 6, packed)."""
    packed = b"".join(_varint(d) for d in dtypes)
    return _field_bytes(1, _field_bytes(6, packed))


def op_node(name: str, op: str, inputs: list[str], **attrs: bytes) -> bytes:
    """NodeDef: name = 1, op = 2, repeated input = 3, map<string, AttrValue> attr = 5."""
    body = _field_bytes(1, name.encode()) + _field_bytes(2, op.encode())
    body += b"".join(_field_bytes(3, i.encode()) for i in inputs)
    for key, value in sorted(attrs.items()):
        entry = _field_bytes(1, key.encode()) + _field_bytes(2, value)
        body += _field_bytes(5, entry)
    return body


def placeholder(name: str, dims: list[int]) -> bytes:
    return op_node(name, "Placeholder", [], dtype=_float(), shape=_field_bytes(7, _shape(dims)))


def const(name: str, array: np.ndarray) -> bytes:
    dtype = DT_FLOAT if array.dtype == np.float32 else DT_INT32
    return op_node(name, "Const", [], dtype=_type(dtype), value=_field_bytes(8, _tensor(array)))


def graph_def(nodes: list[bytes]) -> bytes:
    """GraphDef: repeated NodeDef node = 1, VersionDef versions = 4 {int32 producer = 1}."""
    versions = _field_bytes(4, _field_varint(1, 1087))
    return b"".join(_field_bytes(1, node) for node in nodes) + versions


# -- the ONNX export of the embedding model, encoded by hand (onnx/onnx.proto) ------------------

ONNX_FLOAT, ONNX_INT64 = 1, 7  # TensorProto.DataType


def embedding_onnx(seed: int = 0) -> bytes:
    """The tiny embedding network as an ONNX model with a dynamic batch: ``melspectrogram``
    ``[batch, 128, 96]`` -> ``activations``, ``embeddings`` (the tensor names the published
    discogs-effnet-bsdynamic-1.onnx is used with); the same weights as :func:`embedding_graph`."""
    w_in, scale, w_style = embedding_weights(seed)
    inits = [
        _onnx_tensor("offset", np.array([1.5], np.float32)),
        _onnx_tensor("w_in", w_in),
        _onnx_tensor("repeats", np.array([1, EMBEDDING_DIM // _HIDDEN], np.int64)),
        _onnx_tensor("scale", scale),
        _onnx_tensor("w_style", w_style),
    ]
    nodes = [
        _onnx_node("ReduceMean", ["melspectrogram"], ["mean"], axes=[1], keepdims=0),
        _onnx_node("Sub", ["mean", "offset"], ["centred"]),
        _onnx_node("MatMul", ["centred", "w_in"], ["hidden"]),
        _onnx_node("Tanh", ["hidden"], ["hidden_tanh"]),
        _onnx_node("Tile", ["hidden_tanh", "repeats"], ["tiled"]),
        _onnx_node("Mul", ["tiled", "scale"], ["embeddings"]),
        _onnx_node("MatMul", ["hidden_tanh", "w_style"], ["style_logits"]),
        _onnx_node("Sigmoid", ["style_logits"], ["activations"]),
    ]
    graph = b"".join(_field_bytes(1, n) for n in nodes)
    graph += _field_bytes(2, b"discogs_effnet_tiny")
    graph += b"".join(_field_bytes(5, t) for t in inits)
    graph += _field_bytes(
        11, _onnx_value("melspectrogram", ["batch_size", PATCH_FRAMES, MEL_BANDS])
    )
    graph += _field_bytes(12, _onnx_value("activations", ["batch_size", w_style.shape[1]]))
    graph += _field_bytes(12, _onnx_value("embeddings", ["batch_size", EMBEDDING_DIM]))
    opset = _field_bytes(1, b"") + _field_varint(2, 13)
    # ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8
    return (
        _field_varint(1, 8)
        + _field_bytes(2, b"mirflow-tests")
        + _field_bytes(7, graph)
        + _field_bytes(8, opset)
    )


def _onnx_tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian)."""
    dtype = ONNX_FLOAT if array.dtype == np.float32 else ONNX_INT64
    body = b"".join(_field_varint(1, d) for d in array.shape)
    body += _field_varint(2, dtype) + _field_bytes(8, name.encode())
    return body + _field_bytes(9, array.astype(array.dtype.newbyteorder("<")).tobytes())


def _onnx_node(op: str, inputs: list[str], outputs: list[str], **attrs: int | list[int]) -> bytes:
    """NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5."""
    body = b"".join(_field_bytes(1, i.encode()) for i in inputs)
    body += b"".join(_field_bytes(2, o.encode()) for o in outputs)
    body += _field_bytes(3, outputs[0].encode()) + _field_bytes(4, op.encode())
    for key, value in attrs.items():
        # AttributeProto: name = 1, i = 3, ints = 8, type = 20 (INT = 2, INTS = 7)
        if isinstance(value, list):
            attr = b"".join(_field_varint(8, v) for v in value) + _field_varint(20, 7)
        else:
            attr = _field_varint(3, value) + _field_varint(20, 2)
        body += _field_bytes(5, _field_bytes(1, key.encode()) + attr)
    return body


def _onnx_value(name: str, dims: list[int | str]) -> bytes:
    """ValueInfoProto {name = 1, type = 2 {tensor_type = 1 {elem_type = 1, shape = 2 {dim = 1
    {dim_value = 1 | dim_param = 2}}}}} of a float tensor."""
    shape = b"".join(
        _field_bytes(1, _field_bytes(2, d.encode()) if isinstance(d, str) else _field_varint(1, d))
        for d in dims
    )
    tensor_type = _field_varint(1, ONNX_FLOAT) + _field_bytes(2, shape)
    return _field_bytes(1, name.encode()) + _field_bytes(2, _field_bytes(1, tensor_type))
