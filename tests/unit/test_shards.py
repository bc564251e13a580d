import zlib

import pytest

from mirflow.shards import MERGE, Shard, parse_shard, shard_of
from mirflow.summary import datasets_stamp, finished_datasets, read_track_ids

IDS = [f"Artist_{a:03d}-Song_{s:02d}" for a in range(50) for s in range(20)]


def test_every_track_is_in_exactly_one_shard_and_shards_are_even():
    shards = [Shard(i, 8) for i in range(8)]
    for track in IDS:
        assert sum(track in shard for shard in shards) == 1
    sizes = [sum(track in shard for track in IDS) for shard in shards]
    assert min(sizes) > len(IDS) / 8 * 0.7 and max(sizes) < len(IDS) / 8 * 1.3


def test_a_track_keeps_its_shard_as_the_library_grows():
    before = {track: shard_of(track, 16) for track in IDS[:500]}
    after = {track: shard_of(track, 16) for track in IDS}  # more tracks, same ids
    assert all(after[track] == shard for track, shard in before.items())
    # crc32 of the id, not Python's per-process string hash
    assert shard_of("Artist_000-Song_00", 16) == zlib.crc32(b"Artist_000-Song_00") % 16


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, None), ("merge", MERGE), ("0/16", Shard(0, 16)), ("15/16", Shard(15, 16))],
)
def test_parse_shard(spec, expected):
    assert parse_shard(spec) == expected


@pytest.mark.parametrize("spec", ["16/16", "1/0", "a/b", "1", "0/4/2"])
def test_bad_shard_is_refused(spec):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(spec)


def test_shard_name_is_a_file_name():
    assert Shard(3, 16).name == "shard-3-of-16"


def test_merge_finds_finished_datasets_and_pending_tracks(tmp_path):
    table = tmp_path / "tracks.tsv"
    table.write_text("track\tsource\nnan\ta.flac\nNULL\tb.flac\nc\tc.flac\n")
    tracks = read_track_ids(table)
    assert tracks == ["nan", "NULL", "c"]  # ids, not missing values
    for track in ("nan", "c"):
        (tmp_path / "dataset" / track).mkdir(parents=True)
    (tmp_path / "dataset" / "nan" / "nan.INFO").write_text("{}")
    finished, pending = finished_datasets(tmp_path, tracks)
    assert finished == [tmp_path / "dataset" / "nan"]
    assert pending == ["NULL", "c"]  # c's folder has no .INFO: not finished
    stamp = datasets_stamp(finished)
    (tmp_path / "dataset" / "c" / "c.INFO").write_text("{}")
    finished, pending = finished_datasets(tmp_path, tracks)
    assert pending == ["NULL"] and datasets_stamp(finished) != stamp
