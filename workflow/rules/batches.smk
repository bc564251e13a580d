# Input functions of the batched rules: separation, the features and the model
# passes. Which tracks each batch takes is decided once per run (mirflow.plan,
# PLAN in common.smk); a finished track names the batch it came from, so its
# inputs stay the same and Snakemake sees nothing to redo.


def batch_tracks(name, batch):
    """The tracks of batch ``batch`` of the batched rule ``name``."""
    origin, pending, finished = BATCH_PLANS[name]
    return pending.get(batch) or finished.get(batch, [])


def get_batch_inputs(name):
    """Input function: every file the tracks of a batch are made from."""

    @input_function
    def inputs(wildcards):
        tracks = batch_tracks(name, wildcards.batch)
        return [path for track in tracks for path in STAGES.upstream(name, track)]

    return inputs


def get_batch_dir(name):
    """Input function: the batch folder a track's results come (or came) from.
    A finished track names its old batch, so its inputs stay the same and
    Snakemake sees nothing to redo (the folder itself is temporary)."""

    @input_function
    def batch_dir(wildcards):
        return f"{OUT}/passes/{name}/{BATCH_PLANS[name][0][wildcards.track]}"

    return batch_dir


# ---- separation ------------------------------------------------------------

SEPARATION = config["source_separation"]
STEM_ORIGIN, SEPARATION_BATCHES, FINISHED_SEPARATIONS = PLAN["stems"]


@input_function
def get_batch_members(wildcards):
    """``[track, source path]`` of a batch to run, or of a finished one exactly
    as it ran (see get_stems_input): same params, so nothing is redone."""
    if wildcards.batch in SEPARATION_BATCHES:
        return [[track, SOURCE_PATH[track]] for track in SEPARATION_BATCHES[wildcards.batch]]
    return FINISHED_SEPARATIONS.get(wildcards.batch, {}).get("members", [])


def batch_config(batch):
    """The separation settings of a batch: the config's for a batch to run,
    the recorded ones for a finished batch, so that editing the config never
    re-separates stems that exist (delete a track's stems/ to redo it)."""
    finished = FINISHED_SEPARATIONS.get(batch)
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


# ---- features and model passes ---------------------------------------------


@input_function
def get_features_members(wildcards):
    """Params function: the files each track of a features batch is made from."""
    members = []
    for track in batch_tracks("features", wildcards.batch):
        folder = f"{OUT}/tracks/{track}"
        members.append(
            {
                "track": track,
                "source": SOURCE_PATH[track],
                "source_record": f"{folder}/source.json",
                "rhythm": f"{folder}/rhythm.json",
                "beats": f"{folder}/{track}.BEATS",
                "crops_record": f"{folder}/crops.json" if STAGES.crop_features else None,
                "stems_record": f"{folder}/stems.json" if SEPARATION_ON else None,
                "stems": f"{folder}/stems" if SEPARATION_ON else None,
            }
        )
    return members


def get_pass_members(name):
    """Params function: ``[track, source, crops dir, upstream record, context
    records]`` of each track of a batch of pass ``name``."""

    @input_function
    def members(wildcards):
        crops_on = config["stages"]["crops"]
        return [
            [
                track,
                SOURCE_PATH[track],
                f"{OUT}/tracks/{track}/crops" if crops_on else None,
                STAGES.pass_upstream(track),
                STAGES.pass_context(name, track),
            ]
            for track in batch_tracks(name, wildcards.batch)
        ]

    return members
