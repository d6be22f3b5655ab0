# fMRI kinds (ROI and volume modalities) only.
if FMRI:

    if VOLUME:

        rule score:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                design=f"{RESULTS}/design/{{fs}}.h5",
                responses=expand(f"{RESULTS}/responses/{{subject}}.h5", subject=SUBJECTS),
            output:
                scores=f"{RESULTS}/scores/{{fs}}.csv",
                units=f"{RESULTS}/scores/{{fs}}_units.h5",
            log:
                f"{RESULTS}/logs/score/{{fs}}.log",
            benchmark:
                f"{RESULTS}/benchmarks/score/{{fs}}.tsv"
            threads: THREADS
            resources:
                mem_mb=8000,
                gpu=GPU,
            params:
                threads=THREADS,
            shell:
                "brainalign score --config {input.cfg:q} --design {input.design:q} --responses {input.responses:q} "
                "--threads {params.threads} --out {output.scores:q} --out-units {output.units:q} 2> {log:q}"

        rule ceiling:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                responses=expand(f"{RESULTS}/responses/{{subject}}.h5", subject=SUBJECTS),
            output:
                ceiling=f"{RESULTS}/ceiling.csv",
                units=f"{RESULTS}/ceiling_units.h5",
            log:
                f"{RESULTS}/logs/ceiling.log",
            benchmark:
                f"{RESULTS}/benchmarks/ceiling.tsv"
            shell:
                "brainalign ceiling --config {input.cfg:q} --responses {input.responses:q} --out {output.ceiling:q} "
                "--out-units {output.units:q} 2> {log:q}"

        rule maps:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                scores=f"{RESULTS}/scores/{{fs}}_units.h5",
                ceiling=f"{RESULTS}/ceiling_units.h5",
            output:
                directory(f"{RESULTS}/maps/{{fs}}"),
            log:
                f"{RESULTS}/logs/maps/{{fs}}.log",
            benchmark:
                f"{RESULTS}/benchmarks/maps/{{fs}}.tsv"
            shell:
                "brainalign maps --config {input.cfg:q} --scores {input.scores:q} --ceiling {input.ceiling:q} "
                "--out-dir {output:q} 2> {log:q}"

    else:

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
            resources:
                gpu=GPU,
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
            best_summary=f"{RESULTS}/best_layer_summary.csv",
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


    if PARTITION:

        rule partition:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                best=f"{RESULTS}/best_layer.csv",
                model=f"{RESULTS}/design/{PARTITION[0]}.h5",
                baseline=f"{RESULTS}/design/{PARTITION[1]}.h5",
                responses=expand(f"{RESULTS}/responses/{{subject}}.h5", subject=SUBJECTS),
            output:
                f"{RESULTS}/variance_partition.csv",
            log:
                f"{RESULTS}/logs/partition.log",
            benchmark:
                f"{RESULTS}/benchmarks/partition.tsv"
            threads: THREADS
            params:
                threads=THREADS,
            shell:
                "brainalign partition --config {input.cfg:q} --best-layer {input.best:q} "
                "--model-design {input.model:q} --baseline-design {input.baseline:q} "
                "--responses {input.responses:q} --threads {params.threads} --out {output:q} 2> {log:q}"
