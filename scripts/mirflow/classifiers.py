"""Genre, mood/theme, instrument, voice, danceability and tonality from Essentia's
TensorFlow models: one Discogs-EffNet embedding pass, then small classification heads.

The pipeline is the one Essentia's own examples use for every ``*-discogs-effnet-1`` head
(``src/examples/python/models/scripts/classification-heads/`` in MTG/essentia)::

    audio (mono, 16 kHz)
      -> TensorflowPredictEffnetDiscogs(discogs-effnet-bs64-1.pb, output="PartitionedCall:1")
         # mel patches of 128 frames (~2 s), hop 62 frames (~1 s): one 1280-d embedding each
      -> TensorflowPredict2D(<head>.pb, input=..., output=...)   # one prediction per patch
      -> mean over patches

Input and output node names, class labels and the embedding size are read from each model's
``.json`` metadata (``schema.inputs[0].name``, the ``schema.outputs`` entry whose
``output_purpose`` is ``predictions`` or ``embeddings``, ``classes``), exactly as Essentia's
script generator (``generate_example_scripts.py``) reads them. Only heads trained on
Discogs-EffNet embeddings are used: every task mirflow reports has one, so one embedding pass
serves them all and no VGGish model is needed.

``backend: onnx`` runs the embedding model instead as Essentia's ONNX export
(discogs-effnet-bsdynamic-1.onnx) in onnxruntime, on mel patches cut in Python with the same
Essentia algorithms; the heads stay TensorFlow (genre_discogs400 has no ONNX export). On an
EfficientNet-B0 with random weights (the architecture and input of discogs-effnet) both give
the same embeddings; per 11.9 s crop on 2 CPU cores onnxruntime took 0.03 s (0.015 s of it
cutting mel patches), TensorFlow 0.47-0.74 s with bs64 (every call is padded to 64 patches,
mel frames included) and 0.22 s with bs1.

Model files live flat in ``<models_dir>/essentia/`` under their official names
(:func:`required_files`). The models are CC BY-NC-SA 4.0 (non-commercial). Their metadata
reader and the ONNX embedding runner are in mirflow.essentia_models.

Importing this module is cheap: essentia (and the TensorFlow library it bundles, ~1 s) is
imported by :meth:`EssentiaClassifiers.load` only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mirflow.audio import sample_windows, stream_audio
from mirflow.errors import AudioDecodeError, ModelNotFoundError, TrackError
from mirflow.essentia_import import essentia_standard
from mirflow.essentia_models import FETCH_ESSENTIA, OnnxEmbedding, read_metadata

log = logging.getLogger(__name__)

#: Sample rate every model here expects (``inference.sample_rate`` in their metadata).
SAMPLE_RATE = 16000
#: Sub-folder of models/ holding the .pb and .json files.
MODEL_SUBDIR = "essentia"

#: Essentia computes mel frames of 512 samples every 256 (TensorflowInputMusiCNN inside
#: TensorflowPredictEffnetDiscogs, first frame centred on sample 0) and feeds patches of 128
#: frames. With its default ``lastPatchMode="discard"`` a signal shorter than this yields no
#: patch at all (measured: 32512 samples give none, 32513 give one).
MIN_SAMPLES = 32513
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE
#: Samples of a file embedded at a time (:meth:`EssentiaClassifiers.classify_file`): 300
#: patch hops of 62 frames of 256 samples (~298 s), so a chunk's patches start where the
#: whole file's do; only the ~2 patches that would straddle each chunk boundary are lost.
FILE_CHUNK = 300 * 62 * 256


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding model: ``<name>.pb`` (or ``.onnx``) + ``<name>.json`` in models/essentia/."""

    name: str
    backend: str  # "tensorflow" | "onnx"

    @property
    def files(self) -> tuple[str, str]:
        suffix = ".onnx" if self.backend == "onnx" else ".pb"
        return (f"{MODEL_SUBDIR}/{self.name}{suffix}", f"{MODEL_SUBDIR}/{self.name}.json")


