"""Separation through the real workflow, with tiny random models of the real
architectures (HTDemucs through demucs, BS-RoFormer through audio-separator)."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import GUITARSET, LIBRARY, TRUMPET
from mirflow.audio import load_audio
from mirflow.stems import write_stem
from snakemake_runner import job_counts, run_snakemake, write_config

pytestmark = pytest.mark.slow

CROP_LENGTH = 65536
DEMO_CROP = 524288  # the default: 29 crops from the demo library
GUITAR_ID = "guitarset_00_BN1-129-Eb_comp_mic"


def library_of_two(root):
    library = root / "library"
    library.mkdir()
    shutil.copy(GUITARSET, library / "guitar.flac")
    shutil.copy(TRUMPET, library / "trumpet name.ogg")
    return library


def demo_library(root):
    """The whole demo library (7 real recordings, 421 s)."""
    library = root / "library"
    shutil.copytree(LIBRARY, library, ignore=shutil.ignore_patterns("*.md"))
    return library


def separation_config(root, library, backend, model_key, model, crop_length=CROP_LENGTH, **extra):
    return write_config(
        root / "config.yaml", library, root / "out", models_dir=str(root / "models"),
        source_separation={"enabled": True, "backend": backend, "device": "cpu",
                           "threads": 1, backend: {model_key: model}, **extra},
        crops={"length_samples": crop_length},
    )  # fmt: skip


def check_stems_and_crops(out, track, expected_stems, crop_length=CROP_LENGTH):
    """Stems of the mix's length and rate, cut into the crops; returns how far
    the stems' sum is from the mix (max absolute sample difference)."""
    source = json.loads((out / "tracks" / track / "source.json").read_text())["track"]["source"]
    mix, _ = load_audio(out.parent / "library" / source, sr=44100)
    stems_dir = out / "dataset" / track / "stems"
    files = sorted(p.name for p in stems_dir.iterdir())
    assert files == sorted(f"{s}.flac" for s in expected_stems)
    total = 0
    for name in expected_stems:
        audio, stem_sr = sf.read(stems_dir / f"{name}.flac", always_2d=True)
        assert stem_sr == 44100 and audio.shape[0] == mix.shape[1]  # the mix's length and rate
        total = total + audio.T
    info = json.loads((out / "dataset" / track / f"{track}.INFO").read_text())
    assert info["status"] == "ok" and info["stems_origin"] == "separated"
    assert set(info["stem_files"]) == set(expected_stems)
    for name in expected_stems:
        assert f"lufs_{name}" in info
    for name in ("drums", "bass", "other"):
        assert f"onset_density_{name}" in info and f"syncopation_{name}" in info
    crops = sorted((out / "dataset" / track / "crops").glob("*.INFO"))
    assert crops
    crop = json.loads(crops[0].read_text())
    assert set(crop["stem_files"]) == set(expected_stems)
    for stem_file in crop["stem_files"].values():
        data, _ = sf.read(crops[0].parent / stem_file, always_2d=True)
        assert data.shape == (crop_length, 2)
    stereo_mix = np.repeat(mix, 2, axis=0) if mix.shape[0] == 1 else mix
    return float(np.max(np.abs(total - stereo_mix)))


def model_loads(out):
    logs = list((out / "logs" / "separate").glob("*.log"))
    return [
        json.loads(line.split("model_loads=", 1)[1])
        for log in logs
        for line in log.read_text().splitlines()
        if "model_loads=" in line
    ]


def test_demucs_end_to_end(tmp_path):
    from model_fixtures.demucs_tiny import write_tiny_htdemucs

    library = demo_library(tmp_path)
    name = write_tiny_htdemucs(tmp_path / "models" / "demucs", name="tiny_htdemucs")
    config = separation_config(tmp_path, library, "demucs", "model", name, DEMO_CROP)
    dry = run_snakemake(tmp_path, config, "--dry-run")
    assert job_counts(dry.stdout)["separate"] == 1  # 7 tracks, batch_size 8: one job
    run_snakemake(tmp_path, config)
    out = tmp_path / "out"
    for track in (p.name for p in (out / "dataset").iterdir()):
        if track != "sorohanro_-_solo-trumpet-06.hq":  # 5.3 s: shorter than one crop
            check_stems_and_crops(out, track, ["drums", "bass", "other", "vocals"], DEMO_CROP)
    error = check_stems_and_crops(out, GUITAR_ID, ["drums", "bass", "other", "vocals"], DEMO_CROP)
    print(f"\ndemucs (tiny, random): max |sum(stems) - mix| = {error:.2e}")
    assert model_loads(out) == [1]
    assert not (out / "separation").exists()  # batch folders are temporary
    again = run_snakemake(tmp_path, config, "--dry-run")
    assert "Nothing to be done" in again.stdout
    # Existing stems are final: another format or model in the config does
    # not separate them again (delete a track's stems/ to redo it).
    changed = separation_config(tmp_path, library, "demucs", "model", "htdemucs", DEMO_CROP,
                                format="mp3")  # fmt: skip
    assert "Nothing to be done" in run_snakemake(tmp_path, changed, "--dry-run").stdout
    info = json.loads((out / "dataset" / GUITAR_ID / f"{GUITAR_ID}.INFO").read_text())
    made_by = info["provenance"]["stems"]
    assert made_by["tools"]["demucs"] == "4.1.0" and made_by["params"]["demucs"]["shifts"] == 1
    assert f"{name}.yaml" in made_by["models"] and len(made_by["models"]) >= 2
    assert "stems_batch_members" not in info and "stems_config" not in info
    for path in (out / "dataset").rglob("*.INFO"):  # no library path, own or another track's
        assert str(library) not in path.read_text(), path
    # A deleted stem is seen: the dry-run names its jobs, a plain re-run restores it.
    config = separation_config(tmp_path, library, "demucs", "model", name, DEMO_CROP)
    (out / "tracks" / GUITAR_ID / "stems" / "drums.flac").unlink()
    dry = run_snakemake(tmp_path, config, "--dry-run").stdout
    assert f"{GUITAR_ID}: drums.flac missing in its stems" in dry
    counts = job_counts(dry)
    assert counts["separate"] == 1 and counts["stems"] == 1
    run_snakemake(tmp_path, config)
    check_stems_and_crops(out, GUITAR_ID, ["drums", "bass", "other", "vocals"], DEMO_CROP)
    assert "Nothing to be done" in run_snakemake(tmp_path, config, "--dry-run").stdout


