"""Tests for brainalign.metrics.identification on hand-made cases and null simulations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from brainalign._validation import BrainalignError
from brainalign.metrics.identification import (
    binomial_chance_interval,
    identification_topk,
    retrieval_top1,
    similarity_matrix,
    two_way_identification,
)


def test_similarity_matrix_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((5, 6))
    cos = similarity_matrix(a, b, "cosine")
    ref = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(cos, ref, rtol=1e-12)
    corr = similarity_matrix(a, b, "correlation")
    np.testing.assert_allclose(corr, np.corrcoef(a, b)[:4, 4:], rtol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_identity_is_perfect(metric):
    rng = np.random.default_rng(1)
    T = rng.standard_normal((50, 8))
    res = identification_topk(T, T, k=(1, 5), metric=metric)
    assert res["accuracy"] == {1: 1.0, 5: 1.0}
    assert res["chance"] == {1: 1 / 50, 5: 5 / 50}
    np.testing.assert_array_equal(res["rank"], 0)
    assert two_way_identification(T, T, metric=metric) == 1.0
    r = retrieval_top1(T, T, n_way=20, n_draws=5)
    assert r["a_to_b"] == 1.0 and r["b_to_a"] == 1.0 and r["chance"] == 1 / 20


def test_rank_hand_case_and_ties_count_against():
    true = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pred = np.array([[0.9, 0.5], [1.0, 0.1], [-1.0, 0.0]])
    # cosine: pred0 is closest to true0 (rank 0); pred1 is closer to true0 than true1 (rank 1)
    res = identification_topk(pred, true, k=(1, 2), unique=False)
    np.testing.assert_array_equal(res["rank"], [0, 1, 0])
    assert res["accuracy"] == {1: pytest.approx(2 / 3), 2: 1.0}
    # a constant prediction ties with every candidate: ranked last, not first
    res = identification_topk(np.zeros((3, 2)), true, k=1, unique=False)
    np.testing.assert_array_equal(res["rank"], [2, 2, 2])
    assert res["accuracy"][1] == 0.0
    # two-way by hand: pred0 beats 2/2 others, pred1 1/2 (true2 lower), pred2 2/2
    assert two_way_identification(pred, true, metric="cosine") == pytest.approx((2 + 1 + 2) / 6)


def test_unique_candidates_and_mapping():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((5, 4))
    idx = np.array([3, 0, 3, 1, 4, 0, 2, 3])
    true = base[idx]
    pred = true + 0.01 * rng.standard_normal(true.shape)
    res = identification_topk(pred, true, k=(1, 10))
    assert res["n_candidates"] == 5
    np.testing.assert_array_equal(res["first_index"], [0, 1, 3, 4, 6])
    # candidates in order of first appearance; every row maps to its copy
    np.testing.assert_array_equal(true[res["first_index"]][res["candidate_index"]], true)
    assert res["accuracy"][1] == 1.0
    assert res["chance"][10] == 1.0  # k > n_candidates is capped
    # without deduplication a copy of the stimulus can outrank the row itself
    res_dup = identification_topk(pred, true, k=1, unique=False)
    assert res_dup["n_candidates"] == 8 and res_dup["accuracy"][1] < 1.0


def test_shuffled_predictions_score_at_chance_over_seeds():
    n, seeds = 100, 200
    rng = np.random.default_rng(3)
    hits1 = hits5 = 0
    two_way = []
    for _ in range(seeds):
        true = rng.standard_normal((n, 16))
        pred = true[rng.permutation(n)] + 0.1 * rng.standard_normal((n, 16))
        res = identification_topk(pred, true, k=(1, 5))
        hits1 += res["accuracy"][1] * n
        hits5 += res["accuracy"][5] * n
        two_way.append(two_way_identification(pred, true))
    total = n * seeds
    for hits, k in ((hits1, 1), (hits5, 5)):
        low, high = binomial_chance_interval(total, k / n, level=0.999)
        assert low <= hits / total <= high, (k, hits / total, low, high)
    # mean of 200 two-way scores: each has sd ~ 0.03, so the mean is within ~0.01 of 0.5
    assert abs(np.mean(two_way) - 0.5) < 0.01


def test_retrieval_random_is_near_chance_and_signal_is_high():
    rng = np.random.default_rng(4)
    # independent null data sets (draws within one data set reuse the same rows)
    fwd = bwd = 0.0
    n_sets = 40
    for seed in range(n_sets):
        a = rng.standard_normal((300, 16))
        b = rng.standard_normal((300, 16))
        r = retrieval_top1(a, b, n_way=300, n_draws=1, random_state=seed)
        fwd += r["a_to_b"] / n_sets
        bwd += r["b_to_a"] / n_sets
    low, high = binomial_chance_interval(300 * n_sets, 1 / 300, level=0.999)
    assert low <= fwd <= high and low <= bwd <= high, (fwd, bwd, low, high)
    b = rng.standard_normal((400, 32))
    r = retrieval_top1(b, b, random_state=0)
    assert r["a_to_b_draws"].shape == (30,) and r["chance"] == 1 / 300
    noisy = b + 0.5 * rng.standard_normal(b.shape)
    r = retrieval_top1(noisy, b, random_state=1)
    assert r["a_to_b"] > 0.9 and r["b_to_a"] > 0.9
    # reproducible with the same seed
    assert retrieval_top1(noisy, b, random_state=1)["a_to_b"] == r["a_to_b"]


def test_retrieval_matches_brute_force_on_one_draw():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    a[:5] = b[:5] + 0.2 * rng.standard_normal((5, 3))
    r = retrieval_top1(a, b, n_way=10, n_draws=1, random_state=0)  # all rows, any order
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    S = an @ bn.T
    assert r["a_to_b"] == pytest.approx(np.mean(S.argmax(axis=1) == np.arange(10)))
    assert r["b_to_a"] == pytest.approx(np.mean(S.argmax(axis=0) == np.arange(10)))


def test_binomial_chance_interval_matches_scipy():
    low, high = binomial_chance_interval(1000, 0.01, level=0.99)
    lo_ref, hi_ref = scipy.stats.binom.interval(0.99, 1000, 0.01)
    assert (low, high) == (lo_ref / 1000, hi_ref / 1000)
    with pytest.raises(BrainalignError, match="'p_chance'"):
        binomial_chance_interval(10, 1.5)
    with pytest.raises(BrainalignError, match="'n_trials'"):
        binomial_chance_interval(0, 0.5)


def test_identification_errors():
    T = np.random.default_rng(6).standard_normal((5, 3))
    with pytest.raises(BrainalignError, match="same shape"):
        identification_topk(T, T[:4])
    with pytest.raises(BrainalignError, match="'k'"):
        identification_topk(T, T, k=0)
    # A float k raised a TypeError ("'float' object is not iterable"); 2.0 is refused too, not truncated.
    for bad in (1.5, 2.0, np.float64(2.0), "5", [], (1, 2.5), True):
        with pytest.raises(BrainalignError, match=r"'k' must be a positive int or a non-empty sequence"):
            identification_topk(T, T, k=bad)
    assert identification_topk(T, T, k=np.int64(2))["accuracy"] == {2: 1.0}
    with pytest.raises(BrainalignError, match="distinct candidates"):
        identification_topk(T, np.ones_like(T))
    with pytest.raises(BrainalignError, match="'metric'"):
        two_way_identification(T, T, metric="euclidean")
    with pytest.raises(BrainalignError, match="'n_way'.*5 samples"):
        retrieval_top1(T, T, n_way=300)
