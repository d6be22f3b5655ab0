"""Noise ceilings from the leave-one-subject-out inter-subject correlation, and their analytic values.

:func:`loso_isc` and its subject mean :func:`isc_ceiling`, the normalized
score ``score / ceiling`` (:func:`normalized_score`), and the population
values of a model's r and of the ISC for the planted model ``y_i = s + n_i``
(:func:`analytic_model_r`, :func:`analytic_isc`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError
from brainalign.metrics.correlation import pearsonr_columns

__all__ = [
    "loso_isc",
    "isc_ceiling",
    "normalized_score",
    "analytic_model_r",
    "analytic_isc",
]


def _as_subjects(Y: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """Stack to float64 (n_subjects, n_samples, n_units)."""
    if isinstance(Y, (list, tuple)):
        shapes = {np.shape(y) for y in Y}
        if len(shapes) > 1:
            raise BrainalignError(
                f"'Y' must be a list of arrays of equal shape (n_samples, n_units), got shapes "
                f"{[np.shape(y) for y in Y]}."
            )
    raw = np.asarray(Y)
    if raw.dtype.kind not in "fiu":
        raise BrainalignError(f"'Y' must hold real numbers (int or float), got dtype {raw.dtype}.")
    arr = raw.astype(np.float64, copy=False)
    if arr.ndim == 2:  # (n_subjects, n_samples): one unit
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise BrainalignError(
            "'Y' must have shape (n_subjects, n_samples, n_units) (or be a list of "
            f"(n_samples, n_units) arrays), got shape {arr.shape}."
        )
    if arr.shape[2] == 0:
        raise BrainalignError(f"'Y' must hold at least 1 unit, got shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        # A NaN would silently make the ISC of its unit NaN for every subject.
        s, t, u = np.argwhere(bad)[0]
        raise BrainalignError(
            f"'Y' contains {int(bad.sum())} NaN or infinite value(s), the first at subject {s}, "
            f"sample {t}, unit {u}."
        )
    if arr.shape[0] < 2:
        raise BrainalignError(
            f"'Y' must hold at least 2 subjects for a leave-one-subject-out ISC, got "
            f"{arr.shape[0]} (shape {arr.shape})."
        )
    if arr.shape[1] < 2:
        raise BrainalignError(
            f"'Y' must have at least 2 samples per subject, got {arr.shape[1]} (shape {arr.shape})."
        )
    return arr


def loso_isc(Y: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """Leave-one-subject-out inter-subject correlation, per subject and unit.

    Parameters
    ----------
    Y : array-like of shape (n_subjects, n_samples, n_units), or list of arrays
        Responses of every subject to the same stimulus, time-aligned. A list
        holds one (n_samples, n_units) array per subject, all of equal shape.
        A 2-D input (n_subjects, n_samples) is one unit.

    Returns
    -------
    isc : ndarray of float64, shape (n_subjects, n_units)
        ``isc[i, u]`` is the Pearson r between subject ``i``'s time course in
        unit ``u`` and the mean time course of the other ``n_subjects - 1``
        subjects in that unit. 0.0 where either time course is constant (see
        :func:`~brainalign.metrics.correlation.pearsonr_columns`).

    Raises
    ------
    BrainalignError
        If ``Y`` is not numeric, holds NaN or infinite values, has fewer than
        2 subjects or 2 samples, or no unit.

    Notes
    -----
    The sum of the other subjects is built from prefix and suffix sums, so the
    cost is linear in ``n_subjects`` and a unit that is constant in all other
    subjects stays exactly constant (no cancellation error).
    """
    arr = _as_subjects(Y)
    n_subjects = arr.shape[0]
    prefix = np.cumsum(arr, axis=0)  # prefix[i] = sum_{j <= i}
    suffix = np.zeros(arr.shape[1:])  # running sum_{j > i}
    isc = np.empty((n_subjects, arr.shape[2]))
    for i in range(n_subjects - 1, -1, -1):
        others = suffix if i == 0 else prefix[i - 1] + suffix
        # The mean is the sum / (n_subjects - 1); a positive scale leaves r unchanged.
        isc[i] = pearsonr_columns(arr[i], others)
        suffix = suffix + arr[i]
    return isc


def isc_ceiling(Y: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """Noise ceiling per unit: :func:`loso_isc` averaged over subjects.

    Parameters
    ----------
    Y : array-like of shape (n_subjects, n_samples, n_units), or list of arrays
        See :func:`loso_isc`.

    Returns
    -------
    ceiling : ndarray of float64, shape (n_units,)
    """
    return loso_isc(Y).mean(axis=0)


#: Ceilings below this make a normalized score meaningless (a ratio of two noisy numbers near 0).
DEFAULT_MIN_CEILING = 0.1


def normalized_score(
    score: ArrayLike, ceiling: ArrayLike, *, min_ceiling: float = 0.0, clip: bool = True,
) -> np.ndarray | float:
    """Model score divided by the noise ceiling, as Brain-Score normalizes it.

    ``normalized = clip(score / ceiling, 0, 1)`` (Brain-Score's
    ``ceiling_normalize``); with ``clip=False`` the ratio itself, which
    Brain-Score keeps beside it as the unclipped score. Both are NaN where the
    ceiling is below ``min_ceiling`` (or ≤ 0, or NaN): with no reliable
    stimulus-driven signal the ratio of two noisy numbers near 0 is
    meaningless (a score of 0.28 against a ceiling of 0.015 gives 18.7).
    The workflow uses ``statistics.min_ceiling`` everywhere (tables, maps,
    report).

    Parameters
    ----------
    score : float or array-like
        Model correlation(s), e.g. ``cross_validated_pearson(...)["score"]``.
    ceiling : float or array-like, broadcastable with ``score``
        Ceiling(s), e.g. :func:`isc_ceiling`.
    min_ceiling : float, default=0.0
        Smallest ceiling for which a normalized score is reported (a ceiling
        must also be > 0).
    clip : bool, default=True
        Clip to [0, 1].

    Returns
    -------
    normalized : float or ndarray of float64
        A float if both inputs are scalars.

    Notes
    -----
    Unclipped values above 1 are expected now and then: the leave-one-out
    ISC correlates one noisy subject with a *noisy* group mean, whereas a
    model predicts (at best) the noiseless signal. For the planted model
    ``y_i = s + n_i``, a perfect model scores
    ``analytic_model_r(snr) / analytic_isc(snr, N) = sqrt(1 + 1/((N - 1) snr))
    >= 1``, and sampling noise can push a score past its ceiling too. The
    workflow counts and flags such rows (``exceeds_ceiling`` in
    ``scores.csv``) rather than hiding them.
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    try:
        s, c = np.broadcast_arrays(s, c)
    except ValueError:
        raise BrainalignError(
            f"'score' and 'ceiling' must have broadcastable shapes, got {s.shape} and {c.shape}."
        ) from None
    if not np.isfinite(min_ceiling) or min_ceiling < 0:
        raise BrainalignError(f"'min_ceiling' must be a finite number >= 0, got {min_ceiling!r}.")
    valid = (c > 0) & (c >= min_ceiling)  # False for NaN too
    out = np.full(s.shape, np.nan)
    np.divide(s, c, out=out, where=valid)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def _check_snr(snr: ArrayLike) -> np.ndarray:
    arr = np.asarray(snr, dtype=np.float64)
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise BrainalignError(
            f"'snr' must be >= 0 (signal variance / noise variance), got {snr!r}."
        )
    return arr


