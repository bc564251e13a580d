"""Assemble a track's dataset folder: ``.INFO`` sidecars beside the audio.

Layout of ``dataset/<track>/`` (replaced as a whole, atomically)::

    <track>.INFO  <track>.BEATS  <track>.timeseries.parquet  stems/drums.flac ...
    crops/<track>_000.flac  <track>_000.INFO  <track>_000.BEATS  <track>_000_<stem>.flac ...

Audio and beat files are hard links to the files the crops stage wrote (a
copy where the filesystem cannot link), so the dataset costs no extra space.
The ``.INFO`` fields are documented in README.md ("The .INFO files").
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from mirflow import __version__
from mirflow.atomic import atomic_directory, link_or_copy, write_json
from mirflow.records import StageResult, first_failure, one_line

#: Track fields every crop's .INFO repeats, so a crop is self-describing.
INHERITED_BY_CROPS = (
    "track",
    "source",
    "sha256",
    "track_metadata_artist",
    "track_metadata_title",
    "track_metadata_album",
    "track_metadata_album_artist",
    "track_metadata_year",
    "track_metadata_genre",
    "track_metadata_label",
    "bpm_is_defined",
    "bpm_confidence",
)

#: Track fields a crop keeps under another name (the crop has its own value).
RENAMED_FOR_CROPS = {"bpm": "track_bpm", "key": "track_key", "duration_s": "track_duration_s"}


#: Crop fields naming one file, and fields naming a file per stem.
FILE_FIELDS = ("audio_file", "beats_file", "midi_file")
FILES_FIELDS = ("stem_files", "midi_stem_files")


def crop_files(crop: dict[str, Any]) -> list[str]:
    """Every file a crop's ``.INFO`` names (they go beside it in the dataset)."""
    files = [crop[key] for key in FILE_FIELDS if crop.get(key)]
    for key in FILES_FIELDS:
        files += list((crop.get(key) or {}).values())
    return files


def track_info(track: str, results: list[StageResult], beats_file: str | None) -> dict[str, Any]:
    """The track's ``.INFO``: every record's track fields, in stage order."""
    failed = first_failure(results)
    info: dict[str, Any] = {"track": track}
    for result in results:
        info.update(result.track)
    info["status"] = "ok" if failed is None else "failed"
    info["error"] = "" if failed is None else failed.error
    if failed is None and beats_file:
        info["beats_file"] = beats_file
    info["provenance"] = {r.stage: r.provenance for r in results if r.ok and r.provenance}
    info["mirflow_version"] = __version__
    return info


def _inherited_from(results: list[StageResult]) -> set[str]:
    """The stages whose track fields every crop inherits (see INHERITED_BY_CROPS)."""
    keys = set(INHERITED_BY_CROPS) | set(RENAMED_FOR_CROPS)
    return {r.stage for r in results if not keys.isdisjoint(r.track)}


def crop_infos(
    track_fields: dict[str, Any], results: list[StageResult]
) -> dict[str, dict[str, Any]]:
    """Each crop's ``.INFO``: inherited track fields, then every record's crop fields."""
    inherited = {k: track_fields[k] for k in INHERITED_BY_CROPS if k in track_fields}
    inherited.update(
        {new: track_fields[old] for old, new in RENAMED_FOR_CROPS.items() if old in track_fields}
    )
    inherited_from = _inherited_from(results)
    names: list[str] = []
    for result in results:
        names.extend(n for n in result.crops if n not in names)
    infos = {}
    for name in names:
        info = dict(inherited)
        errors = []
        for result in results:
            fields = result.crops.get(name, {})
            info.update({k: v for k, v in fields.items() if k not in ("status", "error")})
            if fields.get("status", "ok") != "ok":
                errors.append(fields.get("error") or f"{result.stage} failed")
        info["status"] = "failed" if errors else "ok"
        info["error"] = "; ".join(errors)
        # The stems record made the audio a crop's stem_files were cut from.
        stages = inherited_from | ({"stems"} if info.get("stem_files") else set())
        info["provenance"] = {
            r.stage: r.provenance
            for r in results
            if r.ok and r.provenance and (name in r.crops or r.stage in stages)
        }
        info["mirflow_version"] = __version__
        infos[name] = info
    return infos


def relative_errors(result: StageResult, path: str, relpath: str) -> StageResult:
    """``result`` with the source file's absolute path in its errors replaced
    by its library-relative one (as one_line wrote it into the cause)."""
    absolute, relative = one_line(str(path)), one_line(relpath)
    crops = {
        name: {**fields, "error": fields["error"].replace(absolute, relative)}
        if fields.get("error") else fields
        for name, fields in result.crops.items()
    }  # fmt: skip
    return replace(result, error=result.error.replace(absolute, relative), crops=crops)


def assemble_track(
    track: str,
    results: list[StageResult],
    beats_path: str | os.PathLike | None,
    crops_dir: str | os.PathLike | None,
    dest: str | os.PathLike,
    stems_dir: str | os.PathLike | None = None,
    file_dirs: list[str | os.PathLike] = (),
    source: tuple[str, str] | None = None,
    track_files: list[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Write ``dest`` (the track's dataset folder) and return the track ``.INFO``.

    A crop's files (see :func:`crop_files`) are linked from ``crops_dir`` or,
    for files a model pass wrote (MIDI), from the first of ``file_dirs`` that
    has them. ``source`` is the track's (absolute path, path relative to the
    library): errors name the file by the latter, so that no ``.INFO`` holds
    a path outside the output. ``track_files`` (the time series) go beside
    the track's ``.INFO`` under their own names.
    """
    if source is not None:
        results = [relative_errors(result, *source) for result in results]
    folders = [Path(crops_dir)] if crops_dir is not None else []
    folders += [Path(d) for d in file_dirs]
    with atomic_directory(dest) as folder:
        if stems_dir is not None and first_failure(results) is None:
            # Not hidden files: Snakemake keeps a .snakemake_timestamp in the folder.
            stems = sorted(
                p for p in Path(stems_dir).iterdir() if p.is_file() and not p.name.startswith(".")
            )
            if stems:
                (folder / "stems").mkdir()
                for stem in stems:
                    link_or_copy(stem, folder / "stems" / stem.name)
        beats_file = None
        if beats_path is not None and first_failure(results) is None:
            beats_file = f"{track}.BEATS"
            link_or_copy(beats_path, folder / beats_file)
        if first_failure(results) is None:
            for path in track_files:
                link_or_copy(path, folder / Path(path).name)
        info = track_info(track, results, beats_file)
        crops = crop_infos(info, results) if info["status"] == "ok" else {}
        if crops:
            (folder / "crops").mkdir()
            for name, crop in crops.items():
                for file_name in crop_files(crop):
                    source = next(
                        (d / file_name for d in folders if (d / file_name).is_file()), None
                    )
                    if source is None:
                        raise FileNotFoundError(
                            f"{name}: {file_name} is named in a record but is in none of "
                            f"{', '.join(map(str, folders))}"
                        )
                    link_or_copy(source, folder / "crops" / file_name)
                write_json(folder / "crops" / f"{name}.INFO", crop)
        info["crop_count"] = len(crops)
        info["crops_failed"] = sum(1 for c in crops.values() if c["status"] != "ok")
        write_json(folder / f"{track}.INFO", info)
    return info
