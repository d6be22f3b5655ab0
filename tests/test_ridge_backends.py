"""The ROI path's ridge and the refit shift test on the torch backends (issue 18: ``device: cuda``).

With ``device: cuda`` the workflow runs :func:`cross_validated_pearson` (the
ROI path) and :func:`refit_shift_tests` (both paths' permutations) on the
``torch_cuda`` backend. On this CPU machine the same code runs on the
``torch`` backend (CPU tensors), and its numbers are checked against the NumPy
path, which stays the one CPU runs use (bit-identical to before). The
``torch_cuda`` cases skip without a GPU; the GPU check runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brainalign.backend import get_backend
from brainalign.config import validate_config
from brainalign.encoders.ridge import RidgeCVEncoder, cross_validated_pearson
from brainalign.io import Features, Responses, read_table, write_features, write_responses
from brainalign.metrics.cv_permutation import FoldOperators, refit_shift_tests
from brainalign.preprocess.fmri import LinearCleaner

BACKENDS = ["torch", "torch_cuda"]


def _planted(seed: int = 0, n: int = 240, p: int = 20, v: int = 12):
    rng = np.random.default_rng(seed)
    runs = np.repeat([1, 2, 3], n // 3)
    X = rng.standard_normal((n, p)).cumsum(axis=0)
    confounds = rng.standard_normal((n, 3))
    cleaner = LinearCleaner(2.0, {"detrend": True, "high_pass": 0.01, "standardize": "zscore_sample"}, runs,
                            confounds)
    Xc = cleaner(X)
    Y = cleaner(0.4 * Xc[:, :4] @ rng.standard_normal((4, v)) + rng.standard_normal((n, v)))
    return X, Xc, Y, runs, cleaner


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("grouped", [False, True])
def test_roi_path_on_torch_equals_numpy(name: str, grouped: bool) -> None:
    backend = get_backend(name)  # torch_cuda skips without a GPU
    _, Xc, Y, runs, _ = _planted()
    groups = runs if grouped else None
    ref = cross_validated_pearson(Xc, Y, outer_cv=4, inner_cv=3, gap=2, groups=groups)
    ours = cross_validated_pearson(Xc, Y, outer_cv=4, inner_cv=3, gap=2, groups=groups, backend=backend.name)
    np.testing.assert_array_equal(ours["alphas"], ref["alphas"])
    np.testing.assert_allclose(ours["fold_scores"], ref["fold_scores"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["pooled_score"], ref["pooled_score"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["predictions"], ref["predictions"], rtol=1e-9, atol=1e-10)
    assert ours["alpha_criterion"] == ref["alpha_criterion"] == "inner_cv_pearson_r"


@pytest.mark.parametrize("scoring", ["pearson", "r2"])
def test_ridge_cv_encoder_on_torch_wide_design_and_zero_penalty(scoring: str) -> None:
    """More features than samples, alpha = 0 (the pseudo-inverse) on the grid, one shared alpha."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 90))
    Y = X[:, :3] @ rng.standard_normal((3, 4)) + rng.standard_normal((60, 4))
    kwargs = dict(alphas=[0.0, 1.0, 100.0, 1e4], cv=3, gap=1, scoring=scoring)
    for per_target in (True, False):
        ref = RidgeCVEncoder(alpha_per_target=per_target, **kwargs).fit(X, Y)
        ours = RidgeCVEncoder(alpha_per_target=per_target, backend="torch", **kwargs).fit(X, Y)
        np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
        np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ours.predict(X[:7]), ref.predict(X[:7]), rtol=1e-9, atol=1e-10)
        assert isinstance(ours.coef_, np.ndarray) and ours.get_params()["backend"] == "torch"


def test_unknown_backend_is_a_clear_error() -> None:
    from brainalign._validation import BrainalignError

    with pytest.raises(BrainalignError, match="backend"):
        RidgeCVEncoder(backend="cupy").fit(np.eye(20, 3), np.ones((20, 1)))


