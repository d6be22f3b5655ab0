# brainalign workflow: raw data -> responses -> features -> designs -> scores -> report.
#
#   snakemake --cores 2                                   # the embedded simulated dataset
#   snakemake --cores 2 --configfile workflows/configs/brennan2016.yaml
#
# The dataset config is loaded and validated against the JSON schema before any
# rule runs (workflows/rules/common.smk). Rules are thin: each calls one
# `brainalign <stage>` command (see `brainalign --help`).

from snakemake.utils import min_version

min_version("8.20")

# Resume in one command (`--rerun-incomplete`): the lock left in .snakemake/ by a
# run killed hard is removed when no other Snakemake process uses this folder
# (brainalign.pipeline.workflow_lock; a live run's lock is never touched).
from brainalign.pipeline.workflow_lock import hold_workflow_folder

hold_workflow_folder(workflow)


include: "workflows/rules/common.smk"
include: "workflows/rules/stimuli.smk"
include: "workflows/rules/features.smk"
# fMRI (ROI and volume modalities): responses -> designs -> scores -> report.
include: "workflows/rules/responses.smk"
include: "workflows/rules/score.smk"
include: "workflows/rules/report.smk"
# MEG/EEG/sEEG: recordings -> epochs -> contrastive identification or word decoding -> report.
include: "workflows/rules/electro.smk"
# Image fMRI: betas -> embeddings -> retrieval, captions, images, ROI captions -> report.
include: "workflows/rules/decoding.smk"
# Reading times: corpus -> trained language models -> surprisal -> Futrell2018 and regression gain -> report.
include: "workflows/rules/reading.smk"


rule all:
    default_target: True
    input:
        final_targets(MODALITY),


# The terminal's last words: where the results are, or the end of each failed job's log
# (every rule sends its stderr to its log file, so Snakemake alone shows only CalledProcessError).
onsuccess:
    from brainalign.pipeline.run_summary import success_summary

    print(success_summary(RESULTS, final_targets(MODALITY)))


onerror:
    import sys

    from brainalign.pipeline.run_summary import failure_summary

    print(failure_summary(log), file=sys.stderr)
