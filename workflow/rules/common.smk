import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

# The mirflow package lives in scripts/. Put it on the path of this process and
# of every job (jobs inherit the environment; in a --sdm conda env nothing
# else would find it).
SCRIPTS_DIR = str(Path(workflow.basedir).parent / "scripts")
sys.path.insert(0, SCRIPTS_DIR)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (SCRIPTS_DIR, os.environ.get("PYTHONPATH")) if p
)

from mirflow.discovery import TRACK_ID_PATTERN, LibraryError, discover
from mirflow.summary import format_summary, load_summary, mark_run_started


validate(config, schema="../schemas/config.schema.yaml")

OUT = config["output"].rstrip("/") or "/"
LOGS = f"{OUT}/logs"
BENCHMARKS = f"{OUT}/benchmarks"


def load_track_table():
    """The library's tracks (discovery + ids), one row per track, indexed by id."""
    try:
        tracks = discover(config["input"], exclude=[config["output"]])
    except LibraryError as exc:
        # A plain message, not a traceback: this is the user's input, not a bug.
        sys.exit(f"mirflow: {exc}. Set 'input' in config/config.yaml or pass --config input=PATH.")
    return pd.DataFrame(
        {
            "track": [t.track for t in tracks],
            "path": [str(t.path) for t in tracks],
            "relpath": [t.relpath for t in tracks],
        }
    ).set_index("track", drop=False)


TRACKS = load_track_table()


# Ids are built from [A-Za-z0-9._+-] (mirflow.discovery), never "/": a
# character class keeps matching cheap however large the library.
wildcard_constraints:
    track=TRACK_ID_PATTERN,


def mem_mb(rule_name):
    return config["resources"]["mem_mb"].get(rule_name, 2000)


# ---- input functions ------------------------------------------------------


def get_source_audio(wildcards):
    """The track's file in the library."""
    return TRACKS.loc[wildcards.track, "path"]


def get_source_relpath(wildcards):
    return TRACKS.loc[wildcards.track, "relpath"]


def get_stems(wildcards):
    """Stem files of the track (none until source separation exists)."""
    return {}


def get_track_records(wildcards):
    """Per-track records that assemble merges into the .INFO, in stage order."""
    track = f"{OUT}/tracks/{wildcards.track}"
    records = [f"{track}/source.json", f"{track}/rhythm.json"]
    if config["stages"]["features"]:
        records.append(f"{track}/features.json")
    if config["stages"]["crops"]:
        records.append(f"{track}/crops.json")
        if config["stages"]["crop_features"]:
            records.append(f"{track}/crop_features.json")
    return records


def get_crops_dir(wildcards):
    return [f"{OUT}/tracks/{wildcards.track}/crops"] if config["stages"]["crops"] else []


def get_dataset_dirs(wildcards=None):
    return expand(f"{OUT}/dataset/{{track}}", track=TRACKS.index)


def get_final_output():
    return [f"{OUT}/summary.json", f"{OUT}/manifest.parquet"]


# ---- run hooks ------------------------------------------------------------


onstart:
    mark_run_started(OUT)


onsuccess:
    summary_file = Path(OUT) / "summary.json"
    if summary_file.exists():
        print(format_summary(load_summary(summary_file)), file=sys.stderr)


onerror:
    print(
        f"mirflow: some jobs failed (not a bad track: those are recorded and the run goes on). "
        f"See the log named above each error, under {LOGS}/.",
        file=sys.stderr,
    )
