# Features of each track and of its crops, and the track's time series.
# One features_batch job takes features.batch_size tracks: its fixed cost
# (scipy.signal, numba's kernels, essentia's TensorFlow libraries: ~2 s) is a
# third of a song's features, so it is paid once per batch, not per track. As
# with the model passes, only tracks without a current record are batched, and
# rule features gives each track its own files.


rule features_batch:
    input:
        records=get_batch_inputs("features"),
    output:
        batch=temp(directory(f"{OUT}/passes/features/{{batch}}")),
    log:
        f"{LOGS}/features/{{batch}}.log",
    benchmark:
        f"{BENCHMARKS}/features/{{batch}}.tsv"
    params:
        members=get_features_members,
        track_features=config["stages"]["features"],
        enabled=config["features"],
    threads: 1
    resources:
        mem_mb=mem_mb("features_batch", batch_of="features"),
    conda:
        CONDA_ENV
    script:
        "../../scripts/features_batch.py"


# Copies the track's part of the batch out (a shell command: no Python start-up).
rule features:
    input:
        batch=get_batch_dir("features"),
    output:
        **time_series_file(),
        record=f"{TRACK_DIR}/features.json",
    log:
        f"{LOGS}/features/tracks/{{track}}.log",
    params:
        # Whether to copy a time series (``:q`` of an empty path is no argument at all).
        copy_series=int(bool(time_series_file())),
        series=lambda wildcards, output: output.get("time_series", ""),
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cp {input.batch:q}/{wildcards.track}/features.json {output.record:q} 2> {log:q}"
        " && if [ {params.copy_series} = 1 ]; then"
        " cp {input.batch:q}/{wildcards.track}/{wildcards.track}.timeseries.parquet"
        " {params.series:q} 2>> {log:q}; fi"
