"""Parity tests for brainalign.encoders.ridge_cv.RidgeCV and brainalign.backend.

References: scikit-learn's RidgeCV (efficient leave-one-out) and Ridge (brute-force
loops over folds written here), and himalaya's RidgeCV (K-fold) on its numpy and
torch backends. Tolerances: 1e-6 relative in float64, 1e-4 in float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, KFold

from brainalign._validation import BrainalignError
from brainalign.backend import ALL_BACKENDS, get_backend, set_backend
from brainalign.encoders.cv import ContiguousKFold
from brainalign.encoders.ridge_core import KFOLD_TIE_SLOPE
from brainalign.encoders.ridge_cv import DEFAULT_ALPHAS, RidgeCV

ALPHAS = np.logspace(-2, 5, 10)
RTOL = {np.float64: 1e-6, np.float32: 1e-4}


def planted(n=160, p=12, t=24, seed=0, dtype=np.float64, offset=3.0):
    """Features with a non-zero mean and correlated columns; targets whose noise levels
    span three decades, so that the chosen alphas differ across targets."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((p, p)) / np.sqrt(p) + np.eye(p)
    X = rng.standard_normal((n, p)) @ mix + offset
    W = rng.standard_normal((p, t))
    noise = np.logspace(-1, 2, t)
    Y = X @ W + rng.standard_normal((n, t)) * noise + 5.0
    return X.astype(dtype), Y.astype(dtype)


def assert_close(actual, desired, dtype, atol_scale=None):
    """Relative closeness; atol relative to the largest magnitude (for near-zero entries)."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = np.abs(desired).max() if atol_scale is None else atol_scale
    rtol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------- leave-one-out vs sklearn
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n, p", [(160, 12), (40, 90)])  # covariance and Gram routes
def test_loo_per_target_matches_sklearn(dtype, fit_intercept, n, p):
    X, Y = planted(n=n, p=p, seed=1, dtype=dtype)
    ref = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=fit_intercept).fit(X, Y)
    ours = RidgeCV(alphas=ALPHAS, fit_intercept=fit_intercept).fit(X, Y)
    assert ours.dtype_ == np.dtype(dtype).name
    assert ours.coef_.dtype == dtype and ours.intercept_.dtype == dtype
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    assert len(np.unique(ours.alpha_)) >= 3  # the test exercises several alphas
    assert_close(ours.coef_, ref.coef_.T, dtype)
    if fit_intercept:
        assert_close(ours.intercept_, ref.intercept_, dtype)
    else:
        np.testing.assert_array_equal(ours.intercept_, 0.0)
    Xn = planted(n=25, p=p, seed=2, dtype=dtype)[0]
    assert_close(ours.predict(Xn), ref.predict(Xn), dtype)
    # cv_scores_ is minus the mean squared LOO error; sklearn keeps it for the best alpha.
    assert_close(ours.cv_scores_.max(axis=0), ref.best_score_, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loo_shared_alpha_matches_sklearn_default(dtype):
    X, Y = planted(seed=3, dtype=dtype)
    alphas = np.logspace(-3, 3, 7)  # Brain-Score's grid
    ref = SkRidgeCV(alphas=alphas).fit(X, Y)  # sklearn's default: one alpha for all targets
    ours = RidgeCV(alphas=alphas, alpha_per_target=False).fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, np.full(Y.shape[1], ref.alpha_))
    assert_close(ours.coef_, ref.coef_.T, dtype)
    assert_close(ours.intercept_, ref.intercept_, dtype)
    assert_close(ours.cv_scores_.mean(axis=1).max(), ref.best_score_, dtype, atol_scale=0)


def test_loo_ties_keep_first_alpha_like_sklearn():
    X, Y = planted(t=3, seed=4)
    Y[:, 1] = 2.5  # constant target: every alpha has zero LOO error
    alphas = [1e3, 1e-2, 10.0]
    ours = RidgeCV(alphas=alphas).fit(X, Y)
    ref = SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    assert ours.alpha_[1] == 1e3 == ref.alpha_[1]
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)


# --------------------------------------------------------------------------- K-fold vs himalaya
@pytest.fixture
def himalaya_backend():
    """Yield himalaya's set_backend and restore numpy afterwards."""
    pytest.importorskip("himalaya")
    from himalaya.backend import set_backend as him_set_backend

    yield him_set_backend
    him_set_backend("numpy")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha_per_target", [True, False])
