"""Parity of brainalign.metrics.brainscore with Brain-Score Language 2.3.0.

The golden values in tests/golden/brainscore_2.3.0.json were produced by the
real brainscore-language 2.3.0 package (tests/golden/make_brainscore_golden.py,
run in a throwaway virtual environment); the inputs are rebuilt here from the
script's seed. Split generators are checked against scikit-learn's, and the
shared-alpha ridge against scikit-learn's RidgeCV.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from brainalign._validation import BrainalignError
from brainalign.metrics.brainscore import (
    DEFAULT_RIDGE_ALPHAS,
    LSTSQ_RCOND_EPS,
    cka_score,
    group_kfold_shuffle,
    linear_pearsonr,
    normalize,
    pearsonr_eps,
    rdm_score,
    ridge_loo_shared_alpha,
    ridge_pearsonr,
    shuffle_split,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN = json.loads((GOLDEN_DIR / "brainscore_2.3.0.json").read_text(encoding="utf-8"))
CASES = [(scheme, layer) for scheme, layers in GOLDEN["results"].items() for layer in layers]
RTOL = 1e-6


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_brainscore_golden", GOLDEN_DIR / "make_brainscore_golden.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def golden():
    return GOLDEN


@pytest.fixture(scope="module")
def inputs(script):
    return script.make_inputs()


def _features(inputs):
    return {
        "layer_a": inputs["layer_a"],
        "layer_b": inputs["layer_b"],
        "layer_c": inputs["layer_c"],
        "joint": np.concatenate([inputs["layer_a"], inputs["layer_b"]], axis=1),
    }


SCHEMES = {
    "linear_pearsonr": lambda X, inp: linear_pearsonr(X, inp["neural"]),
    "linear_pearsonr_cond_eps": lambda X, inp: linear_pearsonr(X, inp["neural"], rcond=LSTSQ_RCOND_EPS),
    "ridge_pearsonr_group": lambda X, inp: ridge_pearsonr(X, inp["neural"], inp["stories"]),
    "ridge_pearsonr_group_8splits": lambda X, inp: ridge_pearsonr(X, inp["neural"], inp["stories"], splits=8),
    "ridge_pearsonr_shuffle": lambda X, inp: ridge_pearsonr(X, inp["neural"]),
    "cka": lambda X, inp: cka_score(X, inp["neural"]),
    "rdm": lambda X, inp: rdm_score(X, inp["neural"]),
}


# --------------------------------------------------------------------------- golden values
def test_golden_file_is_from_real_brainscore(golden):
    assert golden["versions"]["brainscore-language"] == "2.3.0"
    assert "real package" in golden["generator"]


def test_inputs_rebuild_identically(script, inputs, golden):
    assert golden["seed"] == script.SEED
    assert script.inputs_sha256(inputs) == golden["inputs_sha256"]
    assert {k: list(v.shape) for k, v in inputs.items()} == golden["shapes"]


def test_golden_covers_every_scheme_and_layer():
    assert set(GOLDEN["results"]) == set(SCHEMES)
    assert len(CASES) == 6 * 4 + 2


@pytest.mark.parametrize(("scheme", "layer"), CASES)
def test_scores_match_brainscore(scheme, layer, inputs, golden):
    expected = golden["results"][scheme][layer]
    result = SCHEMES[scheme](_features(inputs)[layer], inputs)
    np.testing.assert_allclose(result.raw, expected["score"], rtol=RTOL)
    np.testing.assert_allclose(result.split_scores, expected["split_scores"], rtol=RTOL)
    if "neuroid_scores_mean" in expected:
        assert result.neuroid_scores.shape == (len(expected["split_scores"]), inputs["neural"].shape[1])
        np.testing.assert_allclose(
            result.neuroid_scores.mean(axis=0), expected["neuroid_scores_mean"], rtol=RTOL, atol=1e-12
        )
    if "alphas" in expected:
        np.testing.assert_array_equal(result.alphas, expected["alphas"])
    else:
        assert result.alphas is None


def test_golden_alphas_differ_between_splits(golden):
    """The data put the best alpha between grid values, so the selection is really tested."""
    alphas = golden["results"]["ridge_pearsonr_group"]["layer_a"]["alphas"]
    assert len(set(alphas)) > 1


def test_lstsq_cutoff_matters_on_ill_conditioned_features(golden):
    """scikit-learn 1.9 changed LinearRegression's cutoff; layer C tells the two apart."""
    new = golden["results"]["linear_pearsonr"]["layer_c"]["score"]
    old = golden["results"]["linear_pearsonr_cond_eps"]["layer_c"]["score"]
    assert abs(new - old) > 0.01
    same = golden["results"]["linear_pearsonr_cond_eps"]["layer_a"]["score"]
    assert same == pytest.approx(golden["results"]["linear_pearsonr"]["layer_a"]["score"], rel=1e-9)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s in GOLDEN["normalization"]])
