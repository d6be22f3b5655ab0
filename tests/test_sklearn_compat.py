"""The estimators work with scikit-learn's tools: clone, is_regressor/is_classifier, Pipeline, GridSearchCV,
cross_val_score and check_estimator (issue #17, item 4). Fitted results through the tools equal direct fits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainalign.encoders.banded import BandedRidgeCV
from brainalign.encoders.ridge import RidgeCVEncoder
from brainalign.encoders.ridge_cv import RidgeCV

RNG = np.random.default_rng(0)
X = RNG.standard_normal((90, 6))
Y = X @ RNG.standard_normal((6, 3)) + 0.5 * RNG.standard_normal((90, 3))

RIDGES = [
    pytest.param(lambda: RidgeCV(cv=3, alphas=np.logspace(-2, 3, 6)), {"cv": [2, 3]}, id="RidgeCV"),
    pytest.param(lambda: RidgeCVEncoder(cv=3, gap=0, alphas=np.logspace(-2, 3, 6)), {"gap": [0, 2]},
                 id="RidgeCVEncoder"),
    pytest.param(lambda: BandedRidgeCV(band_sizes=(3, 3), cv=3, gap=0, alphas=np.logspace(-2, 3, 6)),
                 {"gap": [0, 2]}, id="BandedRidgeCV"),
]


@pytest.mark.parametrize("make, grid", RIDGES)
def test_ridge_estimators_work_with_scikit_learn_tools(make, grid):
    est = make()
    assert is_regressor(est) and not is_classifier(est)
    twin = clone(est)
    assert twin is not est and repr(twin) == repr(est)
    direct = make().fit(X[:60], Y[:60]).score(X[60:], Y[60:])
    assert isinstance(direct, float)
    folds = cross_val_score(est, X, Y, cv=KFold(3))
    assert folds.shape == (3,) and folds[2] == pytest.approx(make().fit(X[:60], Y[:60]).score(X[60:], Y[60:]))
    assert direct == folds[2]
    pipe = make_pipeline(StandardScaler(), make()).fit(X, Y)
    assert pipe.predict(X).shape == Y.shape and np.isfinite(pipe.score(X, Y))
    search = GridSearchCV(est, grid, cv=KFold(2)).fit(X, Y)
    key = next(iter(grid))
    assert search.best_params_[key] in grid[key]


#: check_estimator checks that do not apply, with the reason (the same for every 2-D estimator).
NOT_APPLICABLE = {
    "check_fit1d": "a 1-D X is one feature by design (a word-rate regressor), not an error",
    "check_n_features_in_after_fitting": "the check calls score(X, y=...); the target argument is named Y "
                                         "(several targets), as in fit. predict, which it also checks, passes",
}


def _failures(est) -> dict[str, str]:
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(est, on_fail=None, on_skip=None)
    assert len(results) > 40, f"check_estimator ran only {len(results)} checks on {est!r}"
    return {r["check_name"]: f"{type(r['exception']).__name__}: {r['exception']}"
            for r in results if r["status"] == "failed"}


@pytest.mark.parametrize("est", [
    pytest.param(RidgeCV(cv=3, alphas=np.logspace(-2, 3, 6)), id="RidgeCV"),
    pytest.param(RidgeCV(cv="loo", alphas=np.logspace(-2, 3, 6), alpha_per_target=False), id="RidgeCV-loo"),
    pytest.param(RidgeCVEncoder(cv=3, gap=0, alphas=np.logspace(-2, 3, 6)), id="RidgeCVEncoder"),
    pytest.param(BandedRidgeCV(cv=3, gap=0, alphas=np.logspace(-2, 3, 6), band_scales=[0.5, 1.0]),
                 id="BandedRidgeCV"),
])
def test_ridge_estimators_pass_check_estimator(est):
    failed = _failures(est)
    assert set(failed) <= set(NOT_APPLICABLE), {k: v for k, v in failed.items() if k not in NOT_APPLICABLE}
    assert "check_fit1d" in failed  # still by design: the list above must stay true


def test_brain_to_embedding_passes_check_estimator():
    """MindEye's model on 2-D voxel patterns; few epochs, no validation split (the checks use 10 samples)."""
    from brainalign.encoders.mindeye import BrainToEmbedding

    est = BrainToEmbedding(epochs=2, shared_dim=8, n_blocks=1, batch_size=16, val_fraction=0.0, patience=None)
    failed = _failures(est)
    allowed = {"check_n_features_in_after_fitting": NOT_APPLICABLE["check_n_features_in_after_fitting"]}
    assert set(failed) <= set(allowed), {k: v for k, v in failed.items() if k not in allowed}