def test_linear_cleaner_on_a_backend_equals_the_host_cleaning() -> None:
    X, _, _, runs, cleaner = _planted()
    X = X.copy()
    X[:80, 5] = 0.0  # zero within run 1: its z-score is 0, not NaN
    on_torch = cleaner.on(get_backend("torch"))
    got = on_torch(get_backend("torch").asarray(X)).numpy()
    np.testing.assert_allclose(got, cleaner(X), rtol=1e-10, atol=1e-10)
    assert np.all(got[:80, 5] == 0)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shift", ["design", "responses"])
@pytest.mark.parametrize("pooled", [False, True])
def test_refit_shift_test_on_torch_equals_numpy(name: str, shift: str, pooled: bool) -> None:
    """Same shifts, same null scores (float64: 1e-10), same p-values; two designs with per-target and shared
    penalties, targets in batches."""
    backend = get_backend(name)
    X, Xc, Y, runs, cleaner = _planted()
    res = cross_validated_pearson(Xc, Y, outer_cv=3, inner_cv=2, gap=0, groups=runs, pooled=pooled)
    designs = {"all": (X, res["alphas"]), "five": (X[:, :5], res["alphas"][:, :1])}
    kwargs = dict(runs=runs, clean=cleaner, shift=shift, pooled=pooled, n_permutations=25, random_state=7,
                  n_targets_batch=5, dtype=np.float64)
    ref = refit_shift_tests(Y, designs, res["folds"], **kwargs)
    ours = refit_shift_tests(Y, designs, res["folds"], backend=backend.name, **kwargs)
    for key in designs:
        np.testing.assert_allclose(ours[key].observed, ref[key].observed, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours[key].null, ref[key].null, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(ours[key].pvalues, ref[key].pvalues)
    # The observed score through the operators is the encoder's score.
    score = res["pooled_score"] if pooled else res["score"]
    np.testing.assert_allclose(ours["all"].observed, score, rtol=0, atol=1e-9)


def test_refit_shift_test_on_torch_float32_sequential_stopping() -> None:
    X, Xc, Y, runs, cleaner = _planted(seed=1, v=30)
    res = cross_validated_pearson(Xc, Y, outer_cv=3, inner_cv=2, gap=0, groups=runs)
    kwargs = dict(runs=runs, clean=cleaner, n_permutations=60, stop_after=3, random_state=0)
    ref = refit_shift_tests(Y, {"x": (X, res["alphas"])}, res["folds"], **kwargs)["x"]
    ours = refit_shift_tests(Y, {"x": (X, res["alphas"])}, res["folds"], backend="torch", **kwargs)["x"]
    np.testing.assert_allclose(ours.observed, ref.observed, rtol=0, atol=1e-5)
    # A null score within float32 rounding of the observed one could count differently; none is here.
    np.testing.assert_array_equal(ours.n_permutations, ref.n_permutations)
    np.testing.assert_array_equal(ours.pvalues, ref.pvalues)
    assert ref.n_permutations.min() < 60 < ref.n_permutations.max() + 1  # some targets stopped early


def test_fold_operators_on_torch_take_and_return_tensors() -> None:
    import torch

    _, Xc, Y, runs, _ = _planted()
    res = cross_validated_pearson(Xc, Y, outer_cv=3, inner_cv=2, gap=0, groups=runs)
    backend = get_backend("torch")
    for applications in (1, 1000):  # the factor form, then one matrix per penalty
        ref = FoldOperators(Xc, res["folds"], res["alphas"], applications=applications, dtype=np.float64)
        ours = FoldOperators(Xc, res["folds"], res["alphas"], applications=applications, dtype=np.float64,
                             backend=backend)
        assert [op[0] for op in ours._ops] == [op[0] for op in ref._ops]
        targets = np.arange(Y.shape[1])
        got = ours.fold_predictions(backend.asarray(Y), targets)
        assert all(isinstance(g, torch.Tensor) for g in got)
        for g, r, (_, test) in zip(got, ref.fold_predictions(Y, targets), res["folds"]):
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-9, atol=1e-10)
            # and the encoder's held-out predictions
            np.testing.assert_allclose(g.numpy(), res["predictions"][test], rtol=1e-8, atol=1e-9)


