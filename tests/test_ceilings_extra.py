"""Brain-Score's ceilings in brainalign.metrics.ceilings: split-half, extrapolation, cache.

Golden values come from brainscore-language 2.3.0 (tests/golden/brainscore_2.3.0.json,
made by tests/golden/make_brainscore_golden.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from brainalign._validation import BrainalignError
from brainalign.metrics.brainscore import linear_pearsonr
from brainalign.metrics.ceilings import (
    cached_ceiling,
    collect_subject_pool_scores,
    extrapolate_ceiling,
    saturating_curve,
    spearman_brown,
    split_half_consistency,
    subject_pool_extrapolation,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="module")
def golden():
    return json.loads((GOLDEN_DIR / "brainscore_2.3.0.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def inputs():
    spec = importlib.util.spec_from_file_location(
        "make_brainscore_golden", GOLDEN_DIR / "make_brainscore_golden.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_inputs()


# --------------------------------------------------------------------------- Spearman–Brown
def test_spearman_brown_hand_values():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0
    assert spearman_brown(1.0) == 1.0
    assert spearman_brown(0.5, factor=3) == pytest.approx(1.5 / 2.0)
    assert spearman_brown(0.6, factor=0.5) == pytest.approx(0.3 / 0.7)
    np.testing.assert_allclose(spearman_brown(np.array([0.2, 0.8])), [0.4 / 1.2, 1.6 / 1.8])
    assert np.isnan(spearman_brown(-1.0))
    with pytest.raises(BrainalignError, match="factor"):
        spearman_brown(0.5, factor=0)


# --------------------------------------------------------------------------- split-half
def test_split_half_matches_brainscore(inputs, golden):
    expected = golden["split_half"]
    result = split_half_consistency(inputs["rt"])
    np.testing.assert_allclose(result.ceiling, expected["ceiling"], rtol=1e-6)
    np.testing.assert_allclose(result.corrected, expected["corrected"], rtol=1e-6)
    np.testing.assert_allclose(result.uncorrected, expected["uncorrected"], rtol=1e-6)


def test_split_half_draws_and_absolute_value():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(200)
    data = np.vstack([signal + 0.5 * rng.standard_normal(200) for _ in range(7)])
    result = split_half_consistency(data, n_splits=4)
    draws = np.random.RandomState(0)
    for h1, h2 in result.halves:
        np.testing.assert_array_equal(h1, np.sort(draws.choice(7, size=3, replace=False)))
        assert len(h2) == 4 and not set(h1) & set(h2)
    np.testing.assert_allclose(result.corrected, 2 * result.uncorrected / (1 + result.uncorrected))
    assert result.ceiling == np.median(result.corrected)

    # Anti-correlated halves: |r| is taken before the correction (Brain-Score's pearsonr metric).
    flipped = np.vstack([signal, -signal])
    assert split_half_consistency(flipped, n_splits=1).ceiling == pytest.approx(1.0)
    signed = split_half_consistency(flipped, n_splits=1, absolute=False)
    assert signed.uncorrected[0] == pytest.approx(-1.0)
    assert signed.corrected[0] < -1  # 2r / (1 + r) blows up as r -> -1: why |r| is taken


def test_split_half_ignores_missing_values_within_a_half():
    rng = np.random.default_rng(1)
    data = np.vstack([np.arange(50.0) + rng.standard_normal(50) for _ in range(6)])
    data[0, 5] = np.nan  # another subject of the same half still read word 5
    result = split_half_consistency(data, n_splits=3)
    assert np.all(np.isfinite(result.corrected))
    with pytest.raises(BrainalignError, match="n_subjects"):
        split_half_consistency(np.ones(5))


# --------------------------------------------------------------------------- extrapolation
def test_subject_pool_extrapolation_matches_brainscore(inputs, golden):
    expected = golden["extrapolation"]
    result = subject_pool_extrapolation(
        inputs["ex_neural"], inputs["ex_subjects"],
        lambda source, target: linear_pearsonr(source, target).neuroid_scores,
    )
    # curve_fit stops at its tolerances: agreement is ~1e-8, not 1e-15
    np.testing.assert_allclose(result.ceiling, expected["ceiling"], rtol=1e-6)
    np.testing.assert_allclose(result.neuroid_ceilings, expected["neuroid_ceilings"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        result.bootstrapped_params[:, :, 0].mean(axis=1), expected["v0_bootstrap_mean"], rtol=1e-5, atol=1e-6
    )
    # structure of what was collected: every subset, every member held out once
    n_subj = len(set(inputs["ex_subjects"]))
    per = inputs["ex_neural"].shape[1] // n_subj
    for n, block in result.scores.items():
        n_subsets = len(list(itertools.combinations(range(n_subj), n)))
        assert block.shape == (n_subsets, 10, inputs["ex_neural"].shape[1])
        assert np.all(np.sum(~np.isnan(block[:, 0, :]), axis=1) == n * per)
    np.testing.assert_array_equal(result.n_subjects, np.arange(2, n_subj + 1))


def _curve_data(v0s, tau0, sizes, n_draws, noise, seed):
    rng = np.random.default_rng(seed)
    return {
        n: saturating_curve(n, np.asarray(v0s), tau0) + noise * rng.standard_normal((n_draws, len(v0s)))
        for n in sizes
    }


def test_extrapolation_recovers_known_v0():
    v0s = [0.3, 0.55, 0.8]
    scores = _curve_data(v0s, tau0=2.5, sizes=range(2, 11), n_draws=8, noise=0.01, seed=0)
    result = extrapolate_ceiling(scores, n_bootstraps=30)
    np.testing.assert_allclose(result.neuroid_ceilings, v0s, atol=0.02)
    assert result.ceiling == pytest.approx(np.median(result.neuroid_ceilings))
    np.testing.assert_allclose(np.median(result.bootstrapped_params[:, :, 1], axis=1), 2.5, rtol=0.2)
    assert result.bootstrapped_params.shape == (3, 30, 2)


def test_extrapolation_bounds_v0_to_one():
    scores = _curve_data([1.4], tau0=1.0, sizes=range(2, 8), n_draws=4, noise=0.0, seed=0)
    result = extrapolate_ceiling(scores, n_bootstraps=5)
    assert result.neuroid_ceilings[0] == pytest.approx(1.0)


def test_extrapolation_drops_missing_draws():
    scores = _curve_data([0.5, 0.5], tau0=2.0, sizes=range(2, 8), n_draws=6, noise=0.005, seed=2)
    with_nan = {n: a.copy() for n, a in scores.items()}
    for a in with_nan.values():
        a[::2, 1] = np.nan  # neuroid 1 scored in every other draw only
    result = extrapolate_ceiling(with_nan, n_bootstraps=10)
    assert np.all(np.isfinite(result.neuroid_ceilings))
    np.testing.assert_allclose(result.neuroid_ceilings, 0.5, atol=0.02)
    # A neuroid never scored has no ceiling and is left out of the median.
    for a in with_nan.values():
        a[:, 1] = np.nan
    result = extrapolate_ceiling(with_nan, n_bootstraps=5)
    assert np.isnan(result.neuroid_ceilings[1]) and result.ceiling == result.neuroid_ceilings[0]


def test_subject_pool_extrapolation_with_a_simulated_metric():
    """A metric whose value depends only on the pool size recovers the planted v0."""
    v0, tau0, per = 0.6, 1.5, 2
    rng = np.random.default_rng(4)

    def metric(source, target):
        n = source.shape[1] // per + 1
        return saturating_curve(n, v0, tau0) + 0.005 * rng.standard_normal((3, target.shape[1]))

    neural = np.zeros((10, 5 * per))
    subjects = np.repeat(["s1", "s2", "s3", "s4", "s5"], per)
    result = subject_pool_extrapolation(neural, subjects, metric, n_bootstraps=10)
    np.testing.assert_allclose(result.neuroid_ceilings, v0, atol=0.03)

    sub = collect_subject_pool_scores(neural, subjects, metric, subsets=3, holdouts=1, random_state=7)
    assert [b.shape[0] for b in sub.values()] == [3, 3, 3, 1]  # C(5, 5) = 1 subset only
    for block in sub.values():
        filled = np.sum(~np.isnan(block[:, 0, :]), axis=1)
        assert np.all(filled == per)  # one held-out subject per subset


def test_subject_pool_errors():
    neural = np.zeros((10, 4))
    with pytest.raises(BrainalignError, match="one label per neuroid"):
        collect_subject_pool_scores(neural, ["a", "b"], lambda s, t: np.zeros(t.shape[1]))
    with pytest.raises(BrainalignError, match="per-neuroid scores"):
        collect_subject_pool_scores(neural, ["a", "a", "b", "b"], lambda s, t: np.zeros(5))
    with pytest.raises(BrainalignError, match="At least 2 subjects"):
        collect_subject_pool_scores(neural, ["a"] * 4, lambda s, t: np.zeros(t.shape[1]))


# --------------------------------------------------------------------------- cache
def test_cached_ceiling_hit_returns_identical_value(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return 0.1 + 0.2  # a float that prints with 17 digits

    data = np.arange(12.0).reshape(3, 4)
    key = {"dataset": "Pereira2018.243sentences", "metric": "linear_pearsonr", "data": data, "seed": 0}
    first = cached_ceiling(key, compute, tmp_path)
    second = cached_ceiling(dict(reversed(list(key.items()))), compute, tmp_path)
    assert first == second == 0.1 + 0.2
    assert len(calls) == 1
    assert not list(tmp_path.glob("*.part"))
    assert len(list(tmp_path.glob("*.json"))) == 1

    # Different data, different entry.
    cached_ceiling({**key, "data": data + 1}, compute, tmp_path)
    assert len(calls) == 2


def test_cached_ceiling_arrays_and_dicts(tmp_path):
    calls = []
    rng = np.random.default_rng(0)
    per_neuroid = rng.random(7)

    def compute():
        calls.append(1)
        return {"ceiling": float(np.median(per_neuroid)), "neuroid_ceilings": per_neuroid, "n": 3}

    first = cached_ceiling({"k": 1}, compute, tmp_path)
    second = cached_ceiling({"k": 1}, compute, tmp_path)
    assert len(calls) == 1
    assert second["ceiling"] == first["ceiling"] == float(np.median(per_neuroid))
    np.testing.assert_array_equal(second["neuroid_ceilings"], per_neuroid)
    assert second["n"] == 3

    arr = cached_ceiling({"k": 2}, lambda: per_neuroid * 2, tmp_path)
    np.testing.assert_array_equal(cached_ceiling({"k": 2}, lambda: 1 / 0, tmp_path), arr)


def test_cached_ceiling_recomputes_unreadable_file(tmp_path):
    cached_ceiling({"k": "x"}, lambda: 0.5, tmp_path)
    (path,) = tmp_path.glob("*.json")
    path.write_text("{not json", encoding="utf-8")
    assert cached_ceiling({"k": "x"}, lambda: 0.25, tmp_path) == 0.25
    assert cached_ceiling({"k": "x"}, lambda: 1 / 0, tmp_path) == 0.25


def test_cached_ceiling_rejects_bad_types(tmp_path):
    with pytest.raises(BrainalignError, match="unsupported type"):
        cached_ceiling({"k": object()}, lambda: 0.5, tmp_path)
    with pytest.raises(BrainalignError, match="cannot be cached"):
        cached_ceiling({"k": 1}, lambda: object(), tmp_path)
