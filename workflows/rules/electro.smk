# MEG/EEG and sEEG/ECoG (docs/electrophysiology.md): recordings -> word-locked epochs ->
# contrastive segment identification (MEG/EEG) or Du-IN-style word decoding (sEEG) -> report.

# Kinds of the electro modality only.
if MODALITY == "electro":

    from brainalign.pipeline.electro import electro_input_files, electro_modality, target_set

    ELECTRO_TARGET = target_set(CFG)[0]


    def electro_raw_dir(wildcards):
        return [f"{RESULTS}/raw"] if SIMULATED else []


    def electro_recordings(wildcards):
        """A meeg_bids subject's recordings with their sidecars (events, channels), so editing one reruns its epochs."""
        return [str(p) for p in electro_input_files(CFG, wildcards.subject)]


    def electro_raw_argument(wildcards, input):
        return f"--raw-dir {shlex.quote(input.raw[0])}" if SIMULATED else ""


    def decoding_dir(wildcards, output):
        return os.path.dirname(output.scores)


    if SIMULATED:

        rule simulate_electro:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                events=f"{RESULTS}/stimuli/events.tsv",
                features=f"{RESULTS}/features/{CFG['simulation']['planted_feature_set']}.h5",
            output:
                directory(f"{RESULTS}/raw"),
            log:
                f"{RESULTS}/logs/simulate_electro.log",
            benchmark:
                f"{RESULTS}/benchmarks/simulate_electro.tsv"
            resources:
                mem_mb=4000,
            shell:
                "brainalign simulate-electro --config {input.cfg:q} --events {input.events:q} "
                "--features {input.features:q} --out {output:q} 2> {log:q}"


    rule epochs:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            events=f"{RESULTS}/stimuli/events.tsv",
            raw=electro_raw_dir,
            recordings=electro_recordings,
        output:
            f"{RESULTS}/epochs/{{subject}}.h5",
        log:
            f"{RESULTS}/logs/epochs/{{subject}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/epochs/{{subject}}.tsv"
        resources:
            mem_mb=4000,
        params:
            raw=electro_raw_argument,
        shell:
            "brainalign epochs --config {input.cfg:q} --subject {wildcards.subject:q} --events {input.events:q} "
            "{params.raw} --out {output:q} 2> {log:q}"


    if electro_modality(CFG) == "meeg":

        rule contrastive:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                events=f"{RESULTS}/stimuli/events.tsv",
                features=f"{RESULTS}/features/{ELECTRO_TARGET}.h5",
                epochs=expand(f"{RESULTS}/epochs/{{subject}}.h5", subject=SUBJECTS),
            output:
                scores=f"{RESULTS}/decoding/scores.csv",
                topk=f"{RESULTS}/decoding/topk.csv",
                model=f"{RESULTS}/decoding/contrastive.safetensors",
            log:
                f"{RESULTS}/logs/contrastive.log",
            benchmark:
                f"{RESULTS}/benchmarks/contrastive.tsv"
            threads: THREADS
            resources:
                mem_mb=6000,
                gpu=GPU,
            params:
                out_dir=decoding_dir,
                threads=THREADS,
            shell:
                "brainalign contrastive --config {input.cfg:q} --epochs {input.epochs:q} --events {input.events:q} "
                "--features {input.features:q} --threads {params.threads} --out-dir {params.out_dir:q} 2> {log:q}"

    else:

        rule word_decoding:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                events=f"{RESULTS}/stimuli/events.tsv",
                epochs=expand(f"{RESULTS}/epochs/{{subject}}.h5", subject=SUBJECTS),
            output:
                scores=f"{RESULTS}/decoding/scores.csv",
                confusion=f"{RESULTS}/decoding/confusion.csv",
                model=f"{RESULTS}/decoding/word_decoder.safetensors",
            log:
                f"{RESULTS}/logs/word_decoding.log",
            benchmark:
                f"{RESULTS}/benchmarks/word_decoding.tsv"
            threads: THREADS
            resources:
                mem_mb=6000,
                gpu=GPU,
            params:
                out_dir=decoding_dir,
                threads=THREADS,
            shell:
                "brainalign word-decoding --config {input.cfg:q} --epochs {input.epochs:q} --events {input.events:q} "
                "--threads {params.threads} --out-dir {params.out_dir:q} 2> {log:q}"


    rule electro_report:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            scores=f"{RESULTS}/decoding/scores.csv",
        output:
            f"{RESULTS}/report.html",
        log:
            f"{RESULTS}/logs/report.log",
        params:
            decoding=lambda wildcards, input: os.path.dirname(input.scores),
        shell:
            "brainalign electro-report --config {input.cfg:q} --decoding-dir {params.decoding:q} "
            "--out {output:q} 2> {log:q}"
