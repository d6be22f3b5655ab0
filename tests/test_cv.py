"""Tests for brainalign.encoders.cv.ContiguousKFold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, LeaveOneGroupOut, cross_val_score

from brainalign._validation import BrainalignError
from brainalign.encoders.cv import ContiguousKFold

CASES = [(10, 2, 0), (10, 3, 1), (17, 5, 2), (100, 5, 5), (101, 7, 3), (23, 4, 0), (50, 10, 1)]


@pytest.mark.parametrize("n, k, gap", CASES)
def test_every_sample_is_test_exactly_once(n, k, gap):
    folds = list(ContiguousKFold(n_splits=k, gap=gap).split(np.zeros((n, 3))))
    assert len(folds) == k
    counts = np.zeros(n, dtype=int)
    for _, test in folds:
        counts[test] += 1
    np.testing.assert_array_equal(counts, np.ones(n, dtype=int))


@pytest.mark.parametrize("n, k, gap", CASES)
def test_blocks_are_contiguous_in_time_order_and_near_equal(n, k, gap):
    folds = list(ContiguousKFold(n_splits=k, gap=gap).split(np.zeros(n)))
    tests = [test for _, test in folds]
    for test in tests:
        assert test.dtype.kind == "i"
        np.testing.assert_array_equal(test, np.arange(test[0], test[-1] + 1))
    np.testing.assert_array_equal(np.concatenate(tests), np.arange(n))
    sizes = [t.size for t in tests]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the larger blocks come first, as KFold


@pytest.mark.parametrize("n, k, gap", CASES)
def test_gap_samples_are_absent_from_train_and_nothing_else(n, k, gap):
    for train, test in ContiguousKFold(n_splits=k, gap=gap).split(np.zeros(n)):
        lo, hi = test[0], test[-1]
        # Hand-written reference: everything at distance > gap from the block.
        expected = [i for i in range(n) if i < lo - gap or i > hi + gap]
        np.testing.assert_array_equal(train, expected)
        assert train.dtype.kind == "i"
        for d in range(1, gap + 1):
            assert lo - d not in train
            assert hi + d not in train
        assert np.intersect1d(train, test).size == 0


@pytest.mark.parametrize("n, k", [(10, 2), (17, 5), (101, 7), (23, 4), (50, 10)])
def test_matches_sklearn_kfold_without_gap(n, k):
    ours = list(ContiguousKFold(n_splits=k, gap=0).split(np.zeros(n)))
    ref = list(KFold(n_splits=k, shuffle=False).split(np.zeros(n)))
    assert len(ours) == len(ref)
    for (tr, te), (rtr, rte) in zip(ours, ref):
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)


def test_docstring_example():
    folds = [(tr.tolist(), te.tolist()) for tr, te in ContiguousKFold(3, gap=1).split(range(9))]
    assert folds == [
        ([4, 5, 6, 7, 8], [0, 1, 2]),
        ([0, 1, 7, 8], [3, 4, 5]),
        ([0, 1, 2, 3, 4], [6, 7, 8]),
    ]


def test_get_n_splits():
    cv = ContiguousKFold(n_splits=4, gap=2)
    assert cv.get_n_splits() == 4
    assert cv.get_n_splits(np.zeros(10)) == 4
    assert cv.get_n_splits(groups=[0, 0, 1, 1, 2, 2]) == 3
    assert "n_splits=4" in repr(cv) and "gap=2" in repr(cv)


def test_groups_leave_one_group_out_matches_sklearn():
    groups = np.repeat(["run1", "run2", "run3"], [8, 10, 7])
    X = np.zeros((groups.size, 2))
    ours = list(ContiguousKFold(n_splits=5, gap=3).split(X, groups=groups))
    ref = list(LeaveOneGroupOut().split(X, groups=groups))
    assert ContiguousKFold(gap=3).get_n_splits(groups=groups) == 3 == len(ours)
    # Runs are separate acquisitions: no gap across a run boundary.
    for (tr, te), (rtr, rte) in zip(ours, ref):
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)


def test_groups_gap_only_between_adjacent_samples_of_the_same_group():
    # Group 0 is interrupted by group 1; group 2 is a separate run.
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2])
    folds = list(ContiguousKFold(gap=1).split(np.zeros(groups.size), groups=groups))
    # Test group 0 = {0,1,2,7,8,9}: its neighbours 3, 6 (group 1) and 10 (group 2)
    # belong to other groups, so nothing is dropped.
    np.testing.assert_array_equal(folds[0][1], [0, 1, 2, 7, 8, 9])
    np.testing.assert_array_equal(folds[0][0], [3, 4, 5, 6, 10, 11, 12])
    np.testing.assert_array_equal(folds[1][1], [3, 4, 5, 6])
    np.testing.assert_array_equal(folds[1][0], [0, 1, 2, 7, 8, 9, 10, 11, 12])


def test_usable_by_sklearn_cross_val_score():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(60)
    scores = cross_val_score(Ridge(alpha=1e-3), X, y, cv=ContiguousKFold(n_splits=4, gap=2))
    assert scores.shape == (4,)
    assert np.all(scores > 0.99)


def test_contiguous_folds_do_not_leak_like_shuffled_folds():
    """Smooth (autocorrelated) noise features 'predict' smooth noise under shuffled CV."""
    rng = np.random.default_rng(0)
    X = gaussian_filter1d(rng.standard_normal((300, 100)), 3, axis=0)
    y = gaussian_filter1d(rng.standard_normal(300), 3)  # independent of X

    def mean_r(cv):
        rs = []
        for tr, te in cv.split(X):
            pred = Ridge(alpha=1.0).fit(X[tr], y[tr]).predict(X[te])
            rs.append(pearsonr(y[te], pred)[0])
        return np.mean(rs)

    assert mean_r(KFold(5, shuffle=True, random_state=0)) > 0.9
    assert abs(mean_r(ContiguousKFold(5, gap=10))) < 0.5


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("n_splits", [1, 0, -3])
def test_n_splits_below_two_raises(n_splits):
    with pytest.raises(BrainalignError, match=r"'n_splits'.*" + str(n_splits)):
        ContiguousKFold(n_splits=n_splits)


@pytest.mark.parametrize("n_splits", [2.0, "5", True, None])
def test_n_splits_wrong_type_raises(n_splits):
    with pytest.raises(BrainalignError, match="'n_splits'"):
        ContiguousKFold(n_splits=n_splits)


@pytest.mark.parametrize("gap", [-1, 1.5, "2", False])
def test_bad_gap_raises(gap):
    with pytest.raises(BrainalignError, match="'gap'"):
        ContiguousKFold(n_splits=3, gap=gap)


def test_gap_too_large_raises_at_split_call():
    cv = ContiguousKFold(n_splits=2, gap=5)
    with pytest.raises(BrainalignError, match=r"'gap'=5.*n_samples=10"):
        cv.split(np.zeros(10))  # raises eagerly, before iteration
    # gap=4 still leaves a training sample on the far side.
    folds = list(ContiguousKFold(n_splits=2, gap=4).split(np.zeros(10)))
    assert [f[0].tolist() for f in folds] == [[9], [0]]


def test_fewer_samples_than_splits_raises():
    with pytest.raises(BrainalignError, match=r"'n_splits'=5.*n_samples=3"):
        ContiguousKFold(n_splits=5, gap=0).split(np.zeros(3))


def test_bad_groups_raise():
    cv = ContiguousKFold(gap=0)
    with pytest.raises(BrainalignError, match=r"'groups'.*n_samples=6"):
        cv.split(np.zeros(6), groups=[0, 0, 1, 1])
    with pytest.raises(BrainalignError, match=r"'groups'.*at least 2"):
        cv.split(np.zeros(4), groups=[7, 7, 7, 7])


def test_scalar_X_raises():
    with pytest.raises(BrainalignError, match="'X'"):
        ContiguousKFold().split(np.float64(3.0))
