"""What does the Discogs-EffNet embedding pass cost, and would onnxruntime be faster?

The real weights cannot be downloaded here, so this builds a *comparable* random network:
EfficientNet-B0 (the architecture discogs-effnet uses, per its model card) on the real input
(patches of 128 frames x 96 mel bands, 1 channel), 1280-d pooled embeddings and a 400-way
sigmoid output, with the real node names. The same weights are written twice:

* as a frozen TensorFlow GraphDef (hand-encoded, no tensorflow package), run by Essentia's
  TensorflowPredictEffnetDiscogs exactly as mirflow runs the real model (bs64 and bs1 freezes);
* as an ONNX model (dynamic batch, like discogs-effnet-bsdynamic-1.onnx), run by onnxruntime on
  mel patches computed in Python with Essentia's own FrameCutter + TensorflowInputMusiCNN.

It checks that both give the same embeddings (which also checks the Python patching), then
times an 11.9 s crop and a 3-minute track. Run: .venv/bin/python benchmarks/classifier_backends.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("tests", "scripts")]
from model_fixtures.essentia_tiny import (  # noqa: E402
    DT_FLOAT,
    DT_INT32,
    _bool,
    _field_bytes,
    _float,
    _type,
    _type_list,
    _varint,
    const,
    graph_def,
    op_node,
    placeholder,
)

SR = 16000
# (expand ratio, kernel, stride, out channels, repeats): EfficientNet-B0
BLOCKS = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]


def _ints(values):
    return _field_bytes(1, _field_bytes(3, b"".join(_varint(v) for v in values)))


def _str(value: str):
    return _field_bytes(2, value.encode())


class Net:
    """Builds the TF nodes and the ONNX nodes side by side from the same weights."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.tf = []
        self.onnx_nodes = []
        self.inits = []
        self.n = 0

    def name(self, what):
        self.n += 1
        return f"{what}_{self.n}"

    def conv(self, x, cin, cout, k, stride, depthwise=False):
        fan_in = k * k * (1 if depthwise else cin)
        if depthwise:
            w = self.rng.normal(0, 1 / np.sqrt(fan_in), (k, k, cin, 1)).astype(np.float32)
        else:
            w = self.rng.normal(0, 1 / np.sqrt(fan_in), (k, k, cin, cout)).astype(np.float32)
        b = self.rng.normal(0, 0.01, cout).astype(np.float32)
        n = self.name("conv")
        self.tf.append(const(f"{n}/w", w))
        self.tf.append(const(f"{n}/b", b))
        op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        self.tf.append(
            op_node(
                f"{n}/conv",
                op,
                [x, f"{n}/w"],
                T=_float(),
                strides=_ints([1, stride, stride, 1]),
                padding=_str("SAME"),
                data_format=_str("NHWC"),
                dilations=_ints([1, 1, 1, 1]),
            )
        )
        self.tf.append(op_node(f"{n}/out", "BiasAdd", [f"{n}/conv", f"{n}/b"], T=_float()))
        w_onnx = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(3, 2, 0, 1)
        self.inits += [
            numpy_helper.from_array(w_onnx, f"{n}/w"),
            numpy_helper.from_array(b, f"{n}/b"),
        ]
        self.onnx_nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{n}/w", f"{n}/b"],
                [f"{n}/out"],
                kernel_shape=[k, k],
                strides=[stride, stride],
                auto_pad="SAME_UPPER",
                group=cin if depthwise else 1,
            )
        )
        return f"{n}/out"

    def unary(self, x, tf_op, onnx_op):
        n = self.name(tf_op)
        self.tf.append(op_node(n, tf_op, [x], T=_float()))
        self.onnx_nodes.append(helper.make_node(onnx_op, [x], [n]))
        return n

    def binary(self, a, b, tf_op, onnx_op):
        n = self.name(tf_op)
        self.tf.append(op_node(n, tf_op, [a, b], T=_float()))
        self.onnx_nodes.append(helper.make_node(onnx_op, [a, b], [n]))
        return n

    def swish(self, x):
        return self.binary(x, self.unary(x, "Sigmoid", "Sigmoid"), "Mul", "Mul")

    def spatial_mean(self, x, keep):
        n = self.name("mean")
        self.tf.append(const(f"{n}/axes", np.array([1, 2], np.int32)))
        self.tf.append(
            op_node(
                n, "Mean", [x, f"{n}/axes"], T=_float(), Tidx=_type(DT_INT32), keep_dims=_bool(keep)
            )
        )
        self.inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), f"{n}/axes"))
        self.onnx_nodes.append(
            helper.make_node("ReduceMean", [x, f"{n}/axes"], [n], keepdims=int(keep))
        )
        return n

    def mbconv(self, x, cin, expand, k, stride, cout):
        h = x
        mid = cin * expand
        if expand != 1:
            h = self.swish(self.conv(h, cin, mid, 1, 1))
        h = self.swish(self.conv(h, mid, mid, k, stride, depthwise=True))
        se = self.spatial_mean(h, keep=True)
        se = self.swish(self.conv(se, mid, max(1, cin // 4), 1, 1))
        se = self.unary(self.conv(se, max(1, cin // 4), mid, 1, 1), "Sigmoid", "Sigmoid")
        h = self.binary(h, se, "Mul", "Mul")
        h = self.conv(h, mid, cout, 1, 1)
        if stride == 1 and cin == cout:
            h = self.binary(h, x, "AddV2", "Add")
        return h


def build(batch: int, seed=0):
    net = Net(seed)
    net.tf.append(placeholder("serving_default_melspectrogram", [batch, 128, 96]))
    net.tf.append(const("to_nhwc", np.array([-1, 128, 96, 1], np.int32)))
    net.tf.append(
        op_node(
            "x",
            "Reshape",
            ["serving_default_melspectrogram", "to_nhwc"],
            T=_float(),
            Tshape=_type(DT_INT32),
        )
    )
    net.inits.append(numpy_helper.from_array(np.array([1], np.int64), "unsq_axes"))
    net.onnx_nodes.append(helper.make_node("Unsqueeze", ["melspectrogram", "unsq_axes"], ["x"]))
    h = net.swish(net.conv("x", 1, 32, 3, 2))
    cin = 32
    for expand, k, stride, cout, repeats in BLOCKS:
        for r in range(repeats):
            h = net.mbconv(h, cin, expand, k, stride if r == 0 else 1, cout)
            cin = cout
    h = net.swish(net.conv(h, cin, 1280, 1, 1))
    emb = net.spatial_mean(h, keep=False)
    w = net.rng.normal(0, 1 / np.sqrt(1280), (1280, 400)).astype(np.float32)
    net.tf += [const("fc/w", w), op_node("fc/mm", "MatMul", [emb, "fc/w"], T=_float())]
    net.tf.append(op_node("fc/sig", "Sigmoid", ["fc/mm"], T=_float()))
    net.tf.append(
        op_node("PartitionedCall", "IdentityN", ["fc/sig", emb], T=_type_list([DT_FLOAT, DT_FLOAT]))
    )
    net.inits.append(numpy_helper.from_array(w, "fc/w"))
    net.onnx_nodes += [
        helper.make_node("MatMul", [emb, "fc/w"], ["fc/mm"]),
        helper.make_node("Sigmoid", ["fc/mm"], ["activations"]),
        helper.make_node("Identity", [emb], ["embeddings"]),
    ]
    graph = helper.make_graph(
        net.onnx_nodes,
        "effnet_b0_random",
        [helper.make_tensor_value_info("melspectrogram", TensorProto.FLOAT, ["batch", 128, 96])],
        [
            helper.make_tensor_value_info("activations", TensorProto.FLOAT, ["batch", 400]),
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 1280]),
        ],
        net.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    return graph_def(net.tf), model


def python_patches(es, audio):
    """Mel patches as TensorflowPredictEffnetDiscogs builds them (frames 512/256, 128-frame
    patches, hop 62, last partial patch discarded)."""
    frames = []
    mel = es.TensorflowInputMusiCNN()
    for frame in _frames(es, audio):
        frames.append(mel(frame))
    bands = np.array(frames, np.float32)
    starts = range(0, len(bands) - 128 + 1, 62)
    return np.stack([bands[s : s + 128] for s in starts])


def _frames(es, audio):
    cutter = es.FrameCutter(frameSize=512, hopSize=256)
    cutter.reset()
    while True:
        frame = cutter(audio)
        if frame.size == 0:
            return
        yield frame


def timeit(fn, repeat=3):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def main():
    import essentia

    essentia.log.infoActive = False
    import essentia.standard as es

    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(1)
    crop = rng.normal(0, 0.1, int(11.9 * SR)).astype(np.float32)
    track = rng.normal(0, 0.1, 180 * SR).astype(np.float32)

    t = time.perf_counter()
    pb64, onnx_model = build(64)
    pb1, _ = build(1)
    print(f"built graphs in {time.perf_counter() - t:.1f} s; .pb {len(pb64) / 1e6:.1f} MB")
    (tmp / "b64.pb").write_bytes(pb64)
    (tmp / "b1.pb").write_bytes(pb1)
    onnx.save(onnx_model, str(tmp / "b.onnx"))
    print(f".onnx {(tmp / 'b.onnx').stat().st_size / 1e6:.1f} MB")

    t = time.perf_counter()
    tf64 = es.TensorflowPredictEffnetDiscogs(
        graphFilename=str(tmp / "b64.pb"), output="PartitionedCall:1"
    )
    print(f"TF bs64 load {time.perf_counter() - t:.2f} s")
    tf1 = es.TensorflowPredictEffnetDiscogs(
        graphFilename=str(tmp / "b1.pb"), output="PartitionedCall:1", batchSize=1
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    t = time.perf_counter()
    sess = ort.InferenceSession(str(tmp / "b.onnx"), opts, providers=["CPUExecutionProvider"])
    print(f"ORT load {time.perf_counter() - t:.2f} s")

    e64 = np.asarray(tf64(crop))
    e1 = np.asarray(tf1(crop))
    patches = python_patches(es, crop)
    eo = sess.run(["embeddings"], {"melspectrogram": patches})[0]
    print("patches", patches.shape, "tf64", e64.shape, "tf1", e1.shape, "ort", eo.shape)
    scale = np.abs(e64).max()
    print(f"max |tf64 - tf1| / max = {np.abs(e64 - e1).max() / scale:.2e}")
    print(f"max |tf64 - ort| / max = {np.abs(e64 - eo).max() / scale:.2e}")

    for label, audio in (("11.9 s crop", crop), ("180 s track", track)):
        print(f"-- {label}")
        print(
            "  mel patches (python, essentia algos): min {:.3f} median {:.3f} s".format(
                *timeit(lambda a=audio: python_patches(es, a))
            )
        )
        print(
            "  TF bs64 (essentia, incl. mel):        min {:.3f} median {:.3f} s".format(
                *timeit(lambda a=audio: tf64(a))
            )
        )
        print(
            "  TF bs1  (essentia, incl. mel):        min {:.3f} median {:.3f} s".format(
                *timeit(lambda a=audio: tf1(a))
            )
        )
        p = python_patches(es, audio)
        print(
            "  ORT (patches given):                  min {:.3f} median {:.3f} s".format(
                *timeit(lambda p=p: sess.run(["embeddings"], {"melspectrogram": p}))
            )
        )


if __name__ == "__main__":
    main()
