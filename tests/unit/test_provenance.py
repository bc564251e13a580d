"""Provenance blocks (mirflow.provenance), how assemble gathers them, and the
stems planner's check that every stem a record lists is still whole."""

import hashlib
import json
import os

from mirflow.assemble import crop_infos, relative_errors, track_info
from mirflow.batches import finished_stems
from mirflow.provenance import SHA_PREFIX, model_digest, model_digests, provenance
from mirflow.records import StageResult, write_result


def test_block_has_tools_models_and_params(tmp_path):
    model = tmp_path / "m.ckpt"
    model.write_bytes(b"weights")
    block = provenance(("numpy", "no-such-distribution-xyz"), [model], {"shifts": 1})
    import numpy

    assert block["tools"] == {
        "numpy": numpy.__version__,
        "no-such-distribution-xyz": "not installed",
    }
    assert block["models"] == {"m.ckpt": hashlib.sha256(b"weights").hexdigest()[:SHA_PREFIX]}
    assert block["params"] == {"shifts": 1}
    json.dumps(block)  # goes into a .INFO as it is


def test_digest_follows_the_file_and_a_folder_stands_for_its_files(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"one")
    first = model_digest(model)
    model.write_bytes(b"two!")  # another size: hashed again, not the cached digest
    os.utime(model, ns=(1, 1))
    assert model_digest(model) != first == hashlib.sha256(b"one").hexdigest()[:SHA_PREFIX]
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "a.yaml").write_text("a")
    (folder / "b.th").write_bytes(b"b")
    assert set(model_digests([folder])) == {"a.yaml", "b.th"}


def made_by(tool):
    return {"tools": {tool: "1"}, "models": {}, "params": {}}


def test_info_gathers_each_stage_that_wrote_fields():
    stages = ["ingest", "rhythm", "stems", "crops", "aesthetics"]
    crops = {"t_000": {"crop": "t_000", "stem_files": {"drums": "d"}}, "t_001": {"crop": "t_001"}}
    results = [
        StageResult("ingest", track={"source": "a.flac", "sha256": "00"}, provenance=made_by("a")),
        StageResult("rhythm", track={"bpm": 120.0}, provenance=made_by("b")),
        StageResult("stems", track={"stem_files": {"drums": "s/d"}}, provenance=made_by("c")),
        StageResult("crops", crops=crops, provenance=made_by("d")),
        StageResult("aesthetics", crops={"t_000": {"p": 5.0}}, provenance=made_by("e")),
    ]
    info = track_info("t", results, None)
    assert list(info["provenance"]) == stages
    assert info["provenance"]["stems"] == made_by("c")
    infos = crop_infos(info, results)
    assert list(infos["t_000"]["provenance"]) == stages
    # t_001 has no stems and no aesthetics score: those stages made nothing of it
    assert list(infos["t_001"]["provenance"]) == ["ingest", "rhythm", "crops"]


def test_errors_name_the_file_relative_to_the_library():
    # Causes hold the path as one_line wrote it: a newline in a name reads "\n".
    failed = StageResult("ingest", status="failed", error=r"ingest: /lib/a\nb.flac: bad")
    crop = StageResult("features", crops={"c": {"status": "failed", "error": r"/lib/a\nb.flac"}})
    fixed = [relative_errors(r, "/lib/a\nb.flac", "a\nb.flac") for r in (failed, crop)]
    assert fixed[0].error == r"ingest: a\nb.flac: bad"
    assert fixed[1].crops["c"]["error"] == r"a\nb.flac"


def write_stems(folder, sizes=True, legacy=False):
    (folder / "stems").mkdir(parents=True)
    for name in ("drums", "bass"):
        (folder / "stems" / f"{name}.flac").write_bytes(b"x" * 100)
    fields = {"stem_files": {n: f"stems/{n}.flac" for n in ("drums", "bass")}}
    data = {"stem_sizes": {"drums": 100, "bass": 100}} if sizes else {}
    if legacy:
        fields.update(stems_batch="b1", stems_batch_members=[["t", "/lib/t.flac"]])
    else:
        data.update(batch="b1", batch_members=[["t", "/lib/t.flac"]], separation={"format": "flac"})
    write_result(folder / "stems.json", StageResult("stems", track=fields, data=data))


def test_finished_stems_are_whole(tmp_path):
    folder = tmp_path / "tracks" / "t"
    write_stems(folder)
    made, damage = finished_stems(tmp_path, "t")
    assert made == {"batch": "b1", "members": [["t", "/lib/t.flac"]], "config": {"format": "flac"}}
    assert damage is None
    (folder / "stems" / "bass.flac").write_bytes(b"x" * 60)  # truncated
    assert finished_stems(tmp_path, "t") == (None, "bass.flac has 60 bytes, not the 100 written")
    (folder / "stems" / "bass.flac").write_bytes(b"x" * 100)
    (folder / "stems" / "drums.flac").unlink()  # deleted
    assert finished_stems(tmp_path, "t") == (None, "drums.flac missing")
    assert finished_stems(tmp_path, "other") == (None, None)  # never made


def test_older_records_still_plan(tmp_path):
    folder = tmp_path / "tracks" / "t"
    write_stems(folder, sizes=False, legacy=True)
    assert finished_stems(tmp_path, "t")[0]["batch"] == "b1"
    (folder / "stems" / "drums.flac").unlink()
    assert finished_stems(tmp_path, "t") == (None, "drums.flac missing")