@dataclass(frozen=True)
class Head:
    """A classification head and what mirflow reports from it.

    ``kind`` "labels": ``fields`` is one ``(field, None)``; the field gets ``{label: p}`` of the
    ``top_k`` most probable classes with p >= ``threshold``.
    ``kind`` "scalar": each ``(field, class_label)`` gets that class's mean probability (the
    class's index is looked up in the model's ``classes``, never assumed).
    """

    key: str  # name in the ``heads`` option
    model: str  # file stem on essentia.upf.edu
    embedding: str  # family of embedding model it was trained on
    kind: str  # "labels" | "scalar"
    fields: tuple[tuple[str, str | None], ...]

    @property
    def files(self) -> tuple[str, str]:
        return (f"{MODEL_SUBDIR}/{self.model}.pb", f"{MODEL_SUBDIR}/{self.model}.json")


#: Embedding models by option value, all Discogs-EffNet from
#: https://essentia.upf.edu/models/feature-extractors/discogs-effnet/: TensorFlow graphs frozen
#: with a fixed batch (bs64, Essentia's examples, pads the last batch to 64 patches; bs1 runs
#: exactly the patches the audio has) and an ONNX export with a dynamic batch.
EMBEDDING_MODELS: dict[str, EmbeddingModel] = {
    "discogs-effnet-bs64-1": EmbeddingModel("discogs-effnet-bs64-1", "tensorflow"),
    "discogs-effnet-bs1-1": EmbeddingModel("discogs-effnet-bs1-1", "tensorflow"),
    "discogs-effnet-bsdynamic-1": EmbeddingModel("discogs-effnet-bsdynamic-1", "onnx"),
}
#: The embedding model each backend uses unless ``embedding_model`` says otherwise.
DEFAULT_EMBEDDING_MODEL = {
    "tensorflow": "discogs-effnet-bs64-1",
    "onnx": "discogs-effnet-bsdynamic-1",
}

#: Every head mirflow knows, in output order.
HEADS: dict[str, Head] = {
    head.key: head
    for head in (
        Head(
            "genre",
            "genre_discogs400-discogs-effnet-1",
            "discogs-effnet",
            "labels",
            (("essentia_genre", None),),
        ),
        Head(
            "mood",
            "mtg_jamendo_moodtheme-discogs-effnet-1",
            "discogs-effnet",
            "labels",
            (("essentia_mood", None),),
        ),
        Head(
            "instrument",
            "mtg_jamendo_instrument-discogs-effnet-1",
            "discogs-effnet",
            "labels",
            (("essentia_instrument", None),),
        ),
        Head(
            "voice",
            "voice_instrumental-discogs-effnet-1",
            "discogs-effnet",
            "scalar",
            (("voice_probability", "voice"), ("instrumental_probability", "instrumental")),
        ),
        Head(
            "danceability",
            "danceability-discogs-effnet-1",
            "discogs-effnet",
            "scalar",
            (("danceability", "danceable"),),
        ),
        Head(
            "tonal",
            "tonal_atonal-discogs-effnet-1",
            "discogs-effnet",
            "scalar",
            (("tonal_probability", "tonal"),),
        ),
    )
}

#: Runtimes for the embedding model. The heads always run in TensorFlow (through Essentia's
#: TensorflowPredict2D): they are tiny, and genre_discogs400 is published as .pb only.
BACKENDS = ("tensorflow", "onnx")

#: Options read from the config section, with their defaults (``embedding_model`` None: the
#: backend's default, :data:`DEFAULT_EMBEDDING_MODEL`).
DEFAULT_OPTIONS: dict[str, Any] = {
    # "tonal" is opt-in: no checksum is published for its model, so
    # `make models` cannot fetch it (models/manifest.yaml).
    "heads": [key for key in HEADS if key != "tonal"],
    "top_k": 5,
    "threshold": 0.1,
    "backend": "tensorflow",
    "embedding_model": None,
}


# -- options and files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierOptions:
    heads: tuple[str, ...]
    top_k: int
    threshold: float
    backend: str
    embedding_model: str


