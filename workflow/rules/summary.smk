rule summary:
    input:
        table=f"{OUT}/tracks.tsv",
        datasets=get_dataset_dirs,
        duplicates=duplicates_file(),
        exports=get_export_record,
    output:
        summary=f"{OUT}/summary.json",
        manifest=f"{OUT}/manifest.parquet",
    log:
        f"{LOGS}/summary.log",
    params:
        **merge_params(),
        output_root=lambda wildcards, output: os.path.dirname(output.summary),
        input_root=config["input"],
        notes=NOTES,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../../scripts/summary.py"
