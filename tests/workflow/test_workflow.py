"""The whole workflow on a small real library: complete, no-op, partial re-run,
a corrupt file among good ones, and a file name built to break shells."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import GUITARSET, TRUMPET
from mirflow.timbral import KEYS as TIMBRAL_KEYS
from snakemake_runner import job_counts, run_snakemake, snapshot, write_config

pytestmark = pytest.mark.slow

ODD_NAME = "Odd 'single' \"double\" $(touch pwned) `tick` {braces} ünïcødé 🎺.ogg"
CROP_LENGTH = 65536  # 1.5 s at 44.1 kHz: several crops from short clips


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    library = root / "library"
    (library / "sub dir").mkdir(parents=True)
    shutil.copy(GUITARSET, library / "sub dir" / "guitar.flac")
    shutil.copy(TRUMPET, library / ODD_NAME)
    (library / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 40)
    before = snapshot(library)
    config = write_config(
        root / "config.yaml", library, root / "out",
        crops={"length_samples": CROP_LENGTH},
        # One track per batch: a re-run of one track's pass then touches no
        # other (batch-mates re-run with it: tests/workflow/test_model_passes.py).
        transcription={"batch_size": 1},
        # The one group off by default, so that every group runs somewhere
        # through the workflow (about 25 s here).
        features={"timbral": True},
    )  # fmt: skip
    result = run_snakemake(root, config)
    return {
        "root": root,
        "library": library,
        "out": root / "out",
        "config": config,
        "before": before,
        "result": result,
    }


def read_info(path):
    return json.loads(path.read_text())


def test_run_completes_with_the_bad_file_failed_and_explained(demo_run):
    summary = json.loads((demo_run["out"] / "summary.json").read_text())
    assert (summary["tracks"], summary["tracks_ok"], summary["tracks_failed"]) == (3, 2, 1)
    [failed] = summary["failed_tracks"]
    assert failed["track"] == "broken" and failed["source"] == "broken.flac"
    assert "broken.flac" in failed["error"] and "ingest" in failed["error"]
    assert summary["crops_processed"] > 5 and summary["crops_failed"] == 0
    assert summary["audio_duration_s"] == pytest.approx(22.32 + 5.33, abs=0.05)
    assert summary["realtime_factor"] > 0
    assert {"ingest", "rhythm", "crops", "assemble"} <= set(summary["time_per_rule"])
    assert "mirflow summary" in demo_run["result"].stdout


def test_track_info_holds_the_documented_keys(demo_run):
    info = read_info(demo_run["out"] / "dataset" / "sub_dir__guitar" / "sub_dir__guitar.INFO")
    for key in (
        "source",
        "sha256",
        "duration_s",
        "sample_rate",
        "channels",
        "bpm",
        "bpm_is_defined",
        "bpm_confidence",
        "bpm_madmom",
        "bpm_essentia",
        "bpm_percival",
        "key",
        "beats_file",
        "lufs",
        "lra",
        "spectral_flatness",
        "rms_energy_air",
        "chroma_11",
        "beat_count",
        "onset_density",
        "syncopation",
        "rhythmic_complexity",
        "track_metadata_artist",
        *TIMBRAL_KEYS,
    ):
        assert key in info, key
    assert info["source"] == "sub dir/guitar.flac" and info["status"] == "ok"
    beats = np.loadtxt(demo_run["out"] / "dataset" / "sub_dir__guitar" / info["beats_file"])
    assert beats.shape[1] == 2 and set(beats[:, 1]) <= {1, 2, 3, 4}


def test_crops_are_full_length_with_their_beats_and_features(demo_run):
    crops = sorted((demo_run["out"] / "dataset" / "sub_dir__guitar" / "crops").glob("*.INFO"))
    assert len(crops) >= 5
    for path in crops:
        info = read_info(path)
        audio, sr = sf.read(path.parent / info["audio_file"], always_2d=True)
        assert audio.shape == (CROP_LENGTH, 2) and sr == 44100
        assert 0 <= info["position_in_file"] < 1
        assert info["lufs"] is not None and "time_series" in info
        assert all(0 <= info[key] <= 100 for key in TIMBRAL_KEYS), info
        # The crop's slice of the track's series: one frame per 2048 samples.
        frames = info["time_series"]
        assert {len(curve) for curve in frames.values()} == {CROP_LENGTH // 2048}
        assert info["time_series_frame_rate"] == pytest.approx(44100 / 2048)
        assert (path.parent / info["beats_file"]).exists()
    track = read_info(crops[0].parent.parent / "sub_dir__guitar.INFO")
    table = pd.read_parquet(crops[0].parent.parent / track["time_series_file"])
    assert abs(len(table) - (1 + int(track["duration_s"] * 44100) // 2048)) <= 1
    first = read_info(crops[0])
    start = round(first["start_s"] * first["time_series_frame_rate"])
    curve = first["time_series"]["loudness_short_term"]
    assert curve[0] == pytest.approx(table["loudness_short_term"][start], rel=1e-5)


def test_odd_name_survives_and_no_command_runs(demo_run):
    dataset = demo_run["out"] / "dataset"
    [odd] = [p for p in dataset.iterdir() if p.name.startswith("Odd")]
    info = read_info(odd / f"{odd.name}.INFO")
    assert info["source"] == ODD_NAME and info["status"] == "ok"
    assert not list(demo_run["root"].rglob("pwned"))


def test_manifest_lists_tracks_and_crops(demo_run):
    manifest = pd.read_parquet(demo_run["out"] / "manifest.parquet")
    assert {"kind", "track", "audio", "info", "status", "error"} <= set(manifest.columns)
    assert (manifest["kind"] == "track").sum() == 3
    broken = manifest[manifest["track"] == "broken"].iloc[0]
    assert broken["status"] == "failed" and "broken.flac" in broken["error"]
    crops = manifest[manifest["kind"] == "crop"]
    assert (crops["status"] == "ok").all()
    assert all((demo_run["out"] / p).exists() for p in crops["audio"])


def test_library_untouched_and_no_temporaries(demo_run):
    assert snapshot(demo_run["library"]) == demo_run["before"]
    assert not list(demo_run["out"].rglob(".mirflow-tmp-*"))


def test_rerun_is_a_noop(demo_run):
    result = run_snakemake(demo_run["root"], demo_run["config"], "--dry-run")
    assert "Nothing to be done" in result.stdout


def test_deleting_a_beat_grid_reruns_only_that_track(demo_run):
    out = demo_run["out"]
    (out / "tracks" / "sub_dir__guitar" / "sub_dir__guitar.BEATS").unlink()
    other = next(p for p in (out / "dataset").iterdir() if p.name.startswith("Odd"))
    other_info = other / f"{other.name}.INFO"
    mtime = other_info.stat().st_mtime_ns
    dry = run_snakemake(demo_run["root"], demo_run["config"], "--dry-run")
    assert job_counts(dry.stdout) == {
        "rhythm": 1, "crops": 1, "features_batch": 1, "features": 1,
        "transcription_batch": 1, "transcription": 1,
        "assemble": 1, "export": 1, "summary": 1, "report_plots": 1, "all": 1,  # once per dataset
    }  # fmt: skip
    run_snakemake(demo_run["root"], demo_run["config"])
    assert other_info.stat().st_mtime_ns == mtime
    assert (out / "dataset" / "sub_dir__guitar" / "sub_dir__guitar.BEATS").exists()


def test_every_info_matches_the_published_schema(demo_run):
    """workflow/schemas/{track,crop}_info.schema.json, the failed track's too."""
    from mirflow.info_schema import dataset_errors, info_files

    dataset = demo_run["out"] / "dataset"
    kinds = [kind for _, kind in info_files(dataset)]
    assert kinds.count("track") == 3 and kinds.count("crop") >= 5
    assert dataset_errors(dataset) == []
    for path, _kind in info_files(dataset):  # provenance of each stage that wrote fields
        info = read_info(path)
        if info["status"] == "ok":
            stages = {"ingest", "rhythm", "crops", "features"}
            assert stages <= set(info["provenance"]), (path, sorted(info["provenance"]))
            assert str(demo_run["library"]) not in path.read_text()