def test_layers_modes_match_brainscore_normalization(scheme, inputs, golden):
    expected = golden["normalization"][scheme]
    ceiling = golden["normalization"]["ceiling"]
    run = SCHEMES[scheme]
    layers = {"layer_a": inputs["layer_a"], "layer_b": inputs["layer_b"]}

    per_layer = _call_with_layers(scheme, layers, inputs, "per_layer", ceiling)
    assert per_layer.layers_mode == "per_layer"
    assert set(per_layer.layers) == {"layer_a", "layer_b"}
    np.testing.assert_allclose(per_layer.score, expected["per_layer_score"], rtol=RTOL)
    np.testing.assert_allclose(per_layer.raw, expected["per_layer_raw"], rtol=RTOL)
    np.testing.assert_allclose(per_layer.unclipped, expected["per_layer_unclipped"], rtol=RTOL)
    for name, sub in per_layer.layers.items():
        np.testing.assert_allclose(sub.raw, run(inputs[name], inputs).raw, rtol=1e-12)

    joint = _call_with_layers(scheme, [inputs["layer_a"], inputs["layer_b"]], inputs, "joint", ceiling)
    assert joint.layers_mode == "joint" and joint.layers is None
    np.testing.assert_allclose(joint.score, expected["joint_score"], rtol=RTOL)
    np.testing.assert_allclose(joint.raw, golden["results"][scheme]["joint"]["score"], rtol=RTOL)


def _call_with_layers(scheme, layers, inp, mode, ceiling):
    kw = dict(layers_mode=mode, ceiling=ceiling)
    if scheme == "linear_pearsonr":
        return linear_pearsonr(layers, inp["neural"], **kw)
    if scheme == "ridge_pearsonr_group":
        return ridge_pearsonr(layers, inp["neural"], inp["stories"], **kw)
    if scheme == "ridge_pearsonr_group_8splits":
        return ridge_pearsonr(layers, inp["neural"], inp["stories"], splits=8, **kw)
    if scheme == "ridge_pearsonr_shuffle":
        return ridge_pearsonr(layers, inp["neural"], **kw)
    if scheme == "cka":
        return cka_score(layers, inp["neural"], **kw)
    return rdm_score(layers, inp["neural"], **kw)


# --------------------------------------------------------------------------- splits
@pytest.mark.parametrize("n", [11, 60, 100, 243, 384])
@pytest.mark.parametrize(
    "kwargs", [dict(train_size=0.9), dict(test_size=0.9), dict(train_size=0.9, test_size=None)]
)
@pytest.mark.parametrize("seed", [1, 0, 1234])
def test_shuffle_split_equals_sklearn(n, kwargs, seed):
    ms = pytest.importorskip("sklearn.model_selection")
    ours = shuffle_split(n, 10, random_state=seed, **kwargs)
    theirs = list(ms.ShuffleSplit(n_splits=10, random_state=seed, **kwargs).split(np.zeros(n)))
    assert len(ours) == len(theirs) == 10
    for (tr, te), (tr2, te2) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)


def _sklearn_group_kfold(groups, n_splits, seed):
    ms = pytest.importorskip("sklearn.model_selection")
    try:
        splitter = ms.GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    except TypeError:
        pytest.skip("scikit-learn < 1.6 has no GroupKFold(shuffle=True)")
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


