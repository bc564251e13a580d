"""The run's summary (``summary.json`` + a console table) and ``manifest.parquet``.

The summary is built from what is on disk (the ``.INFO`` files and the
per-job benchmark files Snakemake writes), so it is the same whether the run
was one process, many, or a cluster.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mirflow.atomic import read_json, write_json

RUN_STARTED_FILE = "run_started"  # under <output>/logs/, written when a run starts

MANIFEST_COLUMNS = [
    "kind", "track", "crop", "audio", "info", "status", "error",
    "source", "duration_s", "sample_rate", "channels",
]  # fmt: skip


@dataclass
class FailedTrack:
    track: str
    source: str
    error: str


@dataclass
class Summary:
    tracks: int
    tracks_ok: int
    tracks_failed: int
    audio_duration_s: float  # all ok tracks of the dataset
    crops_processed: int
    crops_failed: int
    run_started: str | None
    wall_time_s: float | None  # this run, from its start to this summary
    tracks_processed_this_run: int
    audio_processed_this_run_s: float
    realtime_factor: float | None  # audio seconds processed per wall second, this run
    failed_tracks: list[FailedTrack] = field(default_factory=list)
    time_per_rule: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. a stage that is off, and why
    exports: dict[str, Any] | None = None  # crops kept and dropped by the export filters
    # Groups of copies of one recording (mirflow.fingerprint): counts and the groups.
    duplicates: dict[str, Any] | None = None
    # A merge of shards (README, "Large libraries"): library tracks no shard has finished yet.
    tracks_pending: int = 0
    pending_tracks: list[str] = field(default_factory=list)


def mark_run_started(output_root: str | os.PathLike) -> None:
    path = Path(output_root) / "logs" / RUN_STARTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time():.3f}\n")


def run_started(output_root: str | os.PathLike) -> float | None:
    path = Path(output_root) / "logs" / RUN_STARTED_FILE
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_track_ids(table: str | os.PathLike) -> list[str]:
    """The library's track ids, from the track table (tracks.tsv) rule track_table writes."""
    # Ids are text: "nan" or "NULL" are ids here, not missing values.
    frame = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)
    return frame["track"].tolist()


def finished_datasets(
    output_root: str | os.PathLike, tracks: list[str]
) -> tuple[list[Path], list[str]]:
    """``(dataset folders, pending track ids)`` of ``tracks``: a track is finished
    when its dataset folder holds its ``.INFO`` (assemble writes the folder
    atomically, so one being written is not there yet)."""
    dataset_root = Path(output_root) / "dataset"
    finished, pending = [], []
    for track in tracks:
        folder = dataset_root / track
        if (folder / f"{track}.INFO").is_file():
            finished.append(folder)
        else:
            pending.append(track)
    return finished, pending


def datasets_stamp(dataset_dirs: list[Path]) -> str:
    """A short digest of which datasets exist and when their ``.INFO`` was written:
    it changes when a track is finished or re-assembled."""
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha1()
    for folder in dataset_dirs:
        info = folder / f"{folder.name}.INFO"
        digest.update(f"{folder.name}\t{info.stat().st_mtime_ns}\n".encode())
    return f"{len(dataset_dirs)}:{digest.hexdigest()[:16]}"


def read_infos(dataset_dirs: list[Path]) -> tuple[list[dict], list[tuple[dict, Path]]]:
    """Track ``.INFO`` dicts and (crop ``.INFO``, its path) pairs."""
    tracks, crops = [], []
    for folder in dataset_dirs:
        info_path = folder / f"{folder.name}.INFO"
        info = read_json(info_path)
        info["_info_path"] = info_path
        tracks.append(info)
        crop_dir = folder / "crops"
        if crop_dir.is_dir():
            for crop_info in sorted(crop_dir.glob("*.INFO")):
                crops.append((read_json(crop_info), crop_info))
    return tracks, crops


def build_manifest(
    output_root: Path, input_root: Path, tracks: list[dict], crops: list[tuple[dict, Path]]
) -> pd.DataFrame:
    """One row per track and per crop; paths relative to the output root."""

    def row(kind: str, info: dict, audio: Path, info_path: Path) -> dict:
        return {
            "kind": kind,
            "track": info["track"],
            "crop": info.get("crop", ""),
            "audio": os.path.relpath(audio, output_root),
            "info": os.path.relpath(info_path, output_root) if info_path else "",
            "status": info["status"],
            "error": info.get("error", ""),
            **{k: info.get(k) for k in ("source", "duration_s", "sample_rate", "channels")},
        }

    # A track's audio is the library file itself, left where it is.
    rows = [
        row("track", info, input_root / info.get("source", ""), info["_info_path"])
        for info in tracks
    ]
    rows += [row("crop", info, path.parent / info["audio_file"], path) for info, path in crops]
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return frame.astype({"duration_s": "float64", "sample_rate": "Int64", "channels": "Int64"})


