"""BS-RoFormer separation through the audio-separator package, strictly offline.

audio-separator (0.47.1) is file based: it reads a mix from disk and writes one
audio file per stem. :class:`RoformerBackend` hides that behind the
:class:`~mirflow.separation.SeparationBackend` protocol: it loads the model once,
then for each track writes the mix to a private temporary folder, runs the
resident model on it, reads the stems back as arrays and removes the folder.

audio-separator was written for interactive use and reaches for the network and
for ``sys.exit`` in places; every precaution taken against that is commented
where it is taken. The network paths it has (all in ``separator.py``) are:

* ``list_supported_model_files`` (run by every ``load_model``) downloads UVR's
  ``download_checks.json`` model list from GitHub unless
  ``<model_file_dir>/download_checks.json`` exists, and refuses any model that is
  not listed there or in its packaged ``models.json``;
* ``download_model_files`` downloads every file the matching entry lists
  (checkpoint and yaml) that is not in ``model_file_dir``, from TRvlvr's or
  nomadkaraoke's GitHub releases;
* ``load_model_data_using_hash`` (models without a yaml) downloads UVR's VR and
  MDX model-data json files;
* the ``AUDIO_SEPARATOR_MODEL_DIR`` environment variable silently redirects all
  of the above to another folder, where the files may be missing.

All of them go through ``Separator.download_file_if_not_exists``, which skips a
file that exists. So: the model files are checked first
(:class:`~mirflow.errors.ModelNotFoundError` if missing), the model list is
written if needed, the environment variable is ignored, and the instance's
downloader is replaced by one that refuses to download anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mirflow.atomic import TEMP_PREFIX, read_json, write_json
from mirflow.audio import resample, to_stereo, write_audio
from mirflow.devices import resolve_device
from mirflow.errors import ModelNotFoundError
from mirflow.separation import SeparationError

log = logging.getLogger(__name__)

#: The sub-folder of models/ that audio-separator's files live in.
MODEL_SUBDIR = "audio-separator"

#: The model list audio-separator fetches from GitHub unless this file exists.
DOWNLOAD_CHECKS = "download_checks.json"

#: Every key ``Separator.list_supported_model_files`` indexes (a missing one is a
#: KeyError inside audio-separator).
DOWNLOAD_LIST_KEYS = (
    "vr_download_list",
    "mdx_download_list",
    "mdx_download_vip_list",
    "demucs_download_list",
    "mdx23c_download_list",
    "mdx23c_download_vip_list",
    "roformer_download_list",
)

#: The lists audio-separator merges into its "MDXC" group, where RoFormers live.
_MDXC_LIST_KEYS = ("mdx23c_download_list", "mdx23c_download_vip_list", "roformer_download_list")

#: How many samples a stem may differ from the mix before we call it an error
#: rather than an edge effect (the RoFormer path returns exactly the mix length).
LENGTH_TOLERANCE = 64

DEFAULT_SAMPLE_RATE = 44100


class RoformerBackend:
    """A BS-RoFormer (or other audio-separator RoFormer) model, resident in memory.

    ``model_file`` is the checkpoint's file name in ``<models_dir>/audio-separator/``;
    its config is the file with the same stem and ``.yaml``. ``segment_size``
    (STFT frames per chunk), ``overlap`` (windows per chunk) and ``batch_size``
    are audio-separator's MDXC options; None keeps the yaml's / its defaults.
    """

    #: Models loaded in this process, by all instances (tests check we load once).
    load_count: int = 0
    #: No clipping guard of its own (audio-separator only scales a stem past 1.0,
    #: and its normalisation is off: see _load).
    clip_mode = "none"

    def __init__(
        self,
        model_file: str,
        models_dir: str | Path,
        device: str = "auto",
        work_dir: str | Path | None = None,
        segment_size: int | None = None,
        overlap: int | None = None,
        batch_size: int = 1,
    ) -> None:
        self.model_file = model_file
        self.model_dir = Path(models_dir) / MODEL_SUBDIR
        self.ckpt_path = self.model_dir / model_file
        self.yaml_path = self.model_dir / (Path(model_file).stem + ".yaml")
        self.name = f"bs_roformer:{model_file}"
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.device = resolve_device(device, "separating (minutes per track with full-size models)")

        for path in (self.ckpt_path, self.yaml_path):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{path}: model file not found (needed by {self.name}); run `make models`"
                )

        self.sample_rate = self._yaml_sample_rate()
        ensure_download_checks(self.model_dir, model_file, self.yaml_path.name)
        self._separator = self._make_separator(segment_size, overlap, batch_size)
        self._load()
        self._stems, self._output_names = self._stem_names()

    # -- loading ---------------------------------------------------------------

    def _yaml_sample_rate(self) -> int:
        import yaml  # noqa: PLC0415

        try:
            # FullLoader, as audio-separator itself uses: real RoFormer yamls
            # contain !!python/tuple, which safe_load rejects.
            with open(self.yaml_path, encoding="utf-8") as handle:
                config = yaml.load(handle, Loader=yaml.FullLoader)
            audio = config.get("audio") or {}
            return int(audio.get("sample_rate") or DEFAULT_SAMPLE_RATE)
        except Exception as exc:
            raise SeparationError(f"cannot read model config {self.yaml_path}: {exc}") from exc

    def _make_separator(self, segment_size: int | None, overlap: int | None, batch_size: int):
        import torch  # noqa: PLC0415
        from audio_separator.separator import Separator  # noqa: PLC0415

        mdxc_params = {
            # audio-separator uses segment_size only when overriding the yaml's
            # dim_t (which it also does by itself for inputs under 10 s).
            "segment_size": segment_size if segment_size is not None else 256,
            "override_model_segment_size": segment_size is not None,
            "batch_size": batch_size,
            "overlap": overlap,
            "pitch_shift": 0,
        }
        # Separator.__init__ calls warnings.filterwarnings("ignore") for the whole
        # process when the log level is above DEBUG; keep that side effect local.
        with warnings.catch_warnings(), _env_var_removed("AUDIO_SEPARATOR_MODEL_DIR"):
            try:
                separator = Separator(
                    # ERROR: its warnings are per-file chatter ("Using soundfile
                    # for writing" once per stem); errors are kept (see _describe).
                    log_level=logging.ERROR,
                    model_file_dir=str(self.model_dir),
                    output_dir=None,  # set per call on the model instance (see separate)
                    output_format="WAV",
                    # soundfile writes the input's subtype, so our FLOAT mix gives
                    # FLOAT stems: no 16-bit quantisation, no clipping at 1.0.
                    use_soundfile=True,
                    normalization_threshold=1.0,
                    amplification_threshold=0.0,
                    sample_rate=self.sample_rate,
                    mdxc_params=mdxc_params,
                )
            except FileNotFoundError as exc:  # its ffmpeg check
                raise RuntimeError(f"audio-separator needs ffmpeg on PATH: {exc}") from exc
        # AUDIO_SEPARATOR_MODEL_DIR would send it to another folder, where the
        # model may be missing and would be downloaded: pin our folder.
        separator.model_file_dir = str(self.model_dir)
        # Every download (model list, checkpoint, yaml, model-data json) goes
        # through this method, which skips existing files; refuse the rest.
        separator.download_file_if_not_exists = _refuse_download
        # It auto-detects CUDA/MPS; honour the device mirflow resolved. The
        # value is read when load_model builds the model.
        separator.torch_device = torch.device(self.device)
        return separator

    def _load(self) -> None:
        self._check_resolution()
        started = time.perf_counter()
        errors: list[str] = []
        try:
            with _collect_errors(self._separator.logger, errors):
                self._separator.load_model(self.model_file)
        except ModelNotFoundError:
            raise
        except (Exception, SystemExit) as exc:
            # A corrupt checkpoint or one that does not match the yaml makes
            # MDXCSeparator.load_model call sys.exit(1); other failures come out
            # as RuntimeError. Neither may end a batch: turn them into a track
            # failure the caller records.
            raise SeparationError(
                f"cannot load {self.ckpt_path}: not a valid BS-RoFormer checkpoint for "
                f"{self.yaml_path} (corrupt, truncated, or built with another config): "
                f"{_describe(exc, errors)}"
            ) from exc
        instance = self._separator.model_instance
        if instance is None or not getattr(instance, "is_roformer", False):
            raise SeparationError(
                f"{self.ckpt_path}: audio-separator did not load it as a RoFormer"
            )
        # Settings are captured on the model instance at load time. Peak
        # normalisation would rescale the mix and then each stem on its own when
        # its peak exceeds the threshold, so stems would no longer add up to the
        # mix; an infinite threshold disables it (amplification is already off).
        instance.normalization_threshold = math.inf
        RoformerBackend.load_count += 1
        log.info("loaded %s on %s in %.2f s", self.name, self.device, time.perf_counter() - started)

    def _check_resolution(self) -> None:
        """Make sure audio-separator will pick our checkpoint + yaml for this name.

        It takes the first listed entry that mentions the file; an entry pairing
        the checkpoint with another yaml would make it use (or fetch) that one.
        """
        groups = self._separator.list_supported_model_files()  # offline: the list exists
        for group in groups.values():
            for friendly, info in group.items():
                if info["filename"] == self.model_file or self.model_file in info["download_files"]:
                    files = set(info["download_files"])
                    if files != {self.model_file, self.yaml_path.name}:
                        raise ModelNotFoundError(
                            f"{self.model_dir / DOWNLOAD_CHECKS}: entry {friendly!r} pairs "
                            f"{self.model_file} with {sorted(files)}, not {self.yaml_path.name}; "
                            "fix or remove that entry (run `make models`)"
                        )
                    return
        raise ModelNotFoundError(f"{self.model_file} is not listed in {DOWNLOAD_CHECKS}")

    def _stem_names(self) -> tuple[list[str], dict[str, str]]:
        """The stems audio-separator will write, and a fixed file name for each."""
        instance = self._separator.model_instance
        training = instance.model_data_cfgdict.training
        instruments = [str(name) for name in training.instruments]
        if training.get("target_instrument"):
            stems = [instance.primary_stem_name, instance.secondary_stem_name]
        elif len(instruments) >= 2:
            stems = instruments
        else:
            stems = [instance.primary_stem_name]
        lowered = [stem.lower() for stem in stems]
        if len(set(lowered)) != len(lowered):
            raise SeparationError(f"{self.yaml_path}: stem names clash when lower-cased: {stems}")
        # custom_output_names maps a stem (case-insensitively) to a bare file
        # name, so outputs are "stem_0.wav" ... and no file name is ever parsed.
        return stems, {stem: f"stem_{i}" for i, stem in enumerate(stems)}

    @property
    def window_unit(self) -> int:
        """Samples between the starts of audio-separator's overlapping chunks (its
        MDXC ``step``: the chunk, stft hop x (frames - 1), over ``overlap``), which
        start at sample 0. A long track's windows start on multiples of it, so each
        window's chunks are the whole track's (mirflow.separation.batch)."""
        instance = self._separator.model_instance
        config = instance.model_data_cfgdict
        frames = (
            instance.segment_size
            if instance.override_model_segment_size
            else config.inference.dim_t
        )
        hop = getattr(config.model, "stft_hop_length", None) or config.audio.hop_length
        return max(1, int(hop) * (int(frames) - 1) // int(instance.overlap))

    # -- separating ------------------------------------------------------------

    def separate(
        self, audio: np.ndarray, sr: int, prevent_clip: bool = True
    ) -> dict[str, np.ndarray]:
        """``(channels, samples)`` at ``sr`` -> ``{stem: (2, n) float32}`` at 44.1 kHz.

        ``prevent_clip`` is accepted for the backend protocol: this backend has no
        clipping guard of its own (audio-separator only scales stems that pass 1.0).
        """
        mix = self._stereo_mix(audio, sr)
        n = mix.shape[1]
        work_dir = self.work_dir if self.work_dir is not None else Path(tempfile.gettempdir())
        work_dir.mkdir(parents=True, exist_ok=True)
        # TEMP_PREFIX: mirflow.atomic.sweep_temporaries removes what a killed job leaves.
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}roformer~", dir=work_dir))
        try:
            mix_path = tmp / "mix.wav"
            write_audio(mix_path, mix, self.sample_rate)  # float WAV, no resampling on read
            out_dir = tmp / "stems"
            out_dir.mkdir()
            # The gotcha: output_dir is captured by the model instance at
            # load_model time; Separator.output_dir is not read again.
            self._separator.output_dir = str(out_dir)
            self._separator.model_instance.output_dir = str(out_dir)
            started = time.perf_counter()
            errors: list[str] = []
            try:
                with _collect_errors(self._separator.logger, errors):
                    written = self._separator.separate(
                        str(mix_path), custom_output_names=self._output_names
                    )
            except (Exception, SystemExit) as exc:
                raise SeparationError(
                    f"{self.name}: separation failed: {_describe(exc, errors)}"
                ) from exc
            log.debug(
                "%s: %.1f s of audio in %.2f s",
                self.name,
                n / self.sample_rate,
                time.perf_counter() - started,
            )
            return self._read_stems(out_dir, written, n)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _stereo_mix(self, audio: np.ndarray, sr: int) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[np.newaxis]
        if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
            raise SeparationError(
                f"{self.name}: expected (channels, samples) audio, got {audio.shape}"
            )
        if not np.isfinite(audio).all():
            raise SeparationError(f"{self.name}: the mix contains NaN or infinite samples")
        # The models are stereo: mono is duplicated, wider layouts down-mixed.
        mix = resample(to_stereo(audio), int(sr), self.sample_rate)
        return np.ascontiguousarray(mix, dtype=np.float32)

    def _read_stems(self, out_dir: Path, written: list[str], n: int) -> dict[str, np.ndarray]:
        expected = {f"{name}.wav" for name in self._output_names.values()}
        got = {os.path.basename(path) for path in written}
        if got != expected:
            raise SeparationError(
                f"{self.name}: audio-separator wrote {sorted(got)}, expected {sorted(expected)}"
            )
        stems: dict[str, np.ndarray] = {}
        for stem in self._stems:
            path = out_dir / f"{self._output_names[stem]}.wav"
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
            if file_sr != self.sample_rate:
                raise SeparationError(f"{self.name}: {stem} came back at {file_sr} Hz")
            data = data.T
            if data.shape[0] == 1:
                data = np.repeat(data, 2, axis=0)
            stems[stem.lower()] = _fit_length(data[:2], n, f"{self.name}: {stem}")
        return stems


# -- helpers -------------------------------------------------------------------


def ensure_download_checks(model_dir: Path, model_file: str, yaml_file: str) -> Path:
    """Make ``<model_dir>/download_checks.json`` list ``model_file`` -> ``yaml_file``.

    With the file present audio-separator never fetches its model list from
    GitHub; with our entry in it, it accepts our file name. An existing file
    (e.g. UVR's full list) is kept and merged into, never shrunk.
    """
    path = model_dir / DOWNLOAD_CHECKS
    if _lists_model(_read_checks(path), model_file, yaml_file):
        return path  # the common case: nothing to write
    with _file_lock(model_dir / ".download_checks.lock"):
        # Re-read under the lock: another job may have added its own model.
        data = _read_checks(path) or {}
        for key in DOWNLOAD_LIST_KEYS:
            if not isinstance(data.get(key), dict):
                data[key] = {}
        if not _lists_model(data, model_file, yaml_file):
            # A friendly name containing "VIP" would switch audio-separator to
            # its VIP repository and print a Patreon notice.
            friendly = f"Roformer Model: mirflow local {model_file}".replace("VIP", "Vip")
            data["roformer_download_list"][friendly] = {model_file: yaml_file}
        write_json(path, data)
    return path


def _read_checks(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is not valid JSON: rewriting it", path)
        return None
    return data if isinstance(data, dict) else None


def _lists_model(data: dict[str, Any] | None, model_file: str, yaml_file: str) -> bool:
    if data is None or not all(isinstance(data.get(key), dict) for key in DOWNLOAD_LIST_KEYS):
        return False
    return any(
        isinstance(files, dict) and files.get(model_file) == yaml_file
        for key in _MDXC_LIST_KEYS
        for files in data[key].values()
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _env_var_removed(name: str) -> Iterator[None]:
    """Hide an environment variable while audio-separator reads it."""
    value = os.environ.pop(name, None)
    if value is not None:
        log.warning("ignoring %s=%s: mirflow keeps its models in models/", name, value)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


def _refuse_download(url: str, output_path: str) -> None:
    """Stands in for ``Separator.download_file_if_not_exists``: never downloads."""
    if os.path.isfile(output_path):
        return
    raise ModelNotFoundError(
        f"{output_path}: missing, and audio-separator wanted to download it from {url}; "
        "mirflow never downloads during a run: run `make models`"
    )


def _fit_length(stem: np.ndarray, n: int, what: str) -> np.ndarray:
    """Pad or trim a stem to the mix length, allowing only edge effects."""
    diff = stem.shape[1] - n
    if abs(diff) > LENGTH_TOLERANCE:
        raise SeparationError(f"{what}: {stem.shape[1]} samples for a {n}-sample mix")
    if diff > 0:
        stem = stem[:, :n]
    elif diff < 0:
        stem = np.pad(stem, ((0, 0), (0, -diff)))
    return np.ascontiguousarray(stem, dtype=np.float32)


class _ErrorCollector(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage().strip().splitlines()[0][:300])


@contextlib.contextmanager
def _collect_errors(logger: logging.Logger, sink: list[str]) -> Iterator[None]:
    """Keep what audio-separator logs at ERROR: before sys.exit it only logs the cause."""
    handler = _ErrorCollector(sink)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _describe(exc: BaseException, logged: list[str]) -> str:
    if isinstance(exc, SystemExit):
        text = f"audio-separator called sys.exit({exc.code})"
        # Its first ERROR line carries the underlying torch error.
        return f"{text}: {logged[0]}" if logged else text
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else "no message"
    # One line, short: it ends up in the track's failure record.
    return f"{type(exc).__name__}: {first if len(first) <= 200 else first[:199] + '…'}"
