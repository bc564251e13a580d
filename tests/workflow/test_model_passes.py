"""The model passes through the real workflow: tiny random AudioBox and Essentia
models of the real architectures, the real basic-pitch model."""

import json
import shutil

import pretty_midi
import pytest

from conftest import GUITARSET, LIBRARY, TRUMPET
from snakemake_runner import job_counts, make_library, run_snakemake, write_config

pytestmark = pytest.mark.slow

CROP_LENGTH = 131072  # 3 s at 44.1 kHz: a few crops per track, quickly
PASSES = ("aesthetics", "classifiers", "transcription")
GUITAR_ID = "guitar"


@pytest.fixture(scope="module")
def passes_run(tmp_path_factory):
    from model_fixtures.audiobox_tiny import write_tiny_audiobox
    from model_fixtures.essentia_tiny import write_tiny_essentia_models

    root = tmp_path_factory.mktemp("passes")
    # The trumpet (5.3 s) gives one crop.
    library = make_library(root, {"guitar.flac": GUITARSET, "trumpet.ogg": TRUMPET})
    models = root / "models"
    write_tiny_audiobox(models / "audiobox-aesthetics" / "checkpoint.pt")
    write_tiny_essentia_models(models)
    config = write_config(
        root / "config.yaml", library, root / "out", models_dir=str(models),
        crops={"length_samples": CROP_LENGTH},
        aesthetics={"enabled": True, "device": "cpu"},
        classifiers={"enabled": True},
        transcription={"enabled": True},
        export={"formats": []},
    )  # fmt: skip
    dry = run_snakemake(root, config, "--dry-run")
    run_snakemake(root, config)
    return root, config, job_counts(dry.stdout)


def model_loads(out, stage):
    return [
        int(line.split("model_loads=", 1)[1])
        for log in (out / "logs" / stage).glob("*.log")
        for line in log.read_text().splitlines()
        if "model_loads=" in line
    ]


def crop_infos(out, track):
    folder = out / "dataset" / track / "crops"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.INFO"))}


def test_one_batch_job_per_pass_and_one_model_load_each(passes_run):
    root, _, counts = passes_run
    for stage in PASSES:
        assert counts[f"{stage}_batch"] == 1  # 2 tracks, batch_size 16
        assert counts[stage] == 2  # each track collects its own record
        assert model_loads(root / "out", stage) == [1]
    assert not (root / "out" / "passes").exists()  # batch folders are temporary


def test_crop_and_track_info_hold_every_pass(passes_run):
    root, _, _ = passes_run
    out = root / "out"
    info = json.loads((out / "dataset" / GUITAR_ID / f"{GUITAR_ID}.INFO").read_text())
    crops = crop_infos(out, GUITAR_ID)
    assert len(crops) >= 5
    for fields in [info, *crops.values()]:
        for axis in ("content_enjoyment", "content_usefulness",
                     "production_complexity", "production_quality"):  # fmt: skip
            assert isinstance(fields[axis], float)
        assert isinstance(fields["essentia_genre"], dict)
        assert 0.0 <= fields["voice_probability"] <= 1.0
    # Different audio, different scores: the crops really reach the model.
    assert len({c["production_quality"] for c in crops.values()}) > 1
    for crop in crops.values():
        midi = out / "dataset" / GUITAR_ID / "crops" / crop["midi_file"]
        notes = pretty_midi.PrettyMIDI(str(midi)).instruments
        assert sum(len(i.notes) for i in notes) == crop["midi_note_count"]
    assert sum(c["midi_note_count"] for c in crops.values()) > 20  # guitar comping


def test_rerun_is_a_noop_and_new_tracks_make_new_batches_only(passes_run):
    root, config, _ = passes_run
    assert "Nothing to be done" in run_snakemake(root, config, "--dry-run").stdout
    # A track made again upstream re-runs the batch it was in, batch-mates
    # included (one job: the model is loaded once either way).
    (root / "out" / "tracks" / GUITAR_ID / f"{GUITAR_ID}.BEATS").unlink()
    counts = job_counts(run_snakemake(root, config, "--dry-run").stdout)
    assert counts["crops"] == 1
    for stage in PASSES:
        assert counts[f"{stage}_batch"] == 1 and counts[stage] == 2
    run_snakemake(root, config)
    shutil.copy(LIBRARY / "vocadito_1.flac", root / "library" / "vocadito.flac")
    counts = job_counts(run_snakemake(root, config, "--dry-run").stdout)
    for stage in PASSES:
        assert counts[f"{stage}_batch"] == 1 and counts[stage] == 1  # the new track only
    assert counts["assemble"] == 1


