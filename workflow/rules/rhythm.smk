from mirflow.models import missing_for

RHYTHM = config["rhythm"]
#: Beat This! reserves the GPU unless told to run on the CPU (with `auto`, the
#: job finds out at run time whether a GPU is there).
RHYTHM_GPU = int(RHYTHM["backend"] == "beat_this" and RHYTHM["beat_this"]["device"] != "cpu")
_model = RHYTHM["beat_this"]["model"]
RHYTHM_CHECKPOINT = (
    _model if _model.endswith(".ckpt") else f"{config['models_dir']}/beat_this/{_model}.ckpt"
)
if len(TRACKS) and workflow.is_main_process and RHYTHM["backend"] == "beat_this":
    if _model.endswith(".ckpt"):  # the user's own checkpoint: no manifest entry
        if not Path(RHYTHM_CHECKPOINT).is_file():
            sys.exit(f"mirflow: rhythm.beat_this.model: {RHYTHM_CHECKPOINT} is not a file.")
    elif _missing := missing_for("rhythm", RHYTHM, config["models_dir"]):
        sys.exit(
            f"mirflow: rhythm.backend beat_this needs {', '.join(map(str, _missing))}: "
            "run `make models` (downloads and checks the weights), or set rhythm.backend: madmom."
        )


rule rhythm:
    input:
        source=f"{TRACK_DIR}/source.json",
    output:
        beats=f"{TRACK_DIR}/{{track}}.BEATS",
        record=f"{TRACK_DIR}/rhythm.json",
    log:
        f"{LOGS}/rhythm/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/rhythm/{{track}}.tsv"
    params:
        source=get_source_path,
        beats_per_bar=RHYTHM["beats_per_bar"],
        onset_threshold=RHYTHM["onset_threshold"],
        backend=RHYTHM["backend"],
        checkpoint=RHYTHM_CHECKPOINT,
        device=RHYTHM["beat_this"]["device"],
    threads: 1
    resources:
        mem_mb=mem_mb("rhythm"),
        gpu=RHYTHM_GPU,
    conda:
        CONDA_ENV
    script:
        "../../scripts/rhythm.py"
