"""Ridge encoding models with time-series-aware cross-validation.

A voxel-wise (or ROI-wise) encoding model predicts brain responses
``Y (n_samples, n_targets)`` from stimulus features ``X (n_samples,
n_features)`` by ridge regression. The regularisation strength is chosen by
inner cross-validation with contiguous folds (:class:`ContiguousKFold`), and
every alpha on the grid is evaluated from a single SVD of the training
features: with ``X = U diag(s) V^T``, the ridge solution for ``alpha`` is

    W(alpha) = V diag(s / (s**2 + alpha)) U^T Y,

so a whole path of alphas costs one decomposition plus a few small matrix
products.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import (
    Boolean,
    BrainalignError,
    Constraint,
    HasMethods,
    Interval,
    Options,
    check_2d,
    check_is_fitted,
    check_n_features,
    check_params,
    is_int,
)
from brainalign.backend import ALL_BACKENDS, get_backend
from brainalign.encoders._base import SklearnTags
from brainalign.encoders.cv import ContiguousKFold
from brainalign.encoders.ridge_core import DEFAULT_ALPHAS, TIE_TOLERANCE, RidgeSVD
from brainalign.metrics.correlation import pearsonr_columns

__all__ = ["ridge_svd_path", "RidgeCVEncoder", "cross_validated_pearson"]

# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _as_features(X: ArrayLike, name: str = "X") -> np.ndarray:
    """Float64 2-D feature matrix; a 1-D array is one feature (e.g. word rate)."""
    return check_2d(X, name, "features")


def _as_targets(Y: ArrayLike, name: str = "Y") -> np.ndarray:
    """Float64 2-D target matrix; a 1-D array is one target."""
    return check_2d(Y, name, "targets")


def _check_same_rows(X: np.ndarray, Y: np.ndarray, xname: str = "X", yname: str = "Y") -> None:
    if X.shape[0] != Y.shape[0]:
        raise BrainalignError(
            f"'{xname}' and '{yname}' must have the same number of samples (rows), got "
            f"{xname}.shape={X.shape} and {yname}.shape={Y.shape}."
        )


def _check_alphas(alphas: ArrayLike) -> np.ndarray:
    try:
        arr = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError):
        raise BrainalignError(
            f"'alphas' must be a number or a 1-D sequence of numbers >= 0, got {alphas!r}."
        ) from None
    arr = np.atleast_1d(arr)
    if arr.ndim != 1 or arr.size == 0:
        raise BrainalignError(
            f"'alphas' must be a non-empty 1-D sequence of numbers >= 0, got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise BrainalignError(f"'alphas' must be finite and >= 0, got {arr.tolist()!r}.")
    return arr


#: Allowed values of the cross-validation parameters (:func:`brainalign._validation.check_params`).
CV_CONSTRAINTS: dict[str, list[Constraint]] = {
    "cv": [Interval("int", 2, None), HasMethods("split")],
    "gap": [Interval("int", 0, None)],
    "alpha_per_target": [Boolean()],
}


def _splitter(cv: Any, gap: int) -> Any:
    """An int builds ``ContiguousKFold(cv, gap)``; an object with ``split`` is used as is."""
    return ContiguousKFold(n_splits=int(cv), gap=int(gap)) if is_int(cv) else cv


def _materialize_folds(
    splitter: Any, X: np.ndarray, Y: np.ndarray, groups: ArrayLike | None, name: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    folds = []
    split_args = (X, Y) if groups is None else (X, Y, groups)
    for k, (train, test) in enumerate(splitter.split(*split_args)):
        train = np.asarray(train, dtype=np.intp)
        test = np.asarray(test, dtype=np.intp)
        if train.size == 0 or test.size < 2:
            raise BrainalignError(
                f"'{name}' produced fold {k} with {train.size} training and {test.size} test "
                "sample(s); a fold needs at least 1 training sample and 2 test samples (a "
                "Pearson r needs 2 points). Use fewer folds or a smaller gap."
            )
        folds.append((train, test))
    if not folds:
        raise BrainalignError(f"'{name}' produced no folds.")
    return folds


# --------------------------------------------------------------------------- #
# SVD ridge path
# --------------------------------------------------------------------------- #
def ridge_svd_path(
    X_train: ArrayLike, Y_train: ArrayLike, X_test: ArrayLike, alphas: ArrayLike
) -> np.ndarray:
    """Ridge predictions on ``X_test`` for every alpha, from one SVD of ``X_train``.

    Solves ``min_W ||Y_train - X_train W||^2 + alpha ||W||^2`` for each alpha
    **without an intercept** (callers that want one center ``X_train`` and
    ``Y_train`` on the training means first, and apply the same shift to
    ``X_test``). With ``X_train = U diag(s) V^T`` (thin SVD),
    ``W(alpha) = V diag(s / (s^2 + alpha)) U^T Y_train``; ``alpha = 0`` gives
    the minimum-norm least-squares solution.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Training features; a 1-D array is a single feature.
    Y_train : array-like of shape (n_train, n_targets)
        Training targets; a 1-D array is a single target.
    X_test : array-like of shape (n_test, n_features)
        Features to predict from.
    alphas : float or array-like of shape (n_alphas,)
        Penalties, each >= 0.

    Returns
    -------
    predictions : ndarray of float64, shape (n_alphas, n_test, n_targets)
        ``predictions[i] = X_test @ W(alphas[i])``.

    Notes
    -----
    Works for ``n_features > n_train``: the thin SVD has ``min(n_train,
    n_features)`` components. The output holds ``n_alphas * n_test *
    n_targets`` floats; for many voxels, loop over chunks of targets.
    """
    Xtr = _as_features(X_train, "X_train")
    Ytr = _as_targets(Y_train, "Y_train")
    Xte = _as_features(X_test, "X_test")
    _check_same_rows(Xtr, Ytr, "X_train", "Y_train")
    if Xte.shape[1] != Xtr.shape[1]:
        raise BrainalignError(
            f"'X_test' has {Xte.shape[1]} features but 'X_train' has {Xtr.shape[1]} "
            f"(X_test.shape={Xte.shape}, X_train.shape={Xtr.shape})."
        )
    alphas_arr = _check_alphas(alphas)
    path = RidgeSVD(Xtr, Ytr)
    out = np.empty((alphas_arr.size, Xte.shape[0], Ytr.shape[1]))
    for i, pred in enumerate(path.predictions(Xte, alphas_arr)):
        out[i] = pred
    return out


def _r2_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``1 - SSE / SST`` per column (SST around the test mean; -inf-safe for constant columns)."""
    sse = ((y_true - y_pred) ** 2).sum(axis=0)
    sst = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - sse / np.where(sst > 0, sst, 1.0)


