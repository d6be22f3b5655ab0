"""Load and validate dataset configs (YAML) against the JSON schema.

A config is validated before any rule runs: an unknown key, a wrong type or
an out-of-range value raises :class:`~brainalign._validation.ConfigError`
naming the file and the field (``encoder.outer_folds``), with a "did you
mean" hint for misspelt keys. Defaults from the schema are filled in (and the
few that depend on ``dataset.kind``: ``preprocessing.confounds`` is
``fmriprep`` for ``bids`` and ``simulated_bids``, ``none`` otherwise), and
relative paths are resolved against the config file's folder.

Configs are plain data, read by one loader (:func:`read_config_file`) wherever
a config is read: YAML's safe subset without anchors and aliases (no
"billion laughs"), without duplicate keys (YAML would keep the last value
silently) and with text keys only (YAML 1.1 reads an unquoted ``yes`` as
True); YTE templates (``__use_yte__``) are refused. Every name that becomes
part of an output path (``dataset.name``, feature-set names and their
instances, subject labels) matches :data:`SAFE_NAME_PATTERN`.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ._validation import ConfigError, InputFileError, is_hub_name, not_utf8_error, resolve_against
from .datasets.registry import compose_schema, get_kind, registry_generation, volume_kinds

__all__ = ["load_config", "validate_config", "read_config_file", "dump_config", "check_path_name",
           "feature_set_instances", "comparison_sets", "SCHEMA_PATH", "SAFE_NAME_PATTERN"]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.json"

#: Names that become a path component (``results/<dataset.name>/features/<feature set>.h5``,
#: ``responses/<subject>.h5``): a letter or digit, then letters, digits, ``_``, ``-`` and ``.``.
#: This excludes ``.``, ``..``, ``/``, a leading ``-`` (read as an option on a command line)
#: and a leading ``.`` (hidden files). The schema uses the same pattern, with ``maxLength`` 64.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN)
#: Longest path name: a 64-character name plus ``_seed<seed>``, well below file systems' 255 bytes.
_MAX_PATH_NAME = 100
#: Bounds of a config read from a file or given as a dict (configs are a few kB).
_MAX_CONFIG_BYTES = 1 << 20
_MAX_CONFIG_VALUES = 100_000
#: Integers beyond 2**53 are not exact as float64; every integer field has a far smaller maximum.
_MAX_CONFIG_INT = 2**53
_YTE_MESSAGE = (
    "YTE templates are not accepted: a brainalign config is plain data, and a template runs Python code "
    "when it is loaded. Note that `snakemake --configfile FILE` hands FILE to Snakemake's own loader, which "
    "evaluates such a template before brainalign sees it: run configs you did not write with "
    "`brainalign run FILE ...` or `snakemake --config config_path=FILE ...`, which never do "
    "(docs/reliability.md, \"Configs are plain data\")."
)


def _schema() -> dict[str, Any]:
    """The config schema with every registered dataset kind (its name and its ``dataset`` fields)."""
    return _composed_schema(registry_generation())


@lru_cache(maxsize=2)
def _composed_schema(generation: int) -> dict[str, Any]:
    return compose_schema(json.loads(SCHEMA_PATH.read_text()))


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
    """Fill the fields whose default depends on ``dataset.kind`` (``DatasetKind.defaults``) where ``cfg``
    leaves them out (after the schema's defaults, which do not set them)."""
    for path, value in get_kind(cfg).defaults.items():
        node = cfg
        for key in path[:-1]:
            node = node[key]
        if path[-1] not in node:
            node[path[-1]] = copy.deepcopy(value)
    return cfg


def _field(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _close_keys(key: str, allowed: list[str]) -> list[str]:
    """The allowed keys closest to a misspelt one: the best match and any whose similarity is within 0.12 of it
    (``n_folds`` is about as near to ``inner_folds`` as to ``outer_folds``: both are named, not a guess between
    them; ``layer`` gets only ``layers``, not ``n_layers``)."""
    ratios = {a: difflib.SequenceMatcher(None, key, a).ratio() for a in allowed}
    ranked = difflib.get_close_matches(key, allowed, n=3)
    return [a for a in ranked if ratios[a] >= ratios[ranked[0]] - 0.12] if ranked else []


def _describe(error: Any) -> tuple[str, str]:
    """Turn a jsonschema error into (field, message)."""
    field = _field(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        key = unknown[0] if unknown else "?"
        where = f"{field}.{key}" if field != "<top level>" else key
        msg = f"unknown key {key!r}; allowed keys: {', '.join(allowed)}."
        hints = _close_keys(key, allowed)
        if hints:
            msg += f" Did you mean {' or '.join(repr(h) for h in hints)}?"
        return where, msg
    if error.validator == "required":
        # Name the missing key itself (``dataset.kind``), not only its parent.
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [k for k in error.validator_value if k not in present]
        if missing:
            field = missing[0] if field == "<top level>" else f"{field}.{missing[0]}"
        return field, error.message + "."
    schema_path = list(error.absolute_schema_path)
    if "propertyNames" in schema_path[-2:]:
        # A key of a mapping of names (feature sets, ROIs): name the key and what names may be.
        parent = _schema_at(schema_path[:-1])
        names = parent.get("description") or _SAFE_NAME_RULE
        return field, f"the name {error.instance!r} is not allowed: {names}"
    if error.validator == "pattern" and error.validator_value == SAFE_NAME_PATTERN:
        return field, f"{error.instance!r} is not allowed: {_SAFE_NAME_RULE}"
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Describe the alternative that got furthest into the value (a list item out of range) rather
        # than "is not valid under any of the given schemas".
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return _describe(deepest)
    return field, f"{error.message} (got {error.instance!r})."


def _schema_at(path: list[Any]) -> dict[str, Any]:
    node: Any = _schema()
    for key in path:
        node = node[key]
    return node if isinstance(node, dict) else {}


_SAFE_NAME_RULE = ("it becomes a file or folder name under results/, so it must start with a letter or digit "
                   "and hold only letters, digits, '_', '-' and '.' (at most 64 characters).")


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
    config = _integer_keys_as_text(config)
    huge = _check_plain_data(config, path)
    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        field, message = _describe(errors[0])
        raise ConfigError(path, field, message)
    if huge is not None:  # after the schema, whose maxima name the limit of the fields that have one
        raise ConfigError(path, huge, "is out of range: no field takes an integer beyond 2**53.")
    cfg = _fill_kind_defaults(_fill_defaults(copy.deepcopy(config), _schema()))
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    ds = cfg["dataset"]
    for key in ("data_dir", "bids_dir", "fmriprep_dir", "atlas"):
        if ds.get(key) is not None:
            ds[key] = resolve_against(base, ds[key])
    decoding = cfg.get("decoding", {})
    for spec in [decoding.get(part, {}) for part in ("captioner", "generator", "brain_captioning")] + list(
            decoding.get("targets", {}).values()):
        for key in ("model_path", "controlnet_path", "files"):
            if spec.get(key):
                spec[key] = resolve_against(base, spec[key])
    metric_models = decoding.get("image_metric_models", {})
    for key, value in metric_models.items():
        if value:
            metric_models[key] = resolve_against(base, value)
    if decoding.get("selectivity_bank"):
        decoding["selectivity_bank"] = resolve_against(base, decoding["selectivity_bank"])
    if ds.get("mask") not in (None, "brain"):
        ds["mask"] = resolve_against(base, ds["mask"])
    get_kind(cfg).resolve(cfg, base)
    for name, spec in cfg["feature_sets"].items():
        for key in ("model_path", "tokenizer_path", "checkpoint"):
            if spec.get(key):
                local = resolve_against(base, spec[key])
                # A name like "gpt2" or "org/name" that is no folder beside the config stays a name: the model
                # loaders look it up in the local Hugging Face cache (brainalign.models.hf.resolve_model_dir).
                if key != "checkpoint" and not os.path.exists(local) and is_hub_name(spec[key]):
                    continue
                spec[key] = local
        if spec.get("localize"):
            spec["localize"]["stimuli_dir"] = resolve_against(base, spec["localize"]["stimuli_dir"])
    _check_consistency(cfg, path)
    _check_layers(cfg, path)
    _check_path_names(cfg, path)
    return cfg


#: The one mapping whose keys may be written as integers: an atlas's labels (``{1: LPostTemp}``).
_INTEGER_KEYED = ("dataset", "atlas_labels")


def _integer_keys_as_text(config: dict[str, Any]) -> dict[str, Any]:
    """``dataset.atlas_labels`` with integer keys written as text (``1`` -> ``"1"``), in a shallow copy."""
    labels = config.get("dataset", {}).get("atlas_labels") if isinstance(config.get("dataset"), dict) else None
    if not isinstance(labels, dict) or all(isinstance(k, str) for k in labels):
        return config
    fixed = {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in labels.items()}
    return {**config, "dataset": {**config["dataset"], "atlas_labels": fixed}}


def _check_plain_data(config: dict[str, Any], path: str | os.PathLike | None) -> str | None:
    """Refuse what the JSON schema does not see: keys that are not text, non-finite numbers, a YTE
    marker, and more values than any config holds (a dict built with shared references).

    Returns the field of the first integer beyond 2**53, if any (refused after the schema check).
    """
    if "__use_yte__" in config:
        raise ConfigError(path, "__use_yte__", _YTE_MESSAGE)
    stack: list[tuple[tuple[Any, ...], Any]] = [((), config)]
    count = 0
    huge = None
    while stack:
        where, node = stack.pop()
        count += 1
        if count > _MAX_CONFIG_VALUES:
            raise ConfigError(path, _field(where), f"the config holds more than {_MAX_CONFIG_VALUES} values; a "
                              "dataset config holds a few hundred (was a block repeated by reference?).")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ConfigError(path, _field((*where, key)), f"the key {key!r} is a {type(key).__name__}, "
                                      "not text: YAML reads unquoted yes/no/on/off/true/false as booleans, null or ~ "
                                      "as null, and digits as numbers; quote the key.")
                stack.append(((*where, key), value))
        elif isinstance(node, (list, tuple)):
            stack.extend(((*where, k), value) for k, value in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(path, _field(where), f"must be a finite number, got {node!r}.")
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _MAX_CONFIG_INT:
            huge = huge or _field(where)
    return huge


def _model_hidden_states(model_path: str | None) -> tuple[Path, int] | None:
    """The model folder and its last hidden-state index (its number of blocks), from its config.json; None
    when it cannot be read here (the features stage checks again once the model is loaded)."""
    from ._validation import BrainalignError

    try:
        if model_path:
            from .models.hf import resolve_model_dir

            folder = resolve_model_dir(model_path)
        else:
            from .models.hf import default_model_path

            folder = default_model_path()
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, BrainalignError):
        return None
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(meta.get(key), int) and not isinstance(meta.get(key), bool):
            return folder, meta[key]
    return None


def _check_layers(cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
    """A transformer's ``layers`` must exist in its model (hidden states 0..number of blocks)."""
    for name, spec in cfg["feature_sets"].items():
        if spec["kind"] != "transformer" or spec["layers"] == "all":
            continue
        found = _model_hidden_states(spec.get("model_path"))
        if found is None:
            continue
        folder, n_blocks = found
        bad = [k for k in spec["layers"] if k > n_blocks]
        if bad:
            raise ConfigError(path, f"feature_sets.{name}.layers", f"layer(s) {bad} out of range: the model in "
                              f"{folder} has hidden states 0..{n_blocks} (0 = the embeddings, k = the output of "
                              f"block k; {n_blocks} blocks).")


def check_path_name(name: Any, field: str, path: str | os.PathLike | None = None, what: str = "name") -> str:
    """Return ``name`` if it can be one component of an output path, else raise.

    Parameters
    ----------
    name : object
        A dataset name, feature-set (instance) name or subject label.
    field : str
        The config field it comes from, for the message.
    path : path-like or None
        The config file, for the message.
    what : str
        What the name is (``"subject label"``), for the message.

    Returns
    -------
    name : str

    Raises
    ------
    ConfigError
        If ``name`` is not text, does not match :data:`SAFE_NAME_PATTERN` (``..``,
        ``a/b``, ``-h``, ``.hidden``, ``""``) or is longer than 100 characters.
    """
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or len(name) > _MAX_PATH_NAME:
        raise ConfigError(path, field, f"the {what} {name!r} cannot be used: it becomes a file or folder name "
                          "under results/, so it must start with a letter or digit and hold only letters, "
                          f"digits, '_', '-' and '.' (at most {_MAX_PATH_NAME} characters).")
    return name


def _check_path_names(cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
    """Every configured name that becomes a path component (the schema checks them too; this also covers
    the feature-set instances ``<name>_seed<seed>`` and dicts that skipped nothing)."""
    check_path_name(cfg["dataset"]["name"], "dataset.name", path, "dataset name")
    for name, spec in feature_set_instances(cfg).items():
        check_path_name(name, f"feature_sets.{spec['family']}", path, "feature-set name")
    subjects = cfg["dataset"].get("subjects")
    if isinstance(subjects, list):
        for k, subject in enumerate(subjects):
            check_path_name(subject, f"dataset.subjects.{k}", path, "subject label")


def _check_consistency(cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
    kind = get_kind(cfg)
    if not cfg["feature_sets"] and kind.modality not in ("images", "reading"):
        raise ConfigError(path, "feature_sets", "is required (at least one feature set) for dataset.kind "
                                                f"{kind.name!r}.")
    if kind.modality != "volume" and cfg["preprocessing"]["confounds"] == "fmriprep":
        raise ConfigError(path, "preprocessing.confounds", "'fmriprep' needs NIfTI data in the fMRIPrep layout "
                                                           "(a dataset.kind of the volume modality: "
                                                           f"{', '.join(volume_kinds())}).")
    kind.check_config(cfg, path)
    sets = cfg["feature_sets"]
    comp = cfg["comparison"]
    for key, names in (("comparison.model", [comp["model"]] if comp["model"] else []),
                       ("comparison.baselines", comp["baselines"])):
        for name in names:
            if name not in sets:
                raise ConfigError(path, key, f"{name!r} is not a feature set; defined: {list(sets)}.")
    for name, spec in sets.items():
        if spec["kind"] == "surprisal" and not (spec.get("checkpoint") or spec.get("model_path")):
            raise ConfigError(path, f"feature_sets.{name}.checkpoint", "a surprisal set needs 'checkpoint' (a "
                                                                      "train-lm file) or 'model_path' (a causal LM).")
    transformers = [n for n, s in sets.items() if s["kind"] == "transformer"]
    if any(s["kind"] == "random_embedding" and s.get("dim") is None for s in sets.values()) and not transformers:
        raise ConfigError(path, "feature_sets.<random>.dim", "must be set when no transformer is configured.")
    try:
        feature_set_instances(cfg)
    except ConfigError as err:
        raise ConfigError(path, err.field, err.detail) from None


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file (:func:`read_config_file`) and validate it (see :func:`validate_config`)."""
    p = Path(path)
    raw = read_config_file(p)
    return validate_config(raw if raw is not None else {}, p)


class _Refused(Exception):
    """Raised by :class:`_ConfigLoader` for YAML that a config may not use (carries the field and the mark)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases while it composes the document.

    An alias repeats a block by reference: nine nested levels of nine aliases
    ("billion laughs") are a few hundred bytes that expand to 10**9 values.
    Configs are short, so they are written out in full instead.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._where: list[Any] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        # ``index`` is the key node for a mapping value, the position for a list item.
        part = index.value if isinstance(index, yaml.ScalarNode) else index
        self._where.append(part)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                kind = "alias '*" if isinstance(event, yaml.AliasEvent) else "anchor '&"
                raise _Refused(_field(p for p in self._where if p is not None),
                               f"YAML {kind}{event.anchor}' at line {event.start_mark.line + 1}: anchors and aliases "
                               "are not accepted in configs (they let a few lines expand to billions of values); "
                               "write the values out.")
            return super().compose_node(parent, index)
        finally:
            self._where.pop()


def _check_keys(loader: _ConfigLoader, node: Any, where: tuple[Any, ...]) -> None:
    """Refuse duplicate keys, keys that are not text and merge keys, naming the field and the lines."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(_field(where), f"merge key '<<' at line {line}: merge keys are not accepted in "
                                              "configs; write the values out.")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(_field(where), f"the key at line {line} is a {key_node.id}, not text.")
            key = loader.construct_object(key_node)
            if where == _INTEGER_KEYED and isinstance(key, int) and not isinstance(key, bool):
                key = str(key)  # atlas labels: `1: LPostTemp` means the label 1 (made text by validate_config)
            if not isinstance(key, str):
                raise _Refused(_field((*where, key_node.value)),
                               f"the key {key_node.value!r} at line {line} is read by YAML as the "
                               f"{type(key).__name__} {key!r}, not as text (unquoted yes/no/on/off/true/false "
                               f"are booleans, null and ~ are null, digits are numbers): quote it, "
                               f"'{key_node.value}'.")
            if key in seen:
                raise _Refused(_field((*where, key)), f"is given twice, at lines {seen[key]} and {line}; YAML "
                                                      "would keep the last value silently. Keep one.")
            seen[key] = line
            _check_keys(loader, value_node, (*where, key))
    elif isinstance(node, yaml.SequenceNode):
        for k, item in enumerate(node.value):
            _check_keys(loader, item, (*where, k))


def read_config_file(path: str | os.PathLike) -> Any:
    """Read a config file as plain data: the one YAML loader of every config brainalign reads.

    YAML's safe subset (no Python objects), with these refusals, each naming
    the file, the field and the line: anchors and aliases (``&a``, ``*a``, the
    merge key ``<<``); duplicate keys (YAML keeps the last one silently); keys
    that YAML reads as something other than text (``yes: 1`` is ``True: 1``,
    ``1: x``); a YTE template (``__use_yte__``); more than one document; files
    over 1 MiB.

    Parameters
    ----------
    path : str or path-like
        The config file (YAML, or JSON).

    Returns
    -------
    data : object
        The parsed document (None for an empty file); not validated (see
        :func:`load_config`).

    Raises
    ------
    InputFileError
        The file is missing, too large, not UTF-8 or not valid YAML.
    ConfigError
        The file uses one of the refused constructs above.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > _MAX_CONFIG_BYTES:
            raise InputFileError(p, f"config file is {size} bytes; configs are limited to {_MAX_CONFIG_BYTES} bytes "
                                    "(1 MiB; a dataset config is a few kB).")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputFileError(p, "config file does not exist.") from err
    except IsADirectoryError as err:
        raise InputFileError(p, "config file is a folder, not a file.") from err
    except UnicodeDecodeError:
        raise not_utf8_error(p, "config file") from None
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode) and any(
                isinstance(k, yaml.ScalarNode) and k.value == "__use_yte__" for k, _ in node.value):
            raise ConfigError(p, "__use_yte__", _YTE_MESSAGE)
        _check_keys(loader, node, ())
        return loader.construct_document(node)
    except _Refused as err:
        raise ConfigError(p, err.field, err.message) from None
    except yaml.YAMLError as err:
        raise InputFileError(p, f"not valid YAML ({err}).") from err
    finally:
        loader.dispose()


class _PlainDumper(yaml.SafeDumper):
    """Writes shared objects out in full (no ``&id001`` anchors, which :func:`read_config_file` refuses)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_config(cfg: dict[str, Any]) -> str:
    """A validated config as YAML text that :func:`read_config_file` reads back (sorted keys, no aliases)."""
    return yaml.dump(cfg, Dumper=_PlainDumper, sort_keys=True)


def feature_set_instances(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Expand feature sets into the instances that are extracted and scored.

    A random embedding with seeds ``[0, 1]`` named ``random`` becomes the
    instances ``random_seed0`` and ``random_seed1``. Each instance carries
    ``family`` (the configured name) and ``seed`` (or None).

    Raises
    ------
    ConfigError
        If two instances get the same name (a feature set named
        ``random_seed0`` beside ``random`` with seed 0, or a seed listed
        twice): one would silently replace the other, and share its files.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, spec in cfg["feature_sets"].items():
        if spec["kind"] in ("random_embedding", "suma", "rnn"):
            expanded = [(f"{name}_seed{seed}", {**spec, "family": name, "seed": int(seed)}) for seed in spec["seeds"]]
        else:
            expanded = [(name, {**spec, "family": name, "seed": None})]
        for instance, inst_spec in expanded:
            if instance in out:
                other = out[instance]["family"]
                if other == name:
                    raise ConfigError(None, f"feature_sets.{name}.seeds", f"lists seed {inst_spec['seed']} twice.")
                raise ConfigError(None, f"feature_sets.{name}", f"{instance!r} would name two feature sets, one "
                                  f"from feature_sets.{other} and one from feature_sets.{name} (a set with seeds "
                                  "becomes one set '<name>_seed<seed>' per seed); rename one of the two.")
            out[instance] = inst_spec
    return out


def comparison_sets(cfg: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The model family compared with baselines, and the baseline families."""
    sets = cfg["feature_sets"]
    model = cfg["comparison"]["model"] or next(
        (n for n, s in sets.items() if s["kind"] == "transformer"), None)
    baselines = cfg["comparison"]["baselines"] or [n for n, s in sets.items() if s["kind"] != "transformer"]
    return model, baselines
