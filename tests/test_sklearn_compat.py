"""The estimators work with scikit-learn's tools: clone, is_regressor/is_classifier, Pipeline, GridSearchCV,
cross_val_score (issue #17, item 4). Fitted results through the tools equal direct fits."""

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


def test_torch_estimators_clone_and_declare_their_type():
    from brainalign.encoders.contrastive import ContrastiveEncoder
    from brainalign.encoders.duin import DuINWordDecoder
    from brainalign.encoders.mindeye import BrainToEmbedding

    for est, regressor in ((ContrastiveEncoder(epochs=1), True), (BrainToEmbedding(), True),
                           (DuINWordDecoder(), False)):
        twin = clone(est)
        assert twin.get_params() == est.get_params() or repr(twin) == repr(est)
        assert is_regressor(est) is regressor and is_classifier(est) is (not regressor)
