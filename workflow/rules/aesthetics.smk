# AudioBox Aesthetics scores (CE, CU, PC, PQ) of every crop and of the whole track.
# One aesthetics_batch job loads the model once for a batch of tracks (see
# mirflow.passes: only tracks without a current record are batched); rule aesthetics
# then gives each track its own record, so a finished track never runs again.


rule aesthetics_batch:
    input:
        records=pass_batch_inputs("aesthetics"),
    output:
        batch=temp(directory(f"{OUT}/passes/aesthetics/{{batch}}")),
    log:
        f"{LOGS}/aesthetics/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/aesthetics/{{batch}}.tsv"
    params:
        stage="aesthetics",
        members=pass_members("aesthetics"),
        options=config["aesthetics"],
        models_dir=config["models_dir"],
    threads: config["aesthetics"]["threads"]
    resources:
        gpu=PASS_GPU["aesthetics"],
        mem_mb=config["aesthetics"]["mem_mb"],
    conda:
        CONDA_ENV
    script:
        "../../scripts/model_pass.py"


# Copies the track's record out of the batch (a shell command: no Python
# start-up, and no re-parse of the workflow as a run: block would cost).
rule aesthetics:
    input:
        batch=pass_batch_dir("aesthetics"),
    output:
        record=f"{OUT}/tracks/{{track}}/aesthetics.json",
    log:
        f"{LOGS}/aesthetics/tracks/{{track}}.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cp {input.batch:q}/{wildcards.track}/record.json {output.record:q} 2> {log:q}"
