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
from mirflow.records import StageResult, write_result
from mirflow.separation import SeparationBackend
from mirflow.stems import fold_stems, write_stem

log = logging.getLogger(__name__)


def make_backend(separation: dict[str, Any], models_dir: str | os.PathLike, work_dir=None):
    """The configured backend, with its model loaded (once)."""
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


def separate_batch(
    backend: SeparationBackend,
    members: list[tuple[str, str]],
    out_dir: str | os.PathLike,
    separation: dict[str, Any],
) -> dict[str, StageResult]:
    """Separate each ``(track, source path)`` into ``out_dir/<track>/``.

    A track that cannot be separated (bad audio, a bad checkpoint) gets a
    failed record and the batch goes on.
    """
    out_dir = Path(out_dir)
    results = {}
    for track, source in members:
        folder = out_dir / track
        folder.mkdir(parents=True, exist_ok=True)
        try:
            stems, sr, fields = separate_track(backend, source, separation)
            files = {}
            for name, audio in stems.items():
                files[name] = f"{name}.{separation['format']}"
                write_stem(folder / files[name], audio, sr, separation["format"],
                           separation["mp3_bitrate"])
            result = StageResult("separate", track={**fields, "stem_files_written": files})
        except TrackError as exc:
            log.warning("%s: %s", track, exc)
            result = StageResult("separate", status="failed", error=f"separate: {exc}")
        write_result(folder / "separation.json", result)
        results[track] = result
    write_json(out_dir / "batch.json", {"members": [t for t, _ in members],
                                        "model_loads": getattr(backend, "load_count", None)})
    return results
