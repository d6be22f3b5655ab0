"""Tests for brainalign.metrics.correlation and brainalign.encoders.ridge.

Every number is checked against an independent reference: scipy.stats.pearsonr,
sklearn.linear_model.Ridge, and brute-force loops written here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from brainalign._validation import BrainalignError
from brainalign.encoders.ridge import (
    TIE_TOLERANCE,
    RidgeCVEncoder,
    cross_validated_pearson,
    ridge_svd_path,
)
from brainalign.metrics.correlation import pearsonr_columns

ALPHAS = np.logspace(-2, 5, 8)


def planted(n=160, p=12, t=5, seed=0, noise=(0.2, 1.0, 3.0, 10.0, 30.0), dtype=np.float64):
    """X with a few planted weights; targets with increasing noise (so alphas differ)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 3.0  # non-zero mean: the intercept matters
    W = rng.standard_normal((p, t))
    Y = X @ W + rng.standard_normal((n, t)) * np.asarray(noise[:t]) + 5.0
    return X.astype(dtype), Y.astype(dtype)


# --------------------------------------------------------------------------- pearsonr_columns
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pearsonr_columns_matches_scipy(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 7))
    b = 0.5 * a + rng.standard_normal((50, 7))
    r = pearsonr_columns(a.astype(dtype), b.astype(dtype))
    assert r.dtype == np.float64 and r.shape == (7,)
    ref = [pearsonr(a[:, j].astype(dtype), b[:, j].astype(dtype))[0] for j in range(7)]
    np.testing.assert_allclose(r, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_pearsonr_columns_float64_accumulation_with_large_offset():
    rng = np.random.default_rng(2)
    a = rng.standard_normal(1000)
    b = a + rng.standard_normal(1000)
    # float32 data on a large offset (raw BOLD-like): computed in float64.
    a32, b32 = (a + 1e4).astype(np.float32), (b + 1e4).astype(np.float32)
    ref = pearsonr(a32.astype(np.float64), b32.astype(np.float64))[0]
    np.testing.assert_allclose(pearsonr_columns(a32, b32), [ref], rtol=1e-12)


def test_pearsonr_columns_1d_is_one_column():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(30), rng.standard_normal(30)
    r = pearsonr_columns(a, b)
    assert r.shape == (1,)
    np.testing.assert_allclose(r[0], pearsonr(a, b)[0], rtol=1e-12)


def test_pearsonr_columns_constant_column_gives_zero():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((20, 3))
    b = rng.standard_normal((20, 3))
    a[:, 1] = 0.1  # a constant whose float mean is not exactly 0.1 * n / n
    b[:, 2] = 7.0
    r = pearsonr_columns(a, b)
    assert np.all(np.isfinite(r))
    assert r[1] == 0.0 and r[2] == 0.0
    np.testing.assert_allclose(r[0], pearsonr(a[:, 0], b[:, 0])[0], rtol=1e-12)
    # Perfect (anti-)correlation stays within [-1, 1].
    assert pearsonr_columns(a[:, 0], -3 * a[:, 0] + 2)[0] == -1.0


def test_pearsonr_columns_errors_name_the_parameter():
    with pytest.raises(BrainalignError, match=r"'y_true' and 'y_pred'.*\(10, 2\).*\(10, 3\)"):
        pearsonr_columns(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(BrainalignError, match="'y_true'.*at least 2"):
        pearsonr_columns(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(BrainalignError, match="'y_pred'.*2-D"):
        pearsonr_columns(np.zeros((4, 2)), np.zeros((4, 2, 1)))


# --------------------------------------------------------------------------- ridge_svd_path
@pytest.mark.parametrize("n, p", [(80, 10), (30, 60), (50, 1)])
def test_ridge_svd_path_matches_sklearn_ridge(n, p):
    rng = np.random.default_rng(5)
    Xtr, Xte = rng.standard_normal((n, p)), rng.standard_normal((17, p))
    Ytr = rng.standard_normal((n, 4))
    alphas = [1e-2, 0.5, 3.0, 100.0, 1e4]
    path = ridge_svd_path(Xtr, Ytr, Xte, alphas)
    assert path.shape == (len(alphas), 17, 4) and path.dtype == np.float64
    for i, alpha in enumerate(alphas):
        ref = Ridge(alpha=alpha, fit_intercept=False).fit(Xtr, Ytr).predict(Xte)
        np.testing.assert_allclose(path[i], ref, rtol=1e-6, atol=1e-10)


def test_ridge_svd_path_alpha_zero_is_least_squares_and_1d_inputs():
    rng = np.random.default_rng(6)
    Xtr, Xte = rng.standard_normal((40, 5)), rng.standard_normal((9, 5))
    y = rng.standard_normal(40)
    path = ridge_svd_path(Xtr, y, Xte, 0.0)
    assert path.shape == (1, 9, 1)
    coef = np.linalg.lstsq(Xtr, y, rcond=None)[0]
    np.testing.assert_allclose(path[0, :, 0], Xte @ coef, rtol=1e-8)
    # 1-D X_train is one feature.
    x = rng.standard_normal(40)
    ref = Ridge(alpha=2.0, fit_intercept=False).fit(x[:, None], y).predict(x[:3, None])
    np.testing.assert_allclose(ridge_svd_path(x, y, x[:3], [2.0])[0, :, 0], ref, rtol=1e-10)


def test_ridge_svd_path_errors():
    X, Y = np.zeros((10, 3)), np.zeros((10, 2))
    with pytest.raises(BrainalignError, match=r"'X_train' and 'Y_train'.*\(10, 3\).*\(9, 2\)"):
        ridge_svd_path(X, Y[:9], X, [1.0])
    with pytest.raises(BrainalignError, match=r"'X_test' has 4 features.*'X_train' has 3"):
        ridge_svd_path(X, Y, np.zeros((5, 4)), [1.0])
    with pytest.raises(BrainalignError, match=r"'alphas'.*-1\.0"):
        ridge_svd_path(X, Y, X, [1.0, -1.0])
    with pytest.raises(BrainalignError, match="'alphas'.*non-empty"):
        ridge_svd_path(X, Y, X, [])
    bad = np.ones((10, 3))
    bad[4, 1] = np.nan
    with pytest.raises(BrainalignError, match=r"'X_train' contains 1 NaN.*row=4, column=1"):
        ridge_svd_path(bad, Y, X, [1.0])


# --------------------------------------------------------------------------- RidgeCVEncoder
@pytest.mark.parametrize("p", [1, 12, 300])
def test_single_alpha_equals_sklearn_ridge_with_intercept(p):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, p)) + 2.0
    Y = X[:, :1] * 1.5 + rng.standard_normal((120, 3)) + 4.0
    enc = RidgeCVEncoder(alphas=[3.0]).fit(X, Y)
    ref = Ridge(alpha=3.0).fit(X, Y)
    np.testing.assert_allclose(enc.coef_, ref.coef_.T, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(enc.intercept_, ref.intercept_, rtol=1e-6)
    Xn = rng.standard_normal((15, p))
    np.testing.assert_allclose(enc.predict(Xn), ref.predict(Xn), rtol=1e-6, atol=1e-10)
    assert enc.alpha_.shape == (3,) and np.all(enc.alpha_ == 3.0)
    assert enc.coef_.shape == (p, 3) and enc.intercept_.shape == (3,)
    assert enc.cv_scores_.shape == (1, 3) and enc.n_features_in_ == p


def test_without_intercept_equals_sklearn():
    X, Y = planted()
    enc = RidgeCVEncoder(alphas=[10.0], fit_intercept=False).fit(X, Y)
    ref = Ridge(alpha=10.0, fit_intercept=False).fit(X, Y)
    np.testing.assert_allclose(enc.coef_, ref.coef_.T, rtol=1e-6)
    np.testing.assert_array_equal(enc.intercept_, np.zeros(Y.shape[1]))


def brute_force_cv_scores(X, Y, alphas, n_splits, gap, fit_intercept=True):
    """(n_alphas, n_targets) mean over folds of per-fold Pearson r, with sklearn + scipy.

    Folds are rebuilt here from sklearn's KFold(shuffle=False), dropping the gap by hand.
    """
    n, t = Y.shape
    fold_scores = []
    for _, test in KFold(n_splits=n_splits, shuffle=False).split(X):
        train = np.array([i for i in range(n) if i < test[0] - gap or i > test[-1] + gap])
        scores = np.empty((len(alphas), t))
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[train], Y[train])
            pred = model.predict(X[test]).reshape(len(test), -1)
            scores[a] = [pearsonr(Y[test, j], pred[:, j])[0] for j in range(t)]
        fold_scores.append(scores)
    return np.mean(fold_scores, axis=0)


def brute_force_best(cv_scores, alphas):
    """Smallest alpha among those within TIE_TOLERANCE of the best score, per column."""
    alphas = np.asarray(alphas)
    best = []
    for j in range(cv_scores.shape[1]):
        col = cv_scores[:, j]
        ties = col >= col.max() - TIE_TOLERANCE
        best.append(min(alphas[k] for k in range(len(alphas)) if ties[k]))
    return np.array(best)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_alpha_selection_equals_brute_force(fit_intercept):
    X, Y = planted(seed=8)
    enc = RidgeCVEncoder(alphas=ALPHAS, cv=4, gap=3, fit_intercept=fit_intercept).fit(X, Y)
    ref_scores = brute_force_cv_scores(X, Y, ALPHAS, 4, 3, fit_intercept)
    np.testing.assert_allclose(enc.cv_scores_, ref_scores, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(enc.alpha_, brute_force_best(ref_scores, ALPHAS))
    # The planted noise levels make the choices differ across targets.
    assert len(np.unique(enc.alpha_)) > 1
    # Refit on all data with the chosen alpha, per target.
    for j, alpha in enumerate(enc.alpha_):
        ref = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, Y[:, j])
        np.testing.assert_allclose(enc.coef_[:, j], ref.coef_, rtol=1e-6, atol=1e-12)


def test_shared_alpha_equals_brute_force_mean_over_targets():
    X, Y = planted(seed=9)
    enc = RidgeCVEncoder(alphas=ALPHAS, cv=5, gap=2, alpha_per_target=False).fit(X, Y)
    ref_scores = brute_force_cv_scores(X, Y, ALPHAS, 5, 2)
    np.testing.assert_allclose(enc.cv_scores_, ref_scores, rtol=1e-6, atol=1e-9)
    best = brute_force_best(ref_scores.mean(axis=1, keepdims=True), ALPHAS)[0]
    np.testing.assert_array_equal(enc.alpha_, np.full(Y.shape[1], best))


def test_ties_go_to_smallest_alpha_and_unsorted_alphas():
    X, Y = planted(seed=10, t=2)
    Y[:, 1] = 1.0  # constant target: every alpha scores r = 0, a tie
    alphas = [1e3, 1e-2, 10.0, 1e5]
    enc = RidgeCVEncoder(alphas=alphas, cv=3, gap=1).fit(X, Y)
    assert enc.alpha_[1] == 1e-2
    np.testing.assert_array_equal(enc.cv_scores_[:, 1], 0.0)
    # cv_scores_ rows follow the order of `alphas`, as given.
    ref = brute_force_cv_scores(X, Y[:, :1], alphas, 3, 1)
    np.testing.assert_allclose(enc.cv_scores_[:, :1], ref, rtol=1e-6, atol=1e-9)
    assert enc.alpha_[0] == brute_force_best(ref, alphas)[0]


def test_float32_input_gives_float64_attributes():
    X, Y = planted(seed=11, dtype=np.float32)
    enc = RidgeCVEncoder(alphas=ALPHAS).fit(X, Y)
    ref = RidgeCVEncoder(alphas=ALPHAS).fit(X.astype(np.float64), Y.astype(np.float64))
    for name in ("coef_", "intercept_", "cv_scores_", "alpha_"):
        assert getattr(enc, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(enc, name), getattr(ref, name))


def test_one_feature_and_1d_target():
    rng = np.random.default_rng(12)
    word_rate = rng.poisson(3.0, 200).astype(float)
    y = 0.8 * word_rate + rng.standard_normal(200)
    enc = RidgeCVEncoder(alphas=[1e-2, 1.0, 1e2]).fit(word_rate, y)
    assert enc.coef_.shape == (1, 1) and enc.n_features_in_ == 1
    pred = enc.predict(word_rate)
    assert pred.shape == (200,)
    ref = Ridge(alpha=enc.alpha_[0]).fit(word_rate[:, None], y)
    np.testing.assert_allclose(pred, ref.predict(word_rate[:, None]), rtol=1e-8)
    np.testing.assert_allclose(enc.score(word_rate, y), pearsonr(y, pred)[0], rtol=1e-12)


def test_p_greater_than_n():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((60, 400))
    Y = X[:, :5] @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((60, 3))
    enc = RidgeCVEncoder(alphas=ALPHAS, cv=3, gap=2).fit(X, Y)
    assert enc.coef_.shape == (400, 3)
    for j, alpha in enumerate(enc.alpha_):
        ref = Ridge(alpha=alpha).fit(X, Y[:, j])
        np.testing.assert_allclose(enc.coef_[:, j], ref.coef_, rtol=1e-6, atol=1e-12)


def test_score_is_mean_pearson_over_targets():
    X, Y = planted(seed=14)
    enc = RidgeCVEncoder(alphas=ALPHAS).fit(X[:120], Y[:120])
    pred = enc.predict(X[120:])
    ref = np.mean([pearsonr(Y[120:, j], pred[:, j])[0] for j in range(Y.shape[1])])
    assert enc.score(X[120:], Y[120:]) == pytest.approx(ref, rel=1e-12)


def test_custom_splitter_and_groups():
    X, Y = planted(seed=15)
    kf = KFold(n_splits=4)
    enc = RidgeCVEncoder(alphas=ALPHAS, cv=kf).fit(X, Y)
    np.testing.assert_allclose(
        enc.cv_scores_, brute_force_cv_scores(X, Y, ALPHAS, 4, 0), rtol=1e-6, atol=1e-9
    )
    # An int cv with groups: leave-one-run-out inner CV, same as a 4-fold split of 4 equal runs.
    runs = np.repeat(np.arange(4), 40)
    enc_g = RidgeCVEncoder(alphas=ALPHAS, cv=5, gap=7).fit(X, Y, groups=runs)
    np.testing.assert_allclose(enc_g.cv_scores_, enc.cv_scores_, rtol=1e-12)


def test_get_set_params_and_init_stores_only():
    enc = RidgeCVEncoder(cv=-1, gap="x")  # invalid values are only checked in fit
    assert enc.get_params()["cv"] == -1
    enc.set_params(cv=3, gap=2)
    assert enc.cv == 3 and enc.gap == 2
    with pytest.raises(BrainalignError, match="'nope'"):
        enc.set_params(nope=1)
    with pytest.raises(TypeError):
        RidgeCVEncoder([1.0])  # keyword-only


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alphas": [-1.0]}, "'alphas'"),
        ({"alphas": []}, "'alphas'"),
        ({"cv": 1}, r"'cv'.*1"),
        ({"cv": "kfold"}, r"'cv'.*'kfold'"),
        ({"gap": -2}, r"'gap'.*-2"),
        ({"alpha_per_target": "yes"}, r"'alpha_per_target'.*'yes'"),
        ({"fit_intercept": None}, r"'fit_intercept'.*None"),
        ({"cv": 5, "gap": 40}, r"'gap'=40"),
    ],
)
def test_bad_parameters_raise_in_fit(params, match):
    X, Y = planted(n=100)
    with pytest.raises(BrainalignError, match=match):
        RidgeCVEncoder(**params).fit(X, Y)


