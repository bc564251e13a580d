"""Audio decoding, resampling and writing: the edges where bytes become arrays.

Arrays are float32, shaped ``(channels, samples)``. libsndfile (soundfile)
decodes WAV, FLAC, AIFF, Ogg Vorbis/Opus and MP3; anything else (m4a/AAC,
odd containers) goes through ffmpeg, called with an argument list, never a
shell string, so no file name can become a command.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from mirflow.atomic import atomic_path
from mirflow.errors import AudioDecodeError

AUDIO_EXTENSIONS = frozenset({".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"})


def load_audio(
    path: str | os.PathLike, sr: int | None = None, mono: bool = False
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 ``(channels, samples)``; resample to ``sr`` if given."""
    path = Path(path)
    try:
        audio, native_sr = _load_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as sf_error:
        if shutil.which("ffmpeg") is None:
            raise AudioDecodeError(f"{path}: cannot decode ({sf_error})") from sf_error
        audio, native_sr = _load_ffmpeg(path)
    if audio.shape[1] == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sr is not None and sr != native_sr:
        audio = resample(audio, native_sr, sr)
        native_sr = sr
    return audio, native_sr


#: Samples per block of :func:`stream_audio` (at the file's rate): 6 s at 44.1 kHz.
BLOCK_FRAMES = 1 << 18


def stream_audio(
    path: str | os.PathLike, sr: int | None = None, mono: bool = False
) -> Iterator[np.ndarray]:
    """The samples of :func:`load_audio`, block after block, never the whole file.

    Consecutive float32 ``(channels, n)`` blocks that join into exactly what
    ``load_audio(path, sr, mono)`` returns (soxr's streaming resampler gives
    the same samples as its one-shot call), so a long track costs one block of
    memory. Decoding is by libsndfile, or ffmpeg's pipe for what it cannot read.
    """
    path = Path(path)
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as sf_error:
        if shutil.which("ffmpeg") is None:
            raise AudioDecodeError(f"{path}: cannot decode ({sf_error})") from sf_error
        facts = probe_ffmpeg(path)
        native_sr, blocks = facts["sample_rate"], ffmpeg_blocks(path, facts["channels"])
    else:
        native_sr, blocks = int(handle.samplerate), _soundfile_blocks(handle, path)
    resample_to = sr if sr is not None and sr != native_sr else None
    resampler, channels, empty = None, 1, True
    for block in blocks:
        if mono and block.shape[0] > 1:
            block = block.mean(axis=0, keepdims=True)
        if resample_to is not None:
            if resampler is None:
                channels = block.shape[0]
                resampler = soxr.ResampleStream(
                    native_sr, resample_to, channels, dtype="float32", quality="HQ"
                )
            block = np.ascontiguousarray(resampler.resample_chunk(block.T).T)
        if block.shape[1]:
            empty = False
            yield block
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        if len(tail):
            empty = False
            yield np.ascontiguousarray(tail.T)
    if empty:
        raise AudioDecodeError(f"{path}: no audio samples")


class Window(NamedTuple):
    """One window of :func:`sample_windows`: ``audio`` (channels, n) starts at
    sample ``start`` of the signal; the window's own samples are
    ``own_start:own_stop`` of the signal (the rest is context); ``last``: it
    reaches the signal's end."""

    audio: np.ndarray
    start: int
    own_start: int
    own_stop: int
    last: bool


def sample_windows(
    blocks: Iterable[np.ndarray], window: int, context: int, unit: int = 1
) -> Iterator[Window]:
    """Consecutive ``(channels, n)`` blocks as windows of ``window`` own
    samples with up to ``context`` samples on either side; only one window
    and its context are held. Window and context starts fall on multiples
    of ``unit`` (``window`` and ``context`` must be multiples of it), so
    frames every ``unit`` samples (or every divisor of it) of a window's
    audio are frames of the whole signal."""
    if window < unit or window % unit or context % unit or context < 0:
        raise ValueError(f"windows of {window} samples, {context} of context, unit {unit}")
    source = iter(blocks)
    buffer: np.ndarray | None = None
    buffer_start, first, ended = 0, 0, False
    while True:
        want = first + window + context
        parts = [] if buffer is None else [buffer]
        have = buffer_start + (0 if buffer is None else buffer.shape[1])
        while not ended and have < want:
            block = next(source, None)
            if block is None:
                ended = True
            else:
                block = np.asarray(block, dtype=np.float32)
                parts.append(block[np.newaxis] if block.ndim == 1 else block)
                have += parts[-1].shape[1]
        if not parts:
            return
        buffer = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        # Copied into the buffer: held while the window is out, the blocks and
        # the old buffer would double what a window costs.
        parts = block = None
        total = buffer_start + buffer.shape[1]
        last = ended and first + window >= total
        own_stop = total if last else first + window
        if own_stop <= first:
            return
        start = max(0, first - context)
        stop = min(total, own_stop + context)
        yield Window(
            buffer[:, start - buffer_start : stop - buffer_start], start, first, own_stop, last
        )
        if last:
            return
        first = own_stop
        drop = max(0, first - context) - buffer_start
        buffer, buffer_start = buffer[:, drop:], buffer_start + drop