def test_passes_are_off_without_models_and_the_summary_says_so(tmp_path):
    library = make_library(tmp_path, {"trumpet.ogg": TRUMPET})
    config = write_config(
        tmp_path / "config.yaml", library, tmp_path / "out", models_dir=str(tmp_path / "models"),
        transcription={"enabled": False}, export={"formats": []},
    )  # fmt: skip
    counts = job_counts(run_snakemake(tmp_path, config, "--dry-run").stdout)
    assert not any(stage in counts for stage in PASSES)
    run_snakemake(tmp_path, config)
    notes = json.loads((tmp_path / "out" / "summary.json").read_text())["notes"]
    assert any(n.startswith("aesthetics: off, no model") and "make models" in n for n in notes)
    assert any(n.startswith("classifiers: off, no model") for n in notes)
    assert any(n.startswith("captions: off, no model") and "music-flamingo" in n for n in notes)
    assert "transcription: off (transcription.enabled: false)" in notes


def test_an_enabled_pass_without_its_model_stops_with_the_file_and_the_command(tmp_path):
    library = make_library(tmp_path, {"trumpet.ogg": TRUMPET})
    config = write_config(
        tmp_path / "config.yaml", library, tmp_path / "out", models_dir=str(tmp_path / "models"),
        aesthetics={"enabled": True},
    )  # fmt: skip
    result = run_snakemake(tmp_path, config, "--dry-run", check=False)
    assert result.returncode != 0
    assert "audiobox-aesthetics/checkpoint.pt" in result.stdout
    assert "make models" in result.stdout


def test_captions_hear_each_crop_and_use_the_labels(tmp_path):
    """Tiny random Music Flamingo: one load, a caption per selected crop, the
    prompt filled with the classifiers' genres, provenance in the .INFO."""
    from model_fixtures.essentia_tiny import write_tiny_essentia_models
    from model_fixtures.flamingo_tiny import write_tiny_flamingo

    library = make_library(tmp_path, {"guitar.flac": GUITARSET})
    models = tmp_path / "models"
    write_tiny_flamingo(models / "music-flamingo")
    write_tiny_essentia_models(models)
    config = write_config(
        tmp_path / "config.yaml", library, tmp_path / "out", models_dir=str(models),
        crops={"length_samples": CROP_LENGTH},
        transcription={"enabled": False}, classifiers={"enabled": True},
        captions={"enabled": True, "n_gpu_layers": 0, "max_tokens": 12,
                  "prompts": {"caption": "Describe it. Genres: {genres}.",
                              "mood": "One word for the mood."}},
        export={"formats": []},
    )  # fmt: skip
    counts = job_counts(run_snakemake(tmp_path, config, "--dry-run").stdout)
    assert counts["captions_batch"] == 1 and counts["captions"] == 1
    run_snakemake(tmp_path, config)
    out = tmp_path / "out"
    assert model_loads(out, "captions") == [1]
    crops = crop_infos(out, GUITAR_ID)
    captions = [c["music_flamingo_caption"] for c in crops.values()]
    assert all(isinstance(c, str) and c for c in captions)
    assert len(set(captions)) > 1  # different audio, different greedy text
    for crop in crops.values():
        assert crop["music_flamingo_mood"]
        genre = next(iter(crop["essentia_genre"])).split("---")[-1].lower()
        assert genre in crop["caption_prompt_caption"]
        assert crop["caption_model"] == "music-flamingo-tiny.F32.gguf"
        assert len(crop["caption_model_sha256"]) == 12
    from mirflow.info_schema import dataset_errors

    assert dataset_errors(out / "dataset") == []  # the caption fields match the schema
    assert "Nothing to be done" in run_snakemake(tmp_path, config, "--dry-run").stdout


def test_every_info_with_every_pass_matches_the_published_schema(passes_run):
    from mirflow.info_schema import dataset_errors, info_files

    dataset = passes_run[0] / "out" / "dataset"
    assert sum(kind == "crop" for _, kind in info_files(dataset)) >= 6
    assert dataset_errors(dataset) == []
    for path, kind in info_files(dataset):
        info = json.loads(path.read_text())
        if kind == "crop" and info["status"] == "ok":
            made_by = info["provenance"]
            assert {"aesthetics", "classifiers", "transcription"} <= set(made_by), path
            assert made_by["aesthetics"]["models"] and made_by["classifiers"]["models"]
            assert made_by["classifiers"]["params"]["threshold"] == 0.1
