rule export:
    input:
        **merge_inputs(),
        datasets=get_dataset_dirs,
        duplicates=duplicates_file(),
    output:
        exports=directory(f"{OUT}/exports"),
        record=f"{OUT}/exports.json",
    log:
        f"{LOGS}/export.log",
    params:
        **merge_params(),
        formats=config["export"]["formats"],
        filters=config["export"]["filters"],
        split=config["export"]["split"],
        drop_duplicates=config["export"]["drop_duplicates"],
        path_root=config["export"]["path_root"],
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../../scripts/export.py"
