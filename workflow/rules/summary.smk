rule summary:
    input:
        table=f"{OUT}/tracks.tsv",
        datasets=get_dataset_dirs,
    output:
        summary=f"{OUT}/summary.json",
        manifest=f"{OUT}/manifest.parquet",
    log:
        f"{LOGS}/summary.log",
    params:
        output_root=OUT,
        input_root=config["input"],
    threads: 1
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rules/summary.py"
