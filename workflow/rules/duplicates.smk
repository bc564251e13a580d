# Duplicates: the same recording twice in the library (another encoding, a
# trimmed or quieter copy). Rule fingerprint makes each track's Chromaprint
# fingerprint; rule duplicates groups them library-wide (mirflow.fingerprint)
# and names each group's original. Assemble waits for the groups, but only a
# track whose group changes is assembled again (its params), not every track
# when one is added: the summary and the exports read the groups directly.


rule fingerprint:
    input:
        source=f"{TRACK_DIR}/source.json",
    output:
        record=f"{TRACK_DIR}/fingerprint.json",
    log:
        f"{LOGS}/fingerprint/{{track}}.log",
    benchmark:
        f"{BENCHMARKS}/fingerprint/{{track}}.tsv"
    params:
        source=get_source_path,
    threads: 1
    resources:
        mem_mb=mem_mb("fingerprint"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/fingerprint.py"


rule duplicates:
    input:
        # None in a merge of shards: it reads what the shards left on disk.
        fingerprints=(
            [] if MERGE_SHARDS else expand(f"{TRACK_DIR}/fingerprint.json", track=TRACKS.index)
        ),
    output:
        groups=f"{OUT}/duplicates.json",
    log:
        f"{LOGS}/duplicates.log",
    params:
        **merge_params(),
        output_root=lambda wildcards, output: os.path.dirname(output.groups),
        tracks=list(TRACKS.index),
    threads: 1
    resources:
        mem_mb=mem_mb("duplicates"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/duplicates.py"