def parse_options(options: Mapping[str, Any] | None) -> ClassifierOptions:
    """Defaults filled in and every value checked; ValueError names the bad key.

    Keys this module does not read (``enabled``, resources) are ignored.
    """
    merged = {**DEFAULT_OPTIONS, **{k: v for k, v in (options or {}).items() if v is not None}}
    heads = merged["heads"]
    if isinstance(heads, str) or not isinstance(heads, Sequence):
        raise ValueError(f"heads must be a list of {', '.join(HEADS)}, not {heads!r}")
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        raise ValueError(f"heads: unknown head(s) {unknown}; known: {', '.join(HEADS)}")
    top_k = merged["top_k"]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, not {top_k!r}")
    threshold = merged["threshold"]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise ValueError(f"threshold must be a number in [0, 1], not {threshold!r}")
    backend = merged["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    embedding_model = merged["embedding_model"] or DEFAULT_EMBEDDING_MODEL[backend]
    choices = [name for name, model in EMBEDDING_MODELS.items() if model.backend == backend]
    if embedding_model not in choices:
        raise ValueError(
            f"embedding_model must be one of {', '.join(choices)} with backend {backend}, "
            f"not {embedding_model!r}"
        )
    ordered = tuple(h for h in HEADS if h in heads)  # output order is the table's, not the list's
    return ClassifierOptions(ordered, int(top_k), float(threshold), backend, embedding_model)


def required_files(options: Mapping[str, Any] | None = None) -> list[str]:
    """Files (relative to models/, POSIX separators) the configured heads need, embedding
    model first, e.g. ``essentia/discogs-effnet-bs64-1.pb``."""
    opts = parse_options(options)
    files = list(EMBEDDING_MODELS[opts.embedding_model].files)
    for key in opts.heads:
        files.extend(HEADS[key].files)
    return files


def model_names(options: Mapping[str, Any] | None = None) -> list[str]:
    """Manifest entry names (``essentia:<model>``) of :func:`required_files`, embedding first."""
    opts = parse_options(options)
    return [f"essentia:{opts.embedding_model}"] + [f"essentia:{HEADS[k].model}" for k in opts.heads]


def output_fields(options: Mapping[str, Any] | None = None) -> list[str]:
    """The keys :meth:`EssentiaClassifiers.classify` returns for these options, in order."""
    opts = parse_options(options)
    return [field for key in opts.heads for field, _ in HEADS[key].fields]


def top_k_labels(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    top_k: int,
    threshold: float,
) -> dict[str, float]:
    """``{label: probability}`` of the ``top_k`` most probable labels whose probability is at
    least ``threshold``, most probable first (ties keep the labels' order)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(labels),):
        raise ValueError(f"{probabilities.shape[0]} probabilities for {len(labels)} labels")
    order = np.argsort(-probabilities, kind="stable")
    chosen = [i for i in order[:top_k] if probabilities[i] >= threshold]
    return {str(labels[i]): float(probabilities[i]) for i in chosen}


# -- the classifier ------------------------------------------------------------------------------


class EssentiaClassifiers:
    """The embedding model and the enabled heads, loaded once, classifying many tracks.

    Not thread-safe: Essentia algorithms keep state between calls.
    """

    #: Loads in this process (all instances together); the workflow test counts them.
    load_count: int = 0

    @classmethod
    def load(
        cls, models_dir: str | os.PathLike, options: Mapping[str, Any] | None = None
    ) -> EssentiaClassifiers:
        """Check the files, read the metadata and load every graph once (``load_count`` + 1).

        ModelNotFoundError names every missing file (or the damaged one) and `make models`;
        ValueError names a bad option.
        """
        return cls(models_dir, options)

    def __init__(
        self, models_dir: str | os.PathLike, options: Mapping[str, Any] | None = None
    ) -> None:
        opts = parse_options(options)
        models_dir = Path(models_dir)
        missing = [
            models_dir / PurePosixPath(rel)
            for rel in required_files(asdict(opts))
            if not (models_dir / PurePosixPath(rel)).is_file()
        ]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ModelNotFoundError(
                f"{', '.join(str(p) for p in missing)} {verb} missing: {FETCH_ESSENTIA}"
            )

        self.options = opts
        self.models_dir = models_dir
        embedding = EMBEDDING_MODELS[opts.embedding_model]
        graph, meta_path = (models_dir / PurePosixPath(f) for f in embedding.files)
        self.embedding_metadata = read_metadata(meta_path, "embeddings")
        self.embedding_dim = _last_int(self.embedding_metadata.output_shape) or 1280
        self.head_metadata = {
            key: read_metadata(models_dir / PurePosixPath(HEADS[key].files[1]), "predictions")
            for key in opts.heads
        }
        self._class_index = {key: self._check_head(key) for key in opts.heads}
        for meta in (self.embedding_metadata, *self.head_metadata.values()):
            if meta.sample_rate not in (None, SAMPLE_RATE):
                raise ModelNotFoundError(
                    f"{meta.path} says the model expects {meta.sample_rate} Hz, not "
                    f"{SAMPLE_RATE} Hz: it is not the model mirflow was written for"
                )

        started = time.perf_counter()
        es = essentia_standard()
        if embedding.backend == "onnx":
            self._embedding_algo = OnnxEmbedding(es, graph, self.embedding_dim)
        else:
            self._embedding_algo = _make(
                es.TensorflowPredictEffnetDiscogs,
                graph,
                graphFilename=str(graph),
                input=self.embedding_metadata.input_node,
                output=self.embedding_metadata.output_node,
                # the batch the graph was frozen with (64 or 1), first dim of its input shape
                batchSize=_first_int(self.embedding_metadata.input_shape) or 64,
            )
        self._head_algos = {}
        for key in opts.heads:
            head_pb = models_dir / PurePosixPath(HEADS[key].files[0])
            meta = self.head_metadata[key]
            self._head_algos[key] = _make(
                es.TensorflowPredict2D,
                head_pb,
                graphFilename=str(head_pb),
                input=meta.input_node,
                output=meta.output_node,
                dimensions=self.embedding_dim,
            )
            self._warm_up(key, head_pb)
        EssentiaClassifiers.load_count += 1
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded %s and %d Essentia head(s) (%s) in %.2f s",
            embedding.name,
            len(opts.heads),
            ", ".join(opts.heads),
            self.load_seconds,
        )

    def _warm_up(self, key: str, pb: Path) -> None:
        """Run the head once on a zero embedding, at load time rather than on the first track.

        The standard-mode TensorflowPredict2D of essentia-tensorflow 2.1b6.dev1389 keeps its
        default ``dimensions`` (200) whatever is passed, and reloads its graph on the first
        input of another width; doing that here keeps the reload out of the first track's time
        (measured: each head logs "Successfully loaded graph file" a second time then). It also
        checks that the graph gives one value per class its .json lists.
        """
        meta = self.head_metadata[key]
        try:
            out = np.asarray(self._head_algos[key](np.zeros((1, self.embedding_dim), np.float32)))
        except RuntimeError as exc:
            raise ModelNotFoundError(
                f"{pb} does not run on {self.embedding_dim}-d embeddings ({exc}); delete it "
                f"and {FETCH_ESSENTIA}"
            ) from exc
        if out.ndim != 2 or out.shape[1] != len(meta.classes):
            raise ModelNotFoundError(
                f"{pb} gives {out.shape[-1] if out.ndim else 0} values per patch but {meta.path} "
                f"lists {len(meta.classes)} classes: the two files do not belong together; "
                f"delete them and {FETCH_ESSENTIA}"
            )

    def _check_head(self, key: str) -> dict[str, int]:
        """Field -> class index for scalar heads; checks the labels and the input size."""
        head, meta = HEADS[key], self.head_metadata[key]
        if not meta.classes:
            raise ModelNotFoundError(
                f"{meta.path} lists no classes; delete it and {FETCH_ESSENTIA}"
            )
        head_dim = _last_int(meta.input_shape)
        if head_dim is not None and head_dim != self.embedding_dim:
            raise ModelNotFoundError(
                f"{meta.path}: the head takes {head_dim}-d embeddings but "
                f"{self.options.embedding_model} gives {self.embedding_dim}-d ones"
            )
        index: dict[str, int] = {}
        for field, label in head.fields:
            if label is None:
                continue
            if label not in meta.classes:
                raise ModelNotFoundError(
                    f"{meta.path}: class {label!r} (for {field}) is not among its classes "
                    f"{list(meta.classes)}; delete it and {FETCH_ESSENTIA}"
                )
            index[field] = meta.classes.index(label)
        return index

    # -- classification ------------------------------------------------------------------------

    def embeddings(self, audio_16k_mono: np.ndarray) -> np.ndarray:
        """``(patches, embedding_dim)`` float32: one embedding per ~2 s patch, hop ~1 s."""
        audio = _as_mono_float32(audio_16k_mono)
        if audio.size < MIN_SAMPLES:
            raise TrackError(
                f"audio is {audio.size / SAMPLE_RATE:.2f} s long; the Essentia classifiers need "
                f"at least {MIN_SECONDS:.2f} s (one 128-frame patch at {SAMPLE_RATE} Hz)"
            )
        if not np.isfinite(audio).all():
            raise TrackError("audio contains NaN or infinite samples")
        result = np.asarray(self._embedding_algo(audio), dtype=np.float32)
        if result.ndim != 2 or result.shape[0] == 0:
            raise TrackError(f"the embedding model returned no patch (shape {result.shape})")
        return result

    def classify(self, audio_16k_mono: np.ndarray) -> dict[str, Any]:
        """Field -> value for the enabled heads (:func:`output_fields` order).

        Label fields are ``{label: probability}`` dicts, scalar fields floats in [0, 1]; every
        value is the head's prediction averaged over the audio's patches.
        TrackError if the audio is shorter than one patch (:data:`MIN_SECONDS`) or not finite.
        """
        return self._predict(self.embeddings(audio_16k_mono))

    def _predict(self, embeddings: np.ndarray) -> dict[str, Any]:
        """The heads' fields from the patches' embeddings (their predictions' mean)."""
        result: dict[str, Any] = {}
        for key in self.options.heads:
            head, meta = HEADS[key], self.head_metadata[key]
            predictions = np.asarray(self._head_algos[key](embeddings), dtype=np.float64)
            if predictions.ndim != 2 or predictions.shape[1] != len(meta.classes):
                raise RuntimeError(
                    f"{meta.path}: the head gave predictions of shape {predictions.shape} for "
                    f"{len(meta.classes)} classes"
                )
            mean = predictions.mean(axis=0)
            if head.kind == "labels":
                ((field, _),) = head.fields
                result[field] = top_k_labels(
                    mean, meta.classes, self.options.top_k, self.options.threshold
                )
            else:
                for field, _ in head.fields:
                    result[field] = float(mean[self._class_index[key][field]])
        return result

    def classify_file(self, path: str | os.PathLike) -> dict[str, Any]:
        """Decode ``path`` (mirflow.audio), mix to mono, resample to 16 kHz (soxr), classify.

        TrackError (naming the file) if it cannot be decoded or is too short.
        A long file is decoded and embedded :data:`FILE_CHUNK` samples at a time
        (the embeddings of its patches, a few kB each, are kept; the audio is not).
        A track of several chunks lacks the ~2 patches per chunk boundary that
        would straddle it (a tail under one patch, :data:`MIN_SECONDS`, joins none).
        """
        embeddings = []
        try:
            chunks = sample_windows(stream_audio(path, sr=SAMPLE_RATE, mono=True), FILE_CHUNK, 0)
            for chunk in chunks:
                if embeddings and chunk.audio.shape[1] < MIN_SAMPLES:
                    break  # the last chunk's tail is shorter than a patch
                embeddings.append(self.embeddings(chunk.audio[0]))
            return self._predict(np.concatenate(embeddings))
        except AudioDecodeError:
            raise  # names the file already
        except TrackError as exc:
            raise TrackError(f"{path}: {exc}") from exc


# -- helpers -------------------------------------------------------------------------------------


def _make(algorithm, pb: Path, **params):
    """Instantiate an Essentia TensorFlow algorithm; a graph TensorFlow cannot import means a
    damaged file: ModelNotFoundError saying to re-download it."""
    try:
        return algorithm(**params)
    except RuntimeError as exc:
        message = " ".join(str(exc).split())
        raise ModelNotFoundError(
            f"{pb} could not be loaded by Essentia ({message[:300]}); "
            f"delete it and {FETCH_ESSENTIA}"
        ) from exc


def _as_mono_float32(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    return np.ascontiguousarray(audio)


def _first_int(shape: Sequence[Any]) -> int | None:
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def _last_int(shape: Sequence[Any]) -> int | None:
    return shape[-1] if shape and isinstance(shape[-1], int) and shape[-1] > 0 else None


__all__ = [
    "DEFAULT_OPTIONS",
    "EMBEDDING_MODELS",
    "HEADS",
    "MIN_SECONDS",
    "model_names",
    "SAMPLE_RATE",
    "EssentiaClassifiers",
    "Head",
    "output_fields",
    "parse_options",
    "required_files",
    "top_k_labels",
]
