import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from snakemake.utils import validate

# The mirflow package lives in scripts/. Jobs find it without installing:
# Snakemake puts a rule script's own folder (scripts/) on its path.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from mirflow.atomic import read_json, write_json
from mirflow.batches import (
    batch_of_record,
    make_batches,
    record_is_current,
    recorded_batch,
    stems_are_current,
)
from mirflow.discovery import TRACK_ID_PATTERN, LibraryError, discover
from mirflow.passes import PASSES
from mirflow.separation import STEMS, missing_files
from mirflow.summary import (
    format_summary,
    load_summary,
    mark_run_started,
    run_started,
    write_unfinished_summary,
)
from mirflow.unfinished import find_unfinished, read_logs

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
    batch="b[0-9a-f]+",


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
    records += [f"{track}/{name}.json" for name in MODEL_PASSES if PASS_ON[name]]
    return records


def get_pass_files_dirs(wildcards):
    """Folders of files a pass wrote for the track's crops (MIDI), for assemble."""
    return [f"{OUT}/tracks/{wildcards.track}/midi"] if PASS_ON["transcription"] else []


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
    for name in MODEL_PASSES:
        if PASS_ON[name]:
            targets += expand(f"{OUT}/tracks/{{track}}/{name}.json", track=TRACKS.index)
    targets += get_dataset_dirs()
    return targets


# ---- source separation ----------------------------------------------------

SEPARATION = config["source_separation"]


def model_state(section, label, missing):
    """(on, note) of a stage that needs models: ``enabled: false`` is off;
    ``auto`` is on when no file is ``missing``; ``true`` is on (and the run
    stops, see stop_if_missing, if a track needs the missing model)."""
    wanted = config[section]["enabled"]
    if wanted is False:
        return False, f"{label}: off ({section}.enabled: false)"
    if missing and wanted == "auto":
        return False, (
            f"{label}: off, no model in {config['models_dir']} "
            f"({', '.join(str(m) for m in missing)} missing: run `make models`)"
        )
    return True, ""


def stop_if_missing(section, label, missing):
    """Stop before any job: the stage has work to do and its model is not there."""
    if missing:
        sys.exit(
            f"mirflow: {label} needs {', '.join(str(m) for m in missing)}: run `make models` "
            f"(downloads and checks the weights), or set {section}.enabled: auto or false."
        )


SEPARATION_MISSING = missing_files(SEPARATION, config["models_dir"])
SEPARATION_ON, SEPARATION_NOTE = model_state(
    "source_separation", "source separation", SEPARATION_MISSING
)


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


# ---- model passes (aesthetics, classifiers, transcription) ----------------

#: The passes that run a resident model over crops, in the order their fields
#: reach the .INFO (mirflow.passes.PASSES does the work).
MODEL_PASSES = list(PASSES)


def pass_state(name, missing):
    """(on, note) of a pass: model_state, and off without crops to work on."""
    if config[name]["enabled"] and not config["stages"]["crops"]:
        if not config[name].get("track", False):
            return False, f"{name}: off (it works on crops, and stages.crops is false)"
    return model_state(name, name, missing)


#: GPUs a pass's batch job reserves: AudioBox runs on CUDA when it can;
#: Essentia's and basic-pitch's builds here are CPU-only.
PASS_GPU = {
    "aesthetics": 0 if config["aesthetics"]["device"] == "cpu" else 1,
    "classifiers": 0,
    "transcription": 0,
    "captions": 0 if config["captions"]["n_gpu_layers"] == 0 else 1,
}

PASS_MISSING = {
    name: PASSES[name].missing(config[name], config["models_dir"]) for name in MODEL_PASSES
}
PASS_ON, PASS_NOTES = {}, []
for _name in MODEL_PASSES:
    PASS_ON[_name], _note = pass_state(_name, PASS_MISSING[_name])
    PASS_NOTES += [_note] if _note else []


def pass_upstream(track):
    """The record a pass's results derive from: newer means they are stale."""
    record = "crops.json" if config["stages"]["crops"] else "source.json"
    return f"{OUT}/tracks/{track}/{record}"


