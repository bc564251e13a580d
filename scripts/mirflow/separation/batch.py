"""One separation job: a resident backend separates every track of a batch."""

from __future__ import annotations

import itertools
import logging
import math
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.atomic import TEMP_PREFIX, write_json
from mirflow.audio import audio_layout, audio_writer, sample_windows, stream_audio
from mirflow.errors import TrackError
from mirflow.progress import Progress
from mirflow.records import StageResult, write_result
from mirflow.separation import (
    CLAMP_LIMIT,
    SeparationBackend,
    SeparationError,
    required_files,
    rescale_divisor,
)
from mirflow.stems import fold_stems, stem_writer, write_stem

log = logging.getLogger(__name__)


def make_backend(separation: dict[str, Any], models_dir: str | os.PathLike, work_dir=None):
    """The configured backend, with its model loaded (once)."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(separation["threads"])  # CPU runs: the job's share of cores
    if separation["backend"] == "bs_roformer":
        from mirflow.separation.roformer_backend import RoformerBackend  # noqa: PLC0415

        options = separation["bs_roformer"]
        return RoformerBackend(
            options["model_file"], models_dir, device=separation["device"], work_dir=work_dir
        )
    from mirflow.separation.demucs_backend import DemucsBackend  # noqa: PLC0415

    options = separation["demucs"]
    return DemucsBackend(
        options["model"],
        models_dir,
        device=separation["device"],
        shifts=options["shifts"],
        segment=options["segment"],
        overlap=options["overlap"],
        clip_mode=options["clip_mode"],
        threads=separation["threads"],
    )


#: A track up to this long is separated whole, as it always was; a longer one
#: a window at a time (memory is one window's stems, not the track's).
WINDOW_S = 300.0
#: Audio the model hears either side of a window's own part: more than a
#: Demucs segment (7.8 s) or a BS-RoFormer chunk (8 s), so no sample is
#: separated at a window edge.
CONTEXT_S = 10.0
#: Each seam is a linear crossfade this long between the two windows' stems.
FADE_S = 1.0


def separate_track(
    backend: SeparationBackend,
    source: str | os.PathLike,
    separation: dict[str, Any],
    folder: str | os.PathLike,
    window_s: float = WINDOW_S,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Separate one file into ``folder/<stem>.<format>``, folded as configured;
    returns ``{stem: file name}`` and facts for its .INFO.

    The mix is decoded block by block at the model's rate. A track longer than
    ``window_s`` is separated in windows of that many seconds with
    ``CONTEXT_S`` of context either side, joined by ``FADE_S`` crossfades;
    the clipping guard then sees the whole track (one factor, as for a song).
    """
    folder = Path(folder)
    rate = backend.sample_rate
    # Windows and context in whole steps of the backend's own chunking (Demucs:
    # its overlap-add stride), so a window's chunks are the whole track's.
    unit = backend.window_unit
    window = max(1, round(window_s * rate / unit)) * unit
    context = math.ceil(CONTEXT_S * rate / unit) * unit
    stream = sample_windows(stream_audio(source, sr=rate), window, context, unit)
    first = next(stream)
    outputs: list[str] = []

    def fold(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs[:] = sorted(raw)
        return fold_stems(raw, separation["save_extra_stems"], tuple(separation["discard_stems"]))

    fmt, bitrate = separation["format"], separation["mp3_bitrate"]
    files = {}
    if first.last:  # a song: whole, as before
        for name, audio in fold(backend.separate(first.audio, rate)).items():
            files[name] = f"{name}.{fmt}"
            write_stem(folder / files[name], audio, rate, fmt, bitrate)
    else:
        files = _separate_windows(
            backend, itertools.chain([first], stream), fold, folder, fmt, bitrate
        )
    fields = {
        "stems_model": backend.name,
        "stems_sample_rate": rate,
        "stems_model_outputs": outputs,
    }
    return files, fields


def _separate_windows(backend, windows, fold, folder: Path, fmt: str, bitrate: int):
    """The windows' stems, crossfaded at the seams, written as they come.

    With the "rescale" clipping guard the stems go to float WAVs first (the
    factor needs the whole track's peak), then into the format, scaled.
    """
    rate = backend.sample_rate
    half_fade = int(FADE_S * rate) // 2
    clip_mode = backend.clip_mode
    rescale = clip_mode == "rescale"
    with ExitStack() as stack:
        writers: dict[str, Any] = {}
        held: dict[str, np.ndarray] = {}  # the last window's stems across the coming seam
        peak = 0.0
        for win in windows:
            stems = fold(backend.separate(win.audio, rate, prevent_clip=False))
            own = win.own_start - win.start
            lead = next(iter(held.values())).shape[1] // 2 if held else 0
            stop = win.own_stop - win.start
            keep = 0 if win.last else min(half_fade, win.audio.shape[1] - stop)
            for name, audio in stems.items():
                if name not in writers:
                    target = folder / (f"{TEMP_PREFIX}{name}.wav" if rescale else f"{name}.{fmt}")
                    sink = (
                        audio_writer(target, rate, audio.shape[0], "FLOAT")
                        if rescale
                        else stem_writer(target, rate, audio.shape[0], fmt, bitrate)
                    )
                    writers[name] = stack.enter_context(sink)
                part = audio[:, own - lead : stop - keep]
                if lead:
                    ramp = np.linspace(0.0, 1.0, 2 * lead, endpoint=False, dtype=np.float32)
                    part = part.copy()
                    part[:, : 2 * lead] = held[name] * (1 - ramp) + part[:, : 2 * lead] * ramp
                if clip_mode == "clamp":  # per sample: the block is enough
                    part = np.clip(part, -CLAMP_LIMIT, CLAMP_LIMIT)
                peak = max(peak, float(np.max(np.abs(part))) if part.size else 0.0)
                writers[name](part)
                if keep:
                    held[name] = audio[:, stop - keep : stop + keep]
            if not keep:
                held = {}
    files = {name: f"{name}.{fmt}" for name in writers}
    if rescale:
        scale = 1.0 / rescale_divisor(peak)  # one factor for the whole track
        for name in writers:
            raw = folder / f"{TEMP_PREFIX}{name}.wav"
            channels = audio_layout(raw)[1]
            with stem_writer(folder / files[name], rate, channels, fmt, bitrate) as write:
                for block in stream_audio(raw):
                    write(block * np.float32(scale))
            raw.unlink()
    return files


def run_batch(
    members: list[tuple[str, str]],
    out_dir: str | os.PathLike,
    separation: dict[str, Any],
    models_dir: str | os.PathLike,
) -> tuple[str, dict[str, StageResult]]:
    """The separate rule: load the model once, separate every member.

    A model that is present but will not load (a bad checkpoint) fails each
    track of the batch with that cause, and the run goes on; a missing model
    (ModelNotFoundError) fails the job, since no track can succeed.
    """
    try:
        backend = make_backend(separation, models_dir, out_dir)
    except SeparationError as exc:
        return "unloaded", separate_batch(None, members, out_dir, separation, load_error=exc)
    made_by = separation_provenance(separation, models_dir)
    return backend.name, separate_batch(backend, members, out_dir, separation, made_by=made_by)


def separation_provenance(separation: dict[str, Any], models_dir: str | os.PathLike) -> dict:
    """Tools, model files and the settings that shape the stems."""
    from mirflow.provenance import provenance  # noqa: PLC0415

    backend = separation["backend"]
    tool = "audio-separator" if backend == "bs_roformer" else "demucs"
    files = [path for path in required_files(separation, models_dir) if path.is_file()]
    params = {
        "backend": backend,
        backend: dict(separation[backend]),
        **{key: separation[key] for key in STEM_PARAMS},
    }
    return provenance((tool, "torch"), files, params)


#: Separation settings that change the stems, whatever the backend.
STEM_PARAMS = ("format", "mp3_bitrate", "save_extra_stems", "discard_stems")


def separate_batch(
    backend: SeparationBackend | None,
    members: list[tuple[str, str]],
    out_dir: str | os.PathLike,
    separation: dict[str, Any],
    load_error: Exception | None = None,
    made_by: dict[str, Any] | None = None,
) -> dict[str, StageResult]:
    """Separate each ``(track, source path)`` into ``out_dir/<track>/``.

    A track that cannot be separated (bad audio, a bad checkpoint) gets a
    failed record and the batch goes on. ``made_by`` is each record's provenance.
    """
    out_dir = Path(out_dir)
    # The stems rule keeps the member list, so a later run can name this batch
    # with the same inputs and params and see that nothing is to be redone.
    write_json(
        out_dir / "batch.json",
        {"members": [list(m) for m in members], "separation": separation},
    )
    results = {}
    # Progress: tracks done of the batch's, rate, time left (mirflow.progress).
    with Progress(len(members), f"separate {out_dir.name}", unit="tracks") as bar:
        for track, source in members:
            folder = out_dir / track
            folder.mkdir(parents=True, exist_ok=True)
            try:
                if load_error is not None:
                    raise load_error
                files, fields = separate_track(backend, source, separation, folder)
                result = StageResult(
                    "separate",
                    track={**fields, "stem_files_written": files},
                    provenance=made_by or {},
                )
            except TrackError as exc:
                log.warning("%s: %s", track, exc)
                result = StageResult("separate", status="failed", error=f"separate: {exc}")
            write_result(folder / "separation.json", result)
            results[track] = result
            bar.update()
    return results


def loads_in_this_process() -> int:
    """Models loaded by this process, all backends (the batch rule's promise: 1)."""
    import sys  # noqa: PLC0415

    return sum(
        getattr(sys.modules[module], cls).load_count
        for module, cls in (
            ("mirflow.separation.demucs_backend", "DemucsBackend"),
            ("mirflow.separation.roformer_backend", "RoformerBackend"),
        )
        if module in sys.modules
    )
