# MIDI transcription (basic-pitch) of every crop and of its bass, other and vocals stems.
# One transcription_batch job loads the model once for a batch of tracks (see
# mirflow.passes: only tracks without a current record are batched); rule transcription
# then gives each track its own record, so a finished track never runs again.


rule transcription_batch:
    input:
        records=pass_batch_inputs("transcription"),
    output:
        batch=temp(directory(f"{OUT}/passes/transcription/{{batch}}")),
    log:
        f"{LOGS}/transcription/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/transcription/{{batch}}.tsv"
    params:
        stage="transcription",
        members=pass_members("transcription"),
        options=config["transcription"],
        models_dir=config["models_dir"],
    threads: config["transcription"]["threads"]
    resources:
        gpu=PASS_GPU["transcription"],
        mem_mb=config["transcription"]["mem_mb"],
    conda:
        CONDA_ENV
    script:
        "../../scripts/model_pass.py"


# Copies the track's part of the batch out (a shell command: no Python
# start-up, and no re-parse of the workflow as a run: block would cost).
rule transcription:
    input:
        batch=pass_batch_dir("transcription"),
    output:
        record=f"{OUT}/tracks/{{track}}/transcription.json",
        midi=directory(f"{OUT}/tracks/{{track}}/midi"),
    log:
        f"{LOGS}/transcription/tracks/{{track}}.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "rm -rf {output.midi:q} && cp -r {input.batch:q}/{wildcards.track}/files {output.midi:q} 2> {log:q}"
        " && cp {input.batch:q}/{wildcards.track}/record.json {output.record:q} 2>> {log:q}"
