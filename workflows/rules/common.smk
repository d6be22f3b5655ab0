# Config loading and validation, shared names and input functions.
#
# The default config is workflows/configs/default.yaml. `--config config_path=FILE`
# (what `brainalign run FILE` passes) or `--configfile FILE` replaces it (it is not
# merged with the default, unlike Snakemake's `configfile:` directive) and the other
# --config key=value pairs are merged on top. Either way the file is read by
# brainalign's own loader (brainalign.config.read_config_file: plain data, no YTE
# templates, anchors or duplicate keys). `config_path` never hands the file to
# Snakemake's loader, which evaluates YTE templates (Python code) in a --configfile
# before any brainalign code runs: use it for configs you did not write
# (docs/reliability.md, "Configs are plain data"). The validated config, with
# defaults filled and paths made absolute, is written to results/<name>/config.yaml;
# every rule reads that file, so all stages see exactly the same settings.

import copy
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from brainalign._validation import ConfigError
from brainalign.backend.device import uses_gpu
from brainalign.datasets.registry import get_kind
from brainalign.config import check_path_name, dump_config, feature_set_instances, read_config_file, validate_config
from brainalign.pipeline.workflow_lock import claim_dataset_config, claimed_config_path
from brainalign.pipeline.stages import dataset_subjects, partition_pair


def _deep_merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_config():
    overrides = dict(config)
    source = overrides.pop("config_path", None)
    if source is not None:
        if workflow.overwrite_configfiles:
            raise ConfigError(Path(workflow.overwrite_configfiles[-1]), "--configfile",
                              f"give the config either with --configfile or with --config config_path=FILE "
                              f"(got both; config_path={source}).")
        path = Path(os.path.expanduser(str(source))).absolute()
    elif workflow.overwrite_configfiles:
        path = Path(workflow.overwrite_configfiles[-1])
    else:
        path = Path(workflow.basedir) / "workflows" / "configs" / "default.yaml"
    # Snakemake has already read a --configfile into `config`; read it again with
    # brainalign's loader so that a template or a duplicate key is refused (`config`
    # then only adds the --config overrides, whose values win).
    raw = read_config_file(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "<top level>", f"must be a mapping, got {type(raw).__name__}.")
    return path, validate_config(_deep_merge(raw, overrides), path)


def _inside_results(path):
    """``path`` if it resolves inside ./results (names are checked to be path-safe; this is the last guard)."""
    root = Path("results").resolve()
    if root not in Path(path).resolve().parents:
        raise ConfigError(CONFIG_SOURCE, "dataset.name", f"the output path {path} would lie outside {root}.")
    return path


# Jobs call the `brainalign` command installed beside this Python, even when
# the environment was not activated.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

def _check_cluster_placeholders():
    """Stop before any job is submitted while the SLURM profile's account or partition is still a placeholder."""
    defaults = getattr(getattr(workflow, "resource_settings", None), "default_resources", None)
    given = dict(arg.split("=", 1) for arg in (getattr(defaults, "args", None) or []) if "=" in arg)
    unset = [key for key in ("slurm_account", "slurm_partition") if "SET_ME" in given.get(key, "")]
    if unset:
        raise WorkflowError(
            f"{' and '.join(unset)} {'are still placeholders' if len(unset) > 1 else 'is still a placeholder'}: set "
            + " and ".join(f"{key}: <your {key.removeprefix('slurm_')}>" for key in unset)
            + " under default-resources in workflows/profiles/slurm/config.yaml (or pass --default-resources "
            + " ".join(f"{key}=..." for key in unset) + "); `sacctmgr show assoc user=$USER` lists yours.")


_check_cluster_placeholders()
CONFIG_SOURCE, CFG = _load_config()
RESULTS = f"results/{CFG['dataset']['name']}"
CONFIG_FILE = _inside_results(f"{RESULTS}/config.yaml")
SUBJECTS = [check_path_name(s, "dataset.subjects", CONFIG_SOURCE, "subject label") for s in dataset_subjects(CFG)]
INSTANCES = feature_set_instances(CFG)
for _instance in INSTANCES:
    _inside_results(f"{RESULTS}/features/{_instance}.h5")
