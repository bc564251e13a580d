"""Essentia's published model files, below the classifier: the metadata each
model's ``.json`` gives, and the runner of the ONNX embedding model
(``backend: onnx``: onnxruntime on mel patches cut with Essentia's algorithms).

mirflow.classifiers checks the options, the files and the heads and runs them;
this module reads and runs what it is given. onnxruntime is imported by
:class:`OnnxEmbedding` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.errors import ModelNotFoundError

#: How a message about a missing or damaged Essentia model ends.
FETCH_ESSENTIA = "run `make models` (downloads the Essentia models into models/)"


# -- metadata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMetadata:
    """What mirflow reads from a model's published .json."""

    path: Path
    classes: tuple[str, ...]
    input_node: str
    output_node: str  # the output with the wanted ``output_purpose``
    input_shape: tuple[Any, ...]
    output_shape: tuple[Any, ...]
    sample_rate: int | None


def read_metadata(path: Path, purpose: str) -> ModelMetadata:
    """Parse a model .json; ModelNotFoundError (delete and re-download) if it is malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        schema = data["schema"]
        model_input = schema["inputs"][0]
        outputs = [o for o in schema["outputs"] if o.get("output_purpose") == purpose]
        if not outputs:
            raise KeyError(f"no output with output_purpose {purpose!r}")
        sample_rate = (data.get("inference") or {}).get("sample_rate")
        return ModelMetadata(
            path=path,
            classes=tuple(str(c) for c in data.get("classes") or ()),
            input_node=str(model_input["name"]),
            output_node=str(outputs[0]["name"]),
            input_shape=tuple(model_input.get("shape") or ()),
            output_shape=tuple(outputs[0].get("shape") or ()),
            sample_rate=int(sample_rate) if sample_rate is not None else None,
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelNotFoundError(
            f"{path} is not Essentia model metadata ({exc}); delete it and {FETCH_ESSENTIA}"
        ) from exc


# -- the ONNX embedding runner ---------------------------------------------------------------------

#: Mel frames and patches exactly as TensorflowPredictEffnetDiscogs makes them (its defaults):
#: FrameCutter(512, 256), TensorflowInputMusiCNN (96 bands), 128-frame patches every 62 frames,
#: an incomplete last patch dropped. Checked against it: identical embeddings (1.6e-7 relative)
#: on an EfficientNet-B0 with random weights run in both runtimes.
FRAME_SIZE, HOP_SIZE, PATCH_FRAMES, PATCH_HOP, MEL_BANDS = 512, 256, 128, 62, 96
#: Patches per onnxruntime call, bounding memory on long tracks.
ONNX_BATCH = 64


class OnnxEmbedding:
    """discogs-effnet-bsdynamic-1.onnx in onnxruntime, fed mel patches computed with Essentia.

    The tensor names are read from the model itself: the published .json gives the TensorFlow
    ones (``PartitionedCall:1``), not the ONNX graph's. The output is the one named
    ``embeddings`` or else the only one whose last dimension is the embedding size.
    """

    def __init__(self, es, path: Path, embedding_dim: int) -> None:
        import onnxruntime as ort  # noqa: PLC0415
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors  # noqa: PLC0415

        errors = (
            ort_errors.Fail,
            ort_errors.InvalidProtobuf,
            ort_errors.InvalidGraph,
            ort_errors.NoSuchFile,
            ort_errors.InvalidArgument,
            ort_errors.RuntimeException,
        )
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except errors as exc:
            raise ModelNotFoundError(
                f"{path} could not be loaded by onnxruntime ({exc}); delete it and {FETCH_ESSENTIA}"
            ) from exc
        (model_input,) = self.session.get_inputs()
        self.input_name = model_input.name
        outputs = self.session.get_outputs()
        named = [o.name for o in outputs if o.name == "embeddings"]
        sized = [o.name for o in outputs if o.shape and o.shape[-1] == embedding_dim]
        if not (named or len(sized) == 1):
            raise ModelNotFoundError(
                f"{path}: no output named 'embeddings' or of width {embedding_dim} among "
                f"{[(o.name, o.shape) for o in outputs]}; delete it and {FETCH_ESSENTIA}"
            )
        self.output_name = (named or sized)[0]
        self._es = es
        self._mel = es.TensorflowInputMusiCNN()

    def patches(self, audio: np.ndarray) -> np.ndarray:
        """``(patches, 128, 96)`` float32 log-mel patches of 16 kHz mono ``audio``."""
        cutter = self._es.FrameCutter(frameSize=FRAME_SIZE, hopSize=HOP_SIZE)
        bands = []
        while (frame := cutter(audio)).size:
            bands.append(self._mel(frame))
        frames = np.asarray(bands, dtype=np.float32)
        starts = range(0, len(frames) - PATCH_FRAMES + 1, PATCH_HOP)
        if not starts:
            return np.zeros((0, PATCH_FRAMES, MEL_BANDS), np.float32)
        return np.stack([frames[s : s + PATCH_FRAMES] for s in starts])

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        patches = self.patches(audio)
        chunks = [
            self.session.run([self.output_name], {self.input_name: patches[i : i + ONNX_BATCH]})[0]
            for i in range(0, len(patches), ONNX_BATCH)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
