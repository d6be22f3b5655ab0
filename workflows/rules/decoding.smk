# Image decoding (docs/decoding.md): images + betas -> brain-to-embedding decoders -> retrieval,
# captions, reconstructions and BrainSCUBA ROI captions -> report.

# Kinds of the images modality only.
if MODALITY == "images":

    TRAINED_CAPTIONER = CFG["decoding"]["captioner"]["kind"] == "clipcap_trained"


    def captioner_input(wildcards):
        return [f"{RESULTS}/captioner"] if TRAINED_CAPTIONER else []


    def captioner_argument(wildcards, input):
        return f"--captioner {shlex.quote(input.captioner[0])}" if TRAINED_CAPTIONER else ""


    def bank_images(wildcards):
        """The images of decoding.selectivity_bank: an edited bank reruns decoding_data."""
        folder = CFG["decoding"]["selectivity_bank"]
        if not folder or not os.path.isdir(folder):
            return []  # validate named a missing folder already; none: the training images
        return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                      if f.lower().endswith((".png", ".jpg", ".jpeg")))


    rule decoding_data:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            bank=bank_images,
        output:
            images=f"{RESULTS}/images.h5",
            betas=expand(f"{RESULTS}/betas/{{subject}}.h5", subject=SUBJECTS),
        log:
            f"{RESULTS}/logs/decoding_data.log",
        benchmark:
            f"{RESULTS}/benchmarks/decoding_data.tsv"
        resources:
            mem_mb=8000,
        params:
            out_dir=lambda wildcards, output: os.path.dirname(output.images),
        shell:
            "brainalign decoding-data --config {input.cfg:q} --out-dir {params.out_dir:q} 2> {log:q}"


    if TRAINED_CAPTIONER:

        rule captioner:
            conda:
                "../../envs/brainalign.yaml"
            input:
                cfg=CONFIG_FILE,
                images=f"{RESULTS}/images.h5",
            output:
                directory(f"{RESULTS}/captioner"),
            log:
                f"{RESULTS}/logs/captioner.log",
            benchmark:
                f"{RESULTS}/benchmarks/captioner.tsv"
            threads: THREADS
            params:
                threads=THREADS,
            shell:
                "brainalign captioner --config {input.cfg:q} --images {input.images:q} --threads {params.threads} "
                "--out {output:q} 2> {log:q}"


    rule decode:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            images=f"{RESULTS}/images.h5",
            betas=f"{RESULTS}/betas/{{subject}}.h5",
            captioner=captioner_input,
        output:
            scores=f"{RESULTS}/decoding/{{subject}}/scores.csv",
            captions=f"{RESULTS}/decoding/{{subject}}/captions.csv",
            tokens=f"{RESULTS}/decoding/{{subject}}/tokens.csv",
            selectivity=f"{RESULTS}/decoding/{{subject}}/selectivity.csv",
            voxel_captions=f"{RESULTS}/decoding/{{subject}}/voxel_captions.csv",
            category_map=f"{RESULTS}/decoding/{{subject}}/word_categories.nii.gz",
            images=f"{RESULTS}/decoding/{{subject}}/reconstructions.h5",
        log:
            f"{RESULTS}/logs/decode/{{subject}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/decode/{{subject}}.tsv"
        threads: THREADS
        resources:
            mem_mb=8000,
            gpu=GPU,
        params:
            out_dir=lambda wildcards, output: os.path.dirname(output.scores),
            captioner=captioner_argument,
            threads=THREADS,
        shell:
            "brainalign decode --config {input.cfg:q} --subject {wildcards.subject:q} --images {input.images:q} "
            "--betas {input.betas:q} {params.captioner} --threads {params.threads} --no-progress "
            "--out-dir {params.out_dir:q} 2> {log:q}"


    rule decoding_report:
        conda:
            "../../envs/brainalign.yaml"
        input:
            cfg=CONFIG_FILE,
            scores=expand(f"{RESULTS}/decoding/{{subject}}/scores.csv", subject=SUBJECTS),
            images=expand(f"{RESULTS}/decoding/{{subject}}/reconstructions.h5", subject=SUBJECTS),
        output:
            scores=f"{RESULTS}/decoding/scores.csv",
            report=f"{RESULTS}/report.html",
        log:
            f"{RESULTS}/logs/report.log",
        params:
            dirs=lambda wildcards, input: " ".join(shlex.quote(os.path.dirname(p)) for p in input.scores),
        shell:
            "brainalign decoding-report --config {input.cfg:q} --decode-dirs {params.dirs} "
            "--out-scores {output.scores:q} --out {output.report:q} 2> {log:q}"
