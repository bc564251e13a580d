"""The model-pass batch driver: one model load per batch, one record per track,
failures kept to the track (or crop) they belong to, and batches that stay put
as the library grows."""

import pytest

from mirflow.batches import batch_of_record, batch_size_for, make_batches, record_is_current
from mirflow.errors import TrackError
from mirflow.passes import (
    RECORD,
    PassMember,
    PassRunner,
    run_pass_batch,
)
from mirflow.records import StageResult, read_result, write_result


def crops_record(path, names, status="ok"):
    crops = {name: {"crop": name, "audio_file": f"{name}.flac"} for name in names}
    write_result(path, StageResult("crops", status=status, error="" if status == "ok" else "bad",
                                   crops=crops))  # fmt: skip
    return str(path)


def members(tmp_path, statuses):
    out = []
    for index, status in enumerate(statuses):
        track = f"t{index}"
        crops_dir = tmp_path / track / "crops"
        crops_dir.mkdir(parents=True)
        record = crops_record(tmp_path / track / "crops.json", [f"{track}_000", f"{track}_001"],
                              status)  # fmt: skip
        out.append(PassMember(track, f"/library/{track}.flac", str(crops_dir), record))
    return out


class CountingRunner:
    loads = 0

    def __call__(self):
        CountingRunner.loads += 1
        return PassRunner(
            crop=lambda crop_dir, crop, files_dir: {"score": len(crop["crop"])},
            track=lambda source, known: {"track_score": source},
            model_fields={"model": "m"},
            provenance={"tools": {"t": "1"}, "models": {}, "params": {"p": 1}},
        )


def test_one_load_for_a_batch_and_one_record_per_track(tmp_path):
    CountingRunner.loads = 0
    batch = members(tmp_path, ["ok", "ok", "ok"])
    results = run_pass_batch("aesthetics", CountingRunner(), batch, tmp_path / "b1", "b1")
    assert CountingRunner.loads == 1
    for member in batch:
        record = read_result(tmp_path / "b1" / member.track / RECORD)
        assert record == results[member.track]
        assert record.track == {"model": "m", "track_score": member.source}
        assert record.provenance["params"] == {"p": 1}
        assert set(record.crops) == {f"{member.track}_000", f"{member.track}_001"}
        assert record.data["batch"] == "b1"


def test_upstream_failure_is_skipped_without_loading_the_model(tmp_path):
    CountingRunner.loads = 0
    results = run_pass_batch(
        "classifiers", CountingRunner(), members(tmp_path, ["failed"]), tmp_path / "b", "b"
    )
    assert CountingRunner.loads == 0
    assert (results["t0"].status, results["t0"].error) == ("skipped", "bad")


def test_a_bad_crop_fails_that_crop_only(tmp_path):
    def crop(crop_dir, fields, files_dir):
        if fields["crop"].endswith("_001"):
            raise TrackError(f"{fields['audio_file']}: cannot decode")
        return {"score": 1.0}

    result = run_pass_batch(
        "aesthetics", lambda: PassRunner(crop=crop), members(tmp_path, ["ok"]), tmp_path / "b", "b"
    )["t0"]
    assert result.status == "ok"
    assert result.crops["t0_000"] == {"score": 1.0}
    assert result.crops["t0_001"]["status"] == "failed"
    assert "t0_001.flac: cannot decode" in result.crops["t0_001"]["error"]


def test_a_model_fault_fails_the_job(tmp_path):
    def broken():
        raise FileNotFoundError("models/x.pt")

    with pytest.raises(FileNotFoundError):
        run_pass_batch("aesthetics", broken, members(tmp_path, ["ok"]), tmp_path / "b", "b")


def test_files_go_beside_the_record_and_the_batch_is_recorded(tmp_path):
    def crop(crop_dir, fields, files_dir):
        (files_dir / f"{fields['crop']}.mid").write_bytes(b"MThd")
        return {"midi_file": f"{fields['crop']}.mid"}

    run_pass_batch("transcription", lambda: PassRunner(crop=crop), members(tmp_path, ["ok"]),
                   tmp_path / "b", "b")  # fmt: skip
    folder = tmp_path / "b" / "t0"
    assert sorted(p.name for p in (folder / "files").iterdir()) == ["t0_000.mid", "t0_001.mid"]
    assert batch_of_record(folder / RECORD) == "b"
    assert batch_of_record(tmp_path / "absent.json") is None


def test_batches_of_a_growing_library_leave_finished_ones_alone():
    first = make_batches([f"album1_{i:02d}" for i in range(20)], 8)
    assert [len(m) for m in first.values()] == [8, 8, 4]
    # Only pending tracks are batched: a new album makes new batches, and
    # planning the same pending set again gives the same names.
    new = make_batches([f"album2_{i:02d}" for i in range(5)], 8)
    assert not set(new) & set(first)
    assert make_batches([f"album2_{i:02d}" for i in range(5)], 8) == new


def test_record_is_current_follows_its_upstream(tmp_path):
    import os

    upstream, record = tmp_path / "crops.json", tmp_path / "aesthetics.json"
    assert not record_is_current(record, upstream)
    upstream.write_text("{}")
    record.write_text("{}")
    os.utime(upstream, (1000, 1000))
    os.utime(record, (2000, 2000))
    assert record_is_current(record, upstream)
    os.utime(upstream, (3000, 3000))  # crops made again: the pass is stale
    assert not record_is_current(record, upstream)
    # Several upstream files (the features'): any newer one makes it stale,
    # a missing one (not made yet) does not.
    beats = tmp_path / "t.BEATS"
    beats.write_text("")
    os.utime(beats, (1500, 1500))
    os.utime(upstream, (1000, 1000))
    assert record_is_current(record, [upstream, beats, tmp_path / "stems.json"])
    os.utime(beats, (2500, 2500))
    assert not record_is_current(record, [upstream, beats])


def test_a_small_library_is_spread_over_the_cores():
    assert batch_size_for(7, 8, 1) == 7  # one job pays the imports once
    assert batch_size_for(7, 8, 2) == 4  # 4 + 3: both cores work
    assert batch_size_for(3, 8, 16) == 1
    assert batch_size_for(100, 8, 2) == 8  # enough batches already: batch_size
    assert batch_size_for(20, 8, 2) == 7  # 3 batches, balanced: 7 + 7 + 6
    assert batch_size_for(0, 8, 2) == 8


def test_context_records_reach_the_crops_and_the_subset_is_chosen_per_track(tmp_path):
    (member,) = members(tmp_path, ["ok"])
    source = tmp_path / "source.json"
    write_result(source, StageResult("ingest", track={"track_metadata_year": "1999"}))
    labels = tmp_path / "classifiers.json"
    track_labels = {"essentia_genre": {"Jazz": 0.9}}
    crop_labels = {"t0_001": {"essentia_genre": {"Rock": 0.8}}}
    write_result(labels, StageResult("classifiers", track=track_labels, crops=crop_labels))
    member = PassMember(member.track, member.source, member.crops_dir, member.crops_record,
                        context=(str(source), str(labels)))  # fmt: skip
    seen = {}

    def crop(crop_dir, fields, files_dir):
        seen[fields["crop"]] = (fields["track_metadata_year"], fields["essentia_genre"])
        return {}

    runner = PassRunner(crop=crop, wants_crop=lambda track, name: (track, name) != ("t0", "x"))
    run_pass_batch("captions", lambda: runner, [member], tmp_path / "b", "b")
    # Track fields for every crop; a crop's own labels win over the track's.
    assert seen == {"t0_000": ("1999", {"Jazz": 0.9}), "t0_001": ("1999", {"Rock": 0.8})}
