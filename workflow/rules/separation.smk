# Separation runs in batches so a model is loaded once per job (mirflow.plan:
# only tracks without current stems are batched). Each track's stems then
# become its own target (rule stems), so a finished track is never separated
# again and stems already in the library are used as they are.


rule separate:
    input:
        sources=get_batch_sources,
    output:
        batch=temp(directory(f"{OUT}/separation/{{batch}}")),
    log:
        f"{LOGS}/separate/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/separate/{{batch}}.tsv"
    params:
        members=get_batch_members,
        separation=get_batch_config,
        models_dir=config["models_dir"],
    threads: SEPARATION["threads"]
    resources:
        gpu=1,
        mem_mb=mem_mb("separate", batch_of="separation"),
        vram_mb=SEPARATION["vram_mb"],
    conda:
        CONDA_ENV
    script:
        "../../scripts/separate.py"


rule stems:
    input:
        batch=get_stems_input,
    output:
        stems=directory(f"{TRACK_DIR}/stems"),
        record=f"{TRACK_DIR}/stems.json",
    log:
        f"{LOGS}/stems/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/stems/{{track}}.tsv"
    params:
        library_stems=get_library_stems,
        library_stamp=get_library_stems_stamp,
        separation=get_track_separation_config,
    threads: 1
    resources:
        mem_mb=mem_mb("stems"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/stems.py"
