# fMRI kinds (ROI and volume modalities) only.
if FMRI:

    if SIMULATED_ROI:

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


    if SIMULATED_VOLUME:

        rule simulate_bids:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                events=f"{RESULTS}/stimuli/events.tsv",
                features=f"{RESULTS}/features/{CFG['simulation']['planted_feature_set']}.h5",
            output:
                directory(f"{RESULTS}/bids"),
            log:
                f"{RESULTS}/logs/simulate_bids.log",
            benchmark:
                f"{RESULTS}/benchmarks/simulate_bids.tsv"
            resources:
                mem_mb=8000,
            shell:
                "brainalign simulate-bids --config {input.cfg:q} --events {input.events:q} "
                "--features {input.features:q} --out {output:q} 2> {log:q}"


    if VOLUME:

        rule mask:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                bids=bids_input,
            output:
                f"{RESULTS}/mask.nii.gz",
            log:
                f"{RESULTS}/logs/mask.log",
            benchmark:
                f"{RESULTS}/benchmarks/mask.tsv"
            shell:
                "brainalign mask --config {input.cfg:q} --out {output:q} 2> {log:q}"

        rule responses:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                mask=f"{RESULTS}/mask.nii.gz",
                bids=bids_input,
            output:
                f"{RESULTS}/responses/{{subject}}.h5",
            log:
                f"{RESULTS}/logs/responses/{{subject}}.log",
            benchmark:
                f"{RESULTS}/benchmarks/responses/{{subject}}.tsv"
            resources:
                mem_mb=8000,
            shell:
                "brainalign responses --config {input.cfg:q} --subject {wildcards.subject:q} --mask {input.mask:q} "
                "--out {output:q} 2> {log:q}"

    else:

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
                "brainalign responses --config {input.cfg:q} --subject {wildcards.subject:q} {params.raw} "
                "--out {output:q} 2> {log:q}"
