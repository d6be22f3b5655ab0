"""Load and validate dataset configs (YAML) against the JSON schema.

A config is validated before any rule runs: an unknown key, a wrong type or
an out-of-range value raises :class:`~brainalign._validation.ConfigError`
naming the file and the field (``encoder.outer_folds``), with a "did you
mean" hint for misspelt keys. Defaults from the schema are filled in (and the
few that depend on ``dataset.kind``: ``preprocessing.confounds`` is
``fmriprep`` for ``bids`` and ``simulated_bids``, ``none`` otherwise), and
relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ._validation import ConfigError, InputFileError, not_utf8_error

__all__ = ["load_config", "validate_config", "feature_set_instances", "comparison_sets", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.json"

# Defaults that depend on ``dataset.kind``, which a JSON Schema ``default``
# cannot express: field path -> ({kind: value}, value for the other kinds).
# The schema gives these fields no ``default``; their descriptions state these.
# fMRIPrep data default to its confounds (with ``fmriprep_confounds``' defaults:
# 24 motion parameters, white matter and CSF): head motion left in the data
# lowers the planted voxels' scores and spreads the others' (docs/bids.md).
_KIND_DEFAULTS: dict[tuple[str, ...], tuple[dict[str, Any], Any]] = {
    ("preprocessing", "confounds"): ({"bids": "fmriprep", "simulated_bids": "fmriprep"}, "none"),
}


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _fill_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    types = schema.get("type")
    if not isinstance(instance, dict) or "object" not in (types if isinstance(types, list) else [types]):
        return instance
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in instance:
            if key not in schema.get("properties", {}):
                instance[key] = _fill_defaults(instance[key], extra)
    return instance


def _fill_kind_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields of ``_KIND_DEFAULTS`` that ``cfg`` leaves out (after the schema's defaults)."""
    kind = cfg["dataset"]["kind"]
    for path, (by_kind, other) in _KIND_DEFAULTS.items():
        node = cfg
        for key in path[:-1]:
            node = node[key]
        if path[-1] not in node:
            node[path[-1]] = copy.deepcopy(by_kind.get(kind, other))
    return cfg


