import pytest

from mirflow.atomic import (
    atomic_directory,
    atomic_path,
    read_json,
    sweep_temporaries,
    write_json,
)


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "a.json"
    write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert read_json(dest) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_json_has_no_nan(tmp_path):
    import numpy as np

    write_json(tmp_path / "x.json", {"a": float("nan"), "b": np.float32(1.5), "c": np.arange(2)})
    assert read_json(tmp_path / "x.json") == {"a": None, "b": 1.5, "c": [0, 1]}


def test_atomic_directory_replaces_whole_folder(tmp_path):
    dest = tmp_path / "d"
    with atomic_directory(dest) as folder:
        (folder / "old.txt").write_text("1")
    with atomic_directory(dest) as folder:
        (folder / "new.txt").write_text("2")
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_stale_temporaries_of_one_destination_only(tmp_path):
    (tmp_path / ".mirflow-tmp-a~123").mkdir()
    (tmp_path / ".mirflow-tmp-a-b~456.json").write_text("other job's")
    with atomic_directory(tmp_path / "a") as folder:
        (folder / "x").write_text("")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".mirflow-tmp-a-b~456.json", "a"]
    assert sweep_temporaries(tmp_path) and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_written_files_and_folders_follow_the_umask_not_mkstemp(tmp_path):
    """mkstemp/mkdtemp make 0600/0700; the dataset must be as readable as any
    file the user makes (here umask 022: 0644 and 0755)."""
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        with atomic_directory(tmp_path / "d") as folder:
            (folder / "x").write_text("")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
