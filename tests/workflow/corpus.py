"""A library of awkward inputs, built at test time, each with the outcome a user should get.

Every case is one or more files (or links) in a library folder and an
expected outcome:

- ``ok``: the track is in the dataset with crops;
- ``ok, no crops``: the track is in the dataset, ``status: ok``, no crops, and
  its ``crop_alignment`` says why (``cause`` is a substring of it);
- ``failed``: ``status: failed``, and the one-line cause (in the ``.INFO``,
  the summary and the manifest) contains ``cause``;
- ``not a track``: discovery leaves the entry out (a dangling link, the
  second way into a folder through a symlink loop).

Audio is synthetic and short (a few seconds of clicks on a 120 bpm grid with a
chord under it), so the whole corpus runs through the workflow in a couple of
minutes on 2 cores. Nothing here is committed: ``build_corpus`` writes it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lameenc
import mutagen.flac
import numpy as np
import soundfile as sf

#: Seconds of every ordinary good track: two 65536-sample crops at 44.1 kHz.
SECONDS = 4.0
BPM = 120.0

#: Workflow settings for test runs of the corpus: short crops, no model passes
#: or exports, and only the feature groups whose edge cases the corpus reaches
#: (loudness: silence, 6 channels; rhythm statistics). Keeps a run of ~30
#: tracks under two minutes on 2 cores.
FAST_CONFIG: dict[str, Any] = {
    "crops": {"length_samples": 65536},
    "transcription": {"enabled": False},
    "export": {"formats": []},
    "stages": {"crop_features": False},
    "features": {"spectral": False, "multiband_rms": False, "chroma": False, "key": False},
}

OK = "ok"
NO_CROPS = "ok, no crops"
FAILED = "failed"
NOT_A_TRACK = "not a track"


@dataclass(frozen=True)
class Case:
    name: str  # the README table's label
    files: tuple[str, ...]  # library paths (relative) of the case's tracks
    outcome: str  # OK | NO_CROPS | FAILED | NOT_A_TRACK
    make: Callable[[Path], None]  # writes the case's files into the library root
    cause: str = ""  # FAILED: in the error; NO_CROPS: in crop_alignment
    info: dict[str, Any] = field(default_factory=dict)  # exact track .INFO values
    #: Extra check on a track: (dataset folder of the track, its .INFO) -> None.
    check: Callable[[Path, dict], None] | None = None
    note: str = ""  # what the user gets, for the README table


def music(
    seconds: float,
    sr: int,
    channels: int = 2,
    seed: int = 0,
    noise: float = 0.002,
    chord: float = 0.08,
) -> np.ndarray:
    """``(samples, channels)`` float32: accented clicks at 120 bpm over an A minor chord."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    pad = sum(chord * np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63))
    beat = 60.0 / BPM
    phase = t % beat
    index = (t // beat).astype(int)
    accent = np.where(index % 4 == 0, 0.6, 0.3)
    click = accent * np.exp(-phase * 60.0) * np.sin(2 * np.pi * 1500.0 * t)
    hiss = np.random.default_rng(seed).normal(0.0, noise, n) if noise else 0.0
    mono = (pad + click + hiss).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def _write(path: Path, data: np.ndarray, sr: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, **kwargs)
    return path


def mp3_bytes(data: np.ndarray, sr: int = 44100, bitrate: int = 128) -> bytes:
    """MP3 of ``(samples, channels)`` float audio (lameenc: no Xing header)."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(sr)
    encoder.set_channels(data.shape[1])
    encoder.set_quality(7)
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


def flac_header_only(sr: int, channels: int) -> bytes:
    """A FLAC stream with its STREAMINFO block and no audio frames (0 samples)."""
    fields = [(4096, 16), (4096, 16), (0, 24), (0, 24), (sr, 20), (channels - 1, 3), (15, 5)]
    fields.append((0, 36))  # total samples
    bits = 0
    for value, width in fields:
        bits = (bits << width) | value
    streaminfo = bits.to_bytes(18, "big") + bytes(16)  # + the MD5 of no audio
    return b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def broken_id3(payload: bytes) -> bytes:
    """An ID3v2.3 tag whose title frame claims 2 GB (past the tag and the file)."""
    frames = b"TIT2" + (0x7FFFFFFF).to_bytes(4, "big") + b"\x00\x00" + b"\x03Title"
    frames += b"\xff\xfe\x00 junk that is no frame" * 4
    return b"ID3\x03\x00\x00" + _syncsafe(len(frames)) + frames + payload


# ---- checks on the dataset folder of one track -----------------------------


def crop_audio(folder: Path) -> list[tuple[np.ndarray, int]]:
    return [sf.read(p, always_2d=True) for p in sorted((folder / "crops").glob("*.flac"))]


def crops_are_stereo_44k(folder: Path, info: dict) -> None:
    crops = crop_audio(folder)
    assert crops, "no crops"
    for audio, sr in crops:
        assert sr == 44100 and audio.shape == (65536, 2), (audio.shape, sr)


def crops_keep_the_centre_channel(folder: Path, info: dict) -> None:
    """The 5.1 file's music is in its centre channel only: a down-mix that
    dropped the centre (keeping front left/right) would write silent crops."""
    crops_are_stereo_44k(folder, info)
    for audio, _ in crop_audio(folder):
        assert np.sqrt(np.mean(audio**2)) > 0.01, "crop is silent: the centre channel was lost"
        assert np.allclose(audio[:, 0], audio[:, 1], atol=1e-4)


def crops_clip_at_full_scale(folder: Path, info: dict) -> None:
    assert info["peak_dbfs"] > 0  # the float source goes past full scale
    for audio, _ in crop_audio(folder):
        assert np.abs(audio).max() <= 1.0


def no_crops_written(folder: Path, info: dict) -> None:
    assert not (folder / "crops").exists() or not list((folder / "crops").iterdir())
    assert info["crop_count"] == 0


# ---- the corpus --------------------------------------------------------------


def _song(seconds: float = SECONDS, sr: int = 44100, channels: int = 2, seed: int = 0):
    return music(seconds, sr, channels, seed)


def _flac_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _song(), 44100, format="FLAC")
    return buffer.getvalue()


def _writer(name: str, data_fn: Callable[[], np.ndarray], sr: int = 44100, **kwargs):
    return lambda root: _write(root / name, data_fn(), sr, **kwargs)


def _bytes(name: str, data_fn: Callable[[], bytes]):
    return lambda root: (root / name).write_bytes(data_fn())


def _surround() -> np.ndarray:
    audio = np.zeros((int(SECONDS * 44100), 6), np.float32)
    audio[:, 2] = _song(channels=1)[:, 0]  # the centre channel only
    return audio


def _latin1_tags(root: Path) -> None:
    path = _write(root / "latin-1 tags.flac", _song(), 44100)
    tags = mutagen.flac.FLAC(path)
    tags["artist"], tags["title"] = "BjXrk", "Caf\u00e9"
    tags.save()
    path.write_bytes(path.read_bytes().replace(b"BjXrk", b"Bj\xf6rk"))  # a Latin-1 o-umlaut


def _loop(root: Path) -> None:
    _write(root / "Loop" / "inside loop.flac", _song(), 44100)
    os.symlink("..", root / "Loop" / "up")  # Loop/up/Loop/up/... forever


def _collision(root: Path) -> None:
    _write(root / "Café.flac", _song(), 44100)
    _write(root / "Cafe.flac", _song(seed=2), 44100)


#: Names that break naive shells, globbing and Snakemake's wildcards.
ODD_NAMES = {
    "spaces": "name with  spaces .flac",
    "quotes": "quotes 'single' \"double\".flac",
    "$(touch pwned)": "$(touch pwned).flac",
    "backticks": "`touch pwned` ticks.flac",
    "braces {}": "{braces} {track} {{x}}.flac",
    "a newline": "new\nline.flac",
    "emoji and other unicode": "emoji 🎸 ünïcødé 日本語 Ωμέγα.flac",
    "200 characters": ("A very long title, part " * 10)[:195] + ".flac",
}


def corpus_cases(very_long: bool = True) -> list[Case]:
    """Every case, before anything is written (tests are parametrised by them)."""
    song = _song
    cases = [
        # -- broken, or not audio at all
        Case(
            "truncated FLAC (second half cut off)",
            ("truncated.flac",),
            FAILED,
            _bytes("truncated.flac", lambda: _flac_bytes()[: len(_flac_bytes()) // 2]),
            cause="truncated",
            note="failed: the FLAC header's length vs what decodes; replace with a complete copy",
        ),
        Case(
            "truncated MP3 (cut inside a frame)",
            ("truncated.mp3",),
            FAILED,
            _bytes("truncated.mp3", lambda: (m := mp3_bytes(song()))[: len(m) // 2]),
            cause="truncated",
            note="failed: the last MPEG frame is cut short; replace with a complete copy",
        ),
        Case(
            "zero-length file",
            ("empty.flac",),
            FAILED,
            _bytes("empty.flac", bytes),
            cause="empty",
            note="failed: file is empty (0 bytes)",
        ),
        Case(
            "random bytes named .flac",
            ("random bytes.flac",),
            FAILED,
            _bytes("random bytes.flac", lambda: np.random.default_rng(1).bytes(40_000)),
            cause="not decodable audio",
            note="failed: not decodable audio (decoders' reasons)",
        ),
        Case(
            "a text file named .mp3",
            ("notes.mp3",),
            FAILED,
            _bytes("notes.mp3", lambda: b"This is a text file, not an MP3.\n" * 50),
            cause="not decodable audio",
            note="failed: not decodable audio",
        ),
        Case(
            "FLAC with a header and no samples",
            ("header only.flac",),
            FAILED,
            _bytes("header only.flac", lambda: flac_header_only(44100, 2)),
            cause="no audio samples",
            note="failed: holds no audio samples",
        ),
        Case(
            "corrupt file whose name has a newline",
            ("bad\nnewline.flac",),
            FAILED,
            _bytes("bad\nnewline.flac", lambda: b"fLaC" + bytes(range(256)) * 20),
            cause="not decodable audio",
            note="failed; the cause stays one line (the newline shown as `\\n`)",
        ),
        # -- good audio in unusual shapes: handled, never failed
        Case(
            "valid FLAC with the wrong extension (.mp3)",
            ("flac named as.mp3",),
            OK,
            _bytes("flac named as.mp3", _flac_bytes),
            info={"codec": "flac/pcm_16", "container": "flac"},
            note="ok: decoded by its content, not its extension",
        ),
        Case(
            "pure digital silence",
            ("digital silence.flac",),
            NO_CROPS,
            _writer("digital silence.flac", lambda: np.zeros((int(SECONDS * 44100), 2))),
            cause="digital silence",
            info={"peak_dbfs": None, "lufs": None, "bpm": None},
            check=no_crops_written,
            note="ok, no crops: `crop_alignment` says digital silence; loudness null",
        ),
        Case(
            "1-second track (shorter than a crop)",
            ("one second.wav",),
            NO_CROPS,
            _writer("one second.wav", lambda: song(1.0)),
            cause="shorter than one crop",
            check=no_crops_written,
            note="ok, no crops: `crop_alignment` says the track is shorter than one crop",
        ),
        Case(
            "mono",
            ("mono.wav",),
            OK,
            _writer("mono.wav", lambda: song(channels=1)),
            info={"channels": 1},
            check=crops_are_stereo_44k,
            note="ok: crops duplicated to stereo",
        ),
        Case(
            "6 channels (5.1, music in the centre channel only)",
            ("surround 5.1.wav",),
            OK,
            _writer("surround 5.1.wav", _surround),
            info={"channels": 6},
            check=crops_keep_the_centre_channel,
            note="ok: crops down-mixed to stereo (ITU 5.1 to 2.0: centre kept, LFE left out)",
        ),
        Case(
            "8 kHz",
            ("8 kHz.wav",),
            OK,
            _writer("8 kHz.wav", lambda: song(sr=8000), 8000),
            info={"sample_rate": 8000},
            check=crops_are_stereo_44k,
            note="ok: resampled to 44.1 kHz",
        ),
        Case(
            "96 kHz 24-bit",
            ("96 kHz 24-bit.flac",),
            OK,
            _writer("96 kHz 24-bit.flac", lambda: song(sr=96000), 96000, subtype="PCM_24"),
            info={"sample_rate": 96000, "codec": "flac/pcm_24"},
            check=crops_are_stereo_44k,
            note="ok: resampled to 44.1 kHz",
        ),
        Case(
            "float WAV peaking at +6 dBFS",
            ("float.wav",),
            OK,
            _writer("float.wav", lambda: 2.0 * song(), subtype="FLOAT"),
            info={"codec": "wav/float"},
            check=crops_clip_at_full_scale,
            note="ok: `peak_dbfs` > 0 in the .INFO; the 24-bit crops clip at full scale",
        ),
        Case(
            "MP3 with a broken ID3 tag (a frame larger than the tag)",
            ("broken id3.mp3",),
            OK,
            _bytes("broken id3.mp3", lambda: broken_id3(mp3_bytes(song()))),
            info={"track_metadata_title": None, "codec": "mp3"},
            note="ok: audio kept, unreadable tags left null",
        ),
        Case(
            "tags with non-UTF-8 bytes (Latin-1 in a Vorbis comment)",
            ("latin-1 tags.flac",),
            OK,
            _latin1_tags,
            info={"track_metadata_artist": "Bj\ufffdrk", "track_metadata_title": "Caf\u00e9"},
            note="ok: the bad byte reads as U+FFFD, the other tags intact",
        ),
    ]
    for label, name in ODD_NAMES.items():
        cases.append(
            Case(
                f"name: {label}",
                (name,),
                OK,
                _writer(name, song),
                info={"source": name},
                note="ok: the name kept as `source`, the id cleaned; no command runs",
            )
        )
    if shutil.which("ffmpeg"):
        cases.append(
            Case(
                "name starting with '-', AAC in .m4a (decoded by ffmpeg)",
                ("-i dash start.m4a",),
                OK,
                lambda root: _m4a(root / "-i dash start.m4a"),
                info={"codec": "aac", "source": "-i dash start.m4a"},
                note="ok: ffmpeg gets the path as `file:PATH`, never as an option",
            )
        )
    cases += [
        Case(
            "two names that clean to the same id (Café, Cafe)",
            ("Café.flac", "Cafe.flac"),
            OK,
            _collision,
            note="ok: two tracks; the unclean name's id gets a hash of its path",
        ),
        # -- the library's shape
        Case(
            "symlink loop (Loop/up -> ..)",
            ("Loop/inside loop.flac",),
            OK,
            _loop,
            note="ok: every real folder scanned once, no duplicate track",
        ),
        Case(
            "dangling symlink named .flac",
            ("dangling link.flac",),
            NOT_A_TRACK,
            lambda root: os.symlink("no such file.flac", root / "dangling link.flac"),
            note="not a track: discovery skips it",
        ),
    ]
    if very_long:
        cases.append(
            Case(
                "4-hour track (8 kHz mono FLAC, 26 MB)",
                ("four hours.flac",),
                FAILED,
                lambda root: write_hours(root / "four hours.flac", 4),
                cause="over the 150-minute limit",
                note="failed at ingest: over the 150-minute limit (time); split it",
            )
        )
    return cases


def build_corpus(root: str | os.PathLike, very_long: bool = True) -> list[Case]:
    """Write every case into ``root`` (created) and return the cases.

    ``very_long`` adds the 4-hour track (8 kHz mono FLAC written one minute at
    a time: about 26 MB, 4 s to write; ingest decodes it in about 2 s).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases = corpus_cases(very_long)
    for case in cases:
        case.make(root)
    return cases


def _m4a(path: Path) -> None:
    """AAC in MP4 through ffmpeg (argument list; ``file:`` keeps "-i..." a file)."""
    wav = path.with_name(".m4a-source.wav")
    _write(wav, _song(), 44100)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{wav}", "-c:a", "aac",
           f"file:{path}"]  # fmt: skip
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    wav.unlink()


