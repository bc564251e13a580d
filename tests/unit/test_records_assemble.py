import json

from mirflow.assemble import assemble_track
from mirflow.errors import TrackError
from mirflow.records import StageResult, read_result, run_stage, write_result
from mirflow.rhythm import write_beats


def test_run_stage_records_track_errors_and_propagates_them():
    def bad():
        raise TrackError("x.flac: cannot decode")

    failed = run_stage("ingest", [], bad)
    assert (failed.status, failed.error) == ("failed", "ingest: x.flac: cannot decode")
    skipped = run_stage("rhythm", [failed], lambda: StageResult("rhythm"))
    assert (skipped.status, skipped.error) == ("skipped", failed.error)


def test_a_cause_is_one_line_whatever_the_file_name():
    def bad():
        raise TrackError("/lib/bad\nname\u2028.flac: cannot decode")

    error = run_stage("ingest", [], bad).error
    assert error == "ingest: /lib/bad\\nname\\u2028.flac: cannot decode"
    assert len(error.splitlines()) == 1


def test_other_exceptions_fail_the_job():
    import pytest

    def broken():
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        run_stage("crops", [], broken)


def test_record_roundtrip(tmp_path):
    result = StageResult("features", track={"lufs": -14.0}, crops={"c": {"lufs": -13.0}})
    write_result(tmp_path / "r.json", result)
    assert read_result(tmp_path / "r.json") == result


def make_crops(tmp_path):
    crops_dir = tmp_path / "crops"
    crops_dir.mkdir()
    (crops_dir / "t_000.flac").write_bytes(b"audio")
    (crops_dir / "t_000_drums.flac").write_bytes(b"drums")
    write_beats(crops_dir / "t_000.BEATS", [[0.0, 1]])
    beats = tmp_path / "t.BEATS"
    write_beats(beats, [[0.5, 1], [1.0, 2]])
    return crops_dir, beats


def test_assemble_merges_records_into_track_and_crop_infos(tmp_path):
    crops_dir, beats = make_crops(tmp_path)
    crop = {
        "crop": "t_000",
        "audio_file": "t_000.flac",
        "beats_file": "t_000.BEATS",
        "stem_files": {"drums": "t_000_drums.flac"},
        "duration_s": 1.0,
    }
    results = [
        StageResult(
            "ingest", track={"source": "a/t.flac", "duration_s": 9.0, "track_metadata_artist": "A"}
        ),
        StageResult("rhythm", track={"bpm": 120.0}, data={"onsets": [1, 2, 3]}),
        StageResult("crops", track={"crop_alignment": "beat"}, crops={"t_000": crop}),
        StageResult("crop_features", crops={"t_000": {"bpm": 121.0, "lufs": -12.0}}),
    ]
    dest = tmp_path / "dataset" / "t"
    info = assemble_track("t", results, beats, crops_dir, dest)
    on_disk = json.loads((dest / "t.INFO").read_text())
    assert on_disk == info
    assert info["status"] == "ok" and info["bpm"] == 120.0 and info["beats_file"] == "t.BEATS"
    assert "onsets" not in info  # data is not for the .INFO
    assert (dest / "t.BEATS").read_text() == beats.read_text()
    crop_info = json.loads((dest / "crops" / "t_000.INFO").read_text())
    assert crop_info["bpm"] == 121.0 and crop_info["track_bpm"] == 120.0
    assert crop_info["track_duration_s"] == 9.0 and crop_info["duration_s"] == 1.0
    assert crop_info["track_metadata_artist"] == "A" and crop_info["status"] == "ok"
    assert (dest / "crops" / "t_000_drums.flac").read_bytes() == b"drums"
    assert (dest / "crops" / "t_000.flac").stat().st_ino == (crops_dir / "t_000.flac").stat().st_ino


def test_failed_track_gets_an_info_with_its_cause_and_no_crops(tmp_path):
    crops_dir, beats = make_crops(tmp_path)
    results = [
        StageResult("ingest", status="failed", error="ingest: bad.flac: cannot decode", track={}),
        StageResult("rhythm", status="skipped", error="ingest: bad.flac: cannot decode"),
    ]
    info = assemble_track("bad", results, beats, crops_dir, tmp_path / "bad")
    assert info["status"] == "failed" and "cannot decode" in info["error"]
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["bad.INFO"]


def test_a_failed_crop_is_marked_and_the_others_stay_ok(tmp_path):
    crops_dir, beats = make_crops(tmp_path)
    results = [
        StageResult(
            "crops",
            crops={
                "t_000": {"crop": "t_000", "audio_file": "t_000.flac"},
                "t_001": {"crop": "t_001"},
            },
        ),
        StageResult(
            "crop_features", crops={"t_001": {"status": "failed", "error": "crop_features: boom"}}
        ),
    ]
    info = assemble_track("t", results, beats, crops_dir, tmp_path / "t")
    assert (info["crop_count"], info["crops_failed"]) == (2, 1)
    bad = json.loads((tmp_path / "t" / "crops" / "t_001.INFO").read_text())
    assert bad["status"] == "failed" and bad["error"] == "crop_features: boom"