def _select_alpha(cv_scores: np.ndarray, alphas: np.ndarray, per_target: bool) -> np.ndarray:
    """Best alpha index per target; ties (within TIE_TOLERANCE) go to the smallest alpha."""
    scores = cv_scores if per_target else cv_scores.mean(axis=1, keepdims=True)
    best_score = scores.max(axis=0)
    candidates = scores >= best_score - TIE_TOLERANCE  # (n_alphas, n_targets or 1)
    # Among candidates, the smallest alpha: rank alphas ascending (stable for duplicates).
    order = np.argsort(alphas, kind="stable")
    first_in_order = np.argmax(candidates[order], axis=0)
    best = order[first_in_order]
    if not per_target:
        best = np.full(cv_scores.shape[1], best[0])
    return best


# --------------------------------------------------------------------------- #
# estimator
# --------------------------------------------------------------------------- #
class RidgeCVEncoder(SklearnTags):
    """Ridge encoding model with alpha chosen by contiguous inner cross-validation.

    For each candidate alpha, the model is fit on the training part of every
    inner fold and scored by the Pearson correlation between held-out
    predictions and responses, per target (voxel, ROI). The criterion is the
    mean over inner folds of these per-fold correlations; the chosen alpha
    maximises it per target (``alpha_per_target=True``) or, averaged over
    targets, for all targets at once. Ties (scores within ``1e-10``) go to the
    smallest alpha. The model is then refit on all samples with the chosen
    alpha(s).

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,), default=np.logspace(-2, 6, 17)
        Candidate penalties (>= 0).
    cv : int or splitter, default=5
        An int builds ``ContiguousKFold(n_splits=cv, gap=gap)``; any object
        with a scikit-learn-style ``split(X, y, groups)`` method is used as is.
        Never use a shuffled splitter on time series (see
        :mod:`brainalign.encoders.cv`).
    gap : int, default=5
        Samples dropped on each side of each inner test block when ``cv`` is
        an int.
    alpha_per_target : bool, default=True
        Choose one alpha per target (True) or one shared alpha (False).
    fit_intercept : bool, default=True
        Center ``X`` and ``Y`` on the training means before fitting, and fit
        an intercept. Inner folds are centered on their own training part.
    scoring : {"pearson", "r2"}, default="pearson"
        Inner-CV criterion: the held-out Pearson r (scale-free, the score the
        workflow reports) or R² (penalises shrunken predictions; use it when
        R² itself is reported, e.g. variance partitioning).
    backend : {"numpy", "torch", "torch_cuda"}, default="numpy"
        Where the SVDs and products run, in float64 (:mod:`brainalign.backend`;
        ``torch_cuda`` is the workflow's ``device: cuda``). The held-out
        criterion and the alpha choice are computed with NumPy on the
        predictions, so every backend applies the same rules; scores agree
        with ``numpy`` to rounding error (about 1e-12). Fitted attributes are
        NumPy arrays whatever the backend.

    Attributes
    ----------
    alpha_ : ndarray of shape (n_targets,)
        Chosen penalty per target (all equal if ``alpha_per_target=False``).
    coef_ : ndarray of shape (n_features, n_targets)
        Weights of the model refit on all samples.
    intercept_ : ndarray of shape (n_targets,)
        Intercepts (zeros if ``fit_intercept=False``).
    cv_scores_ : ndarray of shape (n_alphas, n_targets)
        Mean over inner folds of the held-out criterion (``scoring``), rows in
        the order of ``alphas``.
    alpha_criterion_ : str
        ``"inner_cv_pearson_r"`` or ``"inner_cv_r2"``: the name of the criterion
        (:data:`brainalign.encoders.ridge_core.ALPHA_CRITERIA`).
    n_features_in_ : int
        Number of features seen in :meth:`fit`.

    Notes
    -----
    All computations are in float64, whatever the input dtype. A 1-D ``X`` is
    treated as one feature (e.g. a word-rate regressor), a 1-D ``Y`` as one
    target (and :meth:`predict` then returns a 1-D array). ``n_features >
    n_samples`` is supported (thin SVD).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **CV_CONSTRAINTS,
        "fit_intercept": [Boolean()],
        "scoring": [Options("pearson", "r2")],
        "backend": [Options(*ALL_BACKENDS)],
    }  # alphas has its own check (_check_alphas)

    def __init__(
        self,
        *,
        alphas: ArrayLike = DEFAULT_ALPHAS,
        cv: int | Any = 5,
        gap: int = 5,
        alpha_per_target: bool = True,
        fit_intercept: bool = True,
        scoring: str = "pearson",
        backend: str = "numpy",
    ):
        self.alphas = alphas
        self.cv = cv
        self.gap = gap
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alphas=<{np.size(self.alphas)} values>, cv={self.cv!r}, "
            f"gap={self.gap!r}, alpha_per_target={self.alpha_per_target!r}, "
            f"fit_intercept={self.fit_intercept!r}, scoring={self.scoring!r}, backend={self.backend!r})"
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {
            "alphas": self.alphas,
            "cv": self.cv,
            "gap": self.gap,
            "alpha_per_target": self.alpha_per_target,
            "fit_intercept": self.fit_intercept,
            "scoring": self.scoring,
            "backend": self.backend,
        }

    def set_params(self, **params: Any) -> "RidgeCVEncoder":
        """Set constructor parameters, as in scikit-learn."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise BrainalignError(
                    f"Invalid parameter {key!r} for {type(self).__name__}; valid parameters "
                    f"are {', '.join(sorted(valid))}."
                )
            setattr(self, key, value)
        return self

    def fit(self, X: ArrayLike, Y: ArrayLike, groups: ArrayLike | None = None) -> "RidgeCVEncoder":
        """Choose alpha by inner cross-validation, then refit on all samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
            Stimulus features, in time order.
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Responses, in time order.
        groups : array-like of shape (n_samples,), optional
            Run labels passed to the splitter's ``split`` (with an int ``cv``,
            this makes the inner CV leave-one-run-out).

        Returns
        -------
        self : RidgeCVEncoder
        """
        check_params(type(self).__name__, self.get_params(), self._parameter_constraints)
        alphas = _check_alphas(self.alphas)
        splitter = _splitter(self.cv, self.gap)
        per_target, fit_intercept, scoring = bool(self.alpha_per_target), bool(self.fit_intercept), self.scoring
        backend = get_backend(self.backend)
        Xf = _as_features(X, "X")
        Yf = _as_targets(Y, "Y")
        y_1d = np.asarray(Y).ndim == 1
        _check_same_rows(Xf, Yf)

        folds = _materialize_folds(splitter, Xf, Yf, groups, "cv")
        n_targets = Yf.shape[1]
        fold_scores = np.empty((len(folds), alphas.size, n_targets))
        for k, (train, test) in enumerate(folds):
            Xtr, Ytr, Xte, Yte = Xf[train], Yf[train], Xf[test], Yf[test]
            if fit_intercept:
                x_mean, y_mean = Xtr.mean(axis=0), Ytr.mean(axis=0)
                Xtr, Ytr, Xte = Xtr - x_mean, Ytr - y_mean, Xte - x_mean
            else:
                y_mean = np.zeros(n_targets)
            path = RidgeSVD(Xtr, Ytr, backend)
            for i, pred in enumerate(path.predictions(Xte, alphas)):
                if scoring == "pearson":
                    # The intercept shifts predictions only, which leaves r unchanged.
                    fold_scores[k, i] = pearsonr_columns(Yte, pred)
                else:
                    fold_scores[k, i] = _r2_columns(Yte, pred + y_mean)
        cv_scores = fold_scores.mean(axis=0)
        best = _select_alpha(cv_scores, alphas, per_target)

        if fit_intercept:
            x_mean, y_mean = Xf.mean(axis=0), Yf.mean(axis=0)
            Xc, Yc = Xf - x_mean, Yf - y_mean
        else:
            x_mean, y_mean = np.zeros(Xf.shape[1]), np.zeros(n_targets)
            Xc, Yc = Xf, Yf
        self.alpha_ = alphas[best]
        self.coef_ = RidgeSVD(Xc, Yc, backend).coefs(self.alpha_)
        self.intercept_ = y_mean - x_mean @ self.coef_ if fit_intercept else np.zeros(n_targets)
        self.cv_scores_ = cv_scores
        self.alpha_criterion_ = "inner_cv_pearson_r" if scoring == "pearson" else "inner_cv_r2"
        self.n_features_in_ = Xf.shape[1]
        self._y_1d = y_1d
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_")

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict responses.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_targets)
            Or (n_samples,) if the model was fit on a 1-D ``Y``.
        """
        self._check_fitted()
        Xf = _as_features(X, "X")
        check_n_features(self, Xf, Xf.shape[1], was_1d=np.asarray(X).ndim == 1)
        pred = Xf @ self.coef_ + self.intercept_
        return pred[:, 0] if self._y_1d else pred

    def score(self, X: ArrayLike, Y: ArrayLike) -> float:
        """Mean over targets of the Pearson r between ``predict(X)`` and ``Y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        float
        """
        pred = self.predict(X)
        Yf = _as_targets(Y, "Y")
        pred2 = pred[:, None] if pred.ndim == 1 else pred
        if Yf.shape != pred2.shape:
            raise BrainalignError(
                f"'Y' must have shape {pred2.shape} to match the predictions, got {Yf.shape}."
            )
        return float(np.mean(pearsonr_columns(Yf, pred2)))


# --------------------------------------------------------------------------- #
# nested cross-validation
# --------------------------------------------------------------------------- #
def cross_validated_pearson(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    outer_cv: int | Any = 5,
    gap: int = 5,
    inner_cv: int | Any = 5,
    alphas: ArrayLike = DEFAULT_ALPHAS,
    alpha_per_target: bool = True,
    pooled: bool = False,
    groups: ArrayLike | None = None,
    backend: str = "numpy",
) -> dict[str, np.ndarray]:
    """Nested cross-validated Pearson r of a ridge encoding model.

    The outer loop holds out contiguous blocks
    (``ContiguousKFold(outer_cv, gap)``); in each outer fold a
    :class:`RidgeCVEncoder` (``cv=inner_cv, gap=gap``, with intercept) is fit
    on the outer training set only — its inner folds are contiguous in the
    *positions* of the training set, in time order — and predicts the outer
    test block. Alpha selection never sees the outer test samples.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Stimulus features, in time order.
    Y : array-like of shape (n_samples, n_targets) or (n_samples,)
        Responses, in time order.
    outer_cv : int or splitter, default=5
        Number of outer contiguous folds, or an object with ``split``. Test
        folds must not overlap.
    gap : int, default=5
        Gap of the outer and (int) inner :class:`ContiguousKFold`.
    inner_cv : int or splitter, default=5
        Inner cross-validation of :class:`RidgeCVEncoder`.
    alphas : array-like of shape (n_alphas,), default=np.logspace(-2, 6, 17)
        Candidate penalties.
    alpha_per_target : bool, default=True
        One alpha per target, or one shared alpha per outer fold.
    pooled : bool, default=False
        If False, ``score`` is the mean over outer folds of the within-fold r.
        If True, it is the r of all held-out predictions concatenated (which
        also rewards getting each block's mean level right).
    groups : array-like of shape (n_samples,), optional
        Run labels. When given, the outer loop is leave-one-run-out (an int
        ``outer_cv`` is then ignored; a splitter receives ``groups``) and the
        inner loop is leave-one-run-out over the training runs when at least
        two remain, contiguous K-fold within the single training run otherwise.
    backend : {"numpy", "torch", "torch_cuda"}, default="numpy"
        Array backend of the SVDs and products (:class:`RidgeCVEncoder`;
        ``torch_cuda``: the workflow's ``device: cuda``).

    Returns
    -------
    result : dict
        ``fold_scores`` : ndarray (n_folds, n_targets)
            Pearson r within each outer test fold.
        ``score`` : ndarray (n_targets,)
            Mean of ``fold_scores`` over folds, or the pooled r.
        ``pooled_score`` : ndarray (n_targets,)
            The r of all held-out predictions concatenated, whatever
            ``pooled`` says (the report shows both).
        ``alphas`` : ndarray (n_folds, n_targets)
            Alpha chosen in each outer fold.
        ``predictions`` : ndarray (n_samples, n_targets)
            Held-out predictions; NaN for samples in no test fold.
        ``folds`` : list of (train, test) index arrays
            The outer folds (for :func:`brainalign.metrics.cv_permutation.refit_shift_test`).
        ``alpha_criterion`` : str
            How the inner loop chose alpha (``"inner_cv_pearson_r"``, see
            :data:`brainalign.encoders.ridge_core.ALPHA_CRITERIA`).
    """
    Xf = _as_features(X, "X")
    Yf = _as_targets(Y, "Y")
    _check_same_rows(Xf, Yf)
    check_params("cross_validated_pearson",
                 {"outer_cv": outer_cv, "inner_cv": inner_cv, "gap": gap, "pooled": pooled,
                  "alpha_per_target": alpha_per_target},
                 {"outer_cv": CV_CONSTRAINTS["cv"], "inner_cv": CV_CONSTRAINTS["cv"], "gap": CV_CONSTRAINTS["gap"],
                  "pooled": [Boolean()], "alpha_per_target": [Boolean()]})
    outer = _splitter(outer_cv, gap)
    alphas_arr = _check_alphas(alphas)

    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (Xf.shape[0],):
            raise BrainalignError(
                f"'groups' must have one run label per sample ({Xf.shape[0]}), got shape {groups.shape}."
            )
    folds = _materialize_folds(outer, Xf, Yf, groups, "outer_cv")
    n, n_targets = Yf.shape
    predictions = np.full((n, n_targets), np.nan)
    tested = np.zeros(n, dtype=bool)
    fold_scores = np.empty((len(folds), n_targets))
    fold_alphas = np.empty((len(folds), n_targets))
    for k, (train, test) in enumerate(folds):
        if tested[test].any():
            raise BrainalignError(
                f"'outer_cv' test folds overlap (fold {k} re-uses held-out samples); each "
                "sample may be in at most one test fold."
            )
        tested[test] = True
        encoder = RidgeCVEncoder(
            alphas=alphas_arr, cv=inner_cv, gap=gap, alpha_per_target=alpha_per_target, backend=backend
        )
        inner_groups = None
        if groups is not None and np.unique(groups[train]).size >= 2:
            inner_groups = groups[train]
        encoder.fit(Xf[train], Yf[train], groups=inner_groups)
        pred = encoder.predict(Xf[test])
        predictions[test] = pred
        fold_scores[k] = pearsonr_columns(Yf[test], pred)
        fold_alphas[k] = encoder.alpha_
    pooled_score = pearsonr_columns(Yf[tested], predictions[tested])
    score = pooled_score if pooled else fold_scores.mean(axis=0)
    return {
        "fold_scores": fold_scores,
        "score": score,
        "pooled_score": pooled_score,
        "alphas": fold_alphas,
        "predictions": predictions,
        "folds": folds,
        "alpha_criterion": "inner_cv_pearson_r",
    }
