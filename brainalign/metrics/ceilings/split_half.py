"""Brain-Score's split-half ceiling: split-half consistency of subjects with the Spearman–Brown correction.

:func:`split_half_consistency` (Brain-Score's Futrell2018 reading-time
ceiling), its result :class:`SplitHalfResult`, and the Spearman–Brown
prophecy :func:`spearman_brown`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError
from brainalign.metrics.correlation import pearsonr_columns

__all__ = ["SplitHalfResult", "spearman_brown", "split_half_consistency"]


def spearman_brown(r: ArrayLike, factor: float = 2.0) -> np.ndarray | float:
    """Spearman–Brown prophecy: the reliability of ``factor`` times the data.

    ``r_factor = factor * r / (1 + (factor - 1) * r)``; with ``factor=2`` the
    split-half correction ``2r / (1 + r)``.

    Parameters
    ----------
    r : float or array-like
        Reliability (correlation) of one part.
    factor : float, default=2.0
        How many times longer the whole is than the part (> 0).

    Returns
    -------
    float or ndarray of float64
        Same shape as ``r``; NaN where ``1 + (factor - 1) r == 0``.
    """
    if not (isinstance(factor, (int, float, np.integer, np.floating)) and factor > 0):
        raise BrainalignError(f"'factor' must be a number > 0, got {factor!r}.")
    arr = np.asarray(r, dtype=np.float64)
    den = 1.0 + (factor - 1.0) * arr
    out = np.full(arr.shape, np.nan)
    np.divide(factor * arr, den, out=out, where=den != 0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class SplitHalfResult:
    """Outcome of :func:`split_half_consistency`.

    Attributes
    ----------
    ceiling : float
        Median over splits of ``corrected``.
    corrected : ndarray of shape (n_splits,)
        Spearman–Brown corrected consistency of each split, ``2c / (1 + c)``.
    uncorrected : ndarray of shape (n_splits,)
        The consistency ``c`` of the two half means (``|r|`` by default).
    halves : list of (ndarray, ndarray)
        Subject (row) indices of the two halves of each split, sorted.
    """

    ceiling: float
    corrected: np.ndarray
    uncorrected: np.ndarray
    halves: list[tuple[np.ndarray, np.ndarray]]


def _pearson_1d(a: np.ndarray, b: np.ndarray) -> float:
    return float(pearsonr_columns(a, b)[0])


def split_half_consistency(
    data: ArrayLike,
    *,
    n_splits: int = 10,
    random_state: int = 0,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    absolute: bool = True,
) -> SplitHalfResult:
    """Split-half consistency of subjects with the Spearman–Brown correction.

    Brain-Score's Futrell2018 reading-time ceiling: one
    ``numpy.random.RandomState(random_state)`` draws, per split,
    ``n_subjects // 2`` subjects without replacement (``RandomState.choice``)
    as the first half; the others are the second half. Each half is averaged
    over its subjects (ignoring NaN, as xarray's ``mean`` does), the two means
    are compared with ``metric`` (Pearson r by default), its absolute value is
    taken (Brain-Score's ``pearsonr`` metric returns ``|r|``), and corrected
    to the full sample with ``2c / (1 + c)`` (:func:`spearman_brown`). The
    ceiling is the median over splits (0.858 for Futrell2018).

    Parameters
    ----------
    data : array-like of shape (n_subjects, n_samples)
        One row per subject (e.g. reading time per word); NaN marks a missing
        value. Rows are in the order Brain-Score stores the subjects: the
        draws pick row positions.
    n_splits : int, default=10
    random_state : int, default=0
    metric : callable or None
        ``metric(half1_mean, half2_mean) -> float`` on two arrays of shape
        (n_samples,); None is Pearson r (NaN if either mean has a NaN).
    absolute : bool, default=True
        Take ``|metric|`` before the correction.

    Returns
    -------
    SplitHalfResult
    """
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise BrainalignError(
            f"'data' must have shape (n_subjects, n_samples) with at least 2 of each, got {arr.shape}."
        )
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise BrainalignError(f"'n_splits' must be an int >= 1, got {n_splits!r}.")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise BrainalignError(f"'random_state' must be a non-negative int, got {random_state!r}.")
    if metric is None:
        metric = _pearson_1d
    n_subjects = arr.shape[0]
    rng = np.random.RandomState(int(random_state))
    corrected, uncorrected, halves = [], [], []
    for _ in range(n_splits):
        first = rng.choice(n_subjects, size=n_subjects // 2, replace=False)
        mask = np.zeros(n_subjects, dtype=bool)
        mask[first] = True
        h1, h2 = np.flatnonzero(mask), np.flatnonzero(~mask)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
            m1 = np.nanmean(arr[h1], axis=0)
            m2 = np.nanmean(arr[h2], axis=0)
        c = float(metric(m1, m2))
        if absolute:
            c = abs(c)
        uncorrected.append(c)
        corrected.append(spearman_brown(c))
        halves.append((h1, h2))
    corrected_arr = np.asarray(corrected, dtype=np.float64)
    return SplitHalfResult(
        ceiling=float(np.median(corrected_arr)),
        corrected=corrected_arr,
        uncorrected=np.asarray(uncorrected, dtype=np.float64),
        halves=halves,
    )
