rule rhythm:
    input:
        source=f"{OUT}/tracks/{{track}}/source.json",
    output:
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        record=f"{OUT}/tracks/{{track}}/rhythm.json",
    log:
        f"{LOGS}/rhythm/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/rhythm/{{track}}.tsv"
    params:
        source=get_source_path,
        beats_per_bar=config["rhythm"]["beats_per_bar"],
        onset_threshold=config["rhythm"]["onset_threshold"],
    threads: 1
    resources:
        mem_mb=mem_mb("rhythm"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/rhythm.py"
