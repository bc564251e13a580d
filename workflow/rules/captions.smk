# Music Flamingo captions of the crops (and optionally the whole track), through
# llama.cpp with the audio really reaching the model (mirflow.captions).
# One captions_batch job loads the model once for a batch of tracks (see
# mirflow.passes: only tracks without a current record are batched); rule
# captions then gives each track its own record, so a finished track never
# runs again.


rule captions_batch:
    input:
        records=pass_batch_inputs("captions"),
    output:
        batch=temp(directory(f"{OUT}/passes/captions/{{batch}}")),
    log:
        f"{LOGS}/captions/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/captions/{{batch}}.tsv"
    params:
        stage="captions",
        members=pass_members("captions"),
        options=config["captions"],
        models_dir=config["models_dir"],
    threads: config["captions"]["threads"]
    resources:
        gpu=PASS_GPU["captions"],
        mem_mb=config["captions"]["mem_mb"],
    conda:
        CONDA_ENV
    script:
        "../../scripts/model_pass.py"


# Copies the track's record out of the batch (a shell command: no Python
# start-up, and no re-parse of the workflow as a run: block would cost).
rule captions:
    input:
        batch=pass_batch_dir("captions"),
    output:
        record=f"{OUT}/tracks/{{track}}/captions.json",
    log:
        f"{LOGS}/captions/tracks/{{track}}.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cp {input.batch:q}/{wildcards.track}/record.json {output.record:q} 2> {log:q}"
