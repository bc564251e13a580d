rule features:
    input:
        **features_crops(),
        **track_stems(),
        source=f"{OUT}/tracks/{{track}}/source.json",
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        rhythm=f"{OUT}/tracks/{{track}}/rhythm.json",
    output:
        record=f"{OUT}/tracks/{{track}}/features.json",
        **time_series_file(),
    log:
        f"{LOGS}/features/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/features/{{track}}.tsv"
    params:
        source=get_source_path,
        track_features=config["stages"]["features"],
        enabled=config["features"],
    threads: 1
    resources:
        mem_mb=mem_mb("features"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/features.py"
