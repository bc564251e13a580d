rule crops:
    input:
        **crop_stems(),
        source=f"{OUT}/tracks/{{track}}/source.json",
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        rhythm=f"{OUT}/tracks/{{track}}/rhythm.json",
    output:
        crops=directory(f"{OUT}/tracks/{{track}}/crops"),
        record=f"{OUT}/tracks/{{track}}/crops.json",
    log:
        f"{LOGS}/crops/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/crops/{{track}}.tsv"
    params:
        source=get_source_path,
        options=config["crops"],
    threads: 1
    resources:
        mem_mb=mem_mb("crops"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/crops.py"
