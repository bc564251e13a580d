rule export:
    input:
        datasets=get_dataset_dirs,
    output:
        exports=directory(f"{OUT}/exports"),
        record=f"{OUT}/exports.json",
    log:
        f"{LOGS}/export.log",
    params:
        formats=config["export"]["formats"],
        filters=config["export"]["filters"],
    threads: 1
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/export.py"
