rule stimuli:
    conda:
        "../../envs/brainalign.yaml"
    input:
        cfg=CONFIG_FILE,
        sources=stimuli_sources,
    output:
        f"{RESULTS}/stimuli/events.tsv",
    log:
        f"{RESULTS}/logs/stimuli.log",
    benchmark:
        f"{RESULTS}/benchmarks/stimuli.tsv"
    shell:
        "brainalign stimuli --config {input.cfg:q} --out {output:q} 2> {log:q}"
