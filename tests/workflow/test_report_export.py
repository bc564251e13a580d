"""Exports and the HTML report through the real workflow, on a small real library."""

import json

import pandas as pd
import pytest

from conftest import GUITARSET, TRUMPET
from snakemake_runner import make_library, run_snakemake, write_config

pytestmark = pytest.mark.slow

PLOTS = ["bpm", "key", "loudness", "duration", "aesthetics", "genres", "moods",
         "crops_per_track", "rule_time", "duplicates"]  # fmt: skip


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    library = make_library(root, {"guitar.flac": GUITARSET, "trumpet.ogg": TRUMPET})
    config = write_config(root / "config.yaml", library, root / "out",
                          crops={"length_samples": 65536})  # fmt: skip
    run_snakemake(root, config)
    return root, config, root / "out"


def test_report_builds_with_every_figure(small_run):
    root, config, out = small_run
    run_snakemake(root, config, "--report", str(root / "report.html"))
    html = (root / "report.html").read_text(errors="replace")
    for name in PLOTS:
        assert f"{name}.png" in html, name
        assert (out / "report" / f"{name}.png").stat().st_size > 1000


def test_exports_hold_every_ok_crop_in_each_format(small_run):
    _, _, out = small_run
    manifest = pd.read_parquet(out / "manifest.parquet")
    crops = manifest[(manifest["kind"] == "crop") & (manifest["status"] == "ok")]
    lines = (out / "exports" / "audiocraft" / "data.jsonl").read_text().splitlines()
    assert len(lines) == len(crops) > 5
    entry = json.loads(lines[0])
    assert {"path", "duration", "sample_rate", "amplitude", "weight", "info_path"} <= set(entry)
    music_info = json.loads((out / "exports" / "audiocraft" / f"{crops.iloc[0]['crop']}.json")
                            .read_text())  # fmt: skip
    for field in (
        "title",
        "artist",
        "key",
        "bpm",
        "genre",
        "moods",
        "keywords",
        "description",
        "name",
        "instrument",
        "sample_rate",
        "file_extension",
        "duration",
    ):
        assert field in music_info, field
    assert (out / "exports" / "stable_audio" / "dataset.json").exists()
    assert (out / "exports" / "stable_audio" / "custom_metadata.py").exists()
    prompts = list((out / "exports" / "acestep").glob("*_prompt.txt"))
    assert len(prompts) == len(crops)
    table = pd.read_parquet(out / "exports" / "crops.parquet")
    assert len(table) == len(crops) and "lufs" in table.columns
    tracks = pd.read_parquet(out / "exports" / "tracks.parquet")
    assert len(tracks) == 2 and {"bpm", "key", "lufs", "sha256"} <= set(tracks.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exports"]["kept"] == len(crops) and summary["exports"]["dropped"] == 0


def test_filters_drop_crops_and_the_summary_counts_them(small_run):
    root, _, out = small_run
    strict = write_config(root / "strict.yaml", root / "library", out,
                          crops={"length_samples": 65536},
                          export={"filters": {"min_lufs": -25.0}})  # fmt: skip
    run_snakemake(root, strict)
    summary = json.loads((out / "summary.json").read_text())
    lufs = pd.read_parquet(out / "manifest.parquet")
    assert summary["exports"]["dropped"] > 0
    assert (
        summary["exports"]["kept"] + summary["exports"]["dropped"] == (lufs["kind"] == "crop").sum()
    )


def test_tempo_fields_reach_the_exports_and_an_undefined_tempo_no_prompt(small_run):
    """The trumpet loop's estimators disagree (README "Tempo"): no bpm anywhere
    for its crops; the guitar's crops carry theirs into every prompt."""
    _, _, out = small_run
    tracks = pd.read_parquet(out / "exports" / "tracks.parquet").set_index("track")
    for column in ("bpm_is_defined", "bpm_confidence", "bpm_madmom", "bpm_essentia"):
        assert column in tracks.columns, column
    assert not tracks.loc["trumpet", "bpm_is_defined"] and pd.isna(tracks.loc["trumpet", "bpm"])
    assert tracks.loc["guitar", "bpm_is_defined"]
    acestep = out / "exports" / "acestep"
    for track, defined in (("trumpet", False), ("guitar", True)):
        prompts = sorted(acestep.glob(f"{track}_*_prompt.txt"))
        assert prompts, track
        for prompt in prompts:
            assert ("bpm" in prompt.read_text()) is defined, prompt.name
            crop = prompt.name.removesuffix("_prompt.txt")
            music_info = json.loads((out / "exports" / "audiocraft" / f"{crop}.json").read_text())
            assert (music_info["bpm"] is not None) is defined, crop
