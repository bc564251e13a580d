import functools
import inspect
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.settings.types import DeploymentMethod
from snakemake.common import overwrite_function_params
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The mirflow package lives in scripts/. Jobs find it without installing:
# Snakemake puts a rule script's own folder (scripts/) on its path.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from mirflow.atomic import read_json, write_json
from mirflow.batches import (
    batch_of_record,
    batch_size_for,
    finished_stems,
    make_batches,
    record_is_current,
)
from mirflow.discovery import TRACK_ID_PATTERN, LibraryError, discover
from mirflow.passes import PASSES
from mirflow.separation import STEMS, missing_files
from mirflow.shards import MERGE, Shard, parse_shard
from mirflow.stale_lock import lock_advice
from mirflow.summary import (
    datasets_stamp,
    finished_datasets,
    format_summary,
    load_summary,
    mark_run_started,
    run_started,
    write_unfinished_summary,
)
from mirflow.track_registry import (
    RegistryError,
    assign_ids,
    load_registry,
    registry_path,
    update_registry,
)
from mirflow.unfinished import find_unfinished, read_logs

validate(config, schema="../schemas/config.schema.yaml")

OUT = os.path.normpath(config["output"])
LOGS = f"{OUT}/logs"
BENCHMARKS = f"{OUT}/benchmarks"

# A killed run's lock: name the command that removes it (Snakemake's own
# "cannot be locked" follows) or the live run that holds it.
if workflow.is_main_process and "--unlock" not in sys.argv:
    if advice := lock_advice(Path.cwd(), OUT, sys.argv):
        print(advice, file=sys.stderr)


# Whether this parse starts a run and may write to the output (the track id
# registry, a damaged stems record): a run's main process, not a dry run, --lint
# (the one parse made without checking envvars) or a job's process. Snakemake
# sets dag_settings and the executor only after parsing, so neither tells here.
STARTING_A_RUN = (
    workflow.is_main_process and not workflow.output_settings.dryrun and workflow.check_envvars
)


def load_track_table():
    """The library's tracks (discovery + ids), one row per track, indexed by id.

    Ids come from the output's registry (mirflow.track_registry): a file keeps
    the id it was first given, whatever is added beside it. The main process
    registers new files' ids under a lock (shards started at once agree); a dry
    run and jobs compute the same ids from the registry without writing.
    """
    registry = registry_path(OUT)
    if STARTING_A_RUN:
        assign = functools.partial(update_registry, registry)
    else:

        def assign(relpaths):
            return assign_ids(relpaths, load_registry(registry))

    try:
        tracks = discover(config["input"], exclude=[config["output"]], assign=assign)
    except LibraryError as exc:
        # A plain message, not a traceback: this is the user's input, not a bug.
        sys.exit(f"mirflow: {exc}. Set 'input' in config/config.yaml or pass --config input=PATH.")
    except RegistryError as exc:
        sys.exit(f"mirflow: {exc}. Restore it from a backup, or fix the entry it names.")
    return pd.DataFrame(
        {
            "track": [t.track for t in tracks],
            "path": [str(t.path) for t in tracks],
            "relpath": [t.relpath for t in tracks],
            "library_stems": [dict(t.library_stems) for t in tracks],
        }
    ).set_index("track", drop=False)


LIBRARY = load_track_table()

# A large library runs as shards (README, "Large libraries"): `shard: I/N`
# builds the per-track outputs of the tracks in shard I, `shard: merge` the
# library-wide ones (summary, manifest, report, exports) from the datasets the
# shards finished, without a per-track job in its DAG.
try:
    SHARD = parse_shard(config["shard"])
except ValueError as exc:
    sys.exit(f"mirflow: {exc}")
MERGE_SHARDS = SHARD == MERGE
IN_SHARD = isinstance(SHARD, Shard)
TRACKS = LIBRARY[[track in SHARD for track in LIBRARY.index]] if IN_SHARD else LIBRARY
# Plain dicts for what jobs look up per track: far cheaper than TRACKS.loc,
# which a 10k-track DAG would call tens of thousands of times.
SOURCE_PATH = dict(zip(TRACKS.index, TRACKS["path"]))
SOURCE_RELPATH = dict(zip(TRACKS.index, TRACKS["relpath"]))
LIBRARY_STEMS = dict(zip(TRACKS.index, TRACKS["library_stems"]))

