# Essentia classifier labels (genre, mood, instrument, voice, danceability, tonality) of every crop and of the whole track.
# One classifiers_batch job loads the model once for a batch of tracks (see
# mirflow.passes: only tracks without a current record are batched); rule classifiers
# then gives each track its own record, so a finished track never runs again.


rule classifiers_batch:
    input:
        records=pass_batch_inputs("classifiers"),
    output:
        batch=temp(directory(f"{OUT}/passes/classifiers/{{batch}}")),
    log:
        f"{LOGS}/classifiers/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/classifiers/{{batch}}.tsv"
    params:
        stage="classifiers",
        members=pass_members("classifiers"),
        options=config["classifiers"],
        models_dir=config["models_dir"],
    threads: config["classifiers"]["threads"]
    resources:
        gpu=PASS_GPU["classifiers"],
        mem_mb=config["classifiers"]["mem_mb"],
    conda:
        CONDA_ENV
    script:
        "../../scripts/model_pass.py"


# Copies the track's record out of the batch (a shell command: no Python
# start-up, and no re-parse of the workflow as a run: block would cost).
rule classifiers:
    input:
        batch=pass_batch_dir("classifiers"),
    output:
        record=f"{OUT}/tracks/{{track}}/classifiers.json",
    log:
        f"{LOGS}/classifiers/tracks/{{track}}.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cp {input.batch:q}/{wildcards.track}/record.json {output.record:q} 2> {log:q}"
