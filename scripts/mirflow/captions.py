"""Music Flamingo captions: crops in, natural-language descriptions out, the model resident.

Music Flamingo (NVIDIA; the Audio Flamingo 3 architecture: a Whisper-style audio encoder and a
Qwen2.5-7B decoder) runs in llama.cpp as a language-model GGUF plus an audio projector
("mmproj") GGUF, through llama.cpp's multimodal library (mtmd). llama-cpp-python's chat
handlers accept images only, so this module drives the low-level ``llama_cpp.mtmd_cpp``
bindings itself, the way llama.cpp's ``mtmd-cli`` does: the chat prompt holds mtmd's media
marker, ``mtmd_tokenize`` replaces it with the audio (decoded here, mono, at the projector's
sample rate) as an audio chunk, ``mtmd_helper_eval_chunks`` encodes and decodes everything, and
tokens are sampled until end-of-generation or ``max_tokens``.

The old pipeline's llama-cpp-python variant never passed the audio, so its captions came from
the prompt alone. Here a prompt without audio cannot be built: :meth:`Captioner.generate` takes
the audio as a required array, always puts the marker in the prompt, and refuses to decode
unless the tokenized prompt holds an audio chunk.

One :class:`Captioner` loads the model once (``Captioner.load_count`` counts loads) and then
captions any number of crops; each call clears the model's memory first, so calls are
independent and, with greedy decoding (temperature 0, the default), repeatable.

Finding the model files needs no model and imports nothing from llama.cpp, so the workflow
can use it at parse time; the prompts, the captioned subset of crops and the cleaning of
generated text are in mirflow.caption_prompts, which needs no model either.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.caption_prompts import clean_caption, fill_prompt
from mirflow.errors import ModelNotFoundError, TrackError

log = logging.getLogger(__name__)

#: Folder under models/ that holds the GGUF files.
MODEL_FOLDER = "music-flamingo"
#: Prefix of the caption fields in ``.INFO`` (``music_flamingo_{key}``, the old pipeline's names).
CAPTION_FIELD_PREFIX = "music_flamingo_"

DEFAULT_MAX_TOKENS = 200
DEFAULT_N_CTX = 4096  # one <=30 s window is 750 audio positions; long audio needs more

# No checksum is published for the Music Flamingo files: `make models` names
# them and fetches them only with --allow-unverified (models/manifest.yaml).
_FETCH = (
    "run `make models` (it names the Music Flamingo files, which it fetches only with "
    "--allow-unverified: no checksum is published for them)"
)
# A quantisation name inside a file name: IQ3_M, Q6_K, Q4_K_M, Q8_0, BF16, F16...
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d_(?:K_[SML]|K|XXS|XS|NL|S|M|\d)|TQ\d_\d|BF16|F16|F32)"
    r"(?![A-Za-z0-9]|_[A-Za-z0-9])",
    re.IGNORECASE,
)


class CaptionError(TrackError):
    """This crop could not be captioned (e.g. its audio is empty or too long for the context)."""


# ----------------------------------------------------------------- models ---


def find_model(models_dir: str | os.PathLike, choice: str | None = None) -> tuple[Path, Path]:
    """(language-model GGUF, audio-projector GGUF) for ``choice``.

    ``models_dir`` is models/ (the files are then looked for in its ``music-flamingo``
    folder) or that folder itself. ``choice``:

    - ``None`` or ``"auto"``: the largest ``.gguf`` that is neither an mmproj nor an imatrix
      file (highest precision present);
    - a quantisation name (``"Q8_0"``, ``"q6_k"``, ``"IQ3_M"``): the file whose name holds it
      as a whole word, case-insensitively (``Q6_K`` does not match ``Q6_K_M``); of several, the
      largest;
    - a path to a ``.gguf`` (absolute, relative to the working directory, or to the folder).

    The projector is the largest ``*mmproj*.gguf`` beside the chosen model. A missing folder or
    file raises :class:`ModelNotFoundError` naming it and the download command.
    """
    base = Path(models_dir)
    folder = base / MODEL_FOLDER if (base / MODEL_FOLDER).is_dir() else base
    if choice is not None and _looks_like_path(choice):
        model = _explicit_model(Path(choice), folder)
        return model, _find_mmproj(model.parent)
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"Music Flamingo model folder {base / MODEL_FOLDER} does not exist: {_FETCH} "
            "(it fetches the language-model GGUF and its audio projector)"
        )
    candidates = sorted(p for p in folder.glob("*.gguf") if p.is_file() and _is_language_model(p))
    if not candidates:
        raise ModelNotFoundError(
            f"no Music Flamingo language-model GGUF in {folder} (expected e.g. "
            f"music-flamingo-hf.Q8_0.gguf beside music-flamingo-hf.mmproj-f16.gguf): {_FETCH}"
        )
    if choice is None or choice.strip().lower() == "auto":
        model = _largest(candidates)
    else:
        pattern = re.compile(
            rf"(?<![A-Za-z0-9]){re.escape(choice.strip())}(?![A-Za-z0-9]|_[A-Za-z0-9])",
            re.IGNORECASE,
        )
        matches = [p for p in candidates if pattern.search(p.name)]
        if not matches:
            raise ModelNotFoundError(
                f"no Music Flamingo GGUF of quantisation {choice!r} in {folder} (present: "
                f"{', '.join(p.name for p in candidates)}): {_FETCH} for the configured "
                "quantisation, or set the model to one of those present or to 'auto'"
            )
        model = _largest(matches)
    return model, _find_mmproj(folder)


def model_available(models_dir: str | os.PathLike, choice: str | None = None) -> bool:
    """Whether :func:`find_model` finds a model and its projector (``enabled: auto``)."""
    try:
        find_model(models_dir, choice)
    except ModelNotFoundError:
        return False
    return True


def _looks_like_path(choice: str) -> bool:
    return choice.lower().endswith(".gguf") or "/" in choice or os.sep in choice


def _explicit_model(path: Path, folder: Path) -> Path:
    for candidate in [path] if path.is_absolute() else [path, folder / path]:
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(f"Music Flamingo model file {path} does not exist: {_FETCH}")


def _is_language_model(path: Path) -> bool:
    name = path.name.lower()
    return "mmproj" not in name and "imatrix" not in name


def _largest(paths: Sequence[Path]) -> Path:
    return max(paths, key=lambda p: (p.stat().st_size, p.name))


def _find_mmproj(folder: Path) -> Path:
    found = sorted(p for p in folder.glob("*.gguf") if p.is_file() and "mmproj" in p.name.lower())
    if not found:
        raise ModelNotFoundError(
            f"no Music Flamingo audio projector (*mmproj*.gguf, e.g. "
            f"music-flamingo-hf.mmproj-f16.gguf) in {folder}: {_FETCH}"
        )
    return _largest(found)


def quantisation_from_name(name: str) -> str | None:
    """The quantisation written in a GGUF file name (last one wins), upper-case, else None."""
    found = _QUANT_RE.findall(name)
    return found[-1].upper() if found else None


# ------------------------------------------------------------- the model ---


@dataclass(frozen=True)
class Generation:
    """One generation: the raw text and what it cost."""

    text: str  # raw generated text (not cleaned)
    n_prompt: int  # positions of the evaluated prompt, audio included
    n_audio: int  # of which audio embeddings
    n_generated: int  # sampled tokens (end-of-generation excluded)
    tokenize_seconds: float  # chat text + audio -> chunks, the mel spectrogram included
    prompt_seconds: float  # audio encoding + prompt decoding
    generate_seconds: float  # sampling loop


class Captioner:
    """Music Flamingo resident in llama.cpp: one load, any number of captions."""

    #: Models loaded in this process (the workflow test checks one load per batch job).
    load_count = 0

    def __init__(self) -> None:
        raise TypeError("use Captioner.load(gguf_path, mmproj_path, ...)")

    @classmethod
    def load(
        cls,
        gguf_path: str | os.PathLike,
        mmproj_path: str | os.PathLike,
        n_ctx: int = DEFAULT_N_CTX,
        n_gpu_layers: int = -1,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        system_prompt: str | None = None,
    ) -> Captioner:
        """Load the language model and the audio projector once.

        ``n_gpu_layers``: layers on the GPU (-1 all; 0 CPU only, which also keeps the audio
        encoder on the CPU; ignored by a CPU-only build). ``seed`` seeds sampling when the
        temperature is above 0. ``system_prompt``: an optional system message. llama.cpp's own
        logging goes to this module's logger (errors only unless ``verbose``).
        """
        import llama_cpp  # noqa: PLC0415 - heavy; only a loaded model needs it
        from llama_cpp import mtmd_cpp  # noqa: PLC0415

        gguf_path, mmproj_path = Path(gguf_path), Path(mmproj_path)
        for path in (gguf_path, mmproj_path):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"Music Flamingo model file {path} does not exist: {_FETCH}"
                )
        _route_llama_logs(llama_cpp, mtmd_cpp, verbose)
        llama_cpp.llama_backend_init()

        self = object.__new__(cls)
        self._lib, self._mtmd = llama_cpp, mtmd_cpp
        self._model = self._ctx = self._mctx = None
        self.gguf_path, self.mmproj_path = gguf_path, mmproj_path
        self.seed = int(seed)
        self.system_prompt = system_prompt
        self.n_threads = n_threads or _cpu_count()
        try:
            self._open(n_ctx, n_gpu_layers)
        except BaseException:
            self.close()
            raise
        cls.load_count += 1
        return self

    def _open(self, n_ctx: int, n_gpu_layers: int) -> None:
        lib, mtmd = self._lib, self._mtmd
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        self._model = lib.llama_model_load_from_file(os.fsencode(self.gguf_path), model_params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {self.gguf_path} (see the log above)")

        ctx_params = lib.llama_context_default_params()
        ctx_params.n_ctx = n_ctx
        ctx_params.n_batch = min(n_ctx, 2048)
        ctx_params.n_threads = ctx_params.n_threads_batch = self.n_threads
        self._ctx = lib.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            raise RuntimeError(
                f"llama.cpp could not create a context of {n_ctx} for {self.gguf_path}"
            )
        self.n_ctx = lib.llama_n_ctx(self._ctx)
        self.n_batch = ctx_params.n_batch

        mtmd_params = mtmd.mtmd_context_params_default()
        mtmd_params.use_gpu = n_gpu_layers != 0
        mtmd_params.n_threads = self.n_threads
        mtmd_params.print_timings = False
        self._mctx = mtmd.mtmd_init_from_file(
            os.fsencode(self.mmproj_path), self._model, mtmd_params
        )
        if not self._mctx:
            raise RuntimeError(
                f"mtmd could not load the audio projector {self.mmproj_path} for {self.gguf_path} "
                "(a projector of another model, or a width that does not match; see the log)"
            )
        if not mtmd.mtmd_support_audio(self._mctx):
            raise RuntimeError(
                f"{self.mmproj_path} is not an audio projector (mtmd_support_audio is false): "
                "Music Flamingo needs its audio mmproj, e.g. music-flamingo-hf.mmproj-f16.gguf"
            )
        self.sample_rate = int(mtmd.mtmd_get_audio_sample_rate(self._mctx))
        if self.sample_rate <= 0:
            raise RuntimeError(f"{self.mmproj_path}: the projector reports no audio sample rate")
        self.marker = mtmd.mtmd_default_marker().decode()
        self._vocab = lib.llama_model_get_vocab(self._model)
        self._template = lib.llama_model_chat_template(self._model, None) or b"chatml"

    # -------------------------------------------------------------- generate ---

    def generate(
        self,
        audio: np.ndarray,
        prompt: str,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Generation:
        """Hear ``audio`` (mono float32 at :attr:`sample_rate`) and answer ``prompt``.

        Greedy when ``temperature`` is 0; otherwise top-k 40, top-p 0.95 and temperature
        sampling seeded with ``seed`` (default: the load's seed), so a call is repeatable.
        """
        lib, mtmd = self._lib, self._mtmd
        if self._mctx is None:
            raise RuntimeError("this Captioner is closed")
        samples = _mono_samples(audio)
        if self.marker in prompt:
            raise ValueError(f"the prompt must not contain the media marker {self.marker!r}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")

        lib.llama_memory_clear(lib.llama_get_memory(self._ctx), True)
        text = self._chat_text(prompt)
        chunks = mtmd.mtmd_input_chunks_init()
        bitmap = mtmd.mtmd_bitmap_init_from_audio(
            samples.size, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        sampler = None
        try:
            if not chunks or not bitmap:
                raise MemoryError("mtmd could not allocate the input chunks or the audio bitmap")
            text_in = mtmd.mtmd_input_text()
            text_in.text, text_in.text_len = text, len(text)
            text_in.add_special, text_in.parse_special = True, True
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            start = time.perf_counter()
            status = mtmd.mtmd_tokenize(self._mctx, chunks, ctypes.byref(text_in), bitmaps, 1)
            if status != 0:
                raise CaptionError(f"mtmd could not tokenize the prompt with its audio ({status})")
            tokenize_seconds = time.perf_counter() - start
            n_audio = self._audio_tokens(chunks)
            n_prompt = mtmd.mtmd_helper_get_n_pos(chunks)
            if n_prompt + max_tokens > self.n_ctx:
                raise CaptionError(
                    f"{samples.size / self.sample_rate:.1f} s of audio and the prompt take "
                    f"{n_prompt} positions; with max_tokens {max_tokens} that exceeds the "
                    f"context of {self.n_ctx} (raise n_ctx, or caption shorter audio)"
                )
            start = time.perf_counter()
            n_past = lib.llama_pos(0)
            status = mtmd.mtmd_helper_eval_chunks(
                self._mctx, self._ctx, chunks, 0, 0, self.n_batch, True, ctypes.byref(n_past)
            )
            if status != 0:
                raise RuntimeError(f"mtmd could not evaluate the prompt and audio ({status})")
            prompt_seconds = time.perf_counter() - start

            sampler = self._sampler(temperature, self.seed if seed is None else seed)
            start = time.perf_counter()
            pieces, n_generated = self._sample(sampler, max_tokens)
            generate_seconds = time.perf_counter() - start
        finally:
            if sampler is not None:
                lib.llama_sampler_free(sampler)
            if bitmap:
                mtmd.mtmd_bitmap_free(bitmap)
            if chunks:
                mtmd.mtmd_input_chunks_free(chunks)
        return Generation(
            text=b"".join(pieces).decode("utf-8", errors="replace"),
            n_prompt=int(n_prompt),
            n_audio=n_audio,
            n_generated=n_generated,
            tokenize_seconds=tokenize_seconds,
            prompt_seconds=prompt_seconds,
            generate_seconds=generate_seconds,
        )

    def caption(
        self, audio: np.ndarray, prompt: str, max_tokens: int, temperature: float = 0.0
    ) -> str:
        """The cleaned description of ``audio`` (mono float32 at :attr:`sample_rate`)."""
        return clean_caption(self.generate(audio, prompt, max_tokens, temperature).text, prompt)

    def caption_file(
        self,
        path: str | os.PathLike,
        prompts: Mapping[str, str],
        max_tokens: Mapping[str, int] | int = DEFAULT_MAX_TOKENS,
        genres: Sequence[str] | Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        temperature: float = 0.0,
    ) -> dict[str, str]:
        """``{"music_flamingo_{key}": caption}`` for every prompt, the file decoded once.

        Each prompt template is filled with :func:`fill_prompt`. ``max_tokens`` is one number
        or one per key (a key it lacks gets the default). A file that cannot be decoded raises
        mirflow.errors.AudioDecodeError.
        """
        from mirflow.audio import load_audio  # noqa: PLC0415 - soundfile/soxr only when used

        audio, _ = load_audio(path, sr=self.sample_rate, mono=True)
        captions = {}
        for key, template in prompts.items():
            limit = max_tokens if isinstance(max_tokens, int) else max_tokens.get(key)
            prompt = fill_prompt(template, genres, metadata)
            try:
                text = self.caption(audio[0], prompt, limit or DEFAULT_MAX_TOKENS, temperature)
            except CaptionError as error:
                raise CaptionError(f"{path}: {error}") from error
            captions[f"{CAPTION_FIELD_PREFIX}{key}"] = text
        return captions

    # --------------------------------------------------------------- details ---

    def _chat_text(self, prompt: str) -> bytes:
        """The chat-formatted prompt with the media marker first in the user turn (as mtmd-cli)."""
        lib = self._lib
        roles, contents = [], []
        if self.system_prompt:
            roles.append(b"system")
            contents.append(self.system_prompt.encode())
        roles.append(b"user")
        contents.append((self.marker + prompt).encode())
        messages = (lib.llama_chat_message * len(roles))()
        for message, role, content in zip(messages, roles, contents, strict=True):
            message.role, message.content = role, content
        for template in (self._template, b"chatml"):
            size = 256 + sum(len(c) for c in contents) * 2
            for _ in range(2):
                buffer = ctypes.create_string_buffer(size)
                n = lib.llama_chat_apply_template(
                    template, messages, len(roles), True, buffer, size
                )
                if n <= size:
                    break
                size = n
            if n > 0:
                text = buffer.raw[:n]
                if self.marker.encode() not in text:  # cannot happen with a sane template
                    raise RuntimeError("the chat template dropped the media marker")
                return text
        raise RuntimeError(f"llama.cpp cannot apply the chat template of {self.gguf_path}")

    def _audio_tokens(self, chunks: Any) -> int:
        """Audio embeddings among the tokenized chunks; none is refused (the old bug)."""
        mtmd = self._mtmd
        n_audio = 0
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_AUDIO:
                n_audio += mtmd.mtmd_input_chunk_get_n_tokens(chunk)
        if n_audio == 0:
            raise RuntimeError("the tokenized prompt holds no audio chunk: refusing to caption")
        return n_audio

    def _sampler(self, temperature: float, seed: int) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(40))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(0.95, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _sample(self, sampler: Any, max_tokens: int) -> tuple[list[bytes], int]:
        lib = self._lib
        pieces: list[bytes] = []
        piece = ctypes.create_string_buffer(256)
        token_array = (lib.llama_token * 1)()
        for n_generated in range(max_tokens):
            token = lib.llama_sampler_sample(sampler, self._ctx, -1)
            if lib.llama_vocab_is_eog(self._vocab, token):
                return pieces, n_generated
            n = lib.llama_token_to_piece(self._vocab, token, piece, len(piece), 0, False)
            pieces.append(piece.raw[: max(n, 0)])
            if n_generated + 1 == max_tokens:
                break  # no need to decode a token nothing will follow
            token_array[0] = token
            status = lib.llama_decode(self._ctx, lib.llama_batch_get_one(token_array, 1))
            if status != 0:
                raise RuntimeError(f"llama_decode failed ({status}) after {n_generated + 1} tokens")
        return pieces, max_tokens

    # ------------------------------------------------------------ provenance ---

    def model_fields(self) -> dict[str, str | None]:
        """``.INFO`` fields naming the model: file, sha256 prefix, quantisation, projector."""
        from mirflow.provenance import model_digest  # noqa: PLC0415

        return {
            "caption_model": self.gguf_path.name,
            # Hashed once per process (GBs for real models); the provenance block reuses it.
            "caption_model_sha256": model_digest(self.gguf_path),
            "caption_model_quantisation": self.quantisation,
            "caption_mmproj": self.mmproj_path.name,
        }

    @property
    def quantisation(self) -> str | None:
        """From the file name, else from the GGUF's ``general.file_type``."""
        named = quantisation_from_name(self.gguf_path.name)
        if named or self._model is None:
            return named
        ftype = self._lib.llama_model_ftype(self._model) & ~1024  # drop LLAMA_FTYPE_GUESSED
        for name, value in vars(self._lib).items():
            if name.startswith("LLAMA_FTYPE_") and value == ftype and name != "LLAMA_FTYPE_GUESSED":
                return (
                    name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
                )
        return None

    # --------------------------------------------------------------- freeing ---

    def close(self) -> None:
        """Free the projector, the context and the model (idempotent)."""
        lib, mtmd = getattr(self, "_lib", None), getattr(self, "_mtmd", None)
        if getattr(self, "_mctx", None):
            mtmd.mtmd_free(self._mctx)
        if getattr(self, "_ctx", None):
            lib.llama_free(self._ctx)
        if getattr(self, "_model", None):
            lib.llama_model_free(self._model)
        self._mctx = self._ctx = self._model = None

    def __enter__(self) -> Captioner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown may have freed the bindings
            pass


def _mono_samples(audio: np.ndarray) -> np.ndarray:
    """Contiguous float32 samples; ``(channels, samples)`` is averaged to mono."""
    from mirflow.audio import to_mono  # noqa: PLC0415

    samples = to_mono(np.asarray(audio, dtype=np.float32))
    if samples.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (channels, samples), not {samples.shape}")
    if samples.size == 0:
        raise CaptionError("no audio samples to caption")
    if not np.isfinite(samples).all():
        raise CaptionError("the audio holds NaN or infinite samples")
    return np.ascontiguousarray(samples)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this job may use (SLURM, taskset)
    except AttributeError:
        return os.cpu_count() or 1


# llama.cpp calls these from C; keep them alive for the life of the process.
_LOG_CALLBACKS: list[Any] = []
_LOG_VERBOSE = [False]


def _route_llama_logs(llama_cpp: Any, mtmd_cpp: Any, verbose: bool) -> None:
    """Send llama.cpp's and mtmd's logs to this module's logger, line by line.

    Without ``verbose`` only errors are kept (the loaders print hundreds of lines per load).
    """
    _LOG_VERBOSE[0] = verbose
    if _LOG_CALLBACKS:
        return
    # ggml.h: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous message
    levels = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
    state = {"level": logging.INFO, "line": ""}

    def on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level != 5:
            state["level"] = levels.get(level, logging.INFO)
        state["line"] += text.decode("utf-8", errors="replace")
        if not state["line"].endswith("\n"):
            return
        line, state["line"] = state["line"].rstrip(), ""
        if line and (_LOG_VERBOSE[0] or state["level"] >= logging.ERROR):
            log.log(state["level"], "llama.cpp: %s", line)

    callback = llama_cpp.llama_log_callback(on_log)
    _LOG_CALLBACKS.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_log_set(callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(callback, ctypes.c_void_p(0))
