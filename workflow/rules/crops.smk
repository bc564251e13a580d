CROP_STEMS = (
    {"stems": f"{TRACK_DIR}/stems", "stems_record": f"{TRACK_DIR}/stems.json"}
    if SEPARATION_ON and not config["crops"]["skip_stems"]
    else {}
)


rule crops:
    input:
        # Stems the crops stage cuts with the mix (none with crops.skip_stems).
        **CROP_STEMS,
        source=f"{TRACK_DIR}/source.json",
        beats=f"{TRACK_DIR}/{{track}}.BEATS",
        rhythm=f"{TRACK_DIR}/rhythm.json",
    output:
        crops=directory(f"{TRACK_DIR}/crops"),
        record=f"{TRACK_DIR}/crops.json",
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