THREADS = CFG["threads"]
# One GPU (SLURM: --gpus=1) for the rules with heavy tensor work, only when the config asks for
# one explicitly (device: cuda or cuda:N); `auto` takes a GPU where the job lands on one.
GPU = 1 if uses_gpu(CFG["device"]) else 0
LANGUAGE_GPU = 1 if uses_gpu(CFG.get("language", {}).get("device") or CFG["device"]) else 0
# The dataset kind (brainalign.datasets.registry) decides which rules apply: its
# modality picks the rule files' branches and the final targets.
KIND = get_kind(CFG)
MODALITY = KIND.modality  # "roi", "volume" (NIfTI in, voxel maps out), "electro" (MEG/EEG/sEEG), "images"
FMRI = MODALITY in ("roi", "volume")
VOLUME = MODALITY == "volume"
SIMULATED = KIND.simulated  # generated under results/<name>/ by a simulate rule
SIMULATED_ROI = SIMULATED and MODALITY == "roi"
SIMULATED_VOLUME = SIMULATED and VOLUME
# Variance partitioning runs on ROI datasets (per-unit banded ridge at whole-brain
# scale is left to the user's own notebooks).
PARTITION = partition_pair(CFG) if MODALITY == "roi" else None  # (model, word-rate baseline) or None


def final_targets(modality):
    """What `rule all` asks for: the score table of the modality's analysis and the report."""
    scores = "decoding/scores.csv" if modality in ("electro", "images") else "scores.csv"
    return [f"{RESULTS}/{scores}", f"{RESULTS}/report.html"]

# The resolved config is (re)written by a rule, only when it changed (its digest
# is a param: Snakemake reruns the rule, and so everything that reads the file,
# when it differs), and never while another running workflow uses this dataset
# name with another config (claim_dataset_config refuses such a run before any
# job starts, and removes a stale file otherwise). A dry run writes nothing.
_resolved = dump_config(CFG)
claim_dataset_config(workflow, CONFIG_FILE, _resolved, source=CONFIG_SOURCE)


rule resolved_config:
    output:
        CONFIG_FILE,
    params:
        sha256=hashlib.sha256(_resolved.encode()).hexdigest(),
        claim=claimed_config_path(CONFIG_FILE),
    localrule: True
    shell:
        "brainalign resolved-config --claim {params.claim:q} --sha256 {params.sha256:q} --out {output:q}"


wildcard_constraints:
    fs="|".join(map(re.escape, INSTANCES)),
    subject="|".join(map(re.escape, SUBJECTS)),


def bids_input(wildcards):
    """The generated BIDS folder of the simulated BIDS dataset (nothing for real data)."""
    return [f"{RESULTS}/bids"] if SIMULATED_VOLUME else []


def stimuli_sources(wildcards):
    """The data files the word table is read from (e.g. a meeg_bids dataset's events TSVs), so editing one reruns it."""
    return [str(p) for p in KIND.input_files(CFG)]


def maps_dirs(wildcards):
    return expand(f"{RESULTS}/maps/{{fs}}", fs=INSTANCES) if VOLUME else []


def raw_responses(wildcards):
    """Raw input of one subject: simulated files live under results/, real ones in data_dir."""
    return [f"{RESULTS}/raw/{wildcards.subject}.h5"] if SIMULATED_ROI else []


def raw_argument(wildcards, input):
    return f"--raw {shlex.quote(input.raw[0])}" if SIMULATED_ROI else ""


def scores_dir(wildcards, input):
    """The results folder, derived from an input (works without a shared file system)."""
    return os.path.dirname(input.scores) if isinstance(input.scores, str) else os.path.dirname(input.scores[0])


def aggregate_dir(wildcards, output):
    return os.path.dirname(output.scores)


def figures_dir(wildcards, output):
    return os.path.dirname(output.curves)


def partition_table(wildcards):
    return [f"{RESULTS}/variance_partition.csv"] if PARTITION else []
