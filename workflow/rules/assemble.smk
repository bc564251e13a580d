rule assemble:
    input:
        records=track_records(),
        beats=f"{OUT}/tracks/{{track}}/{{track}}.BEATS",
        crops=crops_dir(),
        stems=stems_dir(),
        files=pass_files_dirs(),
        **time_series_file(),
    output:
        dataset=directory(f"{OUT}/dataset/{{track}}"),
    log:
        f"{LOGS}/assemble/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/assemble/{{track}}.tsv"
    params:
        source=get_source_path,
        relpath=get_source_relpath,
    threads: 1
    resources:
        mem_mb=mem_mb("assemble"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/assemble.py"