def test_fit_predict_errors():
    X, Y = planted(n=100)
    with pytest.raises(BrainalignError, match=r"'X' and 'Y'.*\(100, 12\).*\(90, 5\)"):
        RidgeCVEncoder().fit(X, Y[:90])
    with pytest.raises(BrainalignError, match="not fitted"):
        RidgeCVEncoder().predict(X)
    enc = RidgeCVEncoder(alphas=[1.0]).fit(X, Y)
    with pytest.raises(BrainalignError, match=r"X has 3 features, but RidgeCVEncoder is expecting 12 features"):
        enc.predict(X[:, :3])
    with pytest.raises(BrainalignError, match=r"'Y' must have shape \(100, 5\)"):
        enc.score(X, Y[:, :2])
    with pytest.raises(BrainalignError, match="'cv' produced fold .* 1 test sample"):
        RidgeCVEncoder(cv=5, gap=0).fit(X[:9], Y[:9])


# --------------------------------------------------------------------------- nested CV
def test_cross_validated_pearson_matches_manual_nested_loop():
    X, Y = planted(n=200, seed=16)
    res = cross_validated_pearson(X, Y, outer_cv=4, gap=3, inner_cv=3, alphas=ALPHAS)
    assert set(res) == {"fold_scores", "score", "pooled_score", "alphas", "predictions", "folds", "alpha_criterion"}
    assert res["alpha_criterion"] == "inner_cv_pearson_r"
    assert res["fold_scores"].shape == (4, 5) and res["alphas"].shape == (4, 5)
    assert res["score"].shape == (5,) and res["predictions"].shape == (200, 5)
    assert not np.isnan(res["predictions"]).any()  # every sample is tested once

    for k, (_, test) in enumerate(KFold(4).split(X)):
        train = np.array([i for i in range(200) if i < test[0] - 3 or i > test[-1] + 3])
        # Inner CV on positions within the outer training set, brute force.
        inner = brute_force_cv_scores(X[train], Y[train], ALPHAS, 3, 3)
        best = brute_force_best(inner, ALPHAS)
        np.testing.assert_array_equal(res["alphas"][k], best)
        for j, alpha in enumerate(best):
            pred = Ridge(alpha=alpha).fit(X[train], Y[train, j]).predict(X[test])
            np.testing.assert_allclose(res["predictions"][test, j], pred, rtol=1e-6, atol=1e-9)
            ref_r = pearsonr(Y[test, j], pred)[0]
            assert res["fold_scores"][k, j] == pytest.approx(ref_r, abs=1e-8)
    np.testing.assert_allclose(res["score"], res["fold_scores"].mean(axis=0), rtol=1e-12)


