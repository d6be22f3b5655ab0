"""Noise ceilings from inter-subject correlation, and analytic limits.

An encoding model's held-out correlation ``r_model`` is bounded by how much of a
unit's (voxel's, ROI's) response is stimulus-driven at all. With several
subjects hearing the same stimulus, the leave-one-subject-out inter-subject
correlation (ISC) estimates that bound: the stimulus-locked signal is shared
across subjects while their noise is not. The normalized score is::

    normalized = r_model / ceiling_ROI,

where ``ceiling_ROI`` is the leave-one-subject-out ISC averaged over subjects
(:func:`isc_ceiling`).

The analytic functions give the exact population values for a planted model
``y_i = s + n_i`` (shared signal ``s``, independent noise ``n_i``), used to
check the estimators and to read a ceiling as a signal-to-noise ratio.
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
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim == 2:  # (n_subjects, n_samples): one unit
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise BrainalignError(
            "'Y' must have shape (n_subjects, n_samples, n_units) (or be a list of "
            f"(n_samples, n_units) arrays), got shape {arr.shape}."
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


def normalized_score(score: ArrayLike, ceiling: ArrayLike) -> np.ndarray | float:
    """Model score divided by the noise ceiling, unclipped.

    ``normalized = r_model / ceiling_ROI``, where ``ceiling_ROI`` is the
    leave-one-subject-out ISC averaged over subjects (:func:`isc_ceiling`).

    Parameters
    ----------
    score : float or array-like
        Model correlation(s), e.g. ``cross_validated_pearson(...)["score"]``.
    ceiling : float or array-like, broadcastable with ``score``
        Ceiling(s), e.g. :func:`isc_ceiling`.

    Returns
    -------
    normalized : float or ndarray of float64
        ``score / ceiling``; NaN where ``ceiling <= 0`` or is NaN (no reliable
        stimulus-driven signal, so the ratio is meaningless). A float if both
        inputs are scalars.

    Notes
    -----
    The result is **not** clipped to [0, 1]. Values above 1 are expected: the
    leave-one-out ISC correlates one noisy subject with a *noisy* group mean,
    whereas a model predicts (at best) the noiseless signal. For the planted
    model ``y_i = s + n_i``, a perfect model scores
    ``analytic_model_r(snr) / analytic_isc(snr, N) = sqrt(1 + 1/((N - 1) snr))
    >= 1``. Clipping would hide this, and sampling noise can also push
    ``score`` slightly past the ceiling.
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    try:
        s, c = np.broadcast_arrays(s, c)
    except ValueError:
        raise BrainalignError(
            f"'score' and 'ceiling' must have broadcastable shapes, got {s.shape} and {c.shape}."
        ) from None
    valid = c > 0  # False for NaN too
    out = np.full(s.shape, np.nan)
    np.divide(s, c, out=out, where=valid)
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
