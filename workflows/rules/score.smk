rule score:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        design=f"{RESULTS}/design/{{fs}}.h5",
        responses=expand(f"{RESULTS}/responses/{{subject}}.h5", subject=SUBJECTS),
    output:
        f"{RESULTS}/scores/{{fs}}.csv",
    log:
        f"{RESULTS}/logs/score/{{fs}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{fs}}.tsv"
    threads: THREADS
    params:
        threads=THREADS,
    shell:
        "brainalign score --config {input.cfg:q} --design {input.design:q} --responses {input.responses:q} "
        "--threads {params.threads} --out {output:q} 2> {log:q}"


rule ceiling:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        responses=expand(f"{RESULTS}/responses/{{subject}}.h5", subject=SUBJECTS),
    output:
        f"{RESULTS}/ceiling.csv",
    log:
        f"{RESULTS}/logs/ceiling.log",
    benchmark:
        f"{RESULTS}/benchmarks/ceiling.tsv"
    shell:
        "brainalign ceiling --config {input.cfg:q} --responses {input.responses:q} --out {output:q} 2> {log:q}"


rule aggregate:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        scores=expand(f"{RESULTS}/scores/{{fs}}.csv", fs=INSTANCES),
        ceiling=f"{RESULTS}/ceiling.csv",
    output:
        scores=f"{RESULTS}/scores.csv",
        curve=f"{RESULTS}/layer_curve.csv",
        best=f"{RESULTS}/best_layer.csv",
        tests=f"{RESULTS}/comparisons.csv",
        ceiling=f"{RESULTS}/ceiling_summary.csv",
    log:
        f"{RESULTS}/logs/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate.tsv"
    params:
        out_dir=aggregate_dir,
    shell:
        "brainalign aggregate --config {input.cfg:q} --scores {input.scores:q} --ceiling {input.ceiling:q} "
        "--out-dir {params.out_dir:q} 2> {log:q}"
