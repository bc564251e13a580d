rule track_features:
    input:
        source=f"{OUT}/tracks/{{track}}/source.json",
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        rhythm=f"{OUT}/tracks/{{track}}/rhythm.json",
    output:
        record=f"{OUT}/tracks/{{track}}/features.json",
    log:
        f"{LOGS}/track_features/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/track_features/{{track}}.tsv"
    params:
        source=get_source_path,
        enabled=config["features"],
    threads: 1
    resources:
        mem_mb=mem_mb("features"),
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/track_features.py"


rule crop_features:
    input:
        crops=f"{OUT}/tracks/{{track}}/crops",
        crops_record=f"{OUT}/tracks/{{track}}/crops.json",
        rhythm=f"{OUT}/tracks/{{track}}/rhythm.json",
    output:
        record=f"{OUT}/tracks/{{track}}/crop_features.json",
    log:
        f"{LOGS}/crop_features/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/crop_features/{{track}}.tsv"
    params:
        enabled=config["features"],
    threads: 1
    resources:
        mem_mb=mem_mb("crop_features"),
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/crop_features.py"
