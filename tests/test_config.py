"""Tests of brainalign.config: schema validation, defaults, messages, path resolution."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from brainalign._validation import ConfigError, InputFileError
from brainalign.config import (
    comparison_sets,
    feature_set_instances,
    load_config,
    validate_config,
)

MINIMAL = {
    "dataset": {"name": "toy", "kind": "simulated"},
    "feature_sets": {"minilm": {"kind": "transformer"}},
}


def _write(tmp_path: Path, config, name: str = "my_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _with(**updates):
    cfg = copy.deepcopy(MINIMAL)
    for dotted, value in updates.items():
        keys = dotted.split("__")
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return cfg


# --------------------------------------------------------------------------- defaults
def test_minimal_config_gets_defaults(tmp_path):
    path = _write(tmp_path, MINIMAL)
    cfg = load_config(path)
    assert cfg["dataset"]["data_dir"] is None
    assert cfg["dataset"]["roi_size"] == "6mm"
    assert cfg["dataset"]["subjects"] == "all"
    assert cfg["simulation"]["n_subjects"] == 5
    assert cfg["simulation"]["planted_layer"] == "3"
    assert cfg["simulation"]["rois"] == {"ROI_A": 1.0, "ROI_B": 0.3, "ROI_C": 0.1, "CONTROL": 0.0}
    assert cfg["feature_sets"]["minilm"]["layers"] == "all"
    assert cfg["feature_sets"]["minilm"]["context_words"] == 32
    assert cfg["feature_sets"]["minilm"]["seeds"] == [0, 1, 2, 3, 4]
    assert cfg["preprocessing"]["high_pass"] == 1 / 128
    assert cfg["preprocessing"]["standardize"] == "zscore_sample"
    assert cfg["design"] == {"model": "hrf", "hrf_model": "spm", "event_duration": "impulse",
                             "fir_lags": [1, 2, 3, 4, 5, 6]}
    assert cfg["encoder"]["outer_folds"] == 5 and cfg["encoder"]["gap"] == 5
    assert len(cfg["encoder"]["alphas"]) == 17 and cfg["encoder"]["alphas"][0] == 0.01
    assert cfg["comparison"] == {"model": None, "baselines": []}
    assert cfg["threads"] == 1


def test_validate_config_does_not_mutate_and_keeps_given_values():
    raw = _with(encoder__outer_folds=3, simulation__rois={"X": 2.0})
    before = copy.deepcopy(raw)
    cfg = validate_config(raw)
    assert raw == before
    assert cfg["encoder"]["outer_folds"] == 3 and cfg["encoder"]["inner_folds"] == 5
    assert cfg["simulation"]["rois"] == {"X": 2.0}
    # Defaults are copies, not shared objects.
    cfg["design"]["fir_lags"].append(99)
    assert validate_config(raw)["design"]["fir_lags"] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("kind, dataset, expected", [
    ("bids", {"bids_dir": "ds", "task": "story"}, "fmriprep"),
    ("simulated_bids", {"atlas": "atlas.nii.gz"}, "fmriprep"),
    ("simulated", {}, "none"),
    ("alice", {"data_dir": "alice"}, "none"),
])
def test_confounds_default_depends_on_the_dataset_kind(tmp_path, kind, dataset, expected):
    (tmp_path / "atlas.nii.gz").write_bytes(b"")  # only its existence is checked here
    fields = {"dataset__kind": kind, **{f"dataset__{k}": v for k, v in dataset.items()}}
    cfg = validate_config(_with(**fields), tmp_path / "c.yaml")
    assert cfg["preprocessing"]["confounds"] == expected
    # fMRIPrep's confounds by default: 24 motion parameters, white matter and CSF, no scrubbing.
    settings = cfg["preprocessing"]["fmriprep_confounds"]
    assert (settings["preset"], settings["strategy"], settings["motion"], settings["wm_csf"]) == (
        None, ["motion", "wm_csf"], "full", "basic")
    # A value the config gives is kept, whatever the kind.
    other = "none" if expected == "fmriprep" else "motion"
    given = validate_config(_with(preprocessing__confounds=other, **fields), tmp_path / "c.yaml")
    assert given["preprocessing"]["confounds"] == other


def test_repository_configs_are_valid(repo_root):
    for path in sorted((repo_root / "workflows" / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg["dataset"]["name"]


# --------------------------------------------------------------------------- bad configs
BAD = [
    # (config, dotted field, extra substrings)
    pytest.param({**MINIMAL, "encodr": {"gap": 2}}, "encodr",
                 ["unknown key", "Did you mean 'encoder'?"], id="unknown-top-level"),
    pytest.param(_with(encoder__outer_fold=3), "encoder.outer_fold",
                 ["unknown key", "Did you mean 'outer_folds'?"], id="unknown-nested"),
    pytest.param(_with(feature_sets__minilm__layer=[1]), "feature_sets.minilm.layer",
                 ["Did you mean 'layers'?"], id="unknown-in-feature-set"),
    pytest.param(_with(encoder__outer_folds="five"), "encoder.outer_folds",
                 ["not of type 'integer'"], id="wrong-type"),
    pytest.param(_with(threads=0), "threads", ["minimum"], id="below-minimum"),
    pytest.param({"dataset": {"name": "toy"}, "feature_sets": MINIMAL["feature_sets"]},
                 "dataset.kind", ["required"], id="missing-kind"),
    pytest.param({"dataset": MINIMAL["dataset"]}, "feature_sets", ["required"],
                 id="missing-feature-sets"),
    pytest.param(_with(design__hrf_model="spmm"), "design.hrf_model",
                 ["'spm'", "'glover'"], id="enum"),
    pytest.param(_with(dataset__kind="alicee"), "dataset.kind", ["'alice'"], id="enum-kind"),
    pytest.param(_with(feature_sets__minilm__layers=[0, 1, 2]), "simulation.planted_layer",
                 ["'3'"], id="planted-layer-not-in-layers"),
    pytest.param(_with(comparison__baselines=["random"]), "comparison.baselines",
                 ["'random'", "minilm"], id="unknown-baseline"),
    pytest.param(_with(comparison__model="gpt"), "comparison.model", ["'gpt'"],
                 id="unknown-comparison-model"),
    pytest.param(_with(dataset__kind="alice"), "dataset.data_dir", ["alice"],
                 id="alice-without-data-dir"),
    pytest.param(_with(simulation__planted_feature_set="nope"), "simulation.planted_feature_set",
                 ["'nope'"], id="planted-set-unknown"),
]


@pytest.mark.parametrize("config, field, extra", BAD)
def test_bad_config_names_file_and_field(tmp_path, config, field, extra):
    path = _write(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.field == field
    assert str(path) in message
    assert f"'{field}'" in message
    for text in extra:
        assert text in message


def test_non_mapping_config(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_empty_config_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "required" in str(info.value)


def test_non_utf8_config(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("dataset:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputFileError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("dataset: {name: x, kind: simulated\nfeature_sets: [\n")
    with pytest.raises(InputFileError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "YAML" in str(info.value)


def test_missing_config_file(tmp_path):
    path = tmp_path / "nowhere" / "config.yaml"
    with pytest.raises(InputFileError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)


# --------------------------------------------------------------------------- paths
def test_relative_paths_resolved_against_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs" / "sub"
    (folder / "weights").mkdir(parents=True)  # a model folder beside the config (a bare name that is no folder
    # there stays a name for the Hugging Face cache: tests/test_model_names.py)
    config = {
        "dataset": {"name": "a", "kind": "alice", "data_dir": "../data/alice"},
        "feature_sets": {"m": {"kind": "transformer", "model_path": "weights"}},
    }
    path = _write(folder, config)
    monkeypatch.chdir(tmp_path)  # a different working directory must not matter
    cfg = load_config(Path("configs/sub/my_config.yaml"))
    assert cfg["dataset"]["data_dir"] == str((tmp_path / "configs" / "data" / "alice").resolve())
    assert cfg["feature_sets"]["m"]["model_path"] == str((folder / "weights").resolve())
    # Absolute paths stay as they are.
    config["dataset"]["data_dir"] = str(tmp_path / "abs")
    cfg = load_config(_write(folder, config))
    assert cfg["dataset"]["data_dir"] == str((tmp_path / "abs").resolve())
    assert path.exists()


# --------------------------------------------------------------------------- instances
def test_feature_set_instances_expand_seeds():
    cfg = validate_config({
        "dataset": {"name": "t", "kind": "simulated"},
        "feature_sets": {"minilm": {"kind": "transformer"},
                         "random": {"kind": "random_embedding", "seeds": [0, 2, 5]},
                         "word_rate": {"kind": "word_rate"}},
    })
    inst = feature_set_instances(cfg)
    assert list(inst) == ["minilm", "random_seed0", "random_seed2", "random_seed5", "word_rate"]
    assert inst["random_seed2"]["family"] == "random" and inst["random_seed2"]["seed"] == 2
    assert inst["minilm"]["family"] == "minilm" and inst["minilm"]["seed"] is None
    assert inst["word_rate"]["seed"] is None
    assert comparison_sets(cfg) == ("minilm", ["random", "word_rate"])


@pytest.mark.parametrize("sets, field, expected", [
    # Before: the word-rate set silently replaced the random embedding's seed 0 (or the other way round).
    ({"random": {"kind": "random_embedding", "seeds": [0]}, "random_seed0": {"kind": "word_rate"}},
     "feature_sets.random_seed0", "one from feature_sets.random and one from feature_sets.random_seed0"),
    ({"random_seed0": {"kind": "word_rate"}, "random": {"kind": "random_embedding", "seeds": [1, 0]}},
     "feature_sets.random", "one from feature_sets.random_seed0 and one from feature_sets.random"),
    ({"rnn_seed3": {"kind": "transformer"}, "rnn": {"kind": "rnn", "seeds": [3]}},
     "feature_sets.rnn", "'rnn_seed3' would name two feature sets"),
    ({"random": {"kind": "random_embedding", "seeds": [0, 0]}}, "feature_sets.random.seeds", "seed 0 twice"),
])
def test_feature_set_names_must_be_unique_after_expansion(tmp_path, sets, field, expected):
    config = _write(tmp_path, {"dataset": {"name": "t", "kind": "simulated"},
                               "feature_sets": {"minilm": {"kind": "transformer"}, **sets}})
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.path == config and info.value.field == field
    assert expected in str(info.value)
    # The expansion itself refuses too, for configs built in Python.
    with pytest.raises(ConfigError, match="two feature sets|twice"):
        feature_set_instances(yaml.safe_load(config.read_text()))


def test_random_embedding_without_transformer_needs_dim():
    with pytest.raises(ConfigError) as info:
        validate_config({
            "dataset": {"name": "t", "kind": "alice", "data_dir": "/x"},
            "feature_sets": {"random": {"kind": "random_embedding"}},
        })
    assert "dim" in info.value.field
    cfg = validate_config({
        "dataset": {"name": "t", "kind": "alice", "data_dir": "/x"},
        "feature_sets": {"random": {"kind": "random_embedding", "dim": 8, "seeds": [1]}},
    })
    assert list(feature_set_instances(cfg)) == ["random_seed1"]


def test_the_readme_example_of_a_misspelt_key_is_what_validate_says(tmp_path):
    """README's example error (issue #21): the suggestion it shows is the one the tool gives, and a key as near to
    two allowed keys as n_folds is names both instead of guessing one."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = re.search(r"field 'encoder\.n_folds': unknown key 'n_folds'; … (Did you mean\s+[^`]*\?)`", readme)
    assert shown, "README lost its example"
    with pytest.raises(ConfigError) as err:
        validate_config(_with(encoder__n_folds=3), tmp_path / "my.yaml")
    assert " ".join(shown.group(1).split()) in str(err.value)
    assert "Did you mean 'inner_folds' or 'outer_folds'?" in str(err.value)