def write_hours(path: Path, hours: int, sr: int = 8000) -> Path:
    """``hours`` of the bar at 8 kHz mono, written one minute at a time."""
    # Clicks alone: the digital silence between them packs an hour into ~6.5 MB.
    minute = music(60.0, sr, channels=1, noise=0.0, chord=0.0)
    with sf.SoundFile(path, "w", sr, 1, format="FLAC", subtype="PCM_16") as handle:
        for _ in range(60 * hours):
            handle.write(minute)
    return path


# ---- the library before and after ---------------------------------------------


def library_state(root: str | os.PathLike) -> dict[str, tuple]:
    """Every entry below ``root`` (links not followed): a file's sha256, size and
    mtime; a link's target; a folder's mtime. Equal before and after a run
    means the run wrote, renamed, touched and deleted nothing there."""
    root = Path(root)
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                state[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[key] = ("dir", info.st_mtime_ns, info.st_mode)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[key] = ("file", digest, info.st_size, info.st_mtime_ns, info.st_mode)
    state["."] = ("dir", root.stat().st_mtime_ns, root.stat().st_mode)
    return state


def make_read_only(root: str | os.PathLike) -> None:
    """``chmod -R a-w`` without following links."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
    Path(root).chmod(Path(root).stat().st_mode & ~0o222)


def make_writable(root: str | os.PathLike) -> None:
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
    Path(root).chmod(Path(root).stat().st_mode | 0o200)