def time_per_rule(benchmark_root: Path, since: float | None) -> dict[str, dict[str, float]]:
    """Jobs and summed wall seconds per rule, from Snakemake's benchmark files.

    Only files written since ``since`` (this run) count, when it is known.
    """
    per_rule: dict[str, dict[str, float]] = {}
    if not benchmark_root.is_dir():
        return per_rule
    for rule_dir in sorted(p for p in benchmark_root.iterdir() if p.is_dir()):
        jobs, seconds = 0, 0.0
        for tsv in rule_dir.glob("*.tsv"):
            if since is not None and tsv.stat().st_mtime < since:
                continue
            frame = pd.read_csv(tsv, sep="\t")
            if "s" in frame and len(frame):
                jobs += 1
                seconds += float(frame["s"].iloc[-1])
        if jobs:
            per_rule[rule_dir.name] = {"jobs": jobs, "seconds": round(seconds, 3)}
    return per_rule


def summarize(
    output_root: str | os.PathLike,
    input_root: str | os.PathLike,
    dataset_dirs: list[str | os.PathLike],
    now: float | None = None,
    notes: list[str] = (),
    exports: dict[str, Any] | None = None,
    pending: list[str] = (),
    unfinished: dict[str, tuple[str, str]] | None = None,
    duplicates: dict[str, Any] | None = None,
) -> tuple[Summary, pd.DataFrame]:
    """``unfinished``: ``{track: (source, cause)}`` of tracks a failed job left
    without a dataset (mirflow.unfinished); they count, and are listed, as failed.
    ``duplicates``: the run's duplicates.json; the manifest gets each track's
    ``duplicate_group`` and ``duplicate_of`` from it (current, where a ``.INFO``
    assembled before its copy arrived is not yet)."""
    output_root, input_root = Path(output_root), Path(input_root)
    tracks, crops = read_infos([Path(d) for d in dataset_dirs])
    for track, (source, cause) in (unfinished or {}).items():
        tracks.append({"track": track, "source": source, "status": "failed", "error": cause,
                       "_info_path": None})  # fmt: skip
    manifest = build_manifest(output_root, input_root, tracks, crops)
    if duplicates is not None:
        fields = duplicates.get("tracks", {})
        grouped = {t for group in duplicates.get("groups", []) for t in group}
        for key in ("duplicate_group", "duplicate_of"):
            manifest[key] = [fields[t][key] if t in grouped else None for t in manifest["track"]]
    started = run_started(output_root)
    now = time.time() if now is None else now
    ok = [t for t in tracks if t["status"] == "ok"]
    this_run = [t for t in ok if started is None or t["_info_path"].stat().st_mtime >= started]
    wall = now - started if started is not None else None
    audio_this_run = sum(float(t.get("duration_s") or 0) for t in this_run)
    summary = Summary(
        tracks=len(tracks),
        tracks_ok=len(ok),
        tracks_failed=len(tracks) - len(ok),
        audio_duration_s=round(sum(float(t.get("duration_s") or 0) for t in ok), 3),
        crops_processed=sum(1 for c, _ in crops if c["status"] == "ok"),
        crops_failed=sum(1 for c, _ in crops if c["status"] != "ok"),
        run_started=(
            datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds") if started else None
        ),
        wall_time_s=round(wall, 3) if wall is not None else None,
        tracks_processed_this_run=len(this_run),
        audio_processed_this_run_s=round(audio_this_run, 3),
        realtime_factor=round(audio_this_run / wall, 3) if wall else None,
        failed_tracks=[
            FailedTrack(t["track"], t.get("source", ""), t.get("error", ""))
            for t in tracks
            if t["status"] != "ok"
        ],
        time_per_rule=time_per_rule(output_root / "benchmarks", started),
        notes=[note for note in notes if note],
        exports=exports,
        duplicates=duplicate_counts(duplicates) if duplicates is not None else None,
        tracks_pending=len(pending),
        pending_tracks=list(pending),
    )
    return summary, manifest


def duplicate_counts(duplicates: dict[str, Any]) -> dict[str, Any]:
    """What the summary says of a duplicates.json: groups, copies, the groups."""
    groups = duplicates.get("groups", [])
    return {"groups": len(groups), "copies": sum(len(g) - 1 for g in groups), "members": groups}


def write_unfinished_summary(
    output_root: str | os.PathLike,
    input_root: str | os.PathLike,
    tracks: list[str],
    unfinished: dict[str, tuple[str, str]],
    notes: list[str] = (),
) -> Summary:
    """The summary of a run a failed job cut short (the summary rule, which
    needs every track's dataset, cannot run): finished tracks as usual, the
    others failed with the stage and cause mirflow.unfinished found."""
    output_root = Path(output_root)
    done, _ = finished_datasets(output_root, [t for t in tracks if t not in unfinished])
    note = (f"this run did not finish: a job failed for {len(unfinished)} track(s), "
            "listed below; the next run retries them")  # fmt: skip
    summary, manifest = summarize(
        output_root, input_root, done, notes=[*notes, note], unfinished=unfinished
    )
    write_summary(summary, manifest, output_root / "summary.json", output_root / "manifest.parquet")
    return summary