@pytest.mark.parametrize("n_splits", [10, 8])
@pytest.mark.parametrize("seed", [1234, 0])
def test_group_kfold_equals_sklearn(n_splits, seed, inputs):
    stories = inputs["stories"]
    for groups in (stories, np.array([int(s.split("_")[1]) for s in stories])):
        ours = group_kfold_shuffle(groups, n_splits, random_state=seed)
        theirs = _sklearn_group_kfold(groups, n_splits, seed)
        assert len(ours) == n_splits
        for (tr, te), (tr2, te2) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(tr, tr2)
            np.testing.assert_array_equal(te, te2)
        # folds hold whole groups and partition the samples
        tests = np.concatenate([te for _, te in ours])
        np.testing.assert_array_equal(np.sort(tests), np.arange(len(groups)))
        for tr, te in ours:
            assert not set(groups[tr]) & set(groups[te])


def test_group_kfold_sorts_labels_as_given(inputs):
    """'story_10' sorts before 'story_2': string and integer labels give different folds."""
    stories = inputs["stories"]
    as_int = np.array([int(s.split("_")[1]) for s in stories])
    folds_str = [set(stories[te]) for _, te in group_kfold_shuffle(stories, 10)]
    folds_int = [{f"story_{g}" for g in as_int[te]} for _, te in group_kfold_shuffle(as_int, 10)]
    assert folds_str != folds_int


def test_ridge_without_groups_falls_back_to_shuffle_split(inputs):
    result = ridge_pearsonr(inputs["layer_a"], inputs["neural"])
    expected = shuffle_split(inputs["neural"].shape[0], 10, train_size=0.9, random_state=1)
    for (tr, te), (tr2, te2) in zip(result.splits, expected, strict=True):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)
    grouped = ridge_pearsonr(inputs["layer_a"], inputs["neural"], inputs["stories"])
    expected = group_kfold_shuffle(inputs["stories"], 10, random_state=1234)
    for (_, te), (_, te2) in zip(grouped.splits, expected, strict=True):
        np.testing.assert_array_equal(te, te2)


def test_split_errors():
    with pytest.raises(BrainalignError, match="n_splits"):
        group_kfold_shuffle(np.array(["a", "b", "a"]), 3)
    with pytest.raises(BrainalignError, match="train_size"):
        shuffle_split(10, 2, train_size=1.5)
    with pytest.raises(BrainalignError, match="random_state"):
        shuffle_split(10, 2, train_size=0.5, random_state=None)