# Rules name their conda environment only where it is used (--sdm conda) or
# checked (--lint, which builds no DAG): Snakemake otherwise resolves it for
# every job of every dry-run. A plain run uses the environment it runs in.
CONDA_ENV = (
    "../../envs/mirflow.yaml"
    if workflow.dag_settings is None
    or DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else None
)


# Ids are built from [A-Za-z0-9._+-] (mirflow.discovery), never "/": a
# character class keeps matching cheap however large the library.
wildcard_constraints:
    track=TRACK_ID_PATTERN,
    batch="b[0-9a-f]+",


def mem_mb(rule_name):
    return config["resources"]["mem_mb"].get(rule_name, 2000)


# ---- input functions ------------------------------------------------------


def input_function(func):
    """Give Snakemake ``func``'s signature up front: it otherwise inspects it on
    every call, once per job and function (snakemake.common.get_function_params)."""
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


@input_function
def get_source_path(wildcards):
    """The track's file in the library (a param: see get_source_audio)."""
    return SOURCE_PATH[wildcards.track]


def _has_braces(path):
    return "{" in path or "}" in path


@input_function
def get_source_audio(wildcards):
    """The library file as ingest's input, so Snakemake tracks it.

    Snakemake reads "{name}" in any input path as a wildcard and has no escape,
    so a file named like "a {b}.flac" cannot be an input; get_source_stamp
    tracks such a file instead. Later rules depend on ingest's source.json.
    """
    path = get_source_path(wildcards)
    return [] if _has_braces(path) else path


@input_function
def get_source_stamp(wildcards):
    """Modification time and size of a file get_source_audio cannot declare:
    when they change, the params differ and ingest re-runs."""
    path = get_source_path(wildcards)
    if not _has_braces(path):
        return ""
    stat = os.stat(path)
    return f"{stat.st_mtime_ns}:{stat.st_size}"


@input_function
def get_source_relpath(wildcards):
    return SOURCE_RELPATH[wildcards.track]


def crop_features_on():
    return config["stages"]["crops"] and config["stages"]["crop_features"]


#: A track's folder as a wildcard template. Inputs whose shape is the same for
#: every track are such templates, not input functions: Snakemake fills them
#: in for a fraction of a function call's cost, which counts at 10k+ tracks.
TRACK_DIR = f"{OUT}/tracks/{{track}}"


def track_records():
    """Per-track records that assemble merges into the .INFO, in stage order."""
    records = [f"{TRACK_DIR}/source.json", f"{TRACK_DIR}/rhythm.json"]
    if SEPARATION_ON:
        records.append(f"{TRACK_DIR}/stems.json")
    if config["stages"]["crops"]:
        records.append(f"{TRACK_DIR}/crops.json")
    if features_on():
        records.append(f"{TRACK_DIR}/features.json")
    records += [f"{TRACK_DIR}/{name}.json" for name in MODEL_PASSES if PASS_ON[name]]
    return records


def pass_files_dirs():
    """Folders of files a pass wrote for the track's crops (MIDI), for assemble."""
    return [f"{TRACK_DIR}/midi"] if PASS_ON["transcription"] else []


def time_series_file():
    """The track's time series, which the features job writes when they are on
    (features.time_series) and assemble puts beside the track's .INFO."""
    if not (config["features"]["time_series"]["enabled"] and features_on()):
        return {}
    return {"time_series": f"{TRACK_DIR}/{{track}}.timeseries.parquet"}


def crops_dir():
    return [f"{TRACK_DIR}/crops"] if config["stages"]["crops"] else []


def get_dataset_dirs(wildcards=None):
    """Every track's dataset; none in a merge of shards, which reads the datasets
    on disk instead of depending on their jobs (see merge_params)."""
    if MERGE_SHARDS:
        return []
    return expand(f"{OUT}/dataset/{{track}}", track=TRACKS.index)


def merge_inputs():
    """The track table, for export in a merge of shards (it names the library)."""
    return {"table": f"{OUT}/tracks.tsv"} if MERGE_SHARDS else {}


