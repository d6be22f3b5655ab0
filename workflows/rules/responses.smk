if SIMULATED:

    rule simulate:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            events=f"{RESULTS}/stimuli/events.tsv",
            features=f"{RESULTS}/features/{CFG['simulation']['planted_feature_set']}.h5",
        output:
            expand(f"{RESULTS}/raw/{{subject}}.h5", subject=SUBJECTS),
        log:
            f"{RESULTS}/logs/simulate.log",
        benchmark:
            f"{RESULTS}/benchmarks/simulate.tsv"
        shell:
            "brainalign simulate --config {input.cfg:q} --events {input.events:q} "
            "--features {input.features:q} --out {output:q} 2> {log:q}"


rule responses:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        raw=raw_responses,
    output:
        f"{RESULTS}/responses/{{subject}}.h5",
    log:
        f"{RESULTS}/logs/responses/{{subject}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/responses/{{subject}}.tsv"
    params:
        raw=raw_argument,
    shell:
        "brainalign responses --config {input.cfg:q} --subject {wildcards.subject} {params.raw} "
        "--out {output:q} 2> {log:q}"
