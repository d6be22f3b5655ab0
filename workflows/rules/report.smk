# fMRI kinds (ROI and volume modalities) only.
if FMRI:

    rule report:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            scores=f"{RESULTS}/scores.csv",
            curve=f"{RESULTS}/layer_curve.csv",
            best=f"{RESULTS}/best_layer.csv",
            best_summary=f"{RESULTS}/best_layer_summary.csv",
            tests=f"{RESULTS}/comparisons.csv",
            ceiling=f"{RESULTS}/ceiling_summary.csv",
            ceiling_subjects=f"{RESULTS}/ceiling.csv",
            partition=partition_table,
            maps=maps_dirs,
        output:
            html=f"{RESULTS}/report.html",
            curves=report(
                f"{RESULTS}/figures/layer_curves.png",
                caption="../report/layer_curves.rst",
                category="Scores",
            ),
            subjects=report(
                f"{RESULTS}/figures/subject_scores.png",
                caption="../report/subject_scores.rst",
                category="Scores",
            ),
            ceilings=report(
                f"{RESULTS}/figures/ceilings.png",
                caption="../report/ceilings.rst",
                category="Ceiling",
            ),
        log:
            f"{RESULTS}/logs/report.log",
        benchmark:
            f"{RESULTS}/benchmarks/report.tsv"
        params:
            results=scores_dir,
            figures=figures_dir,
        shell:
            "brainalign report --config {input.cfg:q} --results-dir {params.results:q} --out {output.html:q} "
            "--figures-dir {params.figures:q} 2> {log:q}"
