rule export:
    input:
        **merge_inputs(),
        datasets=get_dataset_dirs,
    output:
        exports=directory(f"{OUT}/exports"),
        record=f"{OUT}/exports.json",
    log:
        f"{LOGS}/export.log",
    params:
        **merge_params(),
        formats=config["export"]["formats"],
        filters=config["export"]["filters"],
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../../scripts/export.py"
