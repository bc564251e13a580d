"""One separation job: a resident backend separates every track of a batch."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mirflow.atomic import write_json
from mirflow.audio import load_audio
from mirflow.errors import TrackError
from mirflow.progress import Progress
from mirflow.records import StageResult, write_result
from mirflow.separation import SeparationBackend, SeparationError, required_files
from mirflow.stems import fold_stems, write_stem

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


def separate_track(
    backend: SeparationBackend, source: str | os.PathLike, separation: dict[str, Any]
) -> tuple[dict[str, np.ndarray], int, dict[str, Any]]:
    """Stems of one file, folded as configured, and facts for its .INFO."""
    mix, sr = load_audio(source)
    raw = backend.separate(mix, sr)
    stems = fold_stems(raw, separation["save_extra_stems"], tuple(separation["discard_stems"]))
    fields = {
        "stems_model": backend.name,
        "stems_sample_rate": backend.sample_rate,
        "stems_model_outputs": sorted(raw),
    }
    return stems, backend.sample_rate, fields


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
                stems, sr, fields = separate_track(backend, source, separation)
                files = {}
                for name, audio in stems.items():
                    files[name] = f"{name}.{separation['format']}"
                    write_stem(
                        folder / files[name],
                        audio,
                        sr,
                        separation["format"],
                        separation["mp3_bitrate"],
                    )
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
