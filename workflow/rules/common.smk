import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

# The mirflow package lives in scripts/. Jobs find it without installing:
# Snakemake puts a rule script's own folder (scripts/) on its path.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from mirflow.batches import make_batches, recorded_batch, stems_are_current
from mirflow.discovery import TRACK_ID_PATTERN, LibraryError, discover
from mirflow.separation import STEMS, missing_files
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
            "library_stems": [dict(t.library_stems) for t in tracks],
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


def crop_features_on():
    return config["stages"]["crops"] and config["stages"]["crop_features"]


def get_track_records(wildcards):
    """Per-track records that assemble merges into the .INFO, in stage order."""
    track = f"{OUT}/tracks/{wildcards.track}"
    records = [f"{track}/source.json", f"{track}/rhythm.json"]
    if SEPARATION_ON:
        records.append(f"{track}/stems.json")
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


#: The report's figures (mirflow.report_plots.PLOTS), one caption each.
REPORT_PLOTS = [
    "bpm", "key", "loudness", "duration", "aesthetics", "genres", "moods",
    "crops_per_track", "rule_time",
]  # fmt: skip


def exports_on():
    return bool(config["export"]["formats"])


def get_export_record(wildcards=None):
    return [f"{OUT}/exports.json"] if exports_on() else []


def get_final_output():
    """The summary, and each track's main targets: a deleted beat grid or crop
    folder is then made again (with what depends on it), not silently skipped
    because the dataset built from it still exists."""
    targets = [f"{OUT}/summary.json", f"{OUT}/manifest.parquet"]
    targets += expand(f"{OUT}/report/{{name}}.png", name=REPORT_PLOTS)
    targets += get_export_record()
    targets += expand(f"{OUT}/tracks/{{track}}/{{track}}.BEATS", track=TRACKS.index)
    if SEPARATION_ON:
        targets += expand(f"{OUT}/tracks/{{track}}/stems", track=TRACKS.index)
    if config["stages"]["crops"]:
        targets += expand(f"{OUT}/tracks/{{track}}/crops", track=TRACKS.index)
    targets += get_dataset_dirs()
    return targets


# ---- source separation ----------------------------------------------------

SEPARATION = config["source_separation"]


def separation_state():
    """(on, note): is separation on, and if not, why (for the summary)."""
    wanted = SEPARATION["enabled"]
    if wanted is False:
        return False, "source separation: off (source_separation.enabled: false)"
    missing = missing_files(SEPARATION, config["models_dir"])
    if not missing:
        return True, ""
    if wanted == "auto":
        return False, (
            f"source separation: off, no model in {config['models_dir']} "
            f"({', '.join(str(m) for m in missing)} missing: run `make models`)"
        )
    return True, ""  # enabled: true and missing: stops below if any track needs separating


SEPARATION_ON, SEPARATION_NOTE = separation_state()


def plan_stems():
    """Where each track's stems come from: "library" (beside it in the
    library), "done" (already in the output, newer than its source record),
    or a separation batch. Only tracks that need separating are batched, so
    finished stems are never recomputed and new tracks form new batches."""
    if not SEPARATION_ON:
        return {}, {}, {}
    origin, pending, finished = {}, [], {}
    for track, library_stems in TRACKS["library_stems"].items():
        if SEPARATION["use_library_stems"] and set(STEMS) <= set(library_stems):
            origin[track] = ("library", None)
        elif stems_are_current(OUT, track):
            made = recorded_batch(OUT, track)
            origin[track] = ("done", made["batch"])
            if made["batch"]:
                finished[made["batch"]] = made
        else:
            pending.append(track)
    batches = make_batches(pending, SEPARATION["batch_size"])
    for batch, members in batches.items():
        origin.update({track: ("separate", batch) for track in members})
    return origin, batches, finished


STEM_ORIGIN, BATCHES, FINISHED_BATCHES = plan_stems()

if BATCHES and (missing := missing_files(SEPARATION, config["models_dir"])):
    sys.exit(
        f"mirflow: source separation needs {', '.join(str(m) for m in missing)}: run `make models` "
        "(downloads and checks the weights), or set source_separation.enabled: auto or false."
    )


def get_batch_members(wildcards):
    """``[track, source path]`` of a batch to run, or of a finished one exactly
    as it ran (see get_stems_input): same params, so nothing is redone."""
    if wildcards.batch in BATCHES:
        return [[track, TRACKS.loc[track, "path"]] for track in BATCHES[wildcards.batch]]
    return FINISHED_BATCHES.get(wildcards.batch, {}).get("members", [])


def batch_config(batch):
    """The separation settings of a batch: the config's for a batch to run,
    the recorded ones for a finished batch, so that editing the config never
    re-separates stems that exist (delete a track's stems/ to redo it)."""
    finished = FINISHED_BATCHES.get(batch)
    return finished["config"] if finished and finished["config"] else SEPARATION


def get_batch_config(wildcards):
    return batch_config(wildcards.batch)


def get_track_separation_config(wildcards):
    kind, batch = STEM_ORIGIN[wildcards.track]
    return batch_config(batch) if batch else SEPARATION


def get_batch_sources(wildcards):
    return [f"{OUT}/tracks/{track}/source.json" for track, _ in get_batch_members(wildcards)]


def get_stems_input(wildcards):
    """The batch folder the track is (or was) separated in.

    A finished track names the batch it came from, so its input set stays the
    same and Snakemake sees nothing to redo; library stems have none (they are
    a param: their paths may hold braces).
    """
    kind, batch = STEM_ORIGIN[wildcards.track]
    return [f"{OUT}/separation/{batch}"] if batch else []


def get_library_stems(wildcards):
    if STEM_ORIGIN[wildcards.track][0] != "library":
        return {}
    return TRACKS.loc[wildcards.track, "library_stems"]


def get_library_stems_stamp(wildcards):
    """Modification times and sizes of library stems: a changed stem re-runs
    the stems rule (they are params, not inputs; see get_library_stems)."""
    stamps = []
    for name, path in sorted(get_library_stems(wildcards).items()):
        stat = os.stat(path)
        stamps.append(f"{name}:{stat.st_mtime_ns}:{stat.st_size}")
    return ",".join(stamps)


def get_track_stems(wildcards):
    """The track's stems folder and record, for crops, features and assemble."""
    if not SEPARATION_ON:
        return {}
    track = f"{OUT}/tracks/{wildcards.track}"
    return {"stems": f"{track}/stems", "stems_record": f"{track}/stems.json"}


def get_crop_stems(wildcards):
    """Stems the crops stage cuts with the mix (none with crops.skip_stems)."""
    return {} if config["crops"]["skip_stems"] else get_track_stems(wildcards)


def get_stems_dir(wildcards):
    return [f"{OUT}/tracks/{wildcards.track}/stems"] if SEPARATION_ON else []


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