# --------------------------------------------------------------------------- regression
@pytest.mark.parametrize("shape", [(50, 8, 5), (30, 60, 4), (25, 24, 3)])
def test_ridge_shared_alpha_equals_sklearn_ridgecv(shape):
    linear_model = pytest.importorskip("sklearn.linear_model")
    n, p, v = shape
    rng = np.random.default_rng(n + p)
    X = rng.standard_normal((n, p)) * rng.uniform(0.1, 3, p) + 2.0
    Y = X @ rng.standard_normal((p, v)) * 0.3 + rng.standard_normal((n, v)) + 5.0
    alphas = np.logspace(-3, 3, 7)
    coef, intercept, alpha, loo_mse = ridge_loo_shared_alpha(X, Y, alphas)
    ref = linear_model.RidgeCV(alphas=alphas, alpha_per_target=False, store_cv_results=True).fit(X, Y)
    assert alpha == ref.alpha_
    np.testing.assert_allclose(coef, ref.coef_.T, rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(intercept, ref.intercept_, rtol=RTOL)
    np.testing.assert_allclose(loo_mse, ref.cv_results_.mean(axis=(0, 1)), rtol=RTOL)
    Xt = rng.standard_normal((7, p))
    np.testing.assert_allclose(Xt @ coef + intercept, ref.predict(Xt), rtol=RTOL, atol=1e-10)


def test_ridge_alpha_changes_with_scale():
    """One alpha for all targets: a larger feature scale needs a larger alpha."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 10))
    Y = X @ rng.standard_normal((10, 6)) + 3 * rng.standard_normal((80, 6))
    a1 = ridge_loo_shared_alpha(X, Y)[2]
    a2 = ridge_loo_shared_alpha(10 * X, Y)[2]
    assert a2 > a1
    assert a1 in DEFAULT_RIDGE_ALPHAS


@pytest.mark.parametrize("rcond", [1e-6, LSTSQ_RCOND_EPS])
def test_linear_regression_is_sklearn_min_norm(rcond):
    linear_model = pytest.importorskip("sklearn.linear_model")
    sklearn = pytest.importorskip("sklearn")
    if int(sklearn.__version__.split(".")[0]) == 1 and int(sklearn.__version__.split(".")[1]) < 9:
        pytest.skip("LinearRegression's tol sets the dense lstsq cutoff from scikit-learn 1.9 on")
    from brainalign.metrics.brainscore.regression import _ols_min_norm

    rng = np.random.default_rng(5)
    Y = rng.standard_normal((30, 4))
    wide = rng.standard_normal((30, 50))  # minimum-norm solution
    low_rank = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 12))
    low_rank = low_rank + 1e-6 * rng.standard_normal((30, 12))
    for X in (wide, low_rank):
        Xt = rng.standard_normal((6, X.shape[1]))
        coef, intercept = _ols_min_norm(X, Y, rcond)
        ref = linear_model.LinearRegression(tol=rcond).fit(X, Y)
        np.testing.assert_allclose(Xt @ coef + intercept, ref.predict(Xt), rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- correlation, CKA, RDM
def test_pearsonr_eps_hand_case():
    a = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    b = np.array([[2.0, 1.0], [4.0, 5.0], [6.0, 0.0]])
    r = pearsonr_eps(a, b)
    # column 0: perfectly correlated, each norm sqrt(2) and sqrt(8), shrunk by the 1e-8 epsilon
    expected0 = 4.0 / ((np.sqrt(2) + 1e-8) * (np.sqrt(8) + 1e-8))
    np.testing.assert_allclose(r[0], expected0, rtol=1e-15)
    assert r[0] < 1.0
    assert r[1] == 0.0  # constant column


def test_cka_definition():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5))
    Y = rng.standard_normal((12, 40))
    H = np.eye(12) - np.ones((12, 12)) / 12

    def hsic(A, B):
        return np.sum((H @ A @ A.T @ H) * (H @ B @ B.T @ H))

    from brainalign.metrics.cka import linear_cka as _linear_cka

    expected = hsic(X, Y) / np.sqrt(hsic(X, X) * hsic(Y, Y))
    np.testing.assert_allclose(_linear_cka(X, Y), expected, rtol=1e-12)
    np.testing.assert_allclose(_linear_cka(Y, X), expected, rtol=1e-12)
    np.testing.assert_allclose(_linear_cka(X, 3 * X @ np.linalg.qr(rng.standard_normal((5, 5)))[0]), 1.0)


def test_rdm_definition():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 4))
    Y = rng.standard_normal((9, 7))
    from brainalign.metrics.rsa import rsa_score as _rdm_similarity

    iu = np.triu_indices(9, k=1)
    expected = scipy_stats.spearmanr((1 - np.corrcoef(X))[iu], (1 - np.corrcoef(Y))[iu])[0]
    np.testing.assert_allclose(_rdm_similarity(X, Y), expected, rtol=1e-12)


def test_cka_rdm_score_test_subsets_only(inputs):
    result = cka_score(inputs["layer_a"], inputs["neural"])
    n = inputs["neural"].shape[0]
    assert all(len(te) == int(np.ceil(0.9 * n)) for _, te in result.splits)
    assert result.neuroid_scores is None and result.alphas is None


# --------------------------------------------------------------------------- normalization, API
def test_normalize_clips_and_keeps_raw():
    n = normalize(0.3, 0.6)
    assert (n.score, n.raw, n.ceiling, n.unclipped) == (0.5, 0.3, 0.6, 0.5)
    high = normalize(0.9, 0.6)
    assert high.score == 1.0 and high.unclipped == pytest.approx(1.5)
    low = normalize(-0.12, 0.6)
    assert low.score == 0.0 and low.unclipped == pytest.approx(-0.2)
    assert np.isnan(normalize(float("nan"), 0.5).score)
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(BrainalignError, match="ceiling"):
            normalize(0.3, bad)


def test_single_array_result_shapes(inputs):
    res = linear_pearsonr(inputs["layer_a"], inputs["neural"], ceiling=0.7)
    assert res.layers_mode == "single"
    assert res.split_scores.shape == (10,)
    assert res.neuroid_scores.shape == (10, inputs["neural"].shape[1])
    assert res.score == normalize(res.raw, 0.7).score
    assert res.unclipped == pytest.approx(res.raw / 0.7)
    no_ceiling = linear_pearsonr(inputs["layer_a"], inputs["neural"])
    assert no_ceiling.score is None and no_ceiling.ceiling is None


def test_joint_equals_concatenation(inputs):
    joint = ridge_pearsonr({"a": inputs["layer_a"], "b": inputs["layer_b"]}, inputs["neural"],
                           inputs["stories"], layers_mode="joint")
    concat = ridge_pearsonr(np.hstack([inputs["layer_a"], inputs["layer_b"]]), inputs["neural"],
                            inputs["stories"])
    assert joint.raw == concat.raw
    np.testing.assert_array_equal(joint.alphas, concat.alphas)


def test_bad_inputs(inputs):
    with pytest.raises(BrainalignError, match="layers_mode"):
        linear_pearsonr(inputs["layer_a"], inputs["neural"], layers_mode="jiont")
    with pytest.raises(BrainalignError, match="one row per stimulus"):
        linear_pearsonr(inputs["layer_a"][:-1], inputs["neural"])
    with pytest.raises(BrainalignError, match="groups"):
        ridge_pearsonr(inputs["layer_a"], inputs["neural"], inputs["stories"][:-1])
    with pytest.raises(BrainalignError, match="NaN"):
        bad = inputs["neural"].copy()
        bad[3, 2] = np.nan
        cka_score(inputs["layer_a"], bad)
    with pytest.raises(BrainalignError, match="alphas"):
        ridge_pearsonr(inputs["layer_a"], inputs["neural"], alphas=[0.0, 1.0])
    with pytest.raises(BrainalignError, match="rcond"):
        linear_pearsonr(inputs["layer_a"], inputs["neural"], rcond=-1.0)


# --------------------------------------------------------------------------- small test splits
@pytest.mark.parametrize("n_stimuli", [12, 16, 20])
@pytest.mark.parametrize("scorer", [
    lambda X, Y: linear_pearsonr(X, Y),
    lambda X, Y: ridge_pearsonr(X, Y),
    lambda X, Y: cka_score(X, Y, test_size=0.1),
    lambda X, Y: rdm_score(X, Y, test_size=0.1),
], ids=["linear_pearsonr", "ridge_pearsonr_shuffle", "cka", "rdm"])
def test_test_splits_of_two_stimuli_are_refused(scorer, n_stimuli):
    # Before: pure noise scored +-0.4 to 0.6, every split's r being exactly +1 or -1.
    rng = np.random.default_rng(n_stimuli)
    X, Y = rng.standard_normal((n_stimuli, 5)), rng.standard_normal((n_stimuli, 3))
    with pytest.raises(BrainalignError, match=rf"test split holds 2 of the {n_stimuli} stimuli.*MIN_TEST_SIZE = 3"):
        scorer(X, Y)


def test_group_folds_of_two_stimuli_are_refused():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 3))
    groups = np.repeat(np.arange(15), 2)  # 15 sentences of 2 words in 10 folds: 5 folds test 1 sentence
    with pytest.raises(BrainalignError, match=r"ridge_pearsonr: a test split holds 2 .*fewer splits"):
        ridge_pearsonr(X, Y, groups)
    assert np.isfinite(ridge_pearsonr(X, Y, groups, splits=5).raw)  # 3 sentences = 6 words per test split


def test_smallest_allowed_test_split_is_scored():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((21, 5)), rng.standard_normal((21, 3))  # ceil(0.1 * 21) = 3 test stimuli
    result = linear_pearsonr(X, Y)
    assert all(test.size == 3 for _, test in result.splits)
    assert np.all(np.abs(result.split_scores) < 1 - 1e-6)
