# A track's group of copies as the last run found it (mirflow.fingerprint): a
# param, so a changed group assembles the track again. The groups file itself
# is ancient(): assemble waits for it, but a new track does not redo the rest.
DUPLICATE_GROUPS = groups_by_track(duplicates_file()[0]) if duplicates_file() else {}


rule assemble:
    input:
        **time_series_file(),
        records=track_records(),
        beats=f"{TRACK_DIR}/{{track}}.BEATS",
        crops=[f"{TRACK_DIR}/crops"] if config["stages"]["crops"] else [],
        stems=[f"{TRACK_DIR}/stems"] if SEPARATION_ON else [],
        # Files a pass wrote for the track's crops (transcription's MIDI).
        files=[f"{TRACK_DIR}/{p.files}" for n, p in PASSES.items() if p.files and PASS_ON[n]],
        duplicates=[ancient(f) for f in duplicates_file()],
    output:
        dataset=directory(f"{OUT}/dataset/{{track}}"),
    log:
        f"{LOGS}/assemble/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/assemble/{{track}}.tsv"
    params:
        source=get_source_path,
        relpath=get_source_relpath,
        duplicate=lambda wildcards: DUPLICATE_GROUPS.get(wildcards.track, {}),
    threads: 1
    resources:
        mem_mb=mem_mb("assemble"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/assemble.py"
