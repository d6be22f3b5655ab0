"""Stages that pool several subjects refuse subjects that do not line up.

Subjects are pooled position by position (sample k of every subject is the
same volume, unit j the same unit), so a subject given twice, or one whose
units, runs, sampling or grid differ from the first subject's, used to give a
silently wrong result (an ISC ceiling of 1.0 in every ROI for the same file
given twice). Every stage taking several responses, epochs or scores files is
checked here, and that it writes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from brainalign._validation import InputFileError
from brainalign.config import validate_config
from brainalign.io import (
    Epochs,
    Features,
    Responses,
    write_epochs,
    write_features,
    write_responses,
    write_table,
)
from brainalign.pipeline.aggregate import run_aggregate
from brainalign.pipeline.electro import run_word_decoding
from brainalign.pipeline.stages import run_ceiling, run_partition, run_score
from brainalign.pipeline.volumes import run_volume_ceiling, run_volume_score
from brainalign.stimuli.events import write_events

N = 60


@pytest.fixture
def cfg() -> dict:
    return validate_config({
        "dataset": {"name": "toy", "kind": "simulated"},
        "simulation": {"planted_feature_set": "m", "planted_layer": "0"},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}, "word_rate": {"kind": "word_rate"}},
        "statistics": {"n_permutations": 0},
    })


def _subject(folder: Path, subject: str, seed: int = 0, names=("A", "B"), rois=None, runs=None,
             sampling: float = 2.0, grid: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    extra = {}
    if grid:
        extra = {"affine": np.eye(4), "unit_index": np.array([[[0, 1], [-1, -1]]], np.int32)}
    resp = Responses(rng.standard_normal((N, len(names))), sampling, sampling * np.arange(N),
                     np.ones(N) if runs is None else runs, list(names), list(rois or names), subject, **extra)
    return write_responses(folder / f"{subject}.h5", resp, {})


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _design(folder: Path, model: str = "word_rate", name: str = "design.h5") -> Path:
    layers = {"0": np.random.default_rng(5).standard_normal((N, 2)).astype(np.float32)}
    return write_features(folder / name, Features(layers, model), {}, kind="design")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    inputs, out = tmp_path / "inputs", tmp_path / "results"
    inputs.mkdir()
    out.mkdir()
    return inputs, out


def _refused(call, folders, *expected: str) -> str:
    before = _listing(folders[1])
    with pytest.raises(InputFileError) as info:
        call()
    assert _listing(folders[1]) == before
    message = str(info.value)
    for text in expected:
        assert text in message, (text, message)
    return message


# --------------------------------------------------------------------------- duplicates
STAGES = {
    "ceiling": lambda cfg, paths, i, o: run_ceiling(cfg, paths, o / "ceiling.csv"),
    "score": lambda cfg, paths, i, o: run_score(cfg, _design(i), paths, o / "scores.csv"),
    "volume_ceiling": lambda cfg, paths, i, o: run_volume_ceiling(cfg, paths, o / "ceiling.csv", o / "c.h5"),
    "volume_score": lambda cfg, paths, i, o: run_volume_score(cfg, _design(i), paths, o / "s.csv", o / "s.h5"),
    "partition": lambda cfg, paths, i, o: run_partition(
        cfg, write_table(i / "best.csv", pd.DataFrame({"model": "m", "roi": ["A", "B"], "subject": "s1",
                                                        "chosen_layer": "0"})),
        _design(i, "m", "m.h5"), _design(i), paths, o / "partition.csv"),
}


@pytest.mark.parametrize("stage", STAGES)
def test_the_same_file_twice_is_refused(stage, cfg, folders):
    inputs, out = folders
    first, second = _subject(inputs, "s1"), _subject(inputs, "s2", seed=1)
    _refused(lambda: STAGES[stage](cfg, [first, second, first], inputs, out), folders,
             str(first), "given twice", "once")


@pytest.mark.parametrize("stage", STAGES)
def test_one_subject_in_two_files_is_refused(stage, cfg, folders):
    inputs, out = folders
    first = _subject(inputs, "s1")
    copy = _copy(first, inputs / "s2.h5")
    message = _refused(lambda: STAGES[stage](cfg, [first, copy], inputs, out), folders,
                       "attribute 'subject' is 's1'", str(first))
    assert message.startswith(f"{copy}: ")


def test_the_same_file_through_a_link_is_refused(cfg, folders):
    inputs, out = folders
    first = _subject(inputs, "s1")
    link = inputs / "link.h5"
    link.symlink_to(first)
    _refused(lambda: run_ceiling(cfg, [first, link], out / "ceiling.csv"), folders, str(link), "given twice")


def test_an_excluded_subject_given_twice_is_refused(cfg, folders):
    inputs, out = folders
    first, second = _subject(inputs, "s1"), _subject(inputs, "s2", seed=1)
    with h5py.File(second, "a") as f:
        f.attrs["excluded"] = "all values are zero"
    _refused(lambda: run_ceiling(cfg, [first, second, _copy(second, inputs / "again.h5")], out / "c.csv"),
             folders, "attribute 'subject' is 's2'")


def test_distinct_subjects_still_give_a_ceiling(cfg, folders):
    inputs, out = folders
    paths = [_subject(inputs, f"s{k}", seed=k) for k in range(1, 4)]
    table = pd.read_csv(run_ceiling(cfg, paths, out / "ceiling.csv"))
    assert sorted(table["subject"].unique()) == ["s1", "s2", "s3"]
    assert (table["ceiling"].abs() < 0.9).all()


# --------------------------------------------------------------------------- units, runs, sampling, grid
@pytest.mark.parametrize("stage", ["ceiling", "score", "partition"])
@pytest.mark.parametrize("names, expected", [
    (("B", "A"), ("the same names in another order", "unit 0 is 'B' here, 'A' there")),
    (("X", "Y"), ("unit 0 is 'X' here, 'A' there",)),
    (("A", "B", "C"), ("names 3 units, but that of s1.h5 (subject s1) names 2",)),
], ids=["reordered", "renamed", "extra-unit"])
def test_units_that_differ_from_the_first_subjects_are_refused(stage, names, expected, cfg, folders):
    inputs, out = folders
    first, second = _subject(inputs, "s1"), _subject(inputs, "s2", seed=1, names=names, rois=names)
    message = _refused(lambda: STAGES[stage](cfg, [first, second], inputs, out), folders,
                       "attribute 'unit_names'", "s1.h5", *expected)
    assert message.startswith(f"{second}: ")


def test_rois_that_differ_from_the_first_subjects_are_refused(cfg, folders):
    inputs, out = folders
    first = _subject(inputs, "s1", rois=("ROI_1", "ROI_2"))
    second = _subject(inputs, "s2", seed=1, rois=("ROI_2", "ROI_1"))
    _refused(lambda: run_ceiling(cfg, [first, second], out / "c.csv"), folders,
             str(second), "attribute 'unit_rois'", "'ROI_2' here, 'ROI_1' there")


def test_runs_sampling_and_grid_that_differ_are_refused(cfg, folders):
    inputs, out = folders
    first = _subject(inputs, "s1", runs=np.repeat([1, 2], N // 2))
    second = _subject(inputs, "s2", seed=1, runs=np.repeat([1, 3], N // 2))
    _refused(lambda: run_ceiling(cfg, [first, second], out / "c.csv"), folders, str(second), "dataset 'runs'")
    first, second = _subject(inputs, "s1"), _subject(inputs, "s2", seed=1, sampling=1.5)
    _refused(lambda: run_ceiling(cfg, [first, second], out / "c.csv"), folders, str(second),
             "attribute 'sampling' is 1.5")
    first, second = _subject(inputs, "s1", grid=True), _subject(inputs, "s2", seed=1, grid=True)
    with h5py.File(second, "a") as f:
        f["grid_unit_index"][0, 1] = [1, 0]
    _refused(lambda: run_volume_ceiling(cfg, [first, second], out / "c.csv", out / "c.h5"), folders,
             str(second), "'grid_unit_index'")


# --------------------------------------------------------------------------- scores tables and epochs
def _scores(folder: Path, name: str, feature_set: str) -> Path:
    rows = [{"dataset": "toy", "subject": s, "model": feature_set, "seed": -1, "feature_set": feature_set,
             "layer": "0", "roi": "A", "unit": "A", "metric": "pearson_r", "cv": "contiguous5_gap0",
             "alpha_criterion": "inner_cv_pearson_r", "fold": "mean",
             "score": 0.1 * k, "p_value": 0.5} for k, s in enumerate(["s1", "s2", "s3"])]
    return write_table(folder / name, pd.DataFrame(rows))


def test_aggregate_refuses_a_feature_set_scored_twice(cfg, folders):
    inputs, out = folders
    ceiling = write_table(inputs / "ceiling.csv", pd.DataFrame({"subject": ["s1", "s2", "s3"], "roi": "A",
                                                                 "ceiling": 0.5}))
    model, rate = _scores(inputs, "m.csv", "m"), _scores(inputs, "word_rate.csv", "word_rate")
    _refused(lambda: run_aggregate(cfg, [model, rate, model], ceiling, out / "summary"), folders,
             str(model), "column 'feature_set' holds 'm'", "once")
    copy = _copy(rate, inputs / "copy.csv")
    _refused(lambda: run_aggregate(cfg, [model, rate, copy], ceiling, out / "summary"), folders,
             str(copy), "'word_rate'", str(rate))


def test_word_decoding_refuses_a_subject_given_twice(folders):
    inputs, out = folders
    cfg = validate_config({
        "dataset": {"name": "electro", "kind": "simulated_seeg"},
        "simulation": {"planted_feature_set": "m", "planted_layer": "0"},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}},
    })
    events = write_events(inputs / "events.tsv", pd.DataFrame({
        "onset": np.arange(8.0), "duration": 0.3, "word": ["house", "water"] * 4, "run": [1] * 4 + [2] * 4}))
    rng = np.random.default_rng(0)
    epochs = Epochs(rng.standard_normal((8, 2, 10)).astype(np.float32), np.linspace(0, 0.9, 10), np.arange(8),
                    np.array([1] * 4 + [2] * 4), ["c1", "c2"], None, 10.0, "sub-01")
    first = write_epochs(inputs / "sub-01.h5", epochs, {})
    _refused(lambda: run_word_decoding(cfg, [first, first], events, out / "decoding", progress=False), folders,
             str(first), "attribute 'subject' is 'sub-01'")