def test_cross_validated_pearson_pooled_and_planted_signal():
    rng = np.random.default_rng(17)
    X = rng.standard_normal((240, 6))
    Y = np.column_stack([X @ rng.standard_normal(6) + 0.3 * rng.standard_normal(240),
                         rng.standard_normal(240)])  # target 1 is pure noise
    res = cross_validated_pearson(X, Y, alphas=ALPHAS, pooled=True)
    pred = res["predictions"]
    ref = [pearsonr(Y[:, j], pred[:, j])[0] for j in range(2)]
    np.testing.assert_allclose(res["score"], ref, rtol=1e-10)
    assert res["score"][0] > 0.95
    assert abs(res["score"][1]) < 0.2
    shared = cross_validated_pearson(X, Y, alphas=ALPHAS, alpha_per_target=False)
    assert np.all(shared["alphas"] == shared["alphas"][:, :1])


def test_cross_validated_pearson_untested_samples_are_nan():
    X, Y = planted(n=120, seed=18)

    class FirstHalfOnly:
        def split(self, X, y=None, groups=None):
            yield np.arange(60, 120), np.arange(0, 30)
            yield np.arange(60, 120), np.arange(30, 60)

    res = cross_validated_pearson(X, Y, outer_cv=FirstHalfOnly(), inner_cv=3, alphas=ALPHAS)
    assert np.isnan(res["predictions"][60:]).all()
    assert not np.isnan(res["predictions"][:60]).any()
    res_p = cross_validated_pearson(
        X, Y, outer_cv=FirstHalfOnly(), inner_cv=3, alphas=ALPHAS, pooled=True
    )
    np.testing.assert_allclose(
        res_p["score"], pearsonr_columns(Y[:60], res_p["predictions"][:60]), rtol=1e-12
    )


def test_cross_validated_pearson_errors():
    X, Y = planted(n=100)
    with pytest.raises(BrainalignError, match="'outer_cv'.*1"):
        cross_validated_pearson(X, Y, outer_cv=1)
    with pytest.raises(BrainalignError, match="'inner_cv'.*0"):
        cross_validated_pearson(X, Y, inner_cv=0)
    with pytest.raises(BrainalignError, match="'gap'.*-1"):
        cross_validated_pearson(X, Y, gap=-1)
    with pytest.raises(BrainalignError, match="'pooled'"):
        cross_validated_pearson(X, Y, pooled="yes")
    with pytest.raises(BrainalignError, match=r"'X' and 'Y'"):
        cross_validated_pearson(X, Y[:50])
    with pytest.raises(BrainalignError, match=r"'gap'=30"):
        cross_validated_pearson(X, Y, outer_cv=2, gap=30)

    class Overlapping:
        def split(self, X, y=None, groups=None):
            yield np.arange(50, 100), np.arange(0, 30)
            yield np.arange(50, 100), np.arange(20, 50)

    with pytest.raises(BrainalignError, match="'outer_cv' test folds overlap"):
        cross_validated_pearson(X, Y, outer_cv=Overlapping(), inner_cv=3)
