"""The report's plots: every PNG is written, with and without the optional passes."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mirflow import report_plots  # noqa: E402
from mirflow.report_plots import PLOTS, draw_all, load_tables  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TRACKS = [
    # id, bpm, key, lufs, duration_s, genre tag, crop count
    ("t_a", 120.0, "Eb:major", -14.2, 200.5, "Rock", 3),
    ("t_b", 92.5, "F#:minor", -18.9, 65.0, None, 1),
    ("t_c", 174.0, "C:major", None, 31.0, "Rock", 0),  # silent: lufs is null
]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _fake_output(root: Path, later_passes: bool, failed_track: bool = True) -> Path:
    rows = []
    crop_i = 0
    for tid, bpm, key, lufs, dur, genre, n_crops in TRACKS:
        info_rel = f"dataset/{tid}/{tid}.INFO"
        _write_json(
            root / info_rel,
            {
                "track": tid,
                "bpm": bpm,
                "key": key,
                "lufs": lufs,
                "duration_s": dur,
                "track_metadata_genre": genre,
                "crop_count": n_crops,
                "stem_files": {},
                "status": "ok",
                "error": "",
            },
        )
        rows.append(dict(kind="track", track=tid, crop=None, info=info_rel, status="ok"))
        for i in range(n_crops):
            crop = f"{tid}_{i:03d}"
            crop_rel = f"dataset/{tid}/crops/{crop}.INFO"
            info = {
                "track": tid,
                "crop": crop,
                "bpm": bpm + i,
                "lufs": -15.0 - crop_i,
                "time_series": {"rms": [0.1, 0.2]},
                "status": "ok",
            }
            if later_passes:
                info.update(
                    content_enjoyment=5.0 + 0.3 * crop_i,
                    content_usefulness=6.0 - 0.2 * crop_i,
                    production_complexity=4.0 + 0.1 * crop_i,
                    production_quality=7.0,
                    essentia_genre={"Electronic---House": 0.7, "Rock---Indie": 0.2 + 0.1 * i},
                    essentia_mood={"happy": 0.6, "energetic": 0.3, "dark": 0.05 * crop_i},
                )
            _write_json(root / crop_rel, info)
            rows.append(dict(kind="crop", track=tid, crop=crop, info=crop_rel, status="ok"))
            crop_i += 1
    if failed_track:
        info_rel = "dataset/t_bad/t_bad.INFO"
        _write_json(
            root / info_rel,
            {"track": "t_bad", "status": "failed", "error": "not audio", "bpm": None},
        )
        rows.append(dict(kind="track", track="t_bad", crop=None, info=info_rel, status="failed"))
    manifest = pd.DataFrame(rows)
    manifest["audio"] = ""
    manifest["error"] = ""
    manifest["source"] = manifest["track"] + ".flac"
    manifest["duration_s"] = 1.0
    manifest["sample_rate"] = pd.array([44100] * len(rows), dtype="Int64")
    manifest["channels"] = pd.array([2] * len(rows), dtype="Int64")
    manifest.to_parquet(root / "manifest.parquet")
    _write_json(
        root / "summary.json",
        {
            "tracks": 4,
            "time_per_rule": {
                "ingest": {"jobs": 4, "seconds": 1.5},
                "rhythm": {"jobs": 3, "seconds": 40.2},
                "crop_features": {"jobs": 3, "seconds": 12.0},
            },
            "duplicates": {"groups": 1, "copies": 2, "members": [["t_a", "t_b", "t_c"]]},
            "exports": {"kept": 3, "dropped": 0, "duplicates_left_out": 4},
        },
    )
    return root


def _check_pngs(paths: list[Path], out_dir: Path) -> None:
    assert [p.name for p in paths] == [f"{stem}.png" for stem in PLOTS]
    for path in paths:
        assert path.parent == out_dir
        data = path.read_bytes()
        assert len(data) > 1000, path
        assert data.startswith(PNG_MAGIC), path
        image = mpimg.imread(path)
        assert image.shape[0] == 450 and image.shape[1] == 800, (path, image.shape)


@pytest.mark.parametrize("later_passes", [True, False], ids=["with_passes", "without_passes"])
def test_draw_all_writes_every_png(tmp_path, later_passes):
    root = _fake_output(tmp_path / "out", later_passes)
    out_dir = tmp_path / "plots"
    _check_pngs(draw_all(root, out_dir), out_dir)


def test_load_tables(tmp_path):
    root = _fake_output(tmp_path / "out", later_passes=True)
    tracks, crops, summary = load_tables(root)
    assert len(tracks) == 4 and len(crops) == 4
    assert set(tracks["status"]) == {"ok", "failed"}
    assert tracks.set_index("track").loc["t_a", "key"] == "Eb:major"
    # dict fields the plots need are kept as objects; other nested fields are dropped
    assert isinstance(crops["essentia_genre"].iloc[0], dict)
    assert "time_series" not in crops.columns and "stem_files" not in tracks.columns
    assert summary["time_per_rule"]["rhythm"]["jobs"] == 3


def test_without_passes_the_optional_plots_say_no_data(tmp_path, monkeypatch):
    root = _fake_output(tmp_path / "out", later_passes=False)
    calls: list[tuple[str, str]] = []
    original = report_plots._no_data

    def spy(dest, title, what):
        calls.append((Path(dest).stem, what))
        return original(dest, title, what)

    monkeypatch.setattr(report_plots, "_no_data", spy)
    draw_all(root, tmp_path / "plots")
    assert {stem for stem, _ in calls} == {"aesthetics", "moods"}
    assert all(what for _, what in calls)


@pytest.fixture
def titles(monkeypatch):
    """The title of every figure saved while the test runs."""
    seen: list[str] = []
    original = report_plots._save

    def spy(fig, dest):
        seen.append(fig.axes[0].get_title())
        return original(fig, dest)

    monkeypatch.setattr(report_plots, "_save", spy)
    return seen


def test_the_duplicates_plot_counts_groups_copies_and_crops_left_out(tmp_path, titles):
    tracks, crops, summary = load_tables(_fake_output(tmp_path / "out", later_passes=True))
    report_plots.plot_duplicates(tracks, crops, summary, tmp_path / "d.png")
    report_plots.plot_duplicates(tracks, crops, {**summary, "duplicates": {}}, tmp_path / "n.png")
    assert titles[0] == (
        "Duplicate recordings: 1 groups, 2 copies; 4 crops of copies left out of the exports"
    )
    assert (
        titles[1]
        == "Duplicate recordings: 0 groups, 0 copies; 4 crops of copies left out of the exports"
    )


def test_genres_fall_back_to_tags(tmp_path, titles):
    for later in (True, False):
        root = _fake_output(tmp_path / f"out_{later}", later_passes=later)
        tracks, crops, summary = load_tables(root)
        report_plots.plot_genres(tracks, crops, summary, tmp_path / f"g_{later}.png")
    assert "Essentia" in titles[0] and "genre tags" in titles[1]


def test_empty_output_every_plot_says_no_data(tmp_path, monkeypatch):
    """Only failed tracks, no summary.json: nothing to plot, nothing fails."""
    root = tmp_path / "out"
    info_rel = "dataset/t_bad/t_bad.INFO"
    _write_json(root / info_rel, {"track": "t_bad", "status": "failed", "error": "x"})
    pd.DataFrame(
        [dict(kind="track", track="t_bad", crop=None, info=info_rel, status="failed")]
    ).to_parquet(root / "manifest.parquet")
    calls: list[str] = []
    original = report_plots._no_data

    def spy(dest, title, what):
        calls.append(Path(dest).stem)
        return original(dest, title, what)

    monkeypatch.setattr(report_plots, "_no_data", spy)
    out_dir = tmp_path / "plots"
    _check_pngs(draw_all(root, out_dir), out_dir)
    assert sorted(calls) == sorted(PLOTS)


@pytest.mark.parametrize(
    "key, expected",
    [
        ("C:major", (0, "major")),
        ("A:minor", (0, "minor")),
        ("Eb:major", (9, "major")),
        ("D#:major", (9, "major")),
        ("F#:minor", (3, "minor")),
        ("Bb:minor", (7, "minor")),
        ("nonsense", None),
        (None, None),
    ],
)
def test_key_position(key, expected):
    assert report_plots._key_position(key) == expected


@pytest.mark.parametrize("stem", list(PLOTS))
def test_every_plot_has_a_caption(stem):
    caption = REPO / "workflow" / "report" / f"{stem}.rst"
    assert caption.is_file(), caption
    assert caption.read_text().strip()


def test_key_labels_match_positions():
    for i, (major, minor) in enumerate(
        zip(report_plots._MAJOR_FIFTHS, report_plots._MINOR_FIFTHS, strict=True)
    ):
        assert report_plots._key_position(f"{major}:major") == (i, "major")
        assert report_plots._key_position(f"{minor[:-1]}:minor") == (i, "minor")
