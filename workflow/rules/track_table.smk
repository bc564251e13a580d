# Discovery and track ids run when the workflow is parsed (common.smk: the
# track list shapes the DAG). This rule records the result; it re-runs when
# the list changes (the params differ), which also refreshes the summary.
rule track_table:
    output:
        table=f"{OUT}/tracks.tsv",
    log:
        f"{LOGS}/track_table.log",
    params:
        tracks=lambda wildcards: LIBRARY[["track", "relpath"]].values.tolist(),
        input_root=config["input"],
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../../scripts/track_table.py"
