# The resident model passes, two rules each, made from their one description
# (mirflow.passes.PASSES: aesthetics, classifiers, transcription, captions).
# <pass>_batch loads the model once for a batch of tracks (mirflow.plan: only
# tracks without a current record are batched); rule <pass> then copies each
# track's part out of the batch, so a finished track never runs again.


for _name, _spec in PASSES.items():

    rule:
        name:
            f"{_name}_batch"
        input:
            records=get_batch_inputs(_name),
        output:
            batch=temp(directory(f"{OUT}/passes/{_name}/{{batch}}")),
        log:
            f"{LOGS}/{_name}/{{batch}}.log",
        benchmark:
            f"{BENCHMARKS}/{_name}/{{batch}}.tsv"
        params:
            stage=_name,
            members=get_pass_members(_name),
            options=config[_name],
            models_dir=config["models_dir"],
        threads: config[_name]["threads"]
        resources:
            gpu=_spec.gpu(config[_name]),
            mem_mb=mem_mb(f"{_name}_batch", batch_of=_name),
        conda:
            CONDA_ENV
        script:
            "../../scripts/model_pass.py"

    # A shell command: no Python start-up, and no re-parse of the workflow as
    # a run: block would cost. (Snakemake runs the shell string when the job
    # runs, after this loop: it must not name the loop's variables.)
    rule:
        name:
            _name
        input:
            batch=get_batch_dir(_name),
        output:
            **({"files": directory(f"{TRACK_DIR}/{_spec.files}")} if _spec.files else {}),
            record=f"{TRACK_DIR}/{_name}.json",
        log:
            f"{LOGS}/{_name}/tracks/{{track}}.log",
        params:
            # Whether to copy files (``:q`` of an empty path is no argument at all).
            copy_files=int(bool(_spec.files)),
            files=lambda wildcards, output: output.get("files", ""),
        localrule: True
        conda:
            CONDA_ENV
        shell:
            "if [ {params.copy_files} = 1 ]; then rm -rf {params.files:q} && cp -r"
            " {input.batch:q}/{wildcards.track}/files {params.files:q}; fi 2> {log:q}"
            " && cp {input.batch:q}/{wildcards.track}/record.json {output.record:q} 2>> {log:q}"
