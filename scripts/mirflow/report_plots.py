"""Plots for the Snakemake HTML report, drawn from a run's output folder.

``load_tables(output_root)`` reads ``manifest.parquet``, every ``.INFO`` it
lists and ``summary.json``; each ``plot_*`` function draws one PNG from those
tables; ``draw_all`` writes them all. Every optional field may be missing from
every file (an earlier pass has not run yet): the plot then says so instead of
failing. Captions for the report live in ``workflow/report/<stem>.rst``.

No Snakemake imports: the workflow calls ``draw_all`` (or one function of
``PLOTS``) from a rule script, and the tests call it directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

FIGSIZE = (8.0, 4.5)
DPI = 100
TRACK_COLOR = "#1f77b4"
CROP_COLOR = "#ff7f0e"
MAJOR_COLOR = "#1f77b4"
MINOR_COLOR = "#d62728"

# .INFO fields that are dicts and are kept (as Python objects) in the tables.
OBJECT_FIELDS = ("essentia_genre", "essentia_mood")
AESTHETICS = (
    ("content_enjoyment", "Content\nenjoyment"),
    ("content_usefulness", "Content\nusefulness"),
    ("production_complexity", "Production\ncomplexity"),
    ("production_quality", "Production\nquality"),
)
TOP_GENRES = 15
TOP_MOODS = 15
MIN_BAR_SLOTS = 8

_NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Circle of fifths, one label per position; minor keys are the relative minors.
_MAJOR_FIFTHS = ["C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F"]
_MINOR_FIFTHS = ["Am", "Em", "Bm", "F#m", "C#m", "G#m", "D#m", "Bbm", "Fm", "Cm", "Gm", "Dm"]


# --------------------------------------------------------------------------- tables


def _read_info(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _keep(key: str, value: object) -> bool:
    if key in OBJECT_FIELDS:
        return isinstance(value, dict)
    return value is None or isinstance(value, (str, int, float, bool))


def _table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for key in OBJECT_FIELDS:
        if key in frame.columns:
            frame[key] = frame[key].astype(object)
    return frame


def load_tables(output_root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Tracks and crops (one row per ``.INFO``) and the summary of a run.

    Rows come from ``manifest.parquet``; each row's ``.INFO`` contributes its
    scalar fields and the dict fields in ``OBJECT_FIELDS``. A ``.INFO`` that is
    missing or unreadable leaves only the manifest's columns for that row.
    A missing ``summary.json`` gives ``{}``.
    """
    root = Path(output_root)
    manifest = pd.read_parquet(root / "manifest.parquet")
    tracks: list[dict] = []
    crops: list[dict] = []
    for rec in manifest.to_dict("records"):
        row = {k: (None if _is_missing(v) else v) for k, v in rec.items() if k != "info"}
        info_rel = rec.get("info")
        if isinstance(info_rel, str) and info_rel:
            info = _read_info(root / info_rel)
            if info:
                row.update({k: v for k, v in info.items() if _keep(k, v)})
        (crops if rec.get("kind") == "crop" else tracks).append(row)
    summary: dict = {}
    summary_path = root / "summary.json"
    if summary_path.exists():
        try:
            loaded = json.loads(summary_path.read_text())
            summary = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            summary = {}
    return _table(tracks), _table(crops), summary


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return values[np.isfinite(values)]


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame.columns or frame.empty:
        return frame
    return frame[frame["status"].fillna("ok") == "ok"]


# --------------------------------------------------------------------------- drawing


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, dest: str | Path) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(dest, format="png", dpi=DPI)
    return dest


def _no_data(dest: str | Path, title: str, what: str) -> Path:
    """A figure that says there is nothing to plot yet, and what produces it."""
    fig, ax = _figure()
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        f"no data yet: {what}",
        ha="center",
        va="center",
        wrap=True,
        fontsize=12,
        color="0.35",
        transform=ax.transAxes,
    )
    ax.set_axis_off()
    return _save(fig, dest)


