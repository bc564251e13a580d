"""The output folder's registry of track ids (mirflow.track_registry): an id,
once given, never moves and is never given to another file."""

import hashlib
import json
import multiprocessing
import os

import pytest

from mirflow.discovery import discover, track_ids
from mirflow.track_registry import (
    RegistryError,
    assign_ids,
    load_registry,
    lock_path,
    registry_path,
    update_registry,
)

LIBRARY = [
    "Artist/Album/01 Song.flac",
    "a_b.flac",
    "a b.flac",
    "a-b.flac",
    "Café.mp3",
    "Cafe.mp3",
    "line\nbreak.flac",
    "tab\there.wav",
    "x" * 200 + "1.flac",
    "x" * 200 + "2.flac",
]


def hashed(base, relpath):
    return f"{base}-{hashlib.sha1(relpath.encode()).hexdigest()[:8]}"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_no_registry_gives_the_ids_of_track_ids():
    assert assign_ids(LIBRARY, {}) == track_ids(LIBRARY)
    assert assign_ids(list(reversed(LIBRARY)), {}) == track_ids(LIBRARY)


def test_a_registered_id_stays_when_a_colliding_file_appears():
    registry = assign_ids(["a b.flac"], {})
    assert registry == {"a b.flac": "a_b"}
    library = ["a b.flac", "a  b.flac", "a_b.flac"]
    # Paths alone would move the old file's id (and give "a_b" to a_b.flac).
    assert track_ids(library)["a b.flac"] != "a_b"
    ids = assign_ids(library, registry)
    assert ids == {
        "a b.flac": "a_b",
        "a  b.flac": hashed("a_b", "a  b.flac"),
        "a_b.flac": hashed("a_b", "a_b.flac"),  # the clean name, but taken
    }
    assert assign_ids(list(reversed(library)), registry) == ids


def test_new_files_colliding_with_each_other_get_hashed_ids_as_today():
    registry = {"x.flac": "x"}
    ids = assign_ids(["x.flac", "a b.flac", "a  b.flac"], registry)
    assert ids["x.flac"] == "x"
    assert ids["a b.flac"] == hashed("a_b", "a b.flac")
    assert ids["a  b.flac"] == hashed("a_b", "a  b.flac")


def test_a_new_file_takes_a_plain_id_no_file_holds():
    registry = assign_ids(["a b.flac", "a  b.flac"], {})
    assert set(registry.values()) == {hashed("a_b", "a b.flac"), hashed("a_b", "a  b.flac")}
    ids = assign_ids([*registry, "a   b.flac"], registry)
    assert ids == {**registry, "a   b.flac": "a_b"}


def test_vanished_ids_stay_reserved_case_insensitively():
    registry = {"a_b.flac": "a_b", "Song.flac": "Song"}
    ids = assign_ids(["a b.flac", "song.wav"], registry)
    assert ids == {  # only present files, none with a vanished file's id
        "a b.flac": hashed("a_b", "a b.flac"),
        "song.wav": hashed("song", "song.wav"),
    }


def test_a_renamed_or_moved_file_is_a_new_track(tmp_path):
    path = registry_path(tmp_path / "out")
    update_registry(path, ["Old Name.flac"])
    # Renamed to a name that cleans to the same id: still a new file, and the
    # old id is never given to it (its old outputs are not this file's).
    assert update_registry(path, ["Old_Name.flac"]) == {
        "Old_Name.flac": hashed("Old_Name", "Old_Name.flac")
    }
    assert update_registry(path, ["Album/Old Name.flac"]) == {
        "Album/Old Name.flac": "Album__Old_Name"
    }
    assert load_registry(path)["Old Name.flac"] == "Old_Name"
    # Moved back: the path is known again, so it has its first id again.
    assert update_registry(path, ["Old Name.flac"]) == {"Old Name.flac": "Old_Name"}


def test_a_file_named_like_a_hashed_id_does_not_take_it():
    clash = hashed("a_b", "a b.flac")
    registry = {"a_b.flac": "a_b", f"{clash}.flac": clash}
    ids = assign_ids(["a b.flac"], registry)
    digest = hashlib.sha1(b"a b.flac").hexdigest()
    assert ids == {"a b.flac": f"a_b-{digest[:16]}"}


def test_update_writes_json_once_and_creates_the_output_folder(tmp_path):
    path = registry_path(tmp_path / "new" / "out")
    ids = update_registry(path, LIBRARY)
    assert ids == track_ids(LIBRARY)
    assert json.loads(path.read_text(encoding="utf-8")) == ids  # newlines and tabs too
    assert lock_path(path).name == ".track_ids.lock" and lock_path(path).exists()
    before = path.stat().st_mtime_ns
    assert update_registry(path, LIBRARY[:3]) == {rel: ids[rel] for rel in LIBRARY[:3]}
    assert path.stat().st_mtime_ns == before  # nothing new: not rewritten
    assert load_registry(path) == ids  # vanished files kept


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "cannot be read"),
        ('["a.flac"]', "not a mapping"),
        ('{"a.flac": "a/b"}', "invalid id"),
        ('{"a.flac": "a", "A.wav": "A"}', "the same id"),
    ],
)
def test_a_broken_registry_is_an_error_not_new_ids(tmp_path, text, message):
    path = registry_path(tmp_path)
    path.write_text(text)
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
    with pytest.raises(RegistryError):
        update_registry(path, ["a.flac"])


def test_discover_with_the_registry_keeps_ids(tmp_path):
    library, path = tmp_path / "lib", registry_path(tmp_path / "out")
    touch(library / "a b.flac")
    touch(library / "line\nbreak.flac")

    def ids():
        tracks = discover(library, assign=lambda rels: update_registry(path, rels))
        return {t.relpath: t.track for t in tracks}

    assert ids() == {"a b.flac": "a_b", "line\nbreak.flac": "line_break"}
    touch(library / "a  b.flac")
    assert ids() == {
        "a b.flac": "a_b",
        "a  b.flac": hashed("a_b", "a  b.flac"),
        "line\nbreak.flac": "line_break",
    }


def _update(args):
    path, relpaths, barrier = args
    barrier.wait()
    return update_registry(path, relpaths)


def _run_at_once(path, libraries):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(libraries))
    procs, results = [], ctx.Queue()

    def target(relpaths):
        results.put(_update((path, relpaths, barrier)))

    for relpaths in libraries:
        procs.append(ctx.Process(target=target, args=(relpaths,)))
        procs[-1].start()
    out = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return out


def test_runs_at_once_agree(tmp_path):
    path = registry_path(tmp_path / "out")
    update_registry(path, ["a b.flac"])
    library = ["a b.flac", "a  b.flac", "a_b.flac", "c d.flac", *(f"t{i}.flac" for i in range(50))]
    results = _run_at_once(path, [library] * 6)
    assert all(result == results[0] for result in results)
    assert results[0]["a b.flac"] == "a_b"
    assert load_registry(path) == results[0]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".mirflow-tmp-")]


def test_runs_at_once_on_different_libraries_register_consistent_ids(tmp_path):
    path = registry_path(tmp_path / "out")
    # Each sees "c d" and one of two files colliding with it: whoever comes
    # first decides, but every run's ids are the registry's, and unique.
    libraries = [
        ["c d.flac", "c  d.flac" if i % 2 else "c_d.flac", f"own{i}.flac"] for i in range(6)
    ]
    results = _run_at_once(path, libraries)
    registry = load_registry(path)
    for result in results:
        assert {rel: registry[rel] for rel in result} == result
    assert len({track.lower() for track in registry.values()}) == len(registry) == 9
    assert os.path.getsize(path) > 0
