"""Duplicates through the real workflow: a track and three copies of it (an MP3,
one with 3 s trimmed, one 6 dB quieter) form one group whose original is the
FLAC; the copies' crops stay out of the exports, and the summary, the manifest,
the .INFO and the report say so."""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
import soundfile as sf

from conftest import GUITARSET, LIBRARY
from snakemake_runner import job_counts, run_snakemake, write_config

pytestmark = pytest.mark.slow

VOCADITO = LIBRARY / "vocadito_1.flac"
COPIES = ["copies__vocadito_1", "copies__vocadito_1_trimmed", "copies__vocadito_1_quieter"]

if shutil.which("fpcalc") is None:
    pytest.skip("fpcalc (libchromaprint-tools) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("duplicates")
    library = root / "library"
    (library / "copies").mkdir(parents=True)
    shutil.copy(VOCADITO, library / "vocadito_1.flac")
    shutil.copy(GUITARSET, library / "guitar.flac")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(VOCADITO), "-b:a", "128k",
         str(library / "copies" / "vocadito_1.mp3")],
        check=True,
    )  # fmt: skip
    audio, sr = sf.read(VOCADITO)
    sf.write(library / "copies" / "vocadito_1_trimmed.flac", audio[3 * sr :], sr, subtype="PCM_16")
    sf.write(library / "copies" / "vocadito_1_quieter.flac", audio / 2, sr, subtype="PCM_16")
    config = write_config(
        root / "config.yaml", library, root / "out",
        crops={"length_samples": 262144}, transcription={"enabled": False},
    )  # fmt: skip
    run_snakemake(root, config)
    return root, config, root / "out"


def test_the_copies_form_one_group_of_four_with_the_flac_as_original(run):
    _, _, out = run
    groups = json.loads((out / "duplicates.json").read_text())["groups"]
    assert groups == [["vocadito_1", *sorted(COPIES)]]
    copy = json.loads((out / "dataset" / COPIES[0] / f"{COPIES[0]}.INFO").read_text())
    assert copy["duplicate_group"] == copy["duplicate_of"] == "vocadito_1"
    original = json.loads((out / "dataset" / "vocadito_1" / "vocadito_1.INFO").read_text())
    assert original["duplicate_group"] == "vocadito_1" and original["duplicate_of"] is None
    guitar = json.loads((out / "dataset" / "guitar" / "guitar.INFO").read_text())
    assert "duplicate_group" not in guitar


def test_the_exports_leave_the_copies_out_and_the_summary_and_report_say_so(run):
    _, _, out = run
    manifest = pd.read_parquet(out / "manifest.parquet")
    crops = manifest[(manifest["kind"] == "crop") & (manifest["status"] == "ok")]
    copies = crops[crops["track"].isin(COPIES)]
    assert len(copies) > 0 and set(copies["duplicate_of"]) == {"vocadito_1"}
    exported = (out / "exports" / "audiocraft" / "data.jsonl").read_text().splitlines()
    assert len(exported) == len(crops) - len(copies)
    assert not any(track in line for line in exported for track in COPIES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["duplicates"]["groups"] == 1 and summary["duplicates"]["copies"] == 3
    assert summary["exports"]["duplicates_left_out"] == len(copies)
    assert (out / "report" / "duplicates.png").stat().st_size > 1000


def test_a_new_track_regroups_without_assembling_every_track_again(run):
    root, config, out = run
    shutil.copy(LIBRARY / "sorohanro_-_solo-trumpet-06.hq.ogg", root / "library" / "trumpet.ogg")
    dry = run_snakemake(root, config, "--dry-run").stdout
    counts = job_counts(dry)
    assert counts["fingerprint"] == 1 and counts["duplicates"] == 1
    assembled = set(re.findall(r"rule assemble:\n(?:    .*\n)*?    wildcards: track=(\S+)", dry))
    # The new track; the group's tracks once more (the first run's jobs were
    # planned before it found the group, README "Duplicates"); never the others.
    assert "trumpet" in assembled and "guitar" not in assembled
    assert assembled <= {"trumpet", "vocadito_1", *COPIES}
