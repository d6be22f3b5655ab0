"""Banded ridge (one penalty per feature space) and variance partitioning.

Banded ridge solves, for each target,

    min_w  ||y - sum_b X_b w_b||^2 + sum_b alpha_b ||w_b||^2 ,

one penalty ``alpha_b`` per feature space ("band"). Scaling band ``b`` by
``s_b`` and fitting an ordinary ridge with penalty ``alpha`` is the same
problem with ``alpha_b = alpha / s_b**2``; :class:`BandedRidgeCV` therefore
searches a grid of band scalings (band 0 fixed at 1) and, for each, the usual
alpha path from one SVD, choosing per target the pair with the best inner
cross-validated criterion (R² by default; contiguous folds, as :class:`RidgeCVEncoder`).

:func:`partition_variance` uses it to split the held-out variance explained
into the part unique to each of two feature spaces and the part they share:
with cross-validated R² of the joint model ``R2_ab`` and of each space alone,

    unique_a = R2_ab - R2_b,   unique_b = R2_ab - R2_a,   shared = R2_a + R2_b - R2_ab .
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from .._validation import (
    BrainalignError,
    Constraint,
    Options,
    check_2d,
    check_is_fitted,
    check_n_features,
    check_params,
)
from ._base import EstimatorMixin
from .cv import ContiguousKFold
from .ridge import CV_CONSTRAINTS, RidgeCVEncoder
from .ridge_core import DEFAULT_ALPHAS, TIE_TOLERANCE, RidgeSVD

__all__ = ["BandedRidgeCV", "partition_variance", "heldout_r2"]

DEFAULT_BAND_SCALES = np.logspace(-2, 2, 5)


def _band_slices(sizes: Sequence[int]) -> list[slice]:
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _scale_grid(n_bands: int, band_scales: np.ndarray) -> np.ndarray:
    """All scalings (n_combinations, n_bands) with band 0 at 1."""
    if n_bands == 1:
        return np.ones((1, 1))
    grids = np.meshgrid(*([band_scales] * (n_bands - 1)), indexing="ij")
    rest = np.stack([g.ravel() for g in grids], axis=1)
    return np.concatenate([np.ones((len(rest), 1)), rest], axis=1)


class BandedRidgeCV(EstimatorMixin):
    """Ridge with one penalty per feature space, chosen by contiguous inner CV.

    Parameters
    ----------
    band_sizes : sequence of int or None, default=None
        Number of columns of each band, in the column order of ``X``; None is
        one band of all the columns (plain ridge with the inner-CV alpha).
    alphas : array-like of shape (n_alphas,)
        Global penalties searched for every band scaling.
    band_scales : array-like of shape (n_scales,)
        Scalings searched for bands 1.. (band 0 stays at 1). At most 3 bands.
    cv : int or splitter
        Inner cross-validation (an int builds ``ContiguousKFold(cv, gap)``).
    gap : int
        Samples dropped on each side of inner test blocks.
    scoring : {"r2", "pearson"}
        Inner-CV criterion (see :class:`RidgeCVEncoder`); R² by default, since
        banded ridge mostly serves variance partitioning.

    Attributes
    ----------
    band_alphas_ : ndarray of shape (n_bands, n_targets)
        Effective penalty of each band, ``alpha / scale_b**2``.
    scales_ : ndarray of shape (n_bands, n_targets)
        Chosen band scalings.
    alpha_ : ndarray of shape (n_targets,)
        Chosen global penalty.
    coef_ : ndarray of shape (n_features, n_targets)
        Weights on the original (unscaled) features.
    intercept_ : ndarray of shape (n_targets,)
    cv_scores_ : ndarray of shape (n_scalings, n_alphas, n_targets)
        Inner-CV mean criterion for each scaling and alpha.
    alpha_criterion_ : str
        ``"inner_cv_r2"`` or ``"inner_cv_pearson_r"``
        (:data:`brainalign.encoders.ridge_core.ALPHA_CRITERIA`).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "cv": CV_CONSTRAINTS["cv"],
        "gap": CV_CONSTRAINTS["gap"],
        "scoring": [Options("r2", "pearson")],
    }  # band_sizes, alphas and band_scales are checked against X in fit

    def __init__(self, *, band_sizes: Sequence[int] | None = None, alphas: ArrayLike = DEFAULT_ALPHAS,
                 band_scales: ArrayLike = DEFAULT_BAND_SCALES, cv: int | Any = 5, gap: int = 5,
                 scoring: str = "r2"):
        self.band_sizes = band_sizes
        self.alphas = alphas
        self.band_scales = band_scales
        self.cv = cv
        self.gap = gap
        self.scoring = scoring

    def fit(self, X: ArrayLike, Y: ArrayLike) -> BandedRidgeCV:
        """Fit on ``X`` (n_samples, sum(band_sizes)) and ``Y`` (n_samples, n_targets)."""
        check_params(type(self).__name__, self.get_params(), self._parameter_constraints)
        X, Y, y_1d = check_2d(X, "X", "features"), check_2d(Y, "Y", "targets"), np.asarray(Y).ndim == 1
        sizes = [X.shape[1]] if self.band_sizes is None else [int(s) for s in self.band_sizes]
        if not sizes or sum(sizes) != X.shape[1] or min(sizes) < 1:
            raise BrainalignError(f"'band_sizes' {sizes} must be positive and sum to the "
                                  f"{X.shape[1]} columns of X.")
        if len(sizes) > 3:
            raise BrainalignError(f"'band_sizes': at most 3 bands are searched on a grid, got {len(sizes)}.")
        slices = _band_slices(sizes)
        grid = _scale_grid(len(sizes), np.asarray(self.band_scales, dtype=np.float64))
        alphas = np.asarray(self.alphas, dtype=np.float64)
        col_scale = np.stack([np.concatenate([np.full(n, s) for n, s in zip(sizes, row)]) for row in grid])
        scores = np.stack([
            RidgeCVEncoder(alphas=alphas, cv=self.cv, gap=self.gap, scoring=self.scoring)
            .fit(X * col_scale[g], Y).cv_scores_
            for g in range(len(grid))
        ])  # (n_scalings, n_alphas, n_targets)
        flat = scores.reshape(-1, scores.shape[-1])
        # Ties go to the first (smallest scaling, then smallest alpha) in grid order.
        best = np.argmax(flat >= flat.max(axis=0) - TIE_TOLERANCE, axis=0)
        best_scale, best_alpha = np.divmod(best, len(alphas))
        x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
        coef = np.empty((X.shape[1], Y.shape[1]))
        for g in np.unique(best_scale):
            cols = best_scale == g
            svd = RidgeSVD((X - x_mean) * col_scale[g], Y[:, cols] - y_mean[cols])
            coef[:, cols] = svd.coefs(alphas[best_alpha[cols]]) * col_scale[g][:, None]
        self.scales_ = grid[best_scale].T
        self.alpha_ = alphas[best_alpha]
        self.band_alphas_ = self.alpha_[None, :] / self.scales_**2
        self.coef_ = coef
        self.intercept_ = y_mean - x_mean @ coef
        self.cv_scores_ = scores
        self.alpha_criterion_ = "inner_cv_pearson_r" if self.scoring == "pearson" else "inner_cv_r2"
        self.band_slices_ = slices
        self.n_features_in_ = X.shape[1]
        self._y_1d = y_1d
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions of shape (n_samples, n_targets)."""
        check_is_fitted(self, "coef_")
        was_1d = np.asarray(X).ndim == 1
        X = check_2d(X, "X", "features")
        check_n_features(self, X, X.shape[1], was_1d=was_1d)
        pred = X @ self.coef_ + self.intercept_
        return pred[:, 0] if getattr(self, "_y_1d", False) else pred

    def score(self, X: ArrayLike, Y: ArrayLike) -> float:
        """Held-out R² (:func:`heldout_r2`), averaged over targets, as scikit-learn's regressors score.

        Parameters
        ----------
        X : array-like of shape (n_samples, sum(band_sizes))
        Y : array-like of shape (n_samples, n_targets)

        Returns
        -------
        float
        """
        Y = check_2d(Y, "Y", "targets")
        pred = self.predict(X)
        pred = pred[:, None] if pred.ndim == 1 else pred
        if Y.shape != pred.shape:
            raise BrainalignError(f"'Y' must have shape {pred.shape} to match the predictions, got {Y.shape}.")
        return float(np.nanmean(heldout_r2(Y, pred)))


def heldout_r2(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, ``1 - SSE / SST`` around the test mean (float64)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    sse = ((y_true - y_pred) ** 2).sum(axis=0)
    sst = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - sse / np.where(sst > 0, sst, np.nan)


def partition_variance(
    X_a: ArrayLike, X_b: ArrayLike, Y: ArrayLike, *, outer_cv: int = 5, gap: int = 5,
    inner_cv: int = 5, alphas: ArrayLike = DEFAULT_ALPHAS, band_scales: ArrayLike = DEFAULT_BAND_SCALES,
) -> dict[str, np.ndarray]:
    """Cross-validated variance partitioning between two feature spaces.

    Three models are fitted in every outer contiguous fold (gap dropped at the
    boundaries): ``a`` alone and ``b`` alone (ridge, inner-CV alpha) and both
    (banded ridge, one penalty per space), all with penalties chosen by inner
    R². Held-out R² is computed within each outer fold and averaged over folds.

    Parameters
    ----------
    X_a : array-like of shape (n_samples, n_features_a)
        E.g. a model layer's design.
    X_b : array-like of shape (n_samples, n_features_b)
        E.g. the word-rate regressor (low-level features).
    Y : array-like of shape (n_samples, n_targets)

    Returns
    -------
    result : dict of str to ndarray of shape (n_targets,)
        ``r2_joint``, ``r2_a``, ``r2_b``, ``unique_a`` (= r2_joint − r2_b),
        ``unique_b`` (= r2_joint − r2_a) and ``shared`` (= r2_a + r2_b − r2_joint).
    """
    Xa, Xb, Y = check_2d(X_a, "X_a", "features"), check_2d(X_b, "X_b", "features"), check_2d(Y, "Y")
    if not (len(Xa) == len(Xb) == len(Y)):
        raise BrainalignError(f"X_a ({len(Xa)}), X_b ({len(Xb)}) and Y ({len(Y)}) must have the same rows.")
    Xab = np.concatenate([Xa, Xb], axis=1)
    r2 = {"joint": [], "a": [], "b": []}
    for train, test in ContiguousKFold(outer_cv, gap).split(Y):
        models = {
            "joint": (BandedRidgeCV(band_sizes=(Xa.shape[1], Xb.shape[1]), alphas=alphas,
                                    band_scales=band_scales, cv=inner_cv, gap=gap), Xab),
            "a": (RidgeCVEncoder(alphas=alphas, cv=inner_cv, gap=gap, scoring="r2"), Xa),
            "b": (RidgeCVEncoder(alphas=alphas, cv=inner_cv, gap=gap, scoring="r2"), Xb),
        }
        for name, (model, x) in models.items():
            model.fit(x[train], Y[train])
            r2[name].append(heldout_r2(Y[test], np.asarray(model.predict(x[test])).reshape(len(test), -1)))
    joint, a, b = (np.mean(r2[k], axis=0) for k in ("joint", "a", "b"))
    return {"r2_joint": joint, "r2_a": a, "r2_b": b,
            "unique_a": joint - b, "unique_b": joint - a, "shared": a + b - joint}
