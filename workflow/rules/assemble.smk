rule assemble:
    input:
        records=get_track_records,
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        crops=get_crops_dir,
        stems=get_stems_dir,
        files=get_pass_files_dirs,
    output:
        dataset=directory(f"{OUT}/dataset/{{track}}"),
    log:
        f"{LOGS}/assemble/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/assemble/{{track}}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb("assemble"),
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/assemble.py"
