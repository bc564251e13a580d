"""The run's plan (mirflow.plan): which stages run, which tracks each batched
rule's jobs take, and when the run must stop for missing models."""

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from mirflow import plan
from mirflow.passes import PASSES
from mirflow.records import StageResult, write_result

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def config(tmp_path, **sections):
    """The shipped config with ``sections`` merged in, models in an empty folder."""
    result = copy.deepcopy(CONFIG)
    result["models_dir"] = str(tmp_path / "models")
    for name, values in sections.items():
        result[name] = {**result[name], **values}
    return result


def record(path: Path, batch: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, StageResult("x", data={"batch": batch}))
    os.utime(path, (mtime, mtime))


def touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))


def test_a_pass_without_its_model_is_off_with_auto_and_stops_the_run_with_true(tmp_path):
    stages = plan.Stages.from_config(
        config(tmp_path, aesthetics={"enabled": "auto"}), "out", PASSES
    )
    assert not stages.passes["aesthetics"]
    assert any("aesthetics: off, no model" in note for note in stages.notes)

    cfg = config(tmp_path, aesthetics={"enabled": True})
    stages = plan.Stages.from_config(cfg, str(tmp_path / "out"), PASSES)
    assert stages.passes["aesthetics"]
    made, _ = plan.make_plan(stages, cfg, {"a": {}, "b": {}})
    assert sorted(t for m in made["passes"]["aesthetics"][1].values() for t in m) == ["a", "b"]
    stop = plan.missing_models(stages, made)
    assert stop.startswith("mirflow: aesthetics needs") and "make models" in stop
    # Nothing pending (every track finished): the run goes on without the model.
    done = {**made, "passes": {**made["passes"], "aesthetics": ({}, {}, {"b1": ["a"]})}}
    assert plan.missing_models(stages, done) is None


def test_a_crops_only_pass_is_off_without_crops_and_a_whole_track_one_is_not(tmp_path):
    cfg = config(tmp_path, transcription={"enabled": True})
    cfg["stages"] = {**cfg["stages"], "crops": False}
    stages = plan.Stages.from_config(cfg, "out", PASSES)
    assert not stages.passes["transcription"]
    assert "transcription: off (it works on crops, and stages.crops is false)" in stages.notes
    cfg["aesthetics"] = {**cfg["aesthetics"], "enabled": True, "track": True}
    assert plan.Stages.from_config(cfg, "out", PASSES).passes["aesthetics"]


def test_captions_read_the_classifier_labels_only_when_the_classifiers_run():
    reads = {name: p.reads for name, p in PASSES.items()}
    on = plan.Stages("o", passes={"classifiers": True}, pass_reads=reads)
    off = plan.Stages("o", passes={"classifiers": False}, pass_reads=reads)
    assert on.upstream("captions", "t") == [
        "o/tracks/t/crops.json", "o/tracks/t/source.json", "o/tracks/t/classifiers.json",
    ]  # fmt: skip
    assert off.upstream("captions", "t") == ["o/tracks/t/crops.json", "o/tracks/t/source.json"]
    assert on.upstream("aesthetics", "t") == ["o/tracks/t/crops.json"]
    assert plan.Stages("o", crops=False).upstream("aesthetics", "t") == ["o/tracks/t/source.json"]


def test_features_depend_on_stems_and_crops_only_when_they_are_made():
    plain = plan.Stages("o", crop_features=False).upstream("features", "t")
    assert plain == ["o/tracks/t/source.json", "o/tracks/t/rhythm.json", "o/tracks/t/t.BEATS"]
    full = plan.Stages("o", separation=True).upstream("features", "t")
    assert full[3:] == ["o/tracks/t/crops.json", "o/tracks/t/stems.json", "o/tracks/t/stems"]


def test_finished_tracks_keep_their_batch_and_stale_or_new_ones_are_batched_anew(tmp_path):
    out = tmp_path / "out"
    stages = plan.Stages(str(out))
    for track in "abc":
        touch(out / "tracks" / track / "crops.json", 1000)
    record(out / "tracks/a/aesthetics.json", "b0001", 2000)  # current
    record(out / "tracks/b/aesthetics.json", "b0001", 500)  # older than its crops: stale
    origin, pending, finished = plan.plan_batches(stages, "aesthetics", ["a", "b", "c", "d"], 8)
    assert finished == {"b0001": ["a"]}
    assert list(pending.values()) == [["b", "c", "d"]]
    assert origin["a"] == "b0001" and origin["b"] == origin["d"] == next(iter(pending))
    # With cores, a few pending tracks are spread over them (the features).
    _, spread, _ = plan.plan_batches(stages, "aesthetics", ["a", "b", "c", "d"], 8, cores=2)
    assert sorted(map(len, spread.values())) == [1, 2]


def test_stems_come_from_the_library_the_output_or_a_new_batch(tmp_path):
    out = tmp_path / "out"
    library = {name: str(tmp_path / f"{name}.wav") for name in ("drums", "bass", "other", "vocals")}
    folder = out / "tracks" / "done"
    folder.mkdir(parents=True)
    (folder / "drums.flac").write_bytes(b"x" * 10)
    stems = {
        "status": "ok",
        "track": {"stem_files": {"drums": "drums.flac"}},
        "data": {
            "batch": "b0002",
            "batch_members": [["done", "/x.flac"]],
            "stem_sizes": {"drums": 10},
        },
    }
    (folder / "stems.json").write_text(json.dumps(stems))
    damaged = out / "tracks" / "broken"
    damaged.mkdir(parents=True)
    (damaged / "stems.json").write_text(json.dumps(stems))  # lists a drums.flac it lacks
    separation = {"use_library_stems": True, "batch_size": 4}
    tracks = {"lib": library, "done": {}, "new": {}, "broken": {}}
    result = plan.plan_stems(str(out), tracks, separation)
    origin, batches, finished = result.plan
    assert origin["lib"] == ("library", None)
    assert origin["done"] == ("done", "b0002") and finished["b0002"]["members"] == [
        ["done", "/x.flac"]
    ]
    assert list(batches.values()) == [["broken", "new"]]
    assert result.damaged == {"broken": "drums.flac missing"}


def test_damaged_library_stems_are_listed_in_a_dry_run_and_repaired_in_a_run(tmp_path):
    out = tmp_path / "out"
    library = {name: str(tmp_path / f"{name}.wav") for name in ("drums", "bass", "other", "vocals")}
    folder = out / "tracks" / "lib"
    folder.mkdir(parents=True)
    stems = {"status": "ok", "track": {"stem_files": {"drums": "drums.wav"}}, "data": {}}
    (folder / "stems.json").write_text(json.dumps(stems))
    separation = {"use_library_stems": True, "batch_size": 4}
    dry = plan.plan_stems(str(out), {"lib": library}, separation)
    assert dry.library_redo == ["lib"] and (folder / "stems.json").exists()
    run = plan.plan_stems(str(out), {"lib": library}, separation, repair=True)
    assert run.library_redo == [] and not (folder / "stems.json").exists()


@pytest.mark.parametrize("reuse", [True, False])
def test_jobs_read_the_plan_the_run_started_with(tmp_path, reuse):
    saved = {"stems": [{}, {}, {}], "passes": {}, "features": [{"t": "b1"}, {"b1": ["t"]}, {}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved))
    fresh = {"stems": ({}, {}, {}), "passes": {}, "features": ({}, {}, {})}
    got = plan.read_or_make(path, reuse, lambda: fresh)
    assert got == (saved if reuse else fresh)
