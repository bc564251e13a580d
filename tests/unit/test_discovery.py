import os

import pytest

from mirflow.discovery import (
    TRACK_ID_PATTERN,
    LibraryError,
    clean_id,
    discover,
    find_audio_files,
    track_ids,
)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_finds_audio_and_skips_hidden_crops_and_output(tmp_path):
    lib = tmp_path / "lib"
    keep = [
        touch(lib / "a.flac"),
        touch(lib / "Artist" / "Album" / "01 Song.MP3"),
        touch(lib / "x.opus"),
        touch(lib / "y.m4a"),
        touch(lib / "z.aiff"),
    ]
    touch(lib / ".hidden" / "h.flac")
    touch(lib / ".git" / "g.wav")
    touch(lib / ".venv" / "v.wav")
    touch(lib / "Album" / "crops" / "c.wav")
    touch(lib / "out" / "dataset" / "o.flac")
    touch(lib / "notes.txt")
    touch(lib / ".dot.flac")
    found = find_audio_files(lib, exclude=[lib / "out"])
    assert found == sorted(keep)


def test_symlink_loop_is_cut(tmp_path):
    lib = tmp_path / "lib"
    touch(lib / "sub" / "a.wav")
    os.symlink(lib, lib / "sub" / "loop")
    assert find_audio_files(lib) == [lib / "sub" / "a.wav"]


def test_missing_and_empty_library_are_clear_errors(tmp_path):
    with pytest.raises(LibraryError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(LibraryError, match="holds no audio files"):
        discover(tmp_path / "empty")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Café del Mar", "Cafe_del_Mar"),
        ("$(touch pwned)", "touch_pwned"),
        ("a {b} `c`", "a_b_c"),
        ("Ядро", "Yadro"),
        ("東京", "DongJing"),
        ("🎸 riff", "guitar_riff"),
        ("line\nbreak", "line_break"),
        ("...", "track"),
        ("Dance (string orchestra).hq", "Dance_string_orchestra.hq"),
    ],
)
def test_clean_id_is_ascii_and_safe(raw, expected):
    import re

    cleaned = clean_id(raw)
    assert cleaned == expected
    assert re.fullmatch(TRACK_ID_PATTERN, cleaned)


def test_ids_keep_folders_and_stay_unique_and_stable():
    rels = ["Artist/Album/01 Song.flac", "a_b.flac", "a b.flac", "a-b.flac", "Café.mp3", "Cafe.mp3"]
    ids = track_ids(rels)
    assert ids["Artist/Album/01 Song.flac"] == "Artist__Album__01_Song"
    assert len(set(ids.values())) == len(rels)
    assert ids["a_b.flac"] == "a_b"  # already clean: keeps the plain id
    assert ids["a b.flac"].startswith("a_b-") and ids["Cafe.mp3"] == "Cafe"
    assert ids["Café.mp3"].startswith("Cafe-")
    # Same library, any order: same ids (a re-run never makes duplicates).
    assert track_ids(list(reversed(rels))) == ids
    # Adding an unrelated file changes no existing id.
    assert {k: v for k, v in track_ids(rels + ["new.flac"]).items() if k in ids} == ids


def test_long_names_are_shortened_uniquely():
    rels = ["x" * 200 + "1.flac", "x" * 200 + "2.flac"]
    ids = track_ids(rels)
    assert all(len(i) <= 100 for i in ids.values())
    assert len(set(ids.values())) == 2


def test_discover_returns_tracks_with_relpaths(tmp_path):
    lib = tmp_path / "lib"
    touch(lib / "b" / "Song.flac")
    touch(lib / "a.wav")
    tracks = discover(lib)
    assert [(t.track, t.relpath) for t in tracks] == [("a", "a.wav"), ("b__Song", "b/Song.flac")]
    assert all(t.path.is_absolute() for t in tracks)


def test_stems_beside_a_single_mix_are_its_stems_not_tracks(tmp_path):
    song = tmp_path / "lib" / "Song"
    touch(song / "mix.flac")
    for name in ("drums.mp3", "bass.flac", "other.wav", "vocals.flac", "guitar.flac"):
        touch(song / name)
    touch(tmp_path / "lib" / "Album" / "Bass.mp3")  # a song called Bass, beside another song
    touch(tmp_path / "lib" / "Album" / "Intro.mp3")
    tracks = {t.relpath: t for t in discover(tmp_path / "lib")}
    assert set(tracks) == {"Song/mix.flac", "Album/Bass.mp3", "Album/Intro.mp3"}
    stems = dict(tracks["Song/mix.flac"].library_stems)
    assert set(stems) == {"drums", "bass", "other", "vocals", "guitar"}
    assert tracks["Album/Intro.mp3"].library_stems == ()
