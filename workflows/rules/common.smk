# Config loading and validation, shared names and input functions.
#
# The default config is workflows/configs/default.yaml; --configfile replaces it
# (it is not merged with the default, unlike Snakemake's `configfile:` directive)
# and --config key=value pairs are merged on top. The validated config, with
# defaults filled and paths made absolute, is written to results/<name>/config.yaml;
# every rule reads that file, so all stages see exactly the same settings.

import copy
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from brainalign.config import feature_set_instances, validate_config
from brainalign.io import write_text
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
    if workflow.overwrite_configfiles:
        path = Path(workflow.overwrite_configfiles[-1])
        raw = {}
    else:
        path = Path(workflow.basedir) / "workflows" / "configs" / "default.yaml"
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    return path, validate_config(_deep_merge(raw, dict(config)), path)


# Jobs call the `brainalign` command installed beside this Python, even when
# the environment was not activated.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

CONFIG_SOURCE, CFG = _load_config()
RESULTS = f"results/{CFG['dataset']['name']}"
CONFIG_FILE = f"{RESULTS}/config.yaml"
SUBJECTS = dataset_subjects(CFG)
INSTANCES = feature_set_instances(CFG)
THREADS = CFG["threads"]
SIMULATED = CFG["dataset"]["kind"] == "simulated"
SIMULATED_BIDS = CFG["dataset"]["kind"] == "simulated_bids"
VOLUME = CFG["dataset"]["kind"] in ("bids", "simulated_bids")  # NIfTI in, voxel maps out
ELECTRO = CFG["dataset"]["kind"] in ("simulated_meeg", "simulated_seeg", "meeg_bids")  # MEG/EEG/sEEG decoding
DECODING = CFG["dataset"]["kind"] in ("simulated_images", "nsd")  # image-fMRI: captions and images
# Variance partitioning runs on ROI datasets (per-unit banded ridge at whole-brain
# scale is left to the user's own notebooks).
PARTITION = None if VOLUME or ELECTRO or DECODING else partition_pair(CFG)  # (model, word-rate baseline) or None

# Rewrite the resolved config only when it changed, so that editing a config
# reruns what depends on it and nothing reruns otherwise.
_resolved = yaml.safe_dump(CFG, sort_keys=True)
if not os.path.exists(CONFIG_FILE) or Path(CONFIG_FILE).read_text(encoding="utf-8") != _resolved:
    write_text(CONFIG_FILE, _resolved)


wildcard_constraints:
    fs="|".join(map(re.escape, INSTANCES)),
    subject="|".join(map(re.escape, SUBJECTS)),


def bids_input(wildcards):
    """The generated BIDS folder of the simulated BIDS dataset (nothing for real data)."""
    return [f"{RESULTS}/bids"] if SIMULATED_BIDS else []


def stimuli_sources(wildcards):
    """The data files the word table is read from (a meeg_bids dataset's events TSVs), so editing one reruns it."""
    if CFG["dataset"]["kind"] != "meeg_bids":
        return []
    from brainalign.pipeline.electro import electro_input_files

    return [str(p) for p in electro_input_files(CFG)]


def maps_dirs(wildcards):
    return expand(f"{RESULTS}/maps/{{fs}}", fs=INSTANCES) if VOLUME else []


def raw_responses(wildcards):
    """Raw input of one subject: simulated files live under results/, real ones in data_dir."""
    return [f"{RESULTS}/raw/{wildcards.subject}.h5"] if SIMULATED else []


def raw_argument(wildcards, input):
    return f"--raw {shlex.quote(input.raw[0])}" if SIMULATED else ""


def scores_dir(wildcards, input):
    """The results folder, derived from an input (works without a shared file system)."""
    return os.path.dirname(input.scores) if isinstance(input.scores, str) else os.path.dirname(input.scores[0])


def aggregate_dir(wildcards, output):
    return os.path.dirname(output.scores)


def figures_dir(wildcards, output):
    return os.path.dirname(output.curves)


def partition_table(wildcards):
    return [f"{RESULTS}/variance_partition.csv"] if PARTITION else []
