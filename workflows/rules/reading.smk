# Reading times (docs/language.md): corpus -> trained language models -> per-word surprisal ->
# Futrell2018 and regression-gain scores -> report.

# Kinds of the reading modality only.
if MODALITY == "reading":

    LANGUAGE = CFG["language"]
    TRAINED_LMS = list(LANGUAGE["models"])
    HF_LMS = list(LANGUAGE["hf_models"])
    CORPUS_NGRAM = f"corpus_ngram{LANGUAGE['ngram_order']}" if LANGUAGE["corpus"] else None


    wildcard_constraints:
        lm="|".join(map(re.escape, TRAINED_LMS + HF_LMS)) or "(?!)",


    def reading_surprisal_files(wildcards):
        names = TRAINED_LMS + HF_LMS + ([CORPUS_NGRAM] if CORPUS_NGRAM else [])
        return [f"{RESULTS}/surprisal/{name}.csv" for name in names]


    def corpus_input(wildcards):
        return [LANGUAGE["corpus"]] if LANGUAGE["corpus"] else []


    rule reading_words:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            sources=stimuli_sources,
        output:
            f"{RESULTS}/words.csv",
        log:
            f"{RESULTS}/logs/reading_words.log",
        benchmark:
            f"{RESULTS}/benchmarks/reading_words.tsv"
        shell:
            "brainalign reading-words --config {input.cfg:q} --out {output:q} 2> {log:q}"


    rule train_lm:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            corpus=corpus_input,
        output:
            checkpoint=f"{RESULTS}/lm/{{lm}}.safetensors",
            history=f"{RESULTS}/lm/{{lm}}_history.csv",
        log:
            f"{RESULTS}/logs/train_lm/{{lm}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train_lm/{{lm}}.tsv"
        threads: THREADS
        resources:
            gpu=LANGUAGE_GPU,
        params:
            threads=THREADS,
        shell:
            "brainalign train-lm --config {input.cfg:q} --model {wildcards.lm:q} --out {output.checkpoint:q} "
            "--history {output.history:q} --threads {params.threads} 2> {log:q}"


    if CORPUS_NGRAM:

        rule ngram_lm:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                corpus=corpus_input,
                words=f"{RESULTS}/words.csv",
            output:
                perplexity=f"{RESULTS}/lm/ngram.csv",
                surprisal=f"{RESULTS}/surprisal/{CORPUS_NGRAM}.csv",
            log:
                f"{RESULTS}/logs/ngram_lm.log",
            benchmark:
                f"{RESULTS}/benchmarks/ngram_lm.tsv"
            shell:
                "brainalign ngram-lm --config {input.cfg:q} --words {input.words:q} "
                "--out-perplexity {output.perplexity:q} --out-surprisal {output.surprisal:q} 2> {log:q}"


    def lm_checkpoint(wildcards):
        return [f"{RESULTS}/lm/{wildcards.lm}.safetensors"] if wildcards.lm in TRAINED_LMS else []


    def checkpoint_argument(wildcards, input):
        return f"--checkpoint {shlex.quote(input.checkpoint[0])}" if input.checkpoint else ""


    rule surprisal:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            words=f"{RESULTS}/words.csv",
            checkpoint=lm_checkpoint,
        output:
            f"{RESULTS}/surprisal/{{lm}}.csv",
        log:
            f"{RESULTS}/logs/surprisal/{{lm}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/surprisal/{{lm}}.tsv"
        threads: THREADS
        resources:
            gpu=LANGUAGE_GPU,
        params:
            threads=THREADS,
            checkpoint=checkpoint_argument,
        shell:
            "brainalign surprisal --config {input.cfg:q} --model {wildcards.lm:q} --words {input.words:q} "
            "{params.checkpoint} --out {output:q} --threads {params.threads} 2> {log:q}"


    VERBATIM = LANGUAGE["verbatim"]["enabled"]


    def verbatim_files(wildcards):
        return [f"{RESULTS}/verbatim/{name}.csv" for name in TRAINED_LMS + HF_LMS] if VERBATIM else []


    rule verbatim:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            checkpoint=lm_checkpoint,
        output:
            f"{RESULTS}/verbatim/{{lm}}.csv",
        log:
            f"{RESULTS}/logs/verbatim/{{lm}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/verbatim/{{lm}}.tsv"
        threads: THREADS
        resources:
            gpu=LANGUAGE_GPU,
        params:
            threads=THREADS,
            checkpoint=checkpoint_argument,
        shell:
            "brainalign verbatim --config {input.cfg:q} --model {wildcards.lm:q} {params.checkpoint} "
            "--out {output:q} --threads {params.threads} 2> {log:q}"


    rule reading_scores:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            words=f"{RESULTS}/words.csv",
            surprisal=reading_surprisal_files,
            history=expand(f"{RESULTS}/lm/{{lm}}_history.csv", lm=TRAINED_LMS),
            ngram=[f"{RESULTS}/lm/ngram.csv"] if CORPUS_NGRAM else [],
        output:
            scores=f"{RESULTS}/scores.csv",
            per_story=f"{RESULTS}/per_story.csv",
            predictors=f"{RESULTS}/predictors.csv",
        log:
            f"{RESULTS}/logs/reading_scores.log",
        benchmark:
            f"{RESULTS}/benchmarks/reading_scores.tsv"
        params:
            out_dir=aggregate_dir,
            surprisal=lambda wildcards, input: " ".join(shlex.quote(p) for p in input.surprisal),
            history=lambda wildcards, input: " ".join(shlex.quote(p) for p in input.history),
            ngram=lambda wildcards, input: f"--ngram {shlex.quote(input.ngram[0])}" if input.ngram else "",
        shell:
            "brainalign reading-scores --config {input.cfg:q} --words {input.words:q} "
            "--surprisal {params.surprisal} --history {params.history} {params.ngram} "
            "--out-dir {params.out_dir:q} 2> {log:q}"


    rule reading_report:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            scores=f"{RESULTS}/scores.csv",
            per_story=f"{RESULTS}/per_story.csv",
            predictors=f"{RESULTS}/predictors.csv",
            history=expand(f"{RESULTS}/lm/{{lm}}_history.csv", lm=TRAINED_LMS),
            ngram=[f"{RESULTS}/lm/ngram.csv"] if CORPUS_NGRAM else [],
            verbatim=verbatim_files,
        output:
            html=f"{RESULTS}/report.html",
            scores_figure=report(f"{RESULTS}/figures/reading_scores.png", category="Reading times"),
            scatter=report(f"{RESULTS}/figures/surprisal_scatter.png", category="Reading times"),
            stories=report(f"{RESULTS}/figures/story_scores.png", category="Reading times"),
        log:
            f"{RESULTS}/logs/reading_report.log",
        benchmark:
            f"{RESULTS}/benchmarks/reading_report.tsv"
        params:
            results=scores_dir,
            figures=lambda wildcards, output: os.path.dirname(output.scores_figure),
        shell:
            "brainalign reading-report --config {input.cfg:q} --results-dir {params.results:q} "
            "--out {output.html:q} --figures-dir {params.figures:q} 2> {log:q}"