def _bins(values: np.ndarray, width: float, max_bins: int = 60) -> np.ndarray | int:
    """Bins ``width`` wide aligned to multiples of it (wider if that gives too many)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo < 1e-9:
        return np.array([lo - width / 2, lo + width / 2])
    while (hi - lo) / width > max_bins:
        width *= 2
    start = math.floor(lo / width) * width
    stop = math.floor(hi / width) * width + width
    return np.arange(start, stop + width / 2, width)


def _count_note(ax, n: int, noun: str) -> None:
    """Append the sample size to the title (kept out of the axes, where it hides data)."""
    title = ax.get_title()
    note = f"n = {n} {noun}"
    title = f"{title[:-1]}, {note})" if title.endswith(")") else f"{title} ({note})"
    ax.set_title(title, fontsize=ax.title.get_fontsize())


def _integer_y(ax) -> None:
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _hbars(ax, labels: list[str], values: list[float], color: str, fmt: str) -> None:
    """Horizontal bars, largest on top, each labelled with its value.

    At least ``MIN_BAR_SLOTS`` rows are reserved, so a handful of labels still
    gives slim bars rather than a few huge blocks.
    """
    slots = max(len(labels), MIN_BAR_SLOTS)
    y = slots - 1 - np.arange(len(labels))
    bars = ax.barh(y, values, color=color, height=0.7)
    ax.set_yticks(y, [_short(lbl) for lbl in labels])
    ax.set_ylim(-0.5, slots - 0.5)
    ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(values) * 1.15 if max(values) > 0 else 1)


def _short(label: str, limit: int = 32) -> str:
    label = label.replace("---", " / ")  # Essentia's "Electronic---House"
    return label if len(label) <= limit else label[: limit - 1] + "…"


# --------------------------------------------------------------------------- plots


def plot_bpm(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Histogram of track tempo (``bpm`` of the track ``.INFO``)."""
    title = "Tempo of tracks"
    bpm = _numeric(_ok(tracks), "bpm").to_numpy()
    if bpm.size == 0:
        return _no_data(dest, title, "track .INFO `bpm` (written by the rhythm rule)")
    fig, ax = _figure()
    ax.hist(bpm, bins=_bins(bpm, 5.0), color=TRACK_COLOR, edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel("Tempo (BPM, 5 BPM bins)")
    ax.set_ylabel("Tracks")
    _integer_y(ax)
    ax.axvline(float(np.median(bpm)), color="0.2", ls="--", lw=1, label="median")
    ax.legend(loc="upper left", fontsize=9)
    _count_note(ax, bpm.size, "tracks")
    return _save(fig, dest)


def _key_position(key: object) -> tuple[int, str] | None:
    """(circle-of-fifths position 0-11, "major"/"minor") of e.g. ``"Eb:major"``."""
    if not isinstance(key, str) or ":" not in key:
        return None
    tonic, _, scale = key.strip().partition(":")
    scale = scale.strip().lower()
    tonic = tonic.strip()
    if scale not in ("major", "minor") or not tonic or tonic[0].upper() not in _NOTE_PC:
        return None
    pc = _NOTE_PC[tonic[0].upper()]
    for accidental in tonic[1:]:
        if accidental in "#♯":
            pc += 1
        elif accidental in "b♭":
            pc -= 1
        else:
            return None
    pc %= 12
    if scale == "minor":
        pc = (pc + 3) % 12  # relative major
    return (pc * 7) % 12, scale


def plot_key(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Bars for the 24 keys of the tracks (``key``), circle-of-fifths order."""
    title = "Key of tracks, in circle-of-fifths order"
    keys = _ok(tracks)["key"] if "key" in tracks.columns else pd.Series(dtype=object)
    positions = [p for p in (_key_position(k) for k in keys) if p is not None]
    if not positions:
        return _no_data(dest, title, "track .INFO `key` (written by the track_features rule)")
    major = np.zeros(12, dtype=int)
    minor = np.zeros(12, dtype=int)
    for pos, scale in positions:
        (major if scale == "major" else minor)[pos] += 1
    fig, ax = _figure()
    x = np.arange(12)
    w = 0.4
    ax.bar(x - w / 2, major, w, color=MAJOR_COLOR, label="major")
    ax.bar(x + w / 2, minor, w, color=MINOR_COLOR, label="minor")
    ax.set_xticks(x, [f"{M}\n{m}" for M, m in zip(_MAJOR_FIFTHS, _MINOR_FIFTHS, strict=True)])
    ax.set_title(title)
    ax.set_xlabel("Key (major / relative minor)")
    ax.set_ylabel("Tracks")
    _integer_y(ax)
    ax.legend(loc="upper left", fontsize=9)
    _count_note(ax, len(positions), "tracks")
    return _save(fig, dest)


def plot_loudness(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Histogram of integrated loudness (``lufs``) of tracks and of crops."""
    title = "Integrated loudness of tracks and crops"
    t = _numeric(_ok(tracks), "lufs").to_numpy()
    c = _numeric(_ok(crops), "lufs").to_numpy()
    if t.size == 0 and c.size == 0:
        return _no_data(
            dest, title, "`lufs` in track and crop .INFO (track_features / crop_features rules)"
        )
    fig, ax = _figure()
    bins = _bins(np.concatenate([t, c]), 1.0)
    if c.size:
        ax.hist(c, bins=bins, color=CROP_COLOR, alpha=0.6, label=f"crops (n = {c.size})")
    if t.size:
        ax.hist(
            t,
            bins=bins,
            color=TRACK_COLOR,
            alpha=0.9,
            histtype="step",
            lw=2,
            label=f"tracks (n = {t.size})",
        )
    ax.set_title(title)
    ax.set_xlabel("Integrated loudness (LUFS, 1 LU bins)")
    ax.set_ylabel("Count")
    _integer_y(ax)
    ax.legend(loc="upper left", fontsize=9)
    return _save(fig, dest)


def plot_duration(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Histogram of track durations (``duration_s``)."""
    title = "Duration of tracks"
    d = _numeric(_ok(tracks), "duration_s").to_numpy()
    if d.size == 0:
        return _no_data(dest, title, "track .INFO `duration_s` (written by the ingest rule)")
    minutes = d.max() >= 600
    values = d / 60.0 if minutes else d
    unit = "min" if minutes else "s"
    width = 0.5 if minutes else 10.0
    fig, ax = _figure()
    ax.hist(values, bins=_bins(values, width), color=TRACK_COLOR, edgecolor="white")
    ax.set_title(f"{title} (total {d.sum() / 60:.1f} min)")
    ax.set_xlabel(f"Duration ({unit}, {width:g} {unit} bins)")
    ax.set_ylabel("Tracks")
    _integer_y(ax)
    _count_note(ax, d.size, "tracks")
    return _save(fig, dest)


def plot_aesthetics(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Box plots of the four AudioBox Aesthetics scores of the crops."""
    title = "AudioBox Aesthetics scores of crops"
    source, noun = _ok(crops), "crops"
    if not any(_numeric(source, f).size for f, _ in AESTHETICS):
        source, noun = _ok(tracks), "tracks"
        title = "AudioBox Aesthetics scores of tracks"
    data = [(label, _numeric(source, field).to_numpy()) for field, label in AESTHETICS]
    data = [(label, v) for label, v in data if v.size]
    if not data:
        return _no_data(
            dest,
            "AudioBox Aesthetics scores",
            "content_enjoyment, content_usefulness, production_complexity, "
            "production_quality in crop .INFO (the aesthetics pass)",
        )
    fig, ax = _figure()
    labels = [label for label, _ in data]
    values = [v for _, v in data]
    ax.boxplot(values, tick_labels=labels, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        jitter = rng.uniform(-0.12, 0.12, size=v.size)
        ax.scatter(i + jitter, v, s=8, alpha=0.35, color=CROP_COLOR, zorder=3)
    ax.set_title(title)
    ax.set_ylabel("Score (AudioBox scale, higher is more)")
    _count_note(ax, max(v.size for v in values), noun)
    return _save(fig, dest)


def _summed_probabilities(frame: pd.DataFrame, column: str) -> pd.Series:
    totals: dict[str, float] = {}
    if column in frame.columns:
        for probs in frame[column]:
            if not isinstance(probs, dict):
                continue
            for label, p in probs.items():
                try:
                    value = float(p)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    totals[str(label)] = totals.get(str(label), 0.0) + value
    return pd.Series(totals, dtype=float).sort_values(ascending=False)


def _essentia(tracks: pd.DataFrame, crops: pd.DataFrame, column: str) -> tuple[pd.Series, str]:
    sums = _summed_probabilities(_ok(crops), column)
    if not sums.empty:
        return sums, "crops"
    return _summed_probabilities(_ok(tracks), column), "tracks"


def plot_genres(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Top genres: Essentia genre probabilities summed, else tag counts."""
    sums, noun = _essentia(tracks, crops, "essentia_genre")
    if not sums.empty:
        return _plot_summed_top(sums, noun, TOP_GENRES, "genres", "#2ca02c", dest)
    genres = (
        _ok(tracks)["track_metadata_genre"]
        if "track_metadata_genre" in tracks.columns
        else pd.Series(dtype=object)
    )
    genres = genres[genres.map(lambda g: isinstance(g, str) and g.strip() != "")]
    if genres.empty:
        return _no_data(
            dest,
            "Genres",
            "`essentia_genre` in crop .INFO (the Essentia pass) "
            "or `track_metadata_genre` tags in the library",
        )
    counts = genres.str.strip().value_counts().head(TOP_GENRES)
    fig, ax = _figure()
    _hbars(ax, list(counts.index), [float(v) for v in counts.values], "#2ca02c", "{:.0f}")
    ax.set_title(f"Top {len(counts)} genres (from the tracks' genre tags; no Essentia data yet)")
    ax.set_xlabel(f"Tracks ({len(genres)} of {len(_ok(tracks))} tracks have a genre tag)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, dest)


def plot_moods(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Top moods: Essentia mood probabilities summed."""
    sums, noun = _essentia(tracks, crops, "essentia_mood")
    if sums.empty:
        return _no_data(dest, "Moods", "`essentia_mood` in crop .INFO (the Essentia pass)")
    return _plot_summed_top(sums, noun, TOP_MOODS, "moods", "#9467bd", dest)


def _plot_summed_top(sums: pd.Series, noun: str, count: int, what: str, color: str, dest) -> Path:
    """Horizontal bars of the ``count`` labels with the largest summed probability."""
    top = sums.head(count)
    fig, ax = _figure()
    _hbars(ax, list(top.index), list(top.values), color, "{:.1f}")
    ax.set_title(f"Top {len(top)} {what} (Essentia, probabilities summed over {noun})")
    ax.set_xlabel(f"Summed probability (≈ number of {noun})")
    return _save(fig, dest)


def plot_crops_per_track(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Histogram of the number of crops per track (``crop_count``)."""
    title = "Crops per track"
    ok = _ok(tracks)
    counts = _numeric(ok, "crop_count")
    if counts.empty and "track" in crops.columns and not ok.empty and "track" in ok.columns:
        per_track = crops["track"].value_counts()
        counts = ok["track"].map(per_track).fillna(0).astype(float)
    counts = counts.to_numpy()
    if counts.size == 0:
        return _no_data(dest, title, "track .INFO `crop_count` (written by the crops rule)")
    fig, ax = _figure()
    hi = int(counts.max())
    width = max(1, math.ceil((hi + 1) / 40))
    bins = np.arange(-0.5, hi + width + 0.5, width)
    ax.hist(counts, bins=bins, color=TRACK_COLOR, edgecolor="white")
    ax.set_title(f"{title} (total {int(counts.sum())} crops)")
    ax.set_xlabel("Crops in the track" + (f" ({width} per bin)" if width > 1 else ""))
    ax.set_ylabel("Tracks")
    _integer_y(ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _count_note(ax, counts.size, "tracks")
    return _save(fig, dest)


def plot_rule_time(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Horizontal bars of seconds spent per rule (``summary.json`` time_per_rule)."""
    title = "Time per rule (this run)"
    per_rule = summary.get("time_per_rule") if isinstance(summary, dict) else None
    rows = []
    if isinstance(per_rule, dict):
        for rule, entry in per_rule.items():
            if not isinstance(entry, dict):
                continue
            seconds = pd.to_numeric(entry.get("seconds"), errors="coerce")
            if pd.notna(seconds):
                rows.append((str(rule), float(seconds), entry.get("jobs")))
    if not rows:
        return _no_data(
            dest, title, "`time_per_rule` in summary.json (written by the summary rule)"
        )
    rows.sort(key=lambda r: r[1], reverse=True)
    fig, ax = _figure()
    slots = max(len(rows), MIN_BAR_SLOTS)
    y = slots - 1 - np.arange(len(rows))
    bars = ax.barh(y, [r[1] for r in rows], color="#8c564b", height=0.7)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_ylim(-0.5, slots - 0.5)
    labels = [f"{s:.1f} s" + (f" · {jobs} jobs" if jobs is not None else "") for _, s, jobs in rows]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25 or 1)
    total = sum(r[1] for r in rows)
    ax.set_title(f"{title}: {total:.0f} s of job time in all")
    ax.set_xlabel("Job time (s, summed over the rule's jobs)")
    return _save(fig, dest)


def plot_duplicates(tracks: pd.DataFrame, crops: pd.DataFrame, summary: dict, dest) -> Path:
    """Groups of copies of one recording (``summary.json`` duplicates): each
    group's original and how many copies it has; the title says how many
    copies' crops the exports left out."""
    title = "Duplicate recordings"
    found = summary.get("duplicates") if isinstance(summary, dict) else None
    if not isinstance(found, dict):
        return _no_data(dest, title, "`duplicates` in summary.json (stages.duplicates)")
    groups = [g for g in found.get("members", []) if isinstance(g, list) and len(g) > 1]
    exports = summary.get("exports") or {}
    left_out = exports.get("duplicates_left_out")
    note = f"; {left_out} crops of copies left out of the exports" if left_out else ""
    fig, ax = _figure()
    if not groups:
        ax.text(0.5, 0.5, "No two tracks are the same recording", ha="center", va="center")
        ax.set_axis_off()
    else:
        shown = sorted(groups, key=lambda g: (-len(g), g[0]))[:TOP_GENRES]
        _hbars(ax, [g[0] for g in shown], [len(g) - 1 for g in shown], TRACK_COLOR, "{:.0f}")
        ax.set_xlabel("Copies of the original (track id on the left)")
    ax.set_title(f"{title}: {len(groups)} groups, {found.get('copies', 0)} copies{note}")
    return _save(fig, dest)


PlotFn = Callable[[pd.DataFrame, pd.DataFrame, dict, "str | Path"], Path]

PLOTS: dict[str, PlotFn] = {
    "bpm": plot_bpm,
    "key": plot_key,
    "loudness": plot_loudness,
    "duration": plot_duration,
    "aesthetics": plot_aesthetics,
    "genres": plot_genres,
    "moods": plot_moods,
    "crops_per_track": plot_crops_per_track,
    "rule_time": plot_rule_time,
    "duplicates": plot_duplicates,
}


def draw_all(output_root: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``<out_dir>/<stem>.png`` for every plot in ``PLOTS``; return the paths."""
    tracks, crops, summary = load_tables(output_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [fn(tracks, crops, summary, out / f"{stem}.png") for stem, fn in PLOTS.items()]
