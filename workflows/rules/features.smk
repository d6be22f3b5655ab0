rule features:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        events=f"{RESULTS}/stimuli/events.tsv",
    output:
        f"{RESULTS}/features/{{fs}}.h5",
    log:
        f"{RESULTS}/logs/features/{{fs}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{fs}}.tsv"
    threads: THREADS
    resources:
        mem_mb=4000,
        gpu=GPU,
    params:
        threads=THREADS,
    shell:
        "brainalign features --config {input.cfg:q} --events {input.events:q} --feature-set {wildcards.fs:q} "
        "--threads {params.threads} --out {output:q} 2> {log:q}"


rule design:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        events=f"{RESULTS}/stimuli/events.tsv",
        features=f"{RESULTS}/features/{{fs}}.h5",
    output:
        f"{RESULTS}/design/{{fs}}.h5",
    log:
        f"{RESULTS}/logs/design/{{fs}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/design/{{fs}}.tsv"
    shell:
        "brainalign design --config {input.cfg:q} --events {input.events:q} --features {input.features:q} "
        "--out {output:q} 2> {log:q}"