def analytic_model_r(snr: ArrayLike) -> np.ndarray | float:
    """Population correlation between a noiseless signal and its noisy measurement.

    Derivation: let the stimulus-driven signal ``s`` have variance 1 and the
    measurement be ``y = s + n`` with noise ``n`` independent of ``s``, of
    variance ``1 / snr``. Then ``cov(s, y) = var(s) = 1`` and ``var(y) = 1 +
    1/snr``, so::

        r(s, y) = 1 / sqrt(1 * (1 + 1/snr)) = sqrt(snr / (1 + snr)).

    This is the best correlation any model can reach against one subject's
    data (a model that predicts ``s`` exactly). E.g. ``snr = 1`` gives
    ``sqrt(0.5) ~= 0.707``.

    Parameters
    ----------
    snr : float or array-like
        Signal variance / noise variance (>= 0; ``inf`` gives 1).

    Returns
    -------
    r : float or ndarray of float64
    """
    arr = _check_snr(snr)
    with np.errstate(divide="ignore"):
        out = 1.0 / np.sqrt(1.0 + 1.0 / arr)
    return float(out) if out.ndim == 0 else out


def analytic_isc(snr: ArrayLike, n_subjects: int) -> np.ndarray | float:
    """Population leave-one-subject-out ISC for the planted model ``y_i = s + n_i``.

    Derivation: subject ``i`` measures ``x_i = s + n_i`` with ``var(s) = 1``
    and independent noises ``n_j`` of variance ``1 / snr``. The mean of the
    other ``N - 1`` subjects is ``m = s + (1/(N-1)) sum_{j != i} n_j``, whose
    noise has variance ``1 / ((N - 1) snr)``. The noises are independent of
    each other and of ``s``, so ``cov(x_i, m) = var(s) = 1``, ``var(x_i) = 1 +
    1/snr`` and ``var(m) = 1 + 1/((N-1) snr)``::

        ISC = 1 / sqrt((1 + 1/snr) (1 + 1/((N - 1) snr))).

    As ``N -> inf`` this tends to :func:`analytic_model_r`; for finite ``N``
    it is smaller (see :func:`normalized_score`). E.g. ``snr = 1, N = 2``
    gives ``0.5``.

    Parameters
    ----------
    snr : float or array-like
        Signal variance / noise variance (>= 0; ``inf`` gives 1).
    n_subjects : int
        Number of subjects ``N`` (>= 2).

    Returns
    -------
    isc : float or ndarray of float64
    """
    if (
        isinstance(n_subjects, bool)
        or not isinstance(n_subjects, (int, np.integer))
        or n_subjects < 2
    ):
        raise BrainalignError(f"'n_subjects' must be an int >= 2, got {n_subjects!r}.")
    arr = _check_snr(snr)
    with np.errstate(divide="ignore"):
        inv = 1.0 / arr
        out = 1.0 / np.sqrt((1.0 + inv) * (1.0 + inv / (n_subjects - 1)))
    return float(out) if out.ndim == 0 else out