def plan_pass(name):
    """``(origin {track: batch}, pending batches {batch: [track]}, finished
    batches {batch: [track]})``. Only tracks without a current record are
    batched, so adding tracks adds batches and never reruns finished ones."""
    if not PASS_ON[name]:
        return {}, {}, {}
    origin, pending, finished = {}, [], {}
    for track in TRACKS.index:
        record = f"{OUT}/tracks/{track}/{name}.json"
        batch = None
        if record_is_current(record, pass_upstream(track)):
            batch = batch_of_record(record)
        if batch:
            origin[track] = batch
            finished.setdefault(batch, []).append(track)
        else:
            pending.append(track)
    batches = make_batches(pending, config[name]["batch_size"])
    for batch, members in batches.items():
        origin.update({track: batch for track in members})
    return origin, batches, finished


# ---- the run's plan ---------------------------------------------------------

# Which tracks share a batch is decided once, by the main Snakemake process,
# from what is finished when the run starts. A job that parses the workflow
# again (a cluster job) would see more tracks finished, hence other batches:
# it reads the plan the run started with (written by onstart).
PLAN_FILE = f"{OUT}/.mirflow/plan.json"


def make_plan():
    return {"stems": plan_stems(), "passes": {name: plan_pass(name) for name in MODEL_PASSES}}


if not workflow.is_main_process and os.path.exists(PLAN_FILE):
    PLAN = read_json(PLAN_FILE)
else:
    PLAN = make_plan()
STEM_ORIGIN, BATCHES, FINISHED_BATCHES = PLAN["stems"]
PASS_PLANS = PLAN["passes"]

if BATCHES:
    stop_if_missing("source_separation", "source separation", SEPARATION_MISSING)
for _name, (_, _pending, _) in PASS_PLANS.items():
    if _pending:
        stop_if_missing(_name, _name, PASS_MISSING[_name])


def pass_batch_tracks(name, batch):
    origin, pending, finished = PASS_PLANS[name]
    return pending.get(batch) or finished.get(batch, [])


def pass_context(name, track):
    """Earlier records a pass reads: captions fill their prompts with the tags
    (source.json) and the Essentia labels (classifiers.json, when that runs)."""
    if name != "captions":
        return []
    records = [f"{OUT}/tracks/{track}/source.json"]
    if PASS_ON["classifiers"]:
        records.append(f"{OUT}/tracks/{track}/classifiers.json")
    return records


def pass_members(name):
    """Params function: ``[track, source, crops dir, upstream record, context
    records]`` of each track of a batch."""

    def members(wildcards):
        crops_on = config["stages"]["crops"]
        return [
            [
                track,
                TRACKS.loc[track, "path"],
                f"{OUT}/tracks/{track}/crops" if crops_on else None,
                pass_upstream(track),
                pass_context(name, track),
            ]
            for track in pass_batch_tracks(name, wildcards.batch)
        ]

    return members


def pass_batch_inputs(name):
    """Input function: the records a batch's tracks are made from."""

    def inputs(wildcards):
        return [
            record
            for track in pass_batch_tracks(name, wildcards.batch)
            for record in [pass_upstream(track), *pass_context(name, track)]
        ]

    return inputs


def pass_batch_dir(name):
    """Input function: the batch folder a track's results come (or came) from.
    A finished track names its old batch, so its inputs stay the same and
    Snakemake sees nothing to redo (the folder itself is temporary)."""

    def batch_dir(wildcards):
        return f"{OUT}/passes/{name}/{PASS_PLANS[name][0][wildcards.track]}"

    return batch_dir


# ---- run hooks ------------------------------------------------------------


onstart:
    mark_run_started(OUT)
    write_json(PLAN_FILE, PLAN)


onsuccess:
    summary_file = Path(OUT) / "summary.json"
    if summary_file.exists():
        print(format_summary(load_summary(summary_file)), file=sys.stderr)


onerror:
    # A failed job (not a bad track) stops the summary rule: write the summary
    # here, with each track it left unfinished, the stage and the cause.
    unfinished = find_unfinished(
        OUT,
        {t: get_track_records(SimpleNamespace(track=t)) for t in TRACKS.index},
        read_logs(log),
        since=run_started(OUT),
    )
    if unfinished:
        summary = write_unfinished_summary(
            OUT,
            config["input"],
            list(TRACKS.index),
            {u.track: (TRACKS.loc[u.track, "relpath"], u.cause) for u in unfinished},
            notes=[SEPARATION_NOTE, *PASS_NOTES],
        )
        print(format_summary(summary), file=sys.stderr)
    print(
        f"mirflow: some jobs failed (not a bad track: those are recorded and the run goes on). "
        f"See the log named above each error, under {LOGS}/.",
        file=sys.stderr,
    )
