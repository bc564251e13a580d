# Figures of the dataset for `snakemake --report report.html`; each caption
# (workflow/report/<name>.rst) says what its figure shows.

#: The report's figures (mirflow.report_plots.PLOTS): one caption file each.
REPORT_PLOTS = sorted(
    p.stem for p in Path(workflow.basedir, "report").glob("*.rst") if p.stem != "workflow"
)


rule report_plots:
    input:
        summary=f"{OUT}/summary.json",
        manifest=f"{OUT}/manifest.parquet",
    output:
        **{
            name: report(
                f"{OUT}/report/{name}.png",
                caption=f"../report/{name}.rst",
                category="Dataset" if name != "rule_time" else "Run",
            )
            for name in REPORT_PLOTS
        },
    log:
        f"{LOGS}/report_plots.log",
    params:
        output_root=lambda wildcards, input: os.path.dirname(input.summary),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../../scripts/report_plots.py"