@functools.cache  # one scan of the datasets for summary and export
def merge_params():
    """In a merge of shards, a digest of the finished datasets: summary and export
    re-run when a shard has finished or redone tracks (their inputs hold none)."""
    if not MERGE_SHARDS:
        return {}
    return {"merged_datasets": datasets_stamp(finished_datasets(OUT, TRACKS.index)[0])}


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
    because the dataset built from it still exists. A shard makes only its
    tracks' targets; a merge of shards only the library-wide ones."""
    library_wide = [f"{OUT}/summary.json", f"{OUT}/manifest.parquet"]
    library_wide += expand(f"{OUT}/report/{{name}}.png", name=REPORT_PLOTS)
    library_wide += get_export_record()
    if MERGE_SHARDS:
        return library_wide
    targets = [] if IN_SHARD else library_wide
    targets += expand(f"{OUT}/tracks/{{track}}/{{track}}.BEATS", track=TRACKS.index)
    if SEPARATION_ON:
        targets += expand(f"{OUT}/tracks/{{track}}/stems", track=TRACKS.index)
        targets += expand(f"{OUT}/tracks/{{track}}/stems.json", track=TRACKS.index)
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
        made, damage = finished_stems(OUT, track)
        if damage and workflow.is_main_process:
            print(f"mirflow: {track}: {damage} in its stems: made again", file=sys.stderr)
        if SEPARATION["use_library_stems"] and set(STEMS) <= set(library_stems):
            origin[track] = ("library", None)
            if damage:
                redo_library_stems(track)
        elif made is not None:
            origin[track] = ("done", made["batch"])
            if made["batch"]:
                finished[made["batch"]] = made
        else:
            pending.append(track)  # a damaged track gets a new batch: its input changes
    batches = make_batches(pending, SEPARATION["batch_size"])
    for batch, members in batches.items():
        origin.update({track: ("separate", batch) for track in members})
    return origin, batches, finished


#: Tracks whose library stems the dry-run shows as to be remade (redo_library_stems).
LIBRARY_STEMS_TO_REDO = set()


def redo_library_stems(track):
    """Library stems are params, not inputs, so nothing tells Snakemake that
    one it linked into the output is gone: a run removes the damaged record
    (a missing output is remade, and what depends on it); a dry run, which
    writes nothing, shows the job through its input (see get_stems_input)."""
    if STARTING_A_RUN:
        os.remove(f"{OUT}/tracks/{track}/stems.json")
    else:
        LIBRARY_STEMS_TO_REDO.add(track)


@input_function
def get_batch_members(wildcards):
    """``[track, source path]`` of a batch to run, or of a finished one exactly
    as it ran (see get_stems_input): same params, so nothing is redone."""
    if wildcards.batch in BATCHES:
        return [[track, SOURCE_PATH[track]] for track in BATCHES[wildcards.batch]]
    return FINISHED_BATCHES.get(wildcards.batch, {}).get("members", [])


def batch_config(batch):
    """The separation settings of a batch: the config's for a batch to run,
    the recorded ones for a finished batch, so that editing the config never
    re-separates stems that exist (delete a track's stems/ to redo it)."""
    finished = FINISHED_BATCHES.get(batch)
    return finished["config"] if finished and finished["config"] else SEPARATION


@input_function
def get_batch_config(wildcards):
    return batch_config(wildcards.batch)


@input_function
def get_track_separation_config(wildcards):
    kind, batch = STEM_ORIGIN[wildcards.track]
    return batch_config(batch) if batch else SEPARATION


@input_function
def get_batch_sources(wildcards):
    return [f"{OUT}/tracks/{track}/source.json" for track, _ in get_batch_members(wildcards)]


@input_function
def get_stems_input(wildcards):
    """The batch folder the track is (or was) separated in.

    A finished track names the batch it came from, so its input set stays the
    same and Snakemake sees nothing to redo; library stems have none (they are
    a param: their paths may hold braces).
    """
    kind, batch = STEM_ORIGIN[wildcards.track]
    if wildcards.track in LIBRARY_STEMS_TO_REDO:
        return [f"{OUT}/tracks/{wildcards.track}/source.json"]
    return [f"{OUT}/separation/{batch}"] if batch else []


