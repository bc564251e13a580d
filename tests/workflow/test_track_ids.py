"""Track ids never move (README, "Track ids"): after a finished run, a file
added beside a track that cleans to the same id leaves that track's id,
dataset and crops as they were, and a moved file is a new track whose old id
stays reserved."""

import hashlib
import json
import shutil

import pytest
from corpus import FAST_CONFIG

from conftest import TRUMPET
from mirflow.track_registry import REGISTRY_NAME
from snakemake_runner import job_counts, run_snakemake, snapshot, write_config

pytestmark = pytest.mark.slow

CHEAP = {**FAST_CONFIG, "stages": {"features": False, "crop_features": False}}


def hashed(base, relpath):
    return f"{base}-{hashlib.sha1(relpath.encode()).hexdigest()[:8]}"


def test_a_colliding_file_leaves_existing_ids_and_a_moved_file_is_new(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(TRUMPET, library / "a b.ogg")
    shutil.copy(TRUMPET, library / "moved.ogg")
    out = tmp_path / "out"
    config = write_config(tmp_path / "config.yaml", library, out, **CHEAP)
    # A dry run of a first run shows the ids and writes nothing.
    run_snakemake(tmp_path, config, "--dry-run")
    assert not out.exists()
    run_snakemake(tmp_path, config)
    registry = out / REGISTRY_NAME
    assert json.loads(registry.read_text()) == {"a b.ogg": "a_b", "moved.ogg": "moved"}
    kept = snapshot(out / "dataset" / "a_b")
    assert any(name.startswith("crops/a_b_000") for name in kept)

    shutil.copy(TRUMPET, library / "a  b.ogg")  # cleans to a_b too
    (library / "sub").mkdir()
    (library / "moved.ogg").rename(library / "sub" / "moved.ogg")
    before = registry.read_text()
    dry = run_snakemake(tmp_path, config, "--dry-run")
    assert job_counts(dry.stdout)["ingest"] == 2  # the two new tracks only
    assert registry.read_text() == before  # a dry run does not register
    run_snakemake(tmp_path, config)

    new = hashed("a_b", "a  b.ogg")
    assert json.loads(registry.read_text()) == {
        "a b.ogg": "a_b",
        "a  b.ogg": new,
        "moved.ogg": "moved",  # gone from the library, its id still reserved
        "sub/moved.ogg": "sub__moved",
    }
    assert snapshot(out / "dataset" / "a_b") == kept  # not redone, not renamed
    for track, source in ((new, "a  b.ogg"), ("sub__moved", "sub/moved.ogg")):
        info = json.loads((out / "dataset" / track / f"{track}.INFO").read_text())
        assert info["source"] == source and info["status"] == "ok"
        assert (out / "dataset" / track / "crops" / f"{track}_000.INFO").is_file()
    assert (out / "dataset" / "moved").is_dir()  # old outputs stay until removed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks"] == 3 and summary["tracks_failed"] == 0
    assert "Nothing to be done" in run_snakemake(tmp_path, config, "--dry-run").stdout
