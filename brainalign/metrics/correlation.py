"""Column-wise correlation metrics, computed in float64."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d

__all__ = ["pearsonr_columns"]


def _as_columns(a: ArrayLike, name: str) -> np.ndarray:
    return check_2d(a, name, "targets", require_finite=False)


def pearsonr_columns(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Pearson correlation between matching columns of two arrays.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_targets) or (n_samples,)
        Observed responses (e.g. one column per voxel or ROI). A 1-D array is
        treated as a single column.
    y_pred : array-like of the same shape as ``y_true``
        Predicted responses.

    Returns
    -------
    r : ndarray of float64, shape (n_targets,)
        ``r[j]`` is the Pearson correlation between ``y_true[:, j]`` and
        ``y_pred[:, j]`` (shape ``(1,)`` for 1-D inputs). Inputs are cast to
        float64 and the sums are accumulated in float64, whatever the input
        dtype.

    Notes
    -----
    Where either column is constant (all its values are equal), the
    correlation is undefined; this function returns ``0.0`` there — not NaN —
    so that a flat voxel or a model that predicts a constant counts as "no
    alignment" and means over targets stay finite. NaN or infinite inputs
    propagate to NaN for the affected columns. Values are clipped to
    ``[-1, 1]`` to absorb rounding.

    Raises
    ------
    BrainalignError
        If the shapes differ, an input has more than 2 dimensions, or there are
        fewer than 2 samples.
    """
    a = _as_columns(y_true, "y_true")
    b = _as_columns(y_pred, "y_pred")
    if a.shape != b.shape:
        raise BrainalignError(
            f"'y_true' and 'y_pred' must have the same shape, got {a.shape} and {b.shape}."
        )
    if a.shape[0] < 2:
        raise BrainalignError(
            f"'y_true' must have at least 2 samples (rows) for a correlation, got {a.shape[0]}."
        )
    constant = np.all(a == a[:1], axis=0) | np.all(b == b[:1], axis=0)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = np.einsum("ij,ij->j", a, b)
    den = np.sqrt(np.einsum("ij,ij->j", a, a)) * np.sqrt(np.einsum("ij,ij->j", b, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r = np.clip(r, -1.0, 1.0)
    r[constant | (den == 0)] = 0.0
    return r