@input_function
def get_library_stems(wildcards):
    if STEM_ORIGIN[wildcards.track][0] != "library":
        return {}
    return LIBRARY_STEMS[wildcards.track]


@input_function
def get_library_stems_stamp(wildcards):
    """Modification times and sizes of library stems: a changed stem re-runs
    the stems rule (they are params, not inputs; see get_library_stems)."""
    stamps = []
    for name, path in sorted(get_library_stems(wildcards).items()):
        stat = os.stat(path)
        stamps.append(f"{name}:{stat.st_mtime_ns}:{stat.st_size}")
    return ",".join(stamps)


def track_stems():
    """The track's stems folder and record, for crops, features and assemble."""
    if not SEPARATION_ON:
        return {}
    return {"stems": f"{TRACK_DIR}/stems", "stems_record": f"{TRACK_DIR}/stems.json"}


def crop_stems():
    """Stems the crops stage cuts with the mix (none with crops.skip_stems)."""
    return {} if config["crops"]["skip_stems"] else track_stems()


def stems_dir():
    return [f"{TRACK_DIR}/stems"] if SEPARATION_ON else []


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
    return plan_batches(name, lambda track: [pass_upstream(track)], config[name]["batch_size"])


def plan_batches(name, upstream, batch_size, cores=None):
    """:func:`plan_pass` for the records ``<name>.json`` made from the
    files ``upstream(track)``; with ``cores``, a few pending tracks are
    spread over that many batches."""
    origin, pending, finished = {}, [], {}
    for track in TRACKS.index:
        record = f"{OUT}/tracks/{track}/{name}.json"
        batch = None
        if record_is_current(record, upstream(track)):
            batch = batch_of_record(record)
        if batch:
            origin[track] = batch
            finished.setdefault(batch, []).append(track)
        else:
            pending.append(track)
    if cores:
        batch_size = batch_size_for(len(pending), batch_size, cores)
    batches = make_batches(pending, batch_size)
    for batch, members in batches.items():
        origin.update({track: batch for track in members})
    return origin, batches, finished


# ---- features ---------------------------------------------------------------


def features_on():
    return config["stages"]["features"] or crop_features_on()


def features_inputs(track):
    """What a track's features are made from."""
    folder = f"{OUT}/tracks/{track}"
    inputs = [f"{folder}/source.json", f"{folder}/rhythm.json", f"{folder}/{track}.BEATS"]
    if crop_features_on():
        inputs.append(f"{folder}/crops.json")
    if SEPARATION_ON:
        inputs += [f"{folder}/stems.json", f"{folder}/stems"]
    return inputs


def plan_features():
    """:func:`plan_pass` for the features: batches of features.batch_size
    tracks, split further so that a small library still uses every core."""
    if not features_on():
        return {}, {}, {}
    try:
        cores = workflow.cores
    except WorkflowError:  # none given (a cluster executor): batches of batch_size
        cores = None
    return plan_batches("features", features_inputs, config["features"]["batch_size"], cores)


# ---- the run's plan ---------------------------------------------------------

# Which tracks share a batch is decided once, by the main Snakemake process,
# from what is finished when the run starts. A job that parses the workflow
# again (a cluster job) would see more tracks finished, hence other batches:
# it reads the plan the run started with (written by onstart).
# Each shard has its own, so shards running at once never overwrite each other's.
PLAN_FILE = f"{OUT}/.mirflow/plan-{SHARD.name}.json" if IN_SHARD else f"{OUT}/.mirflow/plan.json"


def make_plan():
    if MERGE_SHARDS:  # no per-track job runs, so there is nothing to batch
        return {
            "stems": ({}, {}, {}),
            "passes": {name: ({}, {}, {}) for name in MODEL_PASSES},
            "features": ({}, {}, {}),
        }
    return {
        "stems": plan_stems(),
        "passes": {name: plan_pass(name) for name in MODEL_PASSES},
        "features": plan_features(),
    }


if not workflow.is_main_process and os.path.exists(PLAN_FILE):
    PLAN = read_json(PLAN_FILE)
else:
    PLAN = make_plan()
