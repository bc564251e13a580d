rule ingest:
    input:
        audio=get_source_audio,
    output:
        record=f"{TRACK_DIR}/source.json",
    log:
        f"{LOGS}/ingest/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/ingest/{{track}}.tsv"
    params:
        source=get_source_path,
        source_stamp=get_source_stamp,
        relpath=get_source_relpath,
        various_artists=config["metadata"]["various_artists"],
        max_duration_s=config["rhythm"]["max_track_minutes"] * 60,
    threads: 1
    resources:
        mem_mb=mem_mb("ingest"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/ingest.py"
