import functools
import inspect
import os
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.common import overwrite_function_params
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The mirflow package lives in scripts/. Jobs find it without installing:
# Snakemake puts a rule script's own folder (scripts/) on its path.
sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from mirflow import memory, plan
from mirflow.atomic import write_json
from mirflow.discovery import TRACK_ID_PATTERN, LibraryError
from mirflow.fingerprint import groups_by_track
from mirflow.passes import PASSES
from mirflow.shards import MERGE, Shard, parse_shard
from mirflow.stale_lock import lock_advice
from mirflow.summary import datasets_stamp, failed_run_report, finished_datasets
from mirflow.summary import format_summary, load_summary, mark_run_started
from mirflow.track_registry import RegistryError, library_table
from mirflow.unfinished import read_logs

validate(config, schema="../schemas/config.schema.yaml")

OUT = os.path.normpath(config["output"])
LOGS = f"{OUT}/logs"
BENCHMARKS = f"{OUT}/benchmarks"
#: A track's folder as a wildcard template: inputs of the same shape for every
#: track are such templates, which Snakemake fills far faster than it calls a function.
TRACK_DIR = f"{OUT}/tracks/{{track}}"

# A killed run's lock: name the command that removes it (Snakemake's own
# "cannot be locked" follows) or the live run that holds it.
if workflow.is_main_process and "--unlock" not in sys.argv:
    if advice := lock_advice(Path.cwd(), OUT, sys.argv):
        print(advice, file=sys.stderr)

# Whether this parse starts a run and may write to the output (the id registry,
# a damaged stems record): not a dry run, --lint (the one parse made without
# checking envvars) or a job. dag_settings and the executor come after parsing.
STARTING_A_RUN = (
    workflow.is_main_process and not workflow.output_settings.dryrun and workflow.check_envvars
)


# The track table (mirflow.track_registry.library_table): ids are registered
# only by a run's main process; a dry run and jobs compute the same ones.
try:
    LIBRARY = library_table(config["input"], config["output"], register=STARTING_A_RUN)
except LibraryError as exc:
    # A plain message, not a traceback: this is the user's input, not a bug.
    sys.exit(f"mirflow: {exc}. Set 'input' in config/config.yaml or pass --config input=PATH.")
except RegistryError as exc:
    sys.exit(f"mirflow: {exc}. Restore it from a backup, or fix the entry it names.")

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
# Plain dicts for what jobs look up per track: far cheaper than TRACKS.loc.
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


def mem_mb(rule_name, batch_of=None):
    """Resources callable: the rule's memory for the job's longest track
    (mirflow.memory), with the job's own Snakemake process where it has one (a
    cluster executor). Snakemake calls it again just before the job starts, when
    ingest has probed the track; ``batch_of`` names the batch plan of a batched rule."""

    def declared(wildcards, attempt):
        if "track" in wildcards.keys():
            tracks = [wildcards.track]
        elif batch_of == "separation":
            tracks = [track for track, _ in get_batch_members(wildcards)]
        else:
            tracks = batch_tracks(batch_of, wildcards.batch) if batch_of else []
        minutes = memory.longest_minutes(f"{OUT}/tracks/{t}/source.json" for t in tracks)
        return memory.job_mem_mb(
            rule_name, minutes, config["resources"], attempt, own_process=not workflow.local_exec
        )

    return declared


# ---- which stages run, and the run's plan (mirflow.plan) ---------------------

STAGES = plan.Stages.from_config(config, OUT, PASSES)
SEPARATION_ON, PASS_ON, NOTES = STAGES.separation, STAGES.passes, list(STAGES.notes)
# Each shard has its own plan file, so shards running at once never overwrite
# each other's; a merge runs no per-track job, so there is nothing to batch.
PLAN_FILE = f"{OUT}/.mirflow/plan-{SHARD.name}.json" if IN_SHARD else f"{OUT}/.mirflow/plan.json"
#: Tracks whose library stems a dry run shows as to be linked again (get_stems_input).
LIBRARY_STEMS_TO_REDO = set()


def make_plan():
    try:
        cores = workflow.cores
    except WorkflowError:  # none given (a cluster executor): batches of batch_size
        cores = None
    tracks = {} if MERGE_SHARDS else LIBRARY_STEMS
    new, stems = plan.make_plan(STAGES, config, tracks, cores, repair=STARTING_A_RUN)
    for track, damage in stems.damaged.items() if workflow.is_main_process else ():
        print(f"mirflow: {track}: {damage} in its stems: made again", file=sys.stderr)
    LIBRARY_STEMS_TO_REDO.update(stems.library_redo)
    return new


PLAN = plan.read_or_make(PLAN_FILE, not workflow.is_main_process, make_plan)
#: Every batched per-track rule's plan: the model passes' and the features'.
BATCH_PLANS = {**PLAN["passes"], "features": PLAN["features"]}
if stop := plan.missing_models(STAGES, PLAN):
    sys.exit(stop)


# ---- input functions --------------------------------------------------------


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


# ---- what assemble gathers per track, and the final targets ------------------


def track_records():
    """Per-track records that assemble merges into the .INFO, in stage order."""
    records = [f"{TRACK_DIR}/source.json", f"{TRACK_DIR}/rhythm.json"]
    if SEPARATION_ON:
        records.append(f"{TRACK_DIR}/stems.json")
    if config["stages"]["crops"]:
        records.append(f"{TRACK_DIR}/crops.json")
    if STAGES.features:
        records.append(f"{TRACK_DIR}/features.json")
    return records + [f"{TRACK_DIR}/{name}.json" for name in PASSES if PASS_ON[name]]


def time_series_file():
    """The track's time series, which the features job writes when they are on
    (features.time_series) and assemble puts beside the track's .INFO."""
    if not (config["features"]["time_series"]["enabled"] and STAGES.features):
        return {}
    return {"time_series": f"{TRACK_DIR}/{{track}}.timeseries.parquet"}


@input_function
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


def duplicates_file():  # the library's groups of copies: not a shard's to make
    return [f"{OUT}/duplicates.json"] if STAGES.duplicates and not IN_SHARD else []


@input_function
def get_export_record(wildcards=None):
    return [f"{OUT}/exports.json"] if config["export"]["formats"] else []


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
    names = ["{track}.BEATS"] + (["fingerprint.json"] if STAGES.duplicates else [])
    names += ["stems", "stems.json"] if SEPARATION_ON else []
    names += ["crops"] if config["stages"]["crops"] else []
    names += [f"{name}.json" for name in PASSES if PASS_ON[name]]
    for name in names:
        targets += expand(f"{TRACK_DIR}/{name}", track=TRACKS.index)
    return targets + get_dataset_dirs()