STEM_ORIGIN, BATCHES, FINISHED_BATCHES = PLAN["stems"]
PASS_PLANS = PLAN["passes"]
#: Every batched per-track rule's plan: the model passes' and the features'.
BATCH_PLANS = {**PASS_PLANS, "features": PLAN["features"]}

if BATCHES:
    stop_if_missing("source_separation", "source separation", SEPARATION_MISSING)
for _name, (_, _pending, _) in PASS_PLANS.items():
    if _pending:
        stop_if_missing(_name, _name, PASS_MISSING[_name])


def pass_batch_tracks(name, batch):
    origin, pending, finished = BATCH_PLANS[name]
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

    @input_function
    def members(wildcards):
        crops_on = config["stages"]["crops"]
        return [
            [
                track,
                SOURCE_PATH[track],
                f"{OUT}/tracks/{track}/crops" if crops_on else None,
                pass_upstream(track),
                pass_context(name, track),
            ]
            for track in pass_batch_tracks(name, wildcards.batch)
        ]

    return members


@input_function
def features_members(wildcards):
    """Params function: the files each track of a features batch is made from."""
    members = []
    for track in pass_batch_tracks("features", wildcards.batch):
        folder = f"{OUT}/tracks/{track}"
        members.append(
            {
                "track": track,
                "source": SOURCE_PATH[track],
                "source_record": f"{folder}/source.json",
                "rhythm": f"{folder}/rhythm.json",
                "beats": f"{folder}/{track}.BEATS",
                "crops_record": f"{folder}/crops.json" if crop_features_on() else None,
                "stems_record": f"{folder}/stems.json" if SEPARATION_ON else None,
                "stems": f"{folder}/stems" if SEPARATION_ON else None,
            }
        )
    return members


def pass_batch_inputs(name):
    """Input function: the records a batch's tracks are made from."""

    def upstream(track):
        if name == "features":
            return features_inputs(track)
        return [pass_upstream(track), *pass_context(name, track)]

    @input_function
    def inputs(wildcards):
        return [path for track in pass_batch_tracks(name, wildcards.batch) for path in upstream(track)]

    return inputs


def pass_batch_dir(name):
    """Input function: the batch folder a track's results come (or came) from.
    A finished track names its old batch, so its inputs stay the same and
    Snakemake sees nothing to redo (the folder itself is temporary)."""

    @input_function
    def batch_dir(wildcards):
        return f"{OUT}/passes/{name}/{BATCH_PLANS[name][0][wildcards.track]}"

    return batch_dir


# ---- run hooks ------------------------------------------------------------


onstart:
    # A merge runs no track: the summary's "this run" figures count from the
    # start of the latest shard run.
    if not MERGE_SHARDS:
        mark_run_started(OUT)
        write_json(PLAN_FILE, PLAN)


onsuccess:
    summary_file = Path(OUT) / "summary.json"
    if summary_file.exists() and not IN_SHARD:
        print(format_summary(load_summary(summary_file)), file=sys.stderr)


onerror:
    # A failed job (not a bad track) stops the summary rule: write the summary
    # here, with each track it left unfinished, the stage and the cause.
    # A merge runs no track job: its unfinished tracks are pending, not failed.
    unfinished = (
        []
        if MERGE_SHARDS
        else find_unfinished(
            OUT,
            {t: [r.replace("{track}", t) for r in track_records()] for t in TRACKS.index},
            read_logs(log),
            since=run_started(OUT),
        )
    )
    if unfinished and IN_SHARD:  # summary.json is the library's: the merge writes it
        for u in unfinished:
            print(f"mirflow: {u.track} unfinished: {u.cause}", file=sys.stderr)
    elif unfinished:
        try:
            summary = write_unfinished_summary(
                OUT,
                config["input"],
                list(TRACKS.index),
                {u.track: (TRACKS.loc[u.track, "relpath"], u.cause) for u in unfinished},
                notes=[SEPARATION_NOTE, *PASS_NOTES],
            )
            print(format_summary(summary), file=sys.stderr)
        except OSError as error:  # e.g. the full disk that failed the job
            print(f"mirflow: could not write the summary: {error}", file=sys.stderr)
    print(
        f"mirflow: some jobs failed (not a bad track: those are recorded and the run goes on). "
        f"See the log named above each error, under {LOGS}/.",
        file=sys.stderr,
    )
