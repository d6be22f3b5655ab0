"""Tests for brainalign.metrics.stats: permutation tests, corrections, bootstraps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from brainalign._validation import BrainalignError
from brainalign.metrics.stats import (
    block_permutation_test,
    bootstrap_ci,
    circular_shift_test,
    fdr_correction,
    max_statistic_correction,
    paired_comparison,
    permutation_pvalues,
)


def ar1(rng, n, n_targets, phi=0.8):
    """Stationary AR(1) series, strongly autocorrelated like BOLD."""
    e = rng.standard_normal((n + 100, n_targets))
    return scipy.signal.lfilter([1.0], [1.0, -phi], e, axis=0)[100:]


def fpr_interval(n_trials, alpha=0.05, level=0.999):
    lo, hi = scipy.stats.binom.interval(level, n_trials, alpha)
    return lo / n_trials, hi / n_trials


# --------------------------------------------------------------------------- circular shifts
def test_circular_shift_null_equals_np_roll_brute_force():
    rng = np.random.default_rng(0)
    y, p = rng.standard_normal((60, 4)), rng.standard_normal((60, 4))
    p[:, 3] = 1.0  # constant column: r = 0
    res = circular_shift_test(y, p, n_permutations=25, min_shift=5, random_state=1)
    assert res.null.shape == (25, 4) and res.observed.shape == (4,) and res.pvalues.shape == (4,)
    # recover the shifts by re-drawing them with the same seed
    shifts = np.random.default_rng(1).integers(5, 55, endpoint=True, size=25)
    for b, s in enumerate(shifts):
        rolled = np.roll(p, s, axis=0)
        for j in range(3):
            assert res.null[b, j] == pytest.approx(
                np.corrcoef(y[:, j], rolled[:, j])[0, 1], abs=1e-12
            )
    np.testing.assert_array_equal(res.null[:, 3], 0.0)
    for j in range(3):
        assert res.observed[j] == pytest.approx(np.corrcoef(y[:, j], p[:, j])[0, 1], abs=1e-12)
    assert np.all((shifts >= 5) & (shifts <= 55))
    # unpacks as a tuple; batching over targets changes nothing
    obs, null, pv = circular_shift_test(y, p, 25, 5, 1, n_targets_batch=3)
    np.testing.assert_allclose(null, res.null, atol=1e-14)
    np.testing.assert_array_equal(obs, res.observed)
    np.testing.assert_allclose(pv, res.pvalues)


def test_circular_shift_valid_under_autocorrelated_null():
    rng = np.random.default_rng(2)
    n_trials = 400
    pvals = np.empty(n_trials)
    for i in range(n_trials):
        y = ar1(rng, 200, 1)
        p = ar1(rng, 200, 1)
        pvals[i] = circular_shift_test(y, p, n_permutations=99, random_state=i).pvalues[0]
    lo, hi = fpr_interval(n_trials)
    assert lo <= np.mean(pvals <= 0.05) <= hi
    # roughly uniform: a KS test does not reject at 0.001 (p-values are discrete in 1/100)
    assert scipy.stats.kstest(pvals, "uniform").pvalue > 1e-3
    # an i.i.d. shuffle null on the same kind of data is invalid (shows why shifts are used)
    bad = 0
    for _ in range(100):
        y, p = ar1(rng, 200, 1)[:, 0], ar1(rng, 200, 1)[:, 0]
        r = np.corrcoef(y, p)[0, 1]
        null = [np.corrcoef(y, rng.permutation(p))[0, 1] for _ in range(99)]
        bad += (1 + np.sum(np.array(null) >= r)) / 100 <= 0.05
    assert bad / 100 > hi


def test_circular_shift_detects_planted_signal():
    rng = np.random.default_rng(3)
    y = ar1(rng, 300, 5)
    p = y + 2.0 * ar1(rng, 300, 5)
    p[:, 4] = ar1(rng, 300, 1)[:, 0]  # one target without signal
    res = circular_shift_test(y, p, n_permutations=999, min_shift=30, random_state=0)
    assert np.all(res.pvalues[:4] <= 0.01)
    assert res.pvalues.min() >= 1 / 1000
    two = circular_shift_test(y, -p, n_permutations=199, random_state=0, alternative="two-sided")
    assert np.all(two.pvalues[:4] <= 0.02)


# --------------------------------------------------------------------------- block permutations
def test_block_permutation_rejects_short_blocks_with_reason():
    y = np.zeros((100, 2))
    with pytest.raises(BrainalignError, match="at least 10 samples.*autocorrelated"):
        block_permutation_test(y, y, block_size=5)
    with pytest.raises(BrainalignError, match="at least 2 blocks"):
        block_permutation_test(y[:15], y[:15], block_size=10)


def test_block_permutation_null_matches_brute_force():
    rng = np.random.default_rng(4)
    y, p = rng.standard_normal((53, 3)), rng.standard_normal((53, 3))
    res = block_permutation_test(y, p, n_permutations=20, block_size=10, random_state=7)
    blocks = np.array_split(np.arange(53), 5)
    assert min(len(b) for b in blocks) >= 10
    gen = np.random.default_rng(7)
    for b in range(20):
        idx = np.concatenate([blocks[i] for i in gen.permutation(5)])
        for j in range(3):
            assert res.null[b, j] == pytest.approx(np.corrcoef(y[:, j], p[idx, j])[0, 1], abs=1e-12)
    np.testing.assert_allclose(res.pvalues, permutation_pvalues(res.observed, res.null))


def test_block_permutation_valid_under_null_and_powerful_with_signal():
    rng = np.random.default_rng(5)
    n_trials = 300
    pvals = np.empty(n_trials)
    for i in range(n_trials):
        y, p = ar1(rng, 400, 1, phi=0.5), ar1(rng, 400, 1, phi=0.5)
        pvals[i] = block_permutation_test(
            y, p, n_permutations=99, block_size=20, random_state=i
        ).pvalues[0]
    lo, hi = fpr_interval(n_trials)
    assert lo <= np.mean(pvals <= 0.05) <= hi
    y = ar1(rng, 400, 3, phi=0.5)
    res = block_permutation_test(y, y + 2.0 * ar1(rng, 400, 3, phi=0.5), 499, random_state=0)
    assert np.all(res.pvalues <= 0.01)


# --------------------------------------------------------------------------- corrections
@pytest.mark.parametrize("method", ["bh", "by"])
def test_fdr_matches_scipy(method):
    rng = np.random.default_rng(6)
    p = np.concatenate([rng.random(200), rng.random(30) * 1e-3, [0.0, 1.0, 0.5, 0.5]])
    np.testing.assert_allclose(
        fdr_correction(p, method), scipy.stats.false_discovery_control(p, method=method), rtol=1e-12
    )
    P = rng.random((4, 50)) ** 3
    np.testing.assert_allclose(
        fdr_correction(P, method, axis=1),
        scipy.stats.false_discovery_control(P, axis=1, method=method),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        fdr_correction(P, method),  # axis=None: one family
        scipy.stats.false_discovery_control(P, axis=None, method=method).reshape(P.shape),
        rtol=1e-12,
    )


def test_fdr_hand_case_and_errors():
    # BH by hand: sorted p (0.01, 0.02, 0.03, 0.5), m = 4 -> 0.04, 0.04, 0.04, 0.5
    np.testing.assert_allclose(fdr_correction([0.03, 0.5, 0.01, 0.02]), [0.04, 0.5, 0.04, 0.04])
    with pytest.raises(BrainalignError, match=r"\[0, 1\]"):
        fdr_correction([0.1, np.nan])
    with pytest.raises(BrainalignError, match="'method'"):
        fdr_correction([0.1], method="holm")


def test_max_statistic_hand_case():
    observed = np.array([0.9, 0.5, 0.1])
    null = np.array(
        [
            [0.2, 0.6, 0.1],  # max 0.6
            [0.3, 0.1, 0.0],  # max 0.3
            [0.95, 0.2, 0.4],  # max 0.95
            [0.1, 0.1, 0.1],  # max 0.1
        ]
    )
    # counts of maxima >= obs: 0.9 -> 1; 0.5 -> 2; 0.1 -> 4
    np.testing.assert_allclose(max_statistic_correction(observed, null), [2 / 5, 3 / 5, 5 / 5])
    np.testing.assert_allclose(
        max_statistic_correction(-observed, -null, alternative="less"), [2 / 5, 3 / 5, 5 / 5]
    )
    np.testing.assert_allclose(
        max_statistic_correction(np.array([-0.9, 0.5, 0.1]), null, alternative="two-sided"),
        [2 / 5, 3 / 5, 5 / 5],
    )
    # a family spanning layers x ROIs: same values as the flattened family
    np.testing.assert_allclose(
        max_statistic_correction(np.tile(observed, (2, 1)), np.repeat(null[:, None], 2, axis=1)),
        np.tile([2 / 5, 3 / 5, 1.0], (2, 1)),
    )
    assert np.all(max_statistic_correction(observed, null) >= permutation_pvalues(observed, null))
    with pytest.raises(BrainalignError, match="n_permutations"):
        max_statistic_correction(observed, null[:, :2])


def test_max_statistic_controls_familywise_error():
    rng = np.random.default_rng(8)
    n_trials, hits = 150, 0
    for i in range(n_trials):
        y, p = ar1(rng, 150, 20, phi=0.5), ar1(rng, 150, 20, phi=0.5)
        res = circular_shift_test(y, p, n_permutations=99, min_shift=15, random_state=i)
        hits += np.any(max_statistic_correction(res.observed, res.null) <= 0.05)
    _, hi = fpr_interval(n_trials)
    assert hits / n_trials <= hi


# --------------------------------------------------------------------------- subjects
def test_bootstrap_ci_coverage():
    rng = np.random.default_rng(9)
    n_sims, true_mean = 400, 0.3
    values = true_mean + 0.2 * rng.standard_normal((20, n_sims))  # 20 subjects, 400 data sets
    ci = bootstrap_ci(values, n_bootstraps=2000, level=0.9, random_state=0)
    covered = np.mean((ci["low"] <= true_mean) & (true_mean <= ci["high"]))
    lo, hi = scipy.stats.binom.interval(0.999, n_sims, 0.9)
    # the percentile bootstrap slightly undercovers with 20 subjects (~0.88 for 0.90)
    assert (lo - 0.03 * n_sims) / n_sims <= covered <= hi / n_sims
    np.testing.assert_allclose(ci["mean"], values.mean(axis=0))
    batched = bootstrap_ci(values, n_bootstraps=2000, level=0.9, random_state=0, n_targets_batch=7)
    np.testing.assert_allclose(batched["low"], ci["low"])


def test_bootstrap_ci_1d_hand_properties():
    v = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    ci = bootstrap_ci(v, n_bootstraps=5000, level=0.95, random_state=1)
    assert isinstance(ci["low"], float) and ci["mean"] == 4.0
    assert 1.0 <= ci["low"] < 4.0 < ci["high"] <= 10.0
    assert bootstrap_ci(np.full(6, 2.5), n_bootstraps=100, random_state=0) == {
        "mean": 2.5,
        "low": 2.5,
        "high": 2.5,
    }
    with pytest.raises(BrainalignError, match="'level'"):
        bootstrap_ci(v, level=95)
    with pytest.raises(BrainalignError, match="random_state"):
        bootstrap_ci(v, random_state="seed")


def test_paired_comparison_matches_scipy():
    rng = np.random.default_rng(10)
    a = 0.3 + 0.05 * rng.standard_normal(12)
    b = a - 0.02 + 0.01 * rng.standard_normal(12)
    res = paired_comparison(a, b, n_bootstraps=2000, random_state=0)
    t = scipy.stats.ttest_rel(a, b)
    w = scipy.stats.wilcoxon(a - b)
    assert res["t_statistic"] == pytest.approx(t.statistic)
    assert res["t_pvalue"] == pytest.approx(t.pvalue)
    assert res["wilcoxon_statistic"] == pytest.approx(w.statistic)
    assert res["wilcoxon_pvalue"] == pytest.approx(w.pvalue)
    assert res["mean_difference"] == pytest.approx(np.mean(a - b))
    assert res["ci_low"] < res["mean_difference"] < res["ci_high"] and res["ci_low"] > 0
    assert res["n_subjects"] == 12
    # per target, and an all-zero difference gives NaN Wilcoxon
    A = np.column_stack([a, b])
    B = np.column_stack([b, b])
    res2 = paired_comparison(A, B, n_bootstraps=500, random_state=0)
    assert res2["t_statistic"].shape == (2,)
    assert res2["wilcoxon_pvalue"][0] == pytest.approx(w.pvalue)
    assert np.isnan(res2["wilcoxon_pvalue"][1])
    with pytest.raises(BrainalignError, match="same shape"):
        paired_comparison(a, b[:-1])