def test_kfold_matches_himalaya(himalaya_backend, backend, dtype, alpha_per_target):
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV

    X, Y = planted(n=200, p=15, t=30, seed=5, dtype=dtype)
    himalaya_backend(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = HimalayaRidgeCV(
            alphas=ALPHAS.astype(dtype),
            cv=5,
            fit_intercept=True,
            solver_params={"local_alpha": alpha_per_target},
        ).fit(X, Y)
    ours = RidgeCV(alphas=ALPHAS, cv=5, alpha_per_target=alpha_per_target, backend=backend).fit(X, Y)
    ref_alphas = get_backend("torch").to_numpy(ref.best_alphas_) if backend == "torch" else ref.best_alphas_
    np.testing.assert_allclose(ours.alpha_, ref_alphas, rtol=1e-6)  # same grid point
    if alpha_per_target:
        assert len(np.unique(ours.alpha_)) >= 3
    Xn = planted(n=25, p=15, seed=6, dtype=dtype)[0]
    ref_pred = np.asarray(get_backend(backend).to_numpy(ref.predict(Xn)))
    assert_close(ours.predict(Xn), ref_pred, dtype)
    # himalaya's cv_scores_ is the best (tie-slope included) mean-over-folds score.
    best = ours.cv_scores_.max(axis=0) + KFOLD_TIE_SLOPE * np.log(ours.alpha_)
    ref_scores = np.asarray(get_backend(backend).to_numpy(ref.cv_scores_))
    if alpha_per_target:
        assert_close(best, ref_scores, dtype)


# --------------------------------------------------------------------------- splitters vs brute force
def brute_force(X, Y, alphas, folds, fit_intercept=True):
    """(n_alphas, n_targets) mean over folds of minus the test MSE, with sklearn's Ridge."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, test in folds:
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[train], Y[train])
            scores[a] -= np.mean((Y[test] - model.predict(X[test])) ** 2, axis=0)
    return scores / len(folds)


def check_against_brute_force(model, X, Y, folds, fit_intercept=True, per_target=True):
    ref_scores = brute_force(X, Y, ALPHAS, folds, fit_intercept)
    np.testing.assert_allclose(model.cv_scores_, ref_scores, rtol=1e-6)
    crit = ref_scores if per_target else ref_scores.mean(axis=1, keepdims=True)
    best = np.argmax(crit + KFOLD_TIE_SLOPE * np.log(ALPHAS)[:, None], axis=0)
    np.testing.assert_array_equal(model.alpha_, np.broadcast_to(ALPHAS[best], (Y.shape[1],)))
    for j in (0, Y.shape[1] // 2, Y.shape[1] - 1):
        ref = Ridge(alpha=model.alpha_[j], fit_intercept=fit_intercept).fit(X, Y[:, j])
        np.testing.assert_allclose(model.coef_[:, j], ref.coef_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(model.intercept_[j], ref.intercept_, rtol=1e-6, atol=1e-9)


def test_group_kfold_by_story_matches_brute_force():
    X, Y = planted(n=150, seed=7)
    stories = np.repeat([f"story_{k}" for k in range(6)], 25)
    cv = GroupKFold(n_splits=3)
    model = RidgeCV(alphas=ALPHAS, cv=cv).fit(X, Y, groups=stories)
    check_against_brute_force(model, X, Y, list(cv.split(X, Y, stories)))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_contiguous_kfold_with_gap_matches_brute_force(fit_intercept):
    X, Y = planted(n=150, seed=8)
    cv = ContiguousKFold(n_splits=4, gap=3)  # gap rows are in neither set
    model = RidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=fit_intercept).fit(X, Y)
    check_against_brute_force(model, X, Y, list(cv.split(X)), fit_intercept)


def test_int_cv_is_unshuffled_kfold_and_wide_features():
    X, Y = planted(n=60, p=80, seed=9)  # p > n_train: the Gram route
    model = RidgeCV(alphas=ALPHAS, cv=4, alpha_per_target=False).fit(X, Y)
    check_against_brute_force(model, X, Y, list(KFold(4).split(X)), per_target=False)


def test_int_cv_with_groups_is_leave_one_group_out():
    X, Y = planted(n=120, seed=10)
    runs = np.repeat([2, 0, 1], 40)
    model = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y, groups=runs)
    folds = list(ContiguousKFold(n_splits=5, gap=0).split(X, groups=runs))
    assert len(folds) == 3
    check_against_brute_force(model, X, Y, folds)


# --------------------------------------------------------------------------- batching and backends
@pytest.mark.parametrize("cv", ["loo", 5])
@pytest.mark.parametrize("alpha_per_target", [True, False])
def test_batching_gives_the_same_results(cv, alpha_per_target):
    X, Y = planted(t=23, seed=11)
    whole = RidgeCV(alphas=ALPHAS, cv=cv, alpha_per_target=alpha_per_target, n_targets_batch=1000).fit(X, Y)
    assert whole.n_targets_batch_ == 23
    limit = 1e-4 if cv == "loo" else 3e-4  # GiB: the decompositions plus about 10 targets
    for kwargs in ({"n_targets_batch": 4}, {"n_targets_batch": 1}, {"memory_limit_gib": limit}):
        part = RidgeCV(alphas=ALPHAS, cv=cv, alpha_per_target=alpha_per_target, **kwargs).fit(X, Y)
        assert part.n_targets_batch_ < 23
        np.testing.assert_array_equal(part.alpha_, whole.alpha_)
        for name in ("coef_", "intercept_", "cv_scores_"):
            np.testing.assert_allclose(getattr(part, name), getattr(whole, name), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cv", ["loo", 4, GroupKFold(n_splits=3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_backend_equals_numpy_backend(cv, dtype):
    X, Y = planted(seed=12, dtype=dtype)
    groups = np.arange(X.shape[0]) // 20
    ref = RidgeCV(alphas=ALPHAS, cv=cv, backend="numpy").fit(X, Y, groups=None if cv == "loo" else groups)
    ours = RidgeCV(alphas=ALPHAS, cv=cv, backend="torch").fit(X, Y, groups=None if cv == "loo" else groups)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    assert ours.coef_.dtype == dtype and ours.dtype_ == ref.dtype_
    for name in ("coef_", "intercept_"):
        assert_close(getattr(ours, name), getattr(ref, name), dtype)
    assert_close(ours.cv_scores_, ref.cv_scores_, dtype)


def test_torch_tensor_targets_stay_on_the_backend():
    torch = pytest.importorskip("torch")
    X, Y = planted(seed=13, dtype=np.float32)
    ours = RidgeCV(alphas=ALPHAS, backend="torch").fit(X, torch.from_numpy(Y))
    ref = RidgeCV(alphas=ALPHAS).fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    assert_close(ours.coef_, ref.coef_, np.float32)


@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_backends_export_the_same_names(name):
    backend = get_backend(name)  # torch_cuda skips without a GPU
    assert backend.name == name
    x = backend.asarray(np.arange(6.0).reshape(2, 3), "float32")
    np.testing.assert_array_equal(backend.to_numpy(backend.matmul(x, x.T)), [[5, 14], [14, 50]])
    lam, vecs = backend.eigh(backend.asarray([[2.0, 1.0], [1.0, 2.0]], "float64"))
    np.testing.assert_allclose(backend.to_numpy(lam), [1.0, 3.0])
    np.testing.assert_allclose(np.abs(backend.to_numpy(vecs)), np.sqrt(0.5))
    mean = backend.mean_float64(x, axis=0)
    assert backend.to_numpy(mean).dtype == np.float64
    np.testing.assert_array_equal(backend.to_numpy(backend.take(x, [1], axis=0)), [[3, 4, 5]])
    np.testing.assert_array_equal(backend.to_numpy(backend.einsum("i,ij->j", x[:, 0], x)), [9, 12, 15])
    names = {"name", "device", "as_dtype", "asarray", "to_numpy", "zeros", "empty", "astype", "take",
             "matmul", "add", "subtract", "multiply", "square", "einsum", "eigh", "svd", "mean_float64",
             "sum_float64", "all_finite", "synchronize"}
    assert names <= set(dir(backend))


def test_set_backend_and_errors():
    try:
        assert set_backend("torch").name == "torch"
        assert get_backend().name == "torch"
        assert get_backend("numpy").name == "numpy"  # does not change the current one
        assert get_backend().name == "torch"
    finally:
        set_backend("numpy")
    with pytest.raises(BrainalignError, match=r"'backend'.*'nmupy'.*Did you mean 'numpy'"):
        set_backend("nmupy")
    with pytest.raises(BrainalignError, match="'on_error'"):
        set_backend("numpy", on_error="ignore")


# --------------------------------------------------------------------------- attributes, API, errors
def test_fitted_attributes_and_sklearn_api():
    X, Y = planted(seed=14, dtype=np.float32)
    model = RidgeCV(alphas=ALPHAS)
    cloned = clone(model)
    assert cloned is not model and np.array_equal(cloned.get_params()["alphas"], ALPHAS)
    assert model.fit(X, Y) is model
    t = Y.shape[1]
    assert model.alpha_.shape == (t,) and model.alpha_.dtype == np.float64
    assert model.coef_.shape == (12, t) and model.intercept_.shape == (t,)
    assert model.cv_scores_.shape == (len(ALPHAS), t) and model.cv_scores_.dtype == np.float64
    assert model.n_features_in_ == 12 and model.dtype_ == "float32"
    assert model.predict(X).dtype == np.float32
    # float64 data, or mixed, gives float64; dtype= overrides.
    assert RidgeCV(alphas=ALPHAS).fit(X.astype(np.float64), Y).dtype_ == "float64"
    assert RidgeCV(alphas=ALPHAS, dtype="float32").fit(X.astype(np.float64), Y).coef_.dtype == np.float32
    model.set_params(cv=3)
    assert model.cv == 3 and "cv=3" in repr(model)
    assert repr(RidgeCV()) == "RidgeCV()"
    assert np.array_equal(RidgeCV().alphas, DEFAULT_ALPHAS)


def test_one_feature_one_target_and_score():
    rng = np.random.default_rng(15)
    x = rng.poisson(3.0, 120).astype(float)
    y = 0.8 * x + rng.standard_normal(120)
    model = RidgeCV(alphas=ALPHAS).fit(x, y)
    assert model.coef_.shape == (1, 1) and model.predict(x).shape == (120,)
    ref = SkRidgeCV(alphas=ALPHAS).fit(x[:, None], y)
    np.testing.assert_allclose(model.predict(x), ref.predict(x[:, None]), rtol=1e-10)
    assert model.score(x, y) == pytest.approx(r2_score(y, model.predict(x)), rel=1e-12)
    X, Y = planted(seed=16)
    model = RidgeCV(alphas=ALPHAS).fit(X[:120], Y[:120])
    Y_test = Y[120:].copy()
    Y_test[:, 0] = 1.0  # a constant target scores 0 (sklearn's force_finite)
    assert model.score(X[120:], Y_test) == pytest.approx(
        r2_score(Y_test, model.predict(X[120:])), rel=1e-10
    )


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alphas": [1.0, -1.0]}, r"'alphas'.*> 0.*-1\.0"),
        ({"alphas": [0.0]}, r"'alphas'.*> 0"),
        ({"alphas": []}, "'alphas'.*non-empty"),
        ({"alphas": [1.0, np.nan]}, "'alphas'.*finite"),
        ({"alphas": "big"}, "'alphas'"),
        ({"cv": 1}, r"'cv'.*RidgeCV.*1"),
        ({"cv": "kfold"}, r"'cv'.*'loo'.*'kfold'"),
        ({"cv": True}, r"'cv'"),
        ({"alpha_per_target": "yes"}, r"'alpha_per_target'.*'yes'"),
        ({"fit_intercept": None}, r"'fit_intercept'.*None"),
        ({"n_targets_batch": 0}, r"'n_targets_batch'.*0"),
        ({"memory_limit_gib": -1}, r"'memory_limit_gib'.*-1"),
        ({"memory_limit_gib": 1e-9}, r"'memory_limit_gib'=1e-09 is too small"),
        ({"backend": "jax"}, r"'backend'.*'jax'"),
        ({"dtype": "float16"}, r"'dtype'.*'float16'"),
    ],
)
def test_bad_parameters_raise_in_fit(params, match):
    X, Y = planted(n=60)
    model = RidgeCV(**params)  # the constructor only stores
    with pytest.raises(BrainalignError, match=match):
        model.fit(X, Y)


def test_data_errors_name_the_input():
    X, Y = planted(n=60)
    with pytest.raises(BrainalignError, match=r"'X' and 'Y'.*\(60, 12\).*\(50, 24\)"):
        RidgeCV().fit(X, Y[:50])
    with pytest.raises(BrainalignError, match=r"This RidgeCV instance is not fitted yet"):
        RidgeCV().predict(X)
    bad = Y.copy()
    bad[7, 19] = np.inf
    with pytest.raises(BrainalignError, match=r"'Y' contains 1 NaN.*row=7, column=19"):
        RidgeCV(n_targets_batch=8).fit(X, bad)
    badx = X.copy()
    badx[3, 2] = np.nan
    with pytest.raises(BrainalignError, match=r"'X' contains 1 NaN.*row=3, column=2"):
        RidgeCV().fit(badx, Y)
    with pytest.raises(BrainalignError, match="'groups'.*cv='loo'"):
        RidgeCV().fit(X, Y, groups=np.zeros(60))
    with pytest.raises(BrainalignError, match=r"'X' must be 2-D"):
        RidgeCV().fit(X[:, :, None], Y)
    model = RidgeCV(alphas=[1.0]).fit(X, Y)
    with pytest.raises(BrainalignError, match=r"X has 3 features, but RidgeCV is expecting 12 features as input"):
        model.predict(X[:, :3])
    with pytest.raises(BrainalignError, match=r"'Y' must have shape \(60, 24\)"):
        model.score(X, Y[:, :2])


@pytest.mark.parametrize("scale_x, scale_y, params, match", [
    # Before: a LinAlgError traceback from the eigendecomposition.
    (1e200, 1.0, {}, r"'X' holds values up to .*e\+200.*too large for ridge in float64"),
    (1e18, 1.0, {"dtype": "float32"}, r"'X' holds values up to .*e\+18.*too large for ridge in float32"),
    # Before: every alpha's leave-one-out error was inf, so the first alpha was "chosen" silently.
    (1.0, 1e200, {}, r"cross-validation errors of target 0 overflow float64"),
    (1.0, 1e200, {"cv": 5}, r"cross-validation errors of target 0 overflow float64"),
    (1.0, 1e200, {"alpha_per_target": False}, r"cross-validation errors of target 0 overflow float64"),
    (1.0, 1e20, {"dtype": "float32"}, r"cross-validation errors of target 0 overflow float32"),
    (1.0, 1e39, {"dtype": "float32"}, r"'Y' holds values up to .*e\+4\d in magnitude, which overflow float32"),
])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_values_too_large_for_the_dtype_are_refused(scale_x, scale_y, params, match, backend):
    X, Y = planted(n=60)
    with pytest.raises(BrainalignError, match=match):
        RidgeCV(backend=backend, **params).fit(X * scale_x, Y * scale_y)


def test_large_but_representable_values_fit_as_at_unit_scale():
    X, Y = planted(n=60)
    ref = RidgeCV().fit(X, Y)
    big = RidgeCV().fit(X, Y * 1e140)
    np.testing.assert_array_equal(big.alpha_, ref.alpha_)
    np.testing.assert_allclose(big.coef_ / 1e140, ref.coef_, rtol=1e-10)


def test_one_default_alpha_grid_everywhere():
    """The config's default ``encoder.alphas`` is every ridge estimator's default grid (issue #17)."""
    import json

    from brainalign.config import SCHEMA_PATH
    from brainalign.encoders import ridge

    schema = json.loads(SCHEMA_PATH.read_text())
    np.testing.assert_allclose(schema["properties"]["encoder"]["properties"]["alphas"]["default"], DEFAULT_ALPHAS,
                               rtol=1e-15)
    assert ridge.DEFAULT_ALPHAS is DEFAULT_ALPHAS and len(DEFAULT_ALPHAS) == 17
    assert np.array_equal(ridge.RidgeCVEncoder().alphas, DEFAULT_ALPHAS)