def _field(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: Any) -> tuple[str, str]:
    """Turn a jsonschema error into (field, message)."""
    field = _field(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        key = unknown[0] if unknown else "?"
        hint = difflib.get_close_matches(key, allowed, n=1)
        where = f"{field}.{key}" if field != "<top level>" else key
        msg = f"unknown key {key!r}; allowed keys: {', '.join(allowed)}."
        if hint:
            msg += f" Did you mean {hint[0]!r}?"
        return where, msg
    if error.validator == "required":
        # Name the missing key itself (``dataset.kind``), not only its parent.
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [k for k in error.validator_value if k not in present]
        if missing:
            field = missing[0] if field == "<top level>" else f"{field}.{missing[0]}"
        return field, error.message + "."
    return field, f"{error.message} (got {error.instance!r})."


def validate_config(config: dict[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Validate a config dict, fill defaults and check cross-field consistency.

    Parameters
    ----------
    config : dict
        The parsed YAML.
    path : path-like or None
        The config file, used in messages and to resolve relative paths.

    Returns
    -------
    config : dict
        A new dict with defaults filled in and paths made absolute.
    """
    from jsonschema import Draft202012Validator

    if not isinstance(config, dict):
        raise ConfigError(path, "<top level>", f"must be a mapping, got {type(config).__name__}.")
    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        field, message = _describe(errors[0])
        raise ConfigError(path, field, message)
    cfg = _fill_kind_defaults(_fill_defaults(copy.deepcopy(config), _schema()))
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    ds = cfg["dataset"]
    for key in ("data_dir", "bids_dir", "fmriprep_dir", "atlas"):
        if ds.get(key) is not None:
            ds[key] = str((base / os.path.expanduser(ds[key])).resolve())
    for part in ("captioner", "generator"):
        spec = cfg.get("decoding", {}).get(part, {})
        if spec.get("model_path"):
            spec["model_path"] = str((base / os.path.expanduser(spec["model_path"])).resolve())
    for key in ("captions", "embeddings"):
        if ds.get("nsd", {}).get(key) is not None:
            ds["nsd"][key] = str((base / os.path.expanduser(ds["nsd"][key])).resolve())
    if ds.get("mask") not in (None, "brain"):
        ds["mask"] = str((base / os.path.expanduser(ds["mask"])).resolve())
    if ds["kind"] == "simulated_bids":
        from .datasets.simulated_bids import SPACE, TASK

        # The generated dataset lives in the results folder (relative to the
        # workflow's working directory, where the `results/` tree is).
        if ds.get("bids_dir") is None:
            ds["bids_dir"] = str((Path.cwd() / "results" / ds["name"] / "bids").resolve())
        ds.update(task=TASK, space=SPACE, res=str(cfg["simulation"]["bids"]["voxel_size"]))
    for name, spec in cfg["feature_sets"].items():
        for key in ("model_path", "tokenizer_path"):
            if spec.get(key):
                spec[key] = str((base / os.path.expanduser(spec[key])).resolve())
        if spec.get("localize"):
            spec["localize"]["stimuli_dir"] = str((base / os.path.expanduser(spec["localize"]["stimuli_dir"])).resolve())
    _check_consistency(cfg, path)
    return cfg


def _check_consistency(cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
    sets = cfg["feature_sets"]
    kind = cfg["dataset"]["kind"]
    if not sets and kind not in ("simulated_images", "nsd"):
        raise ConfigError(path, "feature_sets", "is required (at least one feature set) for dataset.kind "
                                                f"{kind!r}.")
    if kind == "nsd" and not cfg["dataset"].get("data_dir"):
        raise ConfigError(path, "dataset.data_dir", "is required for dataset.kind 'nsd'.")
    if kind == "alice" and not cfg["dataset"].get("data_dir"):
        raise ConfigError(path, "dataset.data_dir", "is required for dataset.kind 'alice'.")
    if kind == "bids":
        for key in ("bids_dir", "task"):
            if not cfg["dataset"].get(key):
                raise ConfigError(path, f"dataset.{key}", "is required for dataset.kind 'bids'.")
    if kind == "simulated_bids" and not cfg["dataset"].get("atlas"):
        raise ConfigError(path, "dataset.atlas", "is required for dataset.kind 'simulated_bids' (the "
                                                 "parcels in which signal is planted).")
    if kind in ("bids", "simulated_bids"):
        if cfg["dataset"]["units"] == "parcels" and not cfg["dataset"].get("atlas"):
            raise ConfigError(path, "dataset.atlas", "is required with dataset.units 'parcels'.")
        if cfg["dataset"].get("atlas") and not Path(cfg["dataset"]["atlas"]).exists():
            raise ConfigError(path, "dataset.atlas", f"the file {cfg['dataset']['atlas']} does not exist.")
    elif cfg["preprocessing"]["confounds"] == "fmriprep":
        raise ConfigError(path, "preprocessing.confounds", "'fmriprep' needs dataset.kind 'bids' or 'simulated_bids'.")
    if kind == "meeg_bids":
        for key in ("bids_dir", "datatype"):
            if not cfg["dataset"].get(key):
                raise ConfigError(path, f"dataset.{key}", "is required for dataset.kind 'meeg_bids'.")
    if kind in ("simulated_meeg", "simulated_seeg", "meeg_bids"):
        ep = cfg["electrophysiology"]
        target = ep["target_feature_set"] or cfg["simulation"]["planted_feature_set"]
        if target not in sets:
            raise ConfigError(path, "electrophysiology.target_feature_set",
                              f"{target!r} is not a feature set; defined: {list(sets)}.")
        if ep["tmax"] <= ep["tmin"]:
            raise ConfigError(path, "electrophysiology.tmax", f"must exceed tmin ({ep['tmin']}).")
        if ep["baseline"] is not None and ep["baseline"][1] <= ep["baseline"][0]:
            raise ConfigError(path, "electrophysiology.baseline", "the interval's end must exceed its start.")
    if kind in ("simulated", "simulated_bids", "simulated_meeg", "simulated_seeg"):
        planted = cfg["simulation"]["planted_feature_set"]
        if planted not in sets:
            raise ConfigError(path, "simulation.planted_feature_set",
                              f"{planted!r} is not a feature set; defined: {list(sets)}.")
        if sets[planted]["kind"] != "transformer":
            raise ConfigError(path, "simulation.planted_feature_set", f"{planted!r} must be a transformer.")
        layers = sets[planted]["layers"]
        layer = cfg["simulation"]["planted_layer"]
        if layers != "all" and layer not in [str(k) for k in layers]:
            raise ConfigError(path, "simulation.planted_layer",
                              f"layer {layer!r} is not among feature_sets.{planted}.layers {layers}.")
    comp = cfg["comparison"]
    for key, names in (("comparison.model", [comp["model"]] if comp["model"] else []),
                       ("comparison.baselines", comp["baselines"])):
        for name in names:
            if name not in sets:
                raise ConfigError(path, key, f"{name!r} is not a feature set; defined: {list(sets)}.")
    transformers = [n for n, s in sets.items() if s["kind"] == "transformer"]
    if any(s["kind"] == "random_embedding" and s.get("dim") is None for s in sets.values()) and not transformers:
        raise ConfigError(path, "feature_sets.<random>.dim", "must be set when no transformer is configured.")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file and validate it (see :func:`validate_config`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputFileError(p, "config file does not exist.") from err
    except UnicodeDecodeError:
        raise not_utf8_error(p, "config file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputFileError(p, f"not valid YAML ({err}).") from err
    return validate_config(raw if raw is not None else {}, p)


def feature_set_instances(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Expand feature sets into the instances that are extracted and scored.

    A random embedding with seeds ``[0, 1]`` named ``random`` becomes the
    instances ``random_seed0`` and ``random_seed1``. Each instance carries
    ``family`` (the configured name) and ``seed`` (or None).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, spec in cfg["feature_sets"].items():
        if spec["kind"] in ("random_embedding", "suma", "rnn"):
            for seed in spec["seeds"]:
                out[f"{name}_seed{seed}"] = {**spec, "family": name, "seed": int(seed)}
        else:
            out[name] = {**spec, "family": name, "seed": None}
    return out


def comparison_sets(cfg: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The model family compared with baselines, and the baseline families."""
    sets = cfg["feature_sets"]
    model = cfg["comparison"]["model"] or next(
        (n for n, s in sets.items() if s["kind"] == "transformer"), None)
    baselines = cfg["comparison"]["baselines"] or [n for n, s in sets.items() if s["kind"] != "transformer"]
    return model, baselines