TRIALS = np.random.default_rng(1).standard_normal((24, 3, 40)).astype(np.float32)
LABELS = np.repeat(np.arange(3), 8)
EMBED = np.random.default_rng(2).standard_normal((24, 4)).astype(np.float32)


def _three_d_estimators():
    from brainalign.encoders.contrastive import ContrastiveEncoder
    from brainalign.encoders.duin import DuINWordDecoder

    return [
        (ContrastiveEncoder(front_end="channel_fusion", epochs=2, hidden=8, depth=1, n_freqs=2, batch_size=8,
                            val_fraction=0.0, patience=None, n_time_bins=None), EMBED),
        (DuINWordDecoder(sfreq=100.0, patch_ms=100.0, epochs=2, d_model=8, n_layers=1, n_heads=2, batch_size=8,
                         val_fraction=0.0), LABELS),
    ]


def test_three_d_estimators_follow_the_estimator_contract():
    """ContrastiveEncoder and DuIN take (trials, channels, times): their tags say so, so check_estimator runs
    none of its 2-D checks (scikit-learn's rule). The contract those checks test is checked here instead."""
    import pickle

    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import get_tags

    for est, target in _three_d_estimators():
        tags = get_tags(est)
        assert tags.input_tags.three_d_array and not tags.input_tags.two_d_array
        assert not _failures_lenient(est)
        with pytest.raises(NotFittedError):
            clone(est).predict(TRIALS)
        fitted = clone(est).fit(TRIALS, target)
        assert fitted.__class__ is est.__class__ and fitted.get_params() == est.get_params()  # fit returns self
        again = clone(est).fit(TRIALS, target)  # same seed, same data: same model
        np.testing.assert_array_equal(fitted.predict(TRIALS), again.predict(TRIALS))
        restored = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(restored.predict(TRIALS), fitted.predict(TRIALS))
        assert isinstance(fitted.score(TRIALS, target), float)
        folds = cross_val_score(clone(est), TRIALS, target, cv=KFold(2))
        assert folds.shape == (2,) and np.isfinite(folds).all()
        key = "epochs"
        search = GridSearchCV(clone(est), {key: [1, 2]}, cv=KFold(2)).fit(TRIALS, target)
        assert search.best_params_[key] in (1, 2)


def _failures_lenient(est) -> dict[str, str]:
    from sklearn.utils.estimator_checks import check_estimator

    return {r["check_name"]: str(r["exception"]) for r in check_estimator(est, on_fail=None, on_skip=None)
            if r["status"] == "failed"}


def test_torch_estimators_clone_and_declare_their_type():
    from brainalign.encoders.contrastive import ContrastiveEncoder
    from brainalign.encoders.duin import DuINWordDecoder
    from brainalign.encoders.mindeye import BrainToEmbedding

    for est, regressor in ((ContrastiveEncoder(epochs=1), True), (BrainToEmbedding(), True),
                           (DuINWordDecoder(), False)):
        twin = clone(est)
        assert twin.get_params() == est.get_params() or repr(twin) == repr(est)
        assert is_regressor(est) is regressor and is_classifier(est) is (not regressor)