# --------------------------------------------------------------------------- the workflow's stages
def _stage_inputs(folder: Path, n_units: int = 4) -> tuple[dict, Path, list[Path]]:
    rng = np.random.default_rng(11)
    n = 150
    runs = np.repeat([1, 2, 3], n // 3)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    cfg = validate_config({
        "dataset": {"name": "toy", "kind": "simulated"},
        "simulation": {"planted_feature_set": "m", "planted_layer": "0"},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}},
        "encoder": {"outer_folds": 3, "inner_folds": 2, "gap": 1},
        "statistics": {"n_permutations": 30, "stop_after": 0},
    })
    design = write_features(folder / "design.h5", Features({"0": x}, "m"), {}, kind="design")
    paths = []
    for s in range(2):
        y = 0.5 * x[:, :2] @ rng.standard_normal((2, n_units)) + rng.standard_normal((n, n_units))
        names = [f"u{j}" for j in range(n_units)]
        resp = Responses(y, 2.0, 2.0 * np.arange(n), runs, names, ["A", "B"] * (n_units // 2), f"sub-{s}")
        paths.append(write_responses(folder / f"sub-{s}.h5", resp, {}))
    return cfg, design, paths


def test_roi_score_stage_on_the_torch_backend_matches_the_cpu_run(tmp_path: Path, monkeypatch) -> None:
    """``device: cuda`` gives the stage ``torch_cuda``; here ``torch`` stands in for it."""
    from brainalign.backend import device
    from brainalign.pipeline.stages import run_score

    cfg, design, paths = _stage_inputs(tmp_path)
    ref = read_table(run_score(cfg, design, paths, tmp_path / "cpu.csv", progress=False))
    asked = []
    monkeypatch.setattr(device, "ridge_backend", lambda *args: asked.append(args) or "torch")
    import brainalign.metrics.cv_permutation as cv_permutation

    used = []
    real = cv_permutation.get_backend
    monkeypatch.setattr(cv_permutation, "get_backend", lambda name=None: used.append(name) or real(name))
    ours = read_table(run_score(cfg, design, paths, tmp_path / "torch.csv", progress=False))
    assert asked == [("cpu",)] and "torch" in used
    assert list(ours.columns) == list(ref.columns) and len(ours) == len(ref)
    np.testing.assert_allclose(ours["score"], ref["score"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours["alpha"], ref["alpha"])
    mean = ref["fold"] == "mean"
    assert ref.loc[mean, "p_value"].notna().all()
    np.testing.assert_allclose(ours.loc[mean, "p_value"], ref.loc[mean, "p_value"], rtol=0, atol=1e-12)


def test_score_alignment_device(monkeypatch) -> None:
    """``device=`` moves the API's ridge to the torch backend; ``cuda`` without a GPU names the argument."""
    import warnings

    from brainalign import score_alignment
    from brainalign._validation import ConfigError
    from brainalign.backend import device

    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 5))
    y = np.stack([x @ rng.standard_normal((5, 3)) + rng.standard_normal((120, 3)) for _ in range(2)])
    kwargs = dict(outer_folds=3, inner_folds=2, gap=1, clean=False, ceiling=None, progress=False)
    monkeypatch.setattr(device, "_available_gpus", lambda: 0)
    with pytest.raises(ConfigError, match="device"):
        score_alignment(x, y, device="cuda", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = score_alignment(x, y, **kwargs)
        monkeypatch.setattr(device, "ridge_backend", lambda *_: "torch")
        ours = score_alignment(x, y, device="auto", **kwargs)
    assert ref.attrs["settings"]["device"] == ours.attrs["settings"]["device"] == "cpu"
    np.testing.assert_allclose(ours["score"], ref["score"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours["alpha"], ref["alpha"])
