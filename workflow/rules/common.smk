import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

# The mirflow package lives in scripts/. Jobs find it without installing:
# Snakemake puts a rule script's own folder (scripts/) on its path.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from mirflow.discovery import TRACK_ID_PATTERN, LibraryError, discover
from mirflow.summary import format_summary, load_summary, mark_run_started

validate(config, schema="../schemas/config.schema.yaml")

OUT = os.path.normpath(config["output"])
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


def get_source_path(wildcards):
    """The track's file in the library (a param: see get_source_audio)."""
    return TRACKS.loc[wildcards.track, "path"]


def _has_braces(path):
    return "{" in path or "}" in path


def get_source_audio(wildcards):
    """The library file as ingest's input, so Snakemake tracks it.

    Snakemake reads "{name}" in any input path as a wildcard and has no escape,
    so a file named like "a {b}.flac" cannot be an input; get_source_stamp
    tracks such a file instead. Later rules depend on ingest's source.json.
    """
    path = get_source_path(wildcards)
    return [] if _has_braces(path) else path


def get_source_stamp(wildcards):
    """Modification time and size of a file get_source_audio cannot declare:
    when they change, the params differ and ingest re-runs."""
    path = get_source_path(wildcards)
    if not _has_braces(path):
        return ""
    stat = os.stat(path)
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def get_source_relpath(wildcards):
    return TRACKS.loc[wildcards.track, "relpath"]


def get_stems(wildcards):
    """Stem files of the track (none until source separation exists)."""
    return {}


def crop_features_on():
    return config["stages"]["crops"] and config["stages"]["crop_features"]


def get_track_records(wildcards):
    """Per-track records that assemble merges into the .INFO, in stage order."""
    track = f"{OUT}/tracks/{wildcards.track}"
    records = [f"{track}/source.json", f"{track}/rhythm.json"]
    if config["stages"]["crops"]:
        records.append(f"{track}/crops.json")
    if config["stages"]["features"] or crop_features_on():
        records.append(f"{track}/features.json")
    return records


def get_features_crops(wildcards):
    """The crops the features job describes too, when crop features are on."""
    if not crop_features_on():
        return {}
    track = f"{OUT}/tracks/{wildcards.track}"
    return {"crops": f"{track}/crops", "crops_record": f"{track}/crops.json"}


def get_crops_dir(wildcards):
    return [f"{OUT}/tracks/{wildcards.track}/crops"] if config["stages"]["crops"] else []


def get_dataset_dirs(wildcards=None):
    return expand(f"{OUT}/dataset/{{track}}", track=TRACKS.index)


def get_final_output():
    """The summary, and each track's main targets: a deleted beat grid or crop
    folder is then made again (with what depends on it), not silently skipped
    because the dataset built from it still exists."""
    targets = [f"{OUT}/summary.json", f"{OUT}/manifest.parquet"]
    targets += expand(f"{OUT}/tracks/{{track}}/{{track}}.BEATS", track=TRACKS.index)
    if config["stages"]["crops"]:
        targets += expand(f"{OUT}/tracks/{{track}}/crops", track=TRACKS.index)
    targets += get_dataset_dirs()
    return targets


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