def _soundfile_blocks(handle: sf.SoundFile, path: Path) -> Iterator[np.ndarray]:
    # Read until the decoder stops (an MP3 header's frame count is an estimate).
    # A file that breaks part-way is a bad track, named (blocks have gone out,
    # so there is no falling back to ffmpeg as load_audio does).
    with handle:
        while True:
            try:
                block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as error:
                raise AudioDecodeError(f"{path}: cannot decode ({error})") from error
            if not len(block):
                return
            yield np.ascontiguousarray(block.T)


def ffmpeg_blocks(path: Path, channels: int) -> Iterator[np.ndarray]:
    """ffmpeg's decoding of ``path`` (``channels`` from :func:`probe_ffmpeg`) as
    float32 ``(channels, n)`` blocks; AudioDecodeError, naming the file, when it fails."""
    frame_bytes = 4 * channels
    with subprocess.Popen(
        ffmpeg_decode_command(path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        pending = b""
        while chunk := proc.stdout.read(BLOCK_FRAMES * frame_bytes):
            pending += chunk
            usable = len(pending) - len(pending) % frame_bytes
            if usable:
                data = np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, channels)
                pending = pending[usable:]
                yield np.ascontiguousarray(data.T, dtype=np.float32)
        stderr = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise AudioDecodeError(f"{path}: ffmpeg cannot decode: {_last_line(stderr)}")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of ``(channels, samples)``."""
    if sr_in == sr_out:
        return audio
    out = soxr.resample(audio.T, sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """``(channels, samples)`` -> ``(samples,)`` by averaging channels."""
    return audio.mean(axis=0) if audio.ndim == 2 else audio


_C = float(np.sqrt(0.5))  # -3 dB

#: Stereo down-mix of the standard layout of each channel count, in WAV/FLAC
#: channel order, as rows (left, right): ITU-R BS.775 coefficients, the LFE
#: left out (as ffmpeg's default down-mix does).
_STEREO_DOWNMIX: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    3: ((1, 0, _C), (0, 1, _C)),  # FL FR FC
    4: ((1, 0, _C, 0), (0, 1, 0, _C)),  # FL FR BL BR
    5: ((1, 0, _C, _C, 0), (0, 1, _C, 0, _C)),  # FL FR FC BL BR
    6: ((1, 0, _C, 0, _C, 0), (0, 1, _C, 0, 0, _C)),  # FL FR FC LFE BL BR (5.1)
    7: ((1, 0, _C, 0, 0.5, _C, 0), (0, 1, _C, 0, 0.5, 0, _C)),  # FL FR FC LFE BC SL SR
    8: ((1, 0, _C, 0, _C, 0, _C, 0), (0, 1, _C, 0, 0, _C, 0, _C)),  # ... BL BR SL SR (7.1)
}


def stereo_downmix(channels: int) -> np.ndarray:
    """``(2, channels)`` matrix taking ``channels`` (> 2) to stereo.

    Rows are scaled so that no output can pass full scale (as ffmpeg
    normalises its matrices). A count with no standard layout (more than 8)
    is averaged into both sides: nothing is dropped.
    """
    rows = np.array(_STEREO_DOWNMIX.get(channels, [[1.0] * channels] * 2), dtype=np.float64)
    return rows / np.abs(rows).sum(axis=1).max()


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """``(channels, samples)`` -> ``(2, samples)``: mono duplicated, stereo as
    it is, more channels down-mixed by :func:`stereo_downmix`."""
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] == 2:
        return audio
    return (stereo_downmix(audio.shape[0]) @ audio).astype(audio.dtype)


def _load_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr)


def probe_ffmpeg(path: Path) -> dict:
    """Stream facts from ffprobe: codec, sample rate, channels, duration."""
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
        "stream=codec_name,sample_rate,channels,duration:format=duration,format_name",
        "-of", "json", "--", str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AudioDecodeError(f"{path}: ffprobe failed: {_last_line(result.stderr)}")
    info = json.loads(result.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise AudioDecodeError(f"{path}: no audio stream")
    stream = streams[0]
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    return {
        "codec": stream.get("codec_name"),
        "sample_rate": int(stream["sample_rate"]),
        "channels": int(stream["channels"]),
        "duration_s": float(duration) if duration else None,
    }


def ffmpeg_decode_command(path: Path) -> list[str]:
    """ffmpeg arguments that decode ``path`` to interleaved float32 on stdout,
    at the stream's own rate and channel count.

    An argument list, never a shell string; "-i file:PATH" keeps a name like
    "-x.m4a" or "a:b.m4a" from being read as an option or a protocol.
    """
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}",
        "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "-",
    ]  # fmt: skip


def _load_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    facts = probe_ffmpeg(path)
    sr, channels = facts["sample_rate"], facts["channels"]
    cmd = ffmpeg_decode_command(path)
    result = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AudioDecodeError(
            f"{path}: ffmpeg cannot decode: {_last_line(result.stderr.decode(errors='replace'))}"
        )
    data = np.frombuffer(result.stdout, dtype="<f4")
    usable = len(data) - len(data) % channels
    audio = data[:usable].reshape(-1, channels).T
    return np.ascontiguousarray(audio, dtype=np.float32), sr


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _output_format(dest: Path, subtype: str | None) -> tuple[str, str]:
    fmt = {".flac": "FLAC", ".wav": "WAV", ".ogg": "OGG", ".mp3": "MP3"}.get(dest.suffix.lower())
    if fmt is None:
        raise ValueError(f"{dest}: unsupported output format {dest.suffix!r}")
    if subtype is None:
        subtype = {"FLAC": "PCM_24", "WAV": "FLOAT", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    return fmt, subtype


def write_audio(
    dest: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str | None = None
) -> None:
    """Write ``(channels, samples)`` atomically; the format follows dest's suffix."""
    dest = Path(dest)
    fmt, subtype = _output_format(dest, subtype)
    # Encoded in memory, then written by Python: libsndfile reports a failed
    # write (a full disk) as "System error.", Python as the OSError it is
    # ("[Errno 28] No space left on device"), which the user can act on.
    encoded = io.BytesIO()
    sf.write(encoded, np.ascontiguousarray(audio.T), sr, format=fmt, subtype=subtype)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(encoded.getbuffer())


@contextmanager
def audio_writer(
    dest: str | os.PathLike, sr: int, channels: int, subtype: str | None = None
) -> Iterator[Callable[[np.ndarray], None]]:
    """:func:`write_audio` block by block: yields ``write((channels, n) block)``;
    ``dest`` appears, whole, only when the block closes without an error."""
    dest = Path(dest)
    fmt, subtype = _output_format(dest, subtype)
    with atomic_path(dest) as tmp:
        try:
            with sf.SoundFile(str(tmp), "w", sr, channels, subtype, format=fmt) as handle:
                yield lambda block: handle.write(np.ascontiguousarray(np.asarray(block).T))
        except sf.LibsndfileError as error:
            # libsndfile says "System error." for a full disk: say what is left.
            free_mb = shutil.disk_usage(dest.parent).free // 2**20
            raise OSError(f"{dest}: cannot write ({error}; {free_mb} MB free there)") from error


def audio_layout(path: str | os.PathLike) -> tuple[int, int]:
    """``(sample rate, channels)`` of a file, from its header (libsndfile or ffprobe)."""
    path = Path(path)
    try:
        info = sf.info(str(path))
        return int(info.samplerate), int(info.channels)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as sf_error:
        if shutil.which("ffmpeg") is None:
            raise AudioDecodeError(f"{path}: cannot decode ({sf_error})") from sf_error
        facts = probe_ffmpeg(path)
        return int(facts["sample_rate"]), int(facts["channels"])


def aligned_blocks(
    streams: list[Iterable[np.ndarray]], size: int = BLOCK_FRAMES
) -> Iterator[list[np.ndarray]]:
    """Blocks of several signals side by side: one ``(channels, n)`` block of each
    at a time, all ``n`` long (``size``, or less at the end); a signal that ends
    first is padded with zeros until the longest ends."""
    sources = [iter(stream) for stream in streams]
    pending: list[list[np.ndarray]] = [[] for _ in sources]
    held = [0] * len(sources)
    ended = [False] * len(sources)
    channels = [1] * len(sources)
    while True:
        for i, source in enumerate(sources):
            while not ended[i] and held[i] < size:
                block = next(source, None)
                if block is None:
                    ended[i] = True
                else:
                    channels[i] = block.shape[0]
                    pending[i].append(block)
                    held[i] += block.shape[1]
        n = min(size, max(held))
        if n == 0:
            return
        out = []
        for i in range(len(sources)):
            joined = (
                np.concatenate(pending[i], axis=1)
                if pending[i]
                else np.zeros((channels[i], 0), np.float32)
            )
            part, rest = joined[:, :n], joined[:, n:]
            if part.shape[1] < n:
                part = np.pad(part, ((0, 0), (0, n - part.shape[1])))
            out.append(part)
            pending[i], held[i] = ([rest] if rest.shape[1] else []), rest.shape[1]
        yield out
