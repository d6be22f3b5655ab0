"""Banded ridge and variance partitioning against brute force and planted cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge

from brainalign._validation import BrainalignError
from brainalign.encoders.banded import BandedRidgeCV, heldout_r2, partition_variance
from brainalign.encoders.cv import ContiguousKFold


def _data(n=240, pa=6, pb=3, seed=0):
    rng = np.random.default_rng(seed)
    Xa, Xb = rng.standard_normal((n, pa)), rng.standard_normal((n, pb))
    Y = np.stack([Xa @ rng.standard_normal(pa) + 0.3 * Xb @ rng.standard_normal(pb) for _ in range(4)], 1)
    return Xa, Xb, Y + rng.standard_normal(Y.shape)


def test_selection_and_coefficients_match_brute_force():
    Xa, Xb, Y = _data()
    X = np.concatenate([Xa, Xb], 1)
    alphas, scales = np.array([0.1, 10.0, 1000.0]), np.array([0.1, 1.0, 10.0])
    model = BandedRidgeCV(band_sizes=(6, 3), alphas=alphas, band_scales=scales, cv=4, gap=2,
                          scoring="pearson").fit(X, Y)
    folds = list(ContiguousKFold(4, 2).split(X))
    for j in range(Y.shape[1]):
        best, best_score = None, -np.inf
        for s in scales:  # grid order: scaling outer, alpha inner; ties keep the first
            for alpha in alphas:
                w = np.r_[np.ones(6), np.full(3, s)]
                rs = [pearsonr(Ridge(alpha=alpha).fit(X[tr] * w, Y[tr, j]).predict(X[te] * w), Y[te, j])[0]
                      for tr, te in folds]
                if np.mean(rs) > best_score + 1e-10:
                    best, best_score = (s, alpha), np.mean(rs)
        assert (model.scales_[1, j], model.alpha_[j]) == best
        w = np.r_[np.ones(6), np.full(3, best[0])]
        ref = Ridge(alpha=best[1]).fit(X * w, Y[:, j])
        np.testing.assert_allclose(model.coef_[:, j], ref.coef_ * w, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(model.intercept_[j], ref.intercept_, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(model.band_alphas_[:, j], [best[1], best[1] / best[0] ** 2])
    np.testing.assert_allclose(model.predict(X), X @ model.coef_ + model.intercept_)


def test_heldout_r2_matches_sklearn():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    y, p = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    np.testing.assert_allclose(heldout_r2(y, p), r2_score(y, p, multioutput="raw_values"))


def test_partition_recovers_planted_unique_and_shared_variance():
    rng = np.random.default_rng(2)
    n = 2000
    shared = rng.standard_normal(n)
    only_a, only_b = rng.standard_normal(n), rng.standard_normal(n)
    Xa = np.stack([shared, only_a], 1)
    Xb = np.stack([shared, only_b], 1)
    # Variance: shared 1, unique to a 1, unique to b 0.5, noise 1.5 -> R² parts 0.25 / 0.25 / 0.125.
    y = shared + only_a + np.sqrt(0.5) * only_b + np.sqrt(1.5) * rng.standard_normal(n)
    res = partition_variance(Xa, Xb, y[:, None], outer_cv=5, gap=2, inner_cv=3)
    assert res["shared"][0] == pytest.approx(0.25, abs=0.03)
    assert res["unique_a"][0] == pytest.approx(0.25, abs=0.03)
    assert res["unique_b"][0] == pytest.approx(0.125, abs=0.03)
    np.testing.assert_allclose(res["unique_a"] + res["unique_b"] + res["shared"], res["r2_joint"])


def test_errors_name_the_parameter():
    Xa, Xb, Y = _data(n=60)
    with pytest.raises(BrainalignError, match="band_sizes"):
        BandedRidgeCV(band_sizes=(6, 4)).fit(np.concatenate([Xa, Xb], 1), Y)
    with pytest.raises(BrainalignError, match="not fitted"):
        BandedRidgeCV(band_sizes=(6, 3)).predict(np.concatenate([Xa, Xb], 1))
