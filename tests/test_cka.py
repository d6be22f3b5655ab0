"""Tests for brainalign.metrics.cka against hand-written sample-space estimators."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from brainalign._validation import BrainalignError
from brainalign.metrics.cka import hsic_linear, linear_cka


def hsic_sample_space(K, L):
    """Biased HSIC as Brain-Score writes it: sum(HKH * HLH) / (n - 1)^2."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.sum((H @ K @ H) * (H @ L @ H)) / (n - 1) ** 2


def cka_sample_space(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return hsic_sample_space(K, L) / np.sqrt(hsic_sample_space(K, K) * hsic_sample_space(L, L))


def hsic_unbiased_loops(K, L):
    """Song et al. (2012) eq. 5, written term by term on the raw (uncentered) Gram matrices."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def cka_unbiased_reference(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return hsic_unbiased_loops(K, L) / np.sqrt(
        hsic_unbiased_loops(K, K) * hsic_unbiased_loops(L, L)
    )


@pytest.mark.parametrize("shape", [(40, 5, 7), (12, 60, 80), (25, 3, 90)])
def test_biased_cka_matches_sample_space_hsic(shape):
    n, p, q = shape
    rng = np.random.default_rng(n + p)
    X = rng.standard_normal((n, p)) + 5.0
    Y = X[:, :1] @ rng.standard_normal((1, q)) + rng.standard_normal((n, q)) - 2.0
    assert linear_cka(X, Y) == pytest.approx(cka_sample_space(X, Y), rel=1e-10)
    assert hsic_linear(X, Y) == pytest.approx(hsic_sample_space(X @ X.T, Y @ Y.T), rel=1e-10)


@pytest.mark.parametrize("shape", [(40, 5, 7), (12, 60, 80), (25, 3, 90)])
def test_debiased_cka_matches_song_u_statistic(shape):
    n, p, q = shape
    rng = np.random.default_rng(n * p)
    X = rng.standard_normal((n, p)) + 3.0
    Y = X[:, :1] @ rng.standard_normal((1, q)) + rng.standard_normal((n, q)) + 1.0
    ref = cka_unbiased_reference(X, Y)
    assert linear_cka(X, Y, debiased=True) == pytest.approx(ref, rel=1e-8)
    assert hsic_linear(X, Y, debiased=True) == pytest.approx(
        hsic_unbiased_loops(X @ X.T, Y @ Y.T), rel=1e-8
    )


def test_debiased_cka_matches_kornblith_gram_centering():
    # Kornblith et al.'s route: zero the diagonal, subtract adjusted row/column means
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((30, 8)), rng.standard_normal((30, 6))

    def center_unbiased(G):
        n = G.shape[0]
        G = G.copy()
        np.fill_diagonal(G, 0.0)
        means = G.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        G -= means[:, None] + means[None, :]
        np.fill_diagonal(G, 0.0)
        return G

    Kc, Lc = center_unbiased(X @ X.T), center_unbiased(Y @ Y.T)
    ref = np.sum(Kc * Lc) / np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc))
    assert linear_cka(X, Y, debiased=True) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_properties(debiased):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 10))
    Y = np.tanh(X @ rng.standard_normal((10, 12))) + 0.5 * rng.standard_normal((50, 12))
    base = linear_cka(X, Y, debiased=debiased)
    assert linear_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    Q = ortho_group.rvs(12, random_state=5)
    assert linear_cka(X, Y @ Q, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(7.5 * X, 0.01 * Y, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X + 100.0, Y - 3.0, debiased=debiased) == pytest.approx(base, rel=1e-8)
    assert linear_cka(Y, X, debiased=debiased) == pytest.approx(base, rel=1e-12)
    if not debiased:
        assert 0.0 <= base <= 1.0


def test_debiased_is_near_zero_for_independent_noise_biased_is_not():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((2000, 300))
    Y = rng.standard_normal((2000, 300))
    assert abs(linear_cka(X, Y, debiased=True)) < 0.01
    assert linear_cka(X, Y) > 0.1  # biased estimator inflated when p ~ n / 7


def test_cka_degenerate_and_errors():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((10, 3))
    assert np.isnan(linear_cka(X, np.ones((10, 2))))
    assert np.isnan(linear_cka(X, np.ones((10, 2)), debiased=True))
    with pytest.raises(BrainalignError, match="same number of samples"):
        linear_cka(X, X[:-1])
    with pytest.raises(BrainalignError, match="at least 4 samples"):
        linear_cka(X[:3], X[:3], debiased=True)
    # 1-D inputs are one feature
    assert linear_cka(X[:, 0], 2 * X[:, 0] + 1) == pytest.approx(1.0)
