"""Brain-Score's regressions and its batched Pearson r.

Ridge with one alpha shared by all targets, chosen by exact leave-one-out
(:func:`ridge_loo_shared_alpha`), least squares with scikit-learn's
``LinearRegression`` cutoffs (``_ols_min_norm``, :data:`LSTSQ_RCOND_SKLEARN_1_9`,
:data:`LSTSQ_RCOND_EPS`), and the column-wise Pearson r with ``eps`` added to
each centred norm (:func:`pearsonr_eps`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d
from brainalign.encoders.ridge_cv import RidgeCV

#: Brain-Score's ridge grid, ``logspace(-3, 3, 7)``.
DEFAULT_RIDGE_ALPHAS: np.ndarray = np.logspace(-3, 3, 7)
DEFAULT_RIDGE_ALPHAS.flags.writeable = False

#: Added to each centred column norm in Brain-Score's batched Pearson r.
PEARSON_EPS = 1e-8


def ridge_loo_shared_alpha(
    X: ArrayLike, Y: ArrayLike, alphas: ArrayLike = DEFAULT_RIDGE_ALPHAS
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Ridge with intercept and one alpha for all targets, chosen by exact leave-one-out.

    With the training features centred, ``Xc = U diag(s) V^T`` (thin SVD), the
    hat matrix of ridge with an unpenalized intercept is
    ``H = 11^T / n + U diag(s^2 / (s^2 + alpha)) U^T`` and the leave-one-out
    residual of sample ``i`` is ``(y_i - yhat_i) / (1 - H_ii)``. The alpha
    with the smallest mean squared leave-one-out residual over all samples
    and targets wins (the first of equal ones), as in scikit-learn's
    ``RidgeCV(alpha_per_target=False)`` and Brain-Score's ``RidgeGCVTorch``.
    Everything is float64; nothing is scaled. Solved by the ridge core, as
    :class:`~brainalign.encoders.ridge_cv.RidgeCV` with ``cv="loo"`` and
    ``alpha_per_target=False`` (one eigendecomposition for every alpha).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    Y : array-like of shape (n_samples, n_targets)
    alphas : array-like of shape (n_alphas,), default=logspace(-3, 3, 7)
        Positive penalties.

    Returns
    -------
    coef : ndarray of shape (n_features, n_targets)
    intercept : ndarray of shape (n_targets,)
    alpha : float
        The chosen penalty.
    loo_mse : ndarray of shape (n_alphas,)
        Mean squared leave-one-out residual of each alpha.
    """
    X = check_2d(X, "X", "features")
    Y = check_2d(Y, "Y", "targets")
    if X.shape[0] != Y.shape[0]:
        raise BrainalignError(f"'X' and 'Y' must have the same rows, got {X.shape} and {Y.shape}.")
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise BrainalignError(f"'alphas' must be a 1-D array of finite values > 0, got {alphas!r}.")
    # The ridge core's leave-one-out, one alpha for all targets: RidgeCV's score of an alpha
    # is minus the mean over samples, per target, so minus its mean over targets is loo_mse.
    model = RidgeCV(alphas=alphas, cv="loo", alpha_per_target=False, dtype="float64", backend="numpy").fit(X, Y)
    loo_mse = -model.cv_scores_.mean(axis=1)
    return model.coef_, model.intercept_, float(model.alpha_[0]), loo_mse


#: Relative singular-value cutoff of scikit-learn >= 1.9's dense ``LinearRegression``
#: (``tol=1e-6``, passed to ``scipy.linalg.lstsq`` as ``cond``).
LSTSQ_RCOND_SKLEARN_1_9 = 1e-6
#: The cutoff before scikit-learn 1.9 (``lstsq``'s default): float64 machine epsilon.
LSTSQ_RCOND_EPS = float(np.finfo(np.float64).eps)


def _ols_min_norm(
    X: np.ndarray, Y: np.ndarray, rcond: float = LSTSQ_RCOND_SKLEARN_1_9
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares with intercept; the minimum-norm solution if rank deficient.

    As scikit-learn's ``LinearRegression``: centre ``X`` and ``Y``, then
    ``lstsq`` (LAPACK ``gelsd``) treating singular values below
    ``rcond * s_max`` as zero.
    """
    x_mean = X.mean(axis=0)
    y_mean = Y.mean(axis=0)
    coef = np.linalg.lstsq(X - x_mean, Y - y_mean, rcond=rcond)[0]
    return coef, y_mean - x_mean @ coef


def pearsonr_eps(a: ArrayLike, b: ArrayLike, eps: float = PEARSON_EPS) -> np.ndarray:
    """Column-wise Pearson r with ``eps`` added to each centred column norm.

    ``r_j = sum_i (a_ij - mean_j(a)) / (||a_j - mean||_2 + eps) *
    (b_ij - mean_j(b)) / (||b_j - mean||_2 + eps)``, Brain-Score's batched
    correlation. A constant column gives 0; the values are not clipped.

    Parameters
    ----------
    a, b : array-like of shape (n_samples, n_columns)

    Returns
    -------
    r : ndarray of shape (n_columns,)
    """
    a = check_2d(a, "a", "columns", require_finite=False)
    b = check_2d(b, "b", "columns", require_finite=False)
    if a.shape != b.shape:
        raise BrainalignError(f"'a' and 'b' must have the same shape, got {a.shape} and {b.shape}.")
    am = a - a.mean(axis=0)
    bm = b - b.mean(axis=0)
    an = np.sqrt(np.einsum("ij,ij->j", am, am)) + eps
    bn = np.sqrt(np.einsum("ij,ij->j", bm, bm)) + eps
    return ((am / an) * (bm / bn)).sum(axis=0)
