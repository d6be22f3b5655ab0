"""Tests for brainalign.metrics.rsa: parity with rsatoolbox 0.3 and hand cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from brainalign._validation import BrainalignError
from brainalign.metrics.rsa import compare_rdms, rdm, rsa_score, squareform

_rsa_data = pytest.importorskip("rsatoolbox.data")  # a test-only reference
_rsa_rdm = pytest.importorskip("rsatoolbox.rdm")
Dataset, RDMs = _rsa_data.Dataset, _rsa_rdm.RDMs
calc_rdm, compare = _rsa_rdm.calc_rdm, _rsa_rdm.compare

RTOL = 1e-6


def rsa_rdm(X, method, conditions=None, runs=None, noise=None, remove_mean=False):
    """The same RDM computed by rsatoolbox."""
    desc = {"index": np.arange(len(X))}
    if conditions is not None:
        desc["conds"] = np.asarray(conditions)
    if runs is not None:
        desc["runs"] = np.asarray(runs)
    ds = Dataset(np.asarray(X, dtype=np.float64), obs_descriptors=desc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rsatoolbox's descriptor casting
        out = calc_rdm(
            ds,
            method=method,
            descriptor=None if conditions is None else "conds",
            cv_descriptor=None if runs is None else "runs",
            noise=noise,
            remove_mean=remove_mean,
        )
    return out.get_vectors()[0]


def assert_close(ours, ref):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    scale = max(np.max(np.abs(ref)), 1e-300)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * scale)


def design(n_cond=7, n_runs=4, n_channels=12, seed=0, shuffle=True):
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((n_cond, n_channels))
    cond = np.repeat(np.arange(n_cond), n_runs)
    runs = np.tile(np.arange(n_runs), n_cond)
    X = patterns[cond] + 0.7 * rng.standard_normal((len(cond), n_channels)) + 3.0
    if shuffle:
        order = rng.permutation(len(cond))
        X, cond, runs = X[order], cond[order], runs[order]
    return X, cond, runs


def random_precision(n_channels, seed):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((4 * n_channels, n_channels))
    return np.linalg.inv(np.cov(E.T) + 0.1 * np.eye(n_channels))


# --------------------------------------------------------------------------- RDM parity
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "mahalanobis"])
@pytest.mark.parametrize("remove_mean", [False, True])
def test_rdm_matches_rsatoolbox_one_row_per_condition(metric, remove_mean):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 20)) * 2.0 + 1.5
    noise = random_precision(20, 2) if metric == "mahalanobis" else None
    ours = rdm(X, metric, noise=noise, remove_mean=remove_mean)
    assert ours.shape == (36,) and ours.dtype == np.float64
    assert_close(ours, rsa_rdm(X, metric, noise=noise, remove_mean=remove_mean))


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "mahalanobis"])
def test_rdm_averages_repeated_conditions_in_sorted_label_order(metric):
    X, cond, _ = design(seed=3)
    labels = np.array(["cat", "dog", "ant", "bee", "eel", "fox", "gnu"])[cond]
    noise = random_precision(X.shape[1], 4) if metric == "mahalanobis" else None
    ours = rdm(X, metric, conditions=labels, noise=noise)
    assert_close(ours, rsa_rdm(X, metric, conditions=labels, noise=noise))
    # explicit check of the order: np.unique(labels) and averaged rows
    uniq = np.unique(labels)
    M = np.stack([X[labels == u].mean(axis=0) for u in uniq])
    assert_close(ours, rdm(M, metric, noise=noise))


@pytest.mark.parametrize("remove_mean", [False, True])
@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_with_runs_matches_rsatoolbox(remove_mean, with_noise):
    X, cond, runs = design(n_cond=6, n_runs=5, n_channels=10, seed=5)
    runs = np.array([10, 20, 30, 40, 50])[runs]  # arbitrary run labels
    noise = random_precision(10, 6) if with_noise else None
    ours = rdm(X, "crossnobis", conditions=cond, runs=runs, noise=noise, remove_mean=remove_mean)
    ref = rsa_rdm(X, "crossnobis", conditions=cond, runs=runs, noise=noise, remove_mean=remove_mean)
    assert_close(ours, ref)


def test_crossnobis_unbalanced_runs_and_default_runs_match_rsatoolbox():
    X, cond, runs = design(n_cond=5, n_runs=3, n_channels=8, seed=7, shuffle=False)
    # an extra repetition of two conditions in run 0: train means use all other rows
    X2 = np.vstack([X, X[:2] + 0.3])
    cond2 = np.concatenate([cond, cond[:2]])
    runs2 = np.concatenate([runs, runs[:2]])
    assert_close(
        rdm(X2, "crossnobis", conditions=cond2, runs=runs2),
        rsa_rdm(X2, "crossnobis", conditions=cond2, runs=runs2),
    )
    # no runs: the k-th occurrence of each condition is run k
    assert_close(rdm(X, "crossnobis", conditions=cond), rsa_rdm(X, "crossnobis", conditions=cond))


def test_crossnobis_per_run_precisions_match_rsatoolbox():
    X, cond, runs = design(n_cond=5, n_runs=4, n_channels=6, seed=8)
    noises = [random_precision(6, 100 + i) for i in range(4)]
    ours = rdm(X, "crossnobis", conditions=cond, runs=runs, noise=np.stack(noises))
    ref = rsa_rdm(X, "crossnobis", conditions=cond, runs=runs, noise=[n.copy() for n in noises])
    assert_close(ours, ref)


def test_crossnobis_is_unbiased_for_identical_patterns():
    # all conditions share one pattern: expected distance 0, euclidean is biased upward
    rng = np.random.default_rng(9)
    n_cond, n_runs, p = 6, 8, 50
    cond = np.repeat(np.arange(n_cond), n_runs)
    runs = np.tile(np.arange(n_runs), n_cond)
    vals_cv, vals_eu = [], []
    for _ in range(30):
        X = 1.0 + rng.standard_normal((len(cond), p))
        vals_cv.append(rdm(X, "crossnobis", conditions=cond, runs=runs).mean())
        vals_eu.append(rdm(X, "euclidean", conditions=cond).mean())
    assert abs(np.mean(vals_cv)) < 0.02
    assert np.mean(vals_eu) > 0.2  # 2 sigma^2 / n_runs = 0.25


def test_rdm_hand_values():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    # squared euclidean / n_channels
    np.testing.assert_allclose(rdm(X, "euclidean"), [25 / 2, 2 / 2, 13 / 2])
    Y = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 4.0, 6.0]])
    np.testing.assert_allclose(rdm(Y, "correlation"), [2.0, 0.0, 2.0], atol=1e-12)


# --------------------------------------------------------------------------- squareform
def test_squareform_round_trip_and_scipy_order():
    rng = np.random.default_rng(10)
    d = rng.random(15)
    D = squareform(d)
    assert D.shape == (6, 6)
    np.testing.assert_array_equal(D, scipy.spatial.distance.squareform(d))
    np.testing.assert_array_equal(squareform(D), d)
    with pytest.raises(BrainalignError, match="C \\(C - 1\\) / 2"):
        squareform(np.ones(7))
    with pytest.raises(BrainalignError, match="square"):
        squareform(np.ones((3, 4)))


# --------------------------------------------------------------------------- comparisons
RSA_NAMES = {
    "spearman": "spearman",
    "kendall_tau_a": "tau-a",
    "pearson": "corr",
    "cosine": "cosine",
}


@pytest.mark.parametrize("method", list(RSA_NAMES))
@pytest.mark.parametrize("ties", [False, True])
def test_compare_rdms_matches_rsatoolbox(method, ties):
    rng = np.random.default_rng(11 + ties)
    n_pairs = 66  # 12 conditions
    if ties:
        A = rng.integers(0, 4, size=(3, n_pairs)).astype(float)
        B = rng.integers(0, 3, size=(2, n_pairs)).astype(float)
    else:
        A = rng.random((3, n_pairs))
        B = A[:2] + 0.5 * rng.random((2, n_pairs))
    ref = compare(RDMs(A), RDMs(B), method=RSA_NAMES[method])
    ours = compare_rdms(A, B, method)
    assert ours.shape == (3, 2)
    assert_close(ours, ref)
    assert isinstance(compare_rdms(A[0], B[1], method), float)
    assert compare_rdms(A[0], B[1], method) == pytest.approx(ref[0, 1], rel=RTOL, abs=1e-12)


def test_tau_a_is_not_tau_b_under_ties():
    x = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    y = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 4.0])
    # hand count: sign(dx) * sign(dy) summed over the 15 pairs
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i in range(6) for j in range(i + 1, 6))
    assert compare_rdms(x, y, "kendall_tau_a") == pytest.approx(s / 15)
    assert compare_rdms(x, y, "kendall_tau_a") < scipy.stats.kendalltau(x, y).statistic
    assert compare_rdms(np.ones(6), y, "kendall_tau_a") == 0.0


def test_compare_rdms_nan_pairs_and_constant():
    rng = np.random.default_rng(12)
    a, b = rng.random(28), rng.random(28)
    a[[3, 7]] = np.nan
    b2 = b.copy()
    b2[[3, 7]] = np.nan
    for method, rm in RSA_NAMES.items():
        ref = compare(RDMs(a[None]), RDMs(b2[None]), method=rm)[0, 0]
        assert compare_rdms(a, b2, method) == pytest.approx(ref, rel=RTOL)
    with pytest.raises(BrainalignError, match="NaN at different pairs"):
        compare_rdms(a, b, "spearman")
    assert compare_rdms(np.ones(28), b, "pearson") == 0.0
    with pytest.raises(BrainalignError, match="same number of pairs"):
        compare_rdms(np.ones(28), np.ones(21))


def test_rsa_score_is_brainscore_rdm_definition():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((30, 50))
    Y = X @ rng.standard_normal((50, 20)) + rng.standard_normal((30, 20))
    iu = np.triu_indices(30, k=1)
    ref = scipy.stats.spearmanr((1 - np.corrcoef(X))[iu], (1 - np.corrcoef(Y))[iu]).statistic
    assert rsa_score(X, Y) == pytest.approx(ref, rel=1e-10)
    assert rsa_score(X, X) == pytest.approx(1.0)


# --------------------------------------------------------------------------- errors
def test_rdm_errors_name_the_parameter():
    X, cond, runs = design()
    with pytest.raises(BrainalignError, match="'metric'.*Did you mean 'euclidean'"):
        rdm(X, "euclidian")
    with pytest.raises(BrainalignError, match="needs 'conditions'"):
        rdm(X, "crossnobis")
    with pytest.raises(BrainalignError, match="at least 2 runs"):
        rdm(X, "crossnobis", conditions=cond, runs=np.zeros(len(cond)))
    with pytest.raises(BrainalignError, match="no observation of condition"):
        rdm(X[1:], "crossnobis", conditions=cond[1:], runs=runs[1:])
    with pytest.raises(BrainalignError, match="'conditions' must be a 1-D"):
        rdm(X, conditions=cond[:-1])
    with pytest.raises(BrainalignError, match="precision matrix of shape"):
        rdm(X, "mahalanobis", noise=np.eye(3))
    with pytest.raises(BrainalignError, match="'noise' is used only"):
        rdm(X, "euclidean", noise=np.eye(X.shape[1]))
    with pytest.raises(BrainalignError, match="equally often"):
        rdm(X[1:], "crossnobis", conditions=cond[1:])
    with pytest.raises(BrainalignError, match="compare_rdms|'method'"):
        compare_rdms(np.ones(3), np.ones(3), "kendall")


def _bad_precisions(n: int) -> dict[str, np.ndarray]:
    nan = np.eye(n)
    nan[1, 2] = nan[2, 1] = np.nan
    asym = np.eye(n)
    asym[0, 1] = 0.5
    return {"zero": np.zeros((n, n)), "negative definite": -np.eye(n), "indefinite": np.diag([1.0] * (n - 1) + [-1.0]),
            "singular": np.diag([1.0] * (n - 1) + [0.0]), "NaN": nan, "asymmetric": asym}


@pytest.mark.parametrize("kind, match", [
    ("zero", "not positive definite"), ("negative definite", "not positive definite"),
    ("indefinite", "not positive definite"), ("singular", "not positive definite"),
    ("NaN", "NaN or infinite"), ("asymmetric", "not symmetric"),
])
@pytest.mark.parametrize("metric", ["mahalanobis", "crossnobis"])
def test_rdm_refuses_a_noise_that_is_not_a_precision_matrix(metric, kind, match):
    # Before: a zero matrix gave an RDM of zeros, -I one of negative distances, NaN one of NaNs.
    X, cond, runs = design()
    noise = _bad_precisions(X.shape[1])[kind]
    kwargs = {"conditions": cond, "runs": runs} if metric == "crossnobis" else {}
    with pytest.raises(BrainalignError, match=rf"'noise' .*{match}"):
        rdm(X, metric, noise=noise, **kwargs)


def test_crossnobis_refuses_a_bad_precision_among_the_runs():
    X, cond, runs = design(n_runs=4, n_channels=6)
    stack = np.stack([random_precision(6, 100 + i) for i in range(4)])
    stack[2] = -stack[2]
    with pytest.raises(BrainalignError, match=r"'noise\[2\]' is not positive definite"):
        rdm(X, "crossnobis", conditions=cond, runs=runs, noise=stack)
    with pytest.raises(BrainalignError, match="'noise' must hold real numbers"):
        rdm(X, "mahalanobis", noise=np.full((6, 6), "a"))