def test_bs_roformer_end_to_end_folds_extra_stems(tmp_path):
    from model_fixtures.roformer_tiny import write_tiny_bs_roformer

    library = demo_library(tmp_path)
    model_file = write_tiny_bs_roformer(tmp_path / "models")
    config = separation_config(
        tmp_path, library, "bs_roformer", "model_file", model_file, DEMO_CROP
    )
    run_snakemake(tmp_path, config)
    out = tmp_path / "out"
    error = check_stems_and_crops(out, GUITAR_ID, ["drums", "bass", "other", "vocals"], DEMO_CROP)
    print(f"\nbs_roformer (tiny, random): max |sum(stems) - mix| = {error:.2e}")
    info = json.loads((out / "dataset" / GUITAR_ID / f"{GUITAR_ID}.INFO").read_text())
    assert {"guitar", "piano"} <= set(info["stems_model_outputs"])
    assert model_loads(out) == [1]
    from mirflow.info_schema import dataset_errors

    assert dataset_errors(out / "dataset") == []  # stems fields match the published schema


def test_bad_checkpoint_fails_the_tracks_with_a_clear_error_and_the_run_goes_on(tmp_path):
    from model_fixtures.roformer_tiny import write_tiny_bs_roformer

    library = library_of_two(tmp_path)
    model_file = write_tiny_bs_roformer(tmp_path / "models")
    ckpt = tmp_path / "models" / "audio-separator" / model_file
    ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    config = separation_config(tmp_path, library, "bs_roformer", "model_file", model_file)
    run_snakemake(tmp_path, config)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tracks_failed"] == 2
    assert all(model_file in f["error"] for f in summary["failed_tracks"])


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_existing_stems_skip_separation(tmp_path, fmt):
    """Stems beside the track in the library are taken: no separate job runs."""
    library = tmp_path / "library"
    (library / "Song").mkdir(parents=True)
    shutil.copy(TRUMPET, library / "Song" / "mix.ogg")
    mix, sr = load_audio(TRUMPET)
    for name, part in zip(("drums", "bass", "other", "vocals"), (0.1, 0.2, 0.3, 0.4), strict=True):
        write_stem(library / "Song" / f"{name}.{fmt}", mix * part, sr, fmt)
    config = separation_config(tmp_path, library, "demucs", "model", "htdemucs_absent",
                               enabled=True)  # fmt: skip
    counts = job_counts(run_snakemake(tmp_path, config, "--dry-run").stdout)
    assert "separate" not in counts and counts["stems"] == 1 and counts["ingest"] == 1
    run_snakemake(tmp_path, config)
    info = json.loads((tmp_path / "out" / "dataset" / "Song__mix" / "Song__mix.INFO").read_text())
    assert info["stems_origin"] == "library"
    assert info["stem_files"]["drums"] == f"stems/drums.{fmt}"
    # A deleted stem is remade from the library by a plain re-run. (Not truncated
    # in place here: an unchanged library stem is a hard link to the library's file.)
    stem = tmp_path / "out" / "tracks" / "Song__mix" / "stems" / f"drums.{fmt}"
    stem.unlink()
    dry = run_snakemake(tmp_path, config, "--dry-run").stdout
    assert job_counts(dry)["stems"] == 1 and "separate" not in job_counts(dry)
    run_snakemake(tmp_path, config)
    assert load_audio(stem)[0].shape == load_audio(library / "Song" / f"drums.{fmt}")[0].shape
    assert "Nothing to be done" in run_snakemake(tmp_path, config, "--dry-run").stdout


def test_separation_is_off_without_a_model_and_the_summary_says_so(tmp_path):
    library = library_of_two(tmp_path)
    config = write_config(
        tmp_path / "config.yaml",
        library,
        tmp_path / "out",
        models_dir=str(tmp_path / "models"),
        stages={"crops": False},
    )
    counts = job_counts(run_snakemake(tmp_path, config, "--dry-run").stdout)
    assert "separate" not in counts and "stems" not in counts
    run_snakemake(tmp_path, config)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any(
        "source separation: off" in note and "make models" in note for note in summary["notes"]
    )