def failed_run_report(
    output_root: str | os.PathLike,
    input_root: str | os.PathLike,
    relpaths: dict[str, str],
    records: dict[str, list[str]],
    log_text: str,
    *,
    shard: bool = False,
    notes: list[str] = (),
) -> str:
    """What the run's error hook prints when a job failed (not a bad track:
    those are recorded and the run goes on). Each track the failure left
    unfinished is named with its stage and cause (mirflow.unfinished); the
    summary is written for them, except in a shard (summary.json is the
    library's: the merge writes it). ``relpaths``: track -> library path;
    ``records``: each track's records in stage order; ``log_text``:
    Snakemake's log of the run."""
    from mirflow.unfinished import find_unfinished  # noqa: PLC0415

    lines = []
    unfinished = find_unfinished(output_root, records, log_text, run_started(output_root))
    if unfinished and shard:
        lines += [f"mirflow: {u.track} unfinished: {u.cause}" for u in unfinished]
    elif unfinished:
        try:
            summary = write_unfinished_summary(
                output_root,
                input_root,
                list(relpaths),
                {u.track: (relpaths[u.track], u.cause) for u in unfinished},
                notes=notes,
            )
            lines.append(format_summary(summary))
        except OSError as error:  # e.g. the full disk that failed the job
            lines.append(f"mirflow: could not write the summary: {error}")
    lines.append(
        "mirflow: some jobs failed (not a bad track: those are recorded and the run goes on). "
        f"See the log named above each error, under {Path(output_root) / 'logs'}/."
    )
    return "\n".join(lines)


def write_summary(summary: Summary, manifest: pd.DataFrame, summary_path, manifest_path) -> None:
    from mirflow.atomic import atomic_path  # noqa: PLC0415

    write_json(summary_path, asdict(summary))
    with atomic_path(manifest_path) as tmp:
        manifest.to_parquet(tmp, index=False)


def format_summary(summary: dict[str, Any] | Summary) -> str:
    """The console table printed at the end of a run."""
    s = asdict(summary) if isinstance(summary, Summary) else summary

    def fmt(value, unit=""):
        return (
            "-"
            if value is None
            else f"{value:,.1f}{unit}"
            if isinstance(value, float)
            else f"{value}{unit}"
        )

    pending = f", {s['tracks_pending']} pending" if s.get("tracks_pending") else ""
    rows = [
        ("tracks", f"{s['tracks']} ({s['tracks_ok']} ok, {s['tracks_failed']} failed{pending})"),
        ("audio in dataset", fmt(s["audio_duration_s"], " s")),
        ("crops", f"{s['crops_processed']} processed, {s['crops_failed']} failed"),
        ("this run: tracks", str(s["tracks_processed_this_run"])),
        ("this run: audio", fmt(s["audio_processed_this_run_s"], " s")),
        ("this run: wall time", fmt(s["wall_time_s"], " s")),
        ("this run: realtime factor", fmt(s["realtime_factor"], "x")),
    ]
    if s.get("exports"):
        e = s["exports"]
        dropped = ", ".join(f"{k}: {v}" for k, v in e.get("dropped_by", {}).items())
        rows.append(("exports", f"{e['kept']} crops kept, {e['dropped']} dropped by filters"
                     + (f" ({dropped})" if dropped else "")))  # fmt: skip
        if e.get("duplicates_left_out"):
            rows.append(("exports: copies left out", f"{e['duplicates_left_out']} crops"))
    if s.get("duplicates") is not None:
        d = s["duplicates"]
        rows.append(("duplicates", f"{d['groups']} groups, {d['copies']} copies of an original"))
    width = max(len(k) for k, _ in rows)
    lines = ["mirflow summary", "-" * 40]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    if s["time_per_rule"]:
        lines += ["", f"{'rule':<20}{'jobs':>6}{'seconds':>10}"]
        for rule, t in s["time_per_rule"].items():
            lines.append(f"{rule:<20}{int(t['jobs']):>6}{t['seconds']:>10.1f}")
    if s.get("notes"):
        lines += [""] + s["notes"]
    if s.get("pending_tracks"):
        shown = s["pending_tracks"][:10]
        more = len(s["pending_tracks"]) - len(shown)
        lines += ["", "pending tracks (not finished by any shard yet):"]
        lines += [f"  {track}" for track in shown] + ([f"  ... and {more} more"] if more else [])
    if s["failed_tracks"]:
        lines += ["", "failed tracks:"]
        lines += [f"  {f['track']} ({f['source']}): {f['error']}" for f in s["failed_tracks"]]
    return "\n".join(lines)


def load_summary(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
