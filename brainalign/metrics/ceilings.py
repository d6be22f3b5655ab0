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

import hashlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int
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


# =========================================================================== #
# Brain-Score's ceilings: split-half consistency and subject-pool extrapolation
# =========================================================================== #
__all__ += [
    "ExtrapolationResult",
    "SplitHalfResult",
    "cached_ceiling",
    "collect_subject_pool_scores",
    "extrapolate_ceiling",
    "saturating_curve",
    "spearman_brown",
    "split_half_consistency",
    "subject_pool_extrapolation",
]


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


def saturating_curve(n: ArrayLike, v0: float, tau0: float) -> np.ndarray:
    """``v(n) = v0 * (1 - exp(-n / tau0))``, the subject-pool extrapolation curve."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return v0 * (1.0 - np.exp(-np.asarray(n, dtype=np.float64) / tau0))


@dataclass(frozen=True)
class ExtrapolationResult:
    """Outcome of :func:`extrapolate_ceiling` / :func:`subject_pool_extrapolation`.

    Attributes
    ----------
    ceiling : float
        Median over neuroids of ``neuroid_ceilings`` (NaN neuroids ignored).
    neuroid_ceilings : ndarray of shape (n_neuroids,)
        Per neuroid, the median over bootstraps of the fitted ``v0``; NaN if
        any bootstrap fit failed (as in Brain-Score) or no data.
    bootstrapped_params : ndarray of shape (n_neuroids, n_bootstraps, 2)
        Fitted ``(v0, tau0)`` per neuroid and bootstrap; NaN where the fit failed.
    n_subjects : ndarray of shape (n_points,)
        The pool sizes ``n`` (the x values of the fit).
    scores : dict of int to ndarray of shape (n_draws, n_splits, n_neuroids)
        The collected scores per pool size; NaN where a neuroid was not scored.
    """

    ceiling: float
    neuroid_ceilings: np.ndarray
    bootstrapped_params: np.ndarray
    n_subjects: np.ndarray
    scores: dict[int, np.ndarray]




def extrapolate_ceiling(
    scores_by_n: Mapping[int, ArrayLike],
    *,
    n_bootstraps: int = 100,
    random_state: int = 0,
) -> ExtrapolationResult:
    """Fit ``v(n) = v0 (1 - exp(-n / tau0))`` per neuroid to scores by pool size.

    Brain-Score's ``ExtrapolationCeiling.extrapolate``. Per neuroid, with a
    fresh ``numpy.random.RandomState(random_state)``, ``n_bootstraps`` times:
    for each pool size ``n`` (ascending), resample the neuroid's scores at
    ``n`` with replacement (``RandomState.choice``, as many as there are) and
    average them; fit :func:`saturating_curve` to those means with
    ``scipy.optimize.curve_fit`` and bounds ``v0 in [0, 1]``, ``tau0``
    unbounded (a failed fit gives NaN). The neuroid's ceiling is the median
    ``v0``; the ceiling is the median over neuroids.

    Parameters
    ----------
    scores_by_n : mapping of int to array-like of shape (n_draws, [n_splits,] n_neuroids)
        Scores of each neuroid at pool size ``n`` (one row per subject subset,
        optionally one column per cross-validation split); NaN where the
        neuroid was not scored in that draw. A draw with a NaN in any split
        is left out for that neuroid (xarray ``dropna``), and the remaining
        values are flattened draw by draw, split by split — the order the
        bootstrap indexes, so it matters for reproducing Brain-Score.
    n_bootstraps : int, default=100
    random_state : int, default=0

    Returns
    -------
    ExtrapolationResult
    """
    if not isinstance(scores_by_n, Mapping) or not scores_by_n:
        raise BrainalignError("'scores_by_n' must be a non-empty mapping of pool size to scores.")
    n_bootstraps = check_int("n_bootstraps", n_bootstraps, 1)
    random_state = check_int("random_state", random_state, 0)
    arrays: dict[int, np.ndarray] = {}
    n_neuroids = None
    for n in sorted(scores_by_n):
        check_int("pool size", n, 1)
        a = np.asarray(scores_by_n[n], dtype=np.float64)
        if a.ndim == 2:
            a = a[:, None, :]
        if a.ndim != 3:
            raise BrainalignError(
                f"scores_by_n[{n}] must have shape (n_draws, n_neuroids) or (n_draws, n_splits, "
                f"n_neuroids), got {a.shape}."
            )
        if n_neuroids is None:
            n_neuroids = a.shape[2]
        elif a.shape[2] != n_neuroids:
            raise BrainalignError(
                f"scores_by_n[{n}] has {a.shape[2]} neuroids, but earlier pool sizes have {n_neuroids}."
            )
        arrays[int(n)] = a
    sizes = np.array(sorted(arrays), dtype=np.float64)
    params = np.full((n_neuroids, n_bootstraps, 2), np.nan)
    neuroid_ceilings = np.full(n_neuroids, np.nan)
    lower, upper = [0.0, -np.inf], [1.0, np.inf]
    for j in range(n_neuroids):
        pools = []
        for a in arrays.values():
            col = a[:, :, j]
            keep = ~np.isnan(col).any(axis=1)
            pools.append(col[keep].ravel())
        has = np.array([p.size > 0 for p in pools])
        if not has.any():
            continue
        xs = sizes[has]
        values = [p for p in pools if p.size]
        rng = np.random.RandomState(random_state)
        for b in range(n_bootstraps):
            ys = np.array([np.mean(rng.choice(v, size=v.size, replace=True)) for v in values])
            valid = np.isfinite(ys)
            try:
                if not valid.any():
                    raise RuntimeError("no valid scores")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    popt, _ = scipy.optimize.curve_fit(
                        saturating_curve, xs[valid], ys[valid], bounds=(lower, upper)
                    )
                params[j, b] = popt
            except (RuntimeError, ValueError):
                pass
        neuroid_ceilings[j] = np.median(params[j, :, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ceiling = float(np.nanmedian(neuroid_ceilings)) if np.isfinite(neuroid_ceilings).any() else math.nan
    return ExtrapolationResult(
        ceiling=ceiling,
        neuroid_ceilings=neuroid_ceilings,
        bootstrapped_params=params,
        n_subjects=sizes.astype(int),
        scores=arrays,
    )


def _subject_subsets(
    labels: np.ndarray, n: int, subsets: str | int, rng: np.random.RandomState
) -> list[tuple[Any, ...]]:
    combos = list(itertools.combinations(labels.tolist(), n))  # lexicographic over sorted labels
    if subsets == "all" or len(combos) <= subsets:
        return combos
    chosen: set[tuple[Any, ...]] = set()
    while len(chosen) < subsets:
        pick = np.sort(rng.choice(len(labels), size=n, replace=False))
        chosen.add(tuple(labels[pick].tolist()))
    return sorted(chosen)


def collect_subject_pool_scores(
    neural: ArrayLike,
    subjects: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], ArrayLike],
    *,
    subsets: str | int = "all",
    holdouts: str | int = "all",
    random_state: int = 0,
) -> dict[int, np.ndarray]:
    """Scores of held-out subjects predicted from pools of other subjects.

    For every pool size ``n = 2 ... N`` and every subset of ``n`` subjects,
    each held-out subject ``s`` of the subset is the target and the other
    ``n - 1`` subjects' neuroids, side by side, are the source:
    ``metric(neural[:, pool], neural[:, s])``.

    Parameters
    ----------
    neural : array-like of shape (n_stimuli, n_neuroids)
        All subjects' neuroids, side by side.
    subjects : array-like of shape (n_neuroids,)
        Subject label of each neuroid column.
    metric : callable
        ``metric(source (n_stimuli, n_source), target (n_stimuli, n_target))``
        returning per-neuroid scores of the target, of shape (n_target,) or
        (n_splits, n_target). Brain-Score uses the benchmark's own metric, e.g.
        ``lambda s, t: linear_pearsonr(s, t).neuroid_scores``
        (:mod:`brainalign.metrics.brainscore`).
    subsets : "all" or int, default="all"
        ``"all"``: every subset of each size, in lexicographic order of the
        sorted labels (Brain-Score 2.3.0's ``ExtrapolationCeiling``). An int
        ``k``: at most ``k`` distinct random subsets per size (the older code
        that made the Pereira2018 ceilings used 10), sorted.
    holdouts : "all" or int, default="all"
        ``"all"``: every member of a subset is held out in turn (2.3.0). An
        int ``k``: ``min(k, n)`` members drawn without replacement (the older
        code drew 5 with replacement).
    random_state : int, default=0
        Seeds one ``numpy.random.RandomState`` for the random draws.

    Returns
    -------
    scores_by_n : dict of int to ndarray of shape (n_subsets, n_splits, n_neuroids)
        Row ``i`` at size ``n`` holds the scores of the neuroids of every
        subject held out from subset ``i``; NaN elsewhere. Input of
        :func:`extrapolate_ceiling`.
    """
    Y = np.asarray(neural, dtype=np.float64)
    labels_per_column = np.asarray(subjects)
    if Y.ndim != 2:
        raise BrainalignError(f"'neural' must have shape (n_stimuli, n_neuroids), got {Y.shape}.")
    if labels_per_column.shape != (Y.shape[1],):
        raise BrainalignError(
            f"'subjects' must have one label per neuroid column, shape ({Y.shape[1]},), got "
            f"{labels_per_column.shape}."
        )
    for name, value in (("subsets", subsets), ("holdouts", holdouts)):
        if value != "all":
            check_int(name, value, 1)
    labels = np.unique(labels_per_column)
    if labels.shape[0] < 2:
        raise BrainalignError(f"At least 2 subjects are needed, got {labels.shape[0]} ({labels.tolist()}).")
    columns = {lab: np.flatnonzero(labels_per_column == lab) for lab in labels.tolist()}
    rng = np.random.RandomState(check_int("random_state", random_state, 0))
    out: dict[int, np.ndarray] = {}
    n_splits = None
    for n in range(2, labels.shape[0] + 1):
        combos = _subject_subsets(labels, n, subsets, rng)
        block = None
        for i, combo in enumerate(combos):
            members = list(combo)
            if holdouts == "all":
                held = members
            else:
                pick = rng.choice(len(members), size=min(holdouts, len(members)), replace=False)
                held = [members[k] for k in np.sort(pick)]
            for s in held:
                pool = np.concatenate([columns[m] for m in members if m != s])
                target = columns[s]
                res = np.asarray(metric(Y[:, pool], Y[:, target]), dtype=np.float64)
                if res.ndim == 1:
                    res = res[None, :]
                if res.ndim != 2 or res.shape[1] != target.size:
                    raise BrainalignError(
                        f"'metric' must return per-neuroid scores of shape ({target.size},) or "
                        f"(n_splits, {target.size}) for subject {s!r}, got shape {res.shape}."
                    )
                if n_splits is None:
                    n_splits = res.shape[0]
                elif res.shape[0] != n_splits:
                    raise BrainalignError(
                        f"'metric' returned {res.shape[0]} splits for subject {s!r}, but {n_splits} before."
                    )
                if block is None:
                    block = np.full((len(combos), n_splits, Y.shape[1]), np.nan)
                block[i][:, target] = res
        out[n] = block
    return out


def subject_pool_extrapolation(
    neural: ArrayLike,
    subjects: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], ArrayLike],
    *,
    subsets: str | int = "all",
    holdouts: str | int = "all",
    n_bootstraps: int = 100,
    random_state: int = 0,
) -> ExtrapolationResult:
    """Brain-Score's neural noise ceiling by subject-pool extrapolation.

    For ``n = 2 ... N`` subjects, subsets of ``n`` subjects predict a
    held-out subject's neuroids from the pooled others with ``metric``
    (:func:`collect_subject_pool_scores`); per neuroid, ``n_bootstraps``
    bootstrap fits of ``v(n) = v0 (1 - exp(-n / tau0))`` with ``v0`` in
    [0, 1]; neuroid ceiling = median ``v0``; ceiling = median over neuroids
    (:func:`extrapolate_ceiling`).

    With the defaults and ``metric = lambda s, t: linear_pearsonr(s,
    t).neuroid_scores`` this reproduces Brain-Score Language 2.3.0's
    ``ExtrapolationCeiling`` (Blank2014 / Fedorenko2016 style) when the
    subject labels sort the same as strings and as Python tuples (e.g. of
    equal length): Brain-Score orders the subsets by ``str(tuple)``.

    Parameters
    ----------
    neural : array-like of shape (n_stimuli, n_neuroids)
    subjects : array-like of shape (n_neuroids,)
    metric : callable
        See :func:`collect_subject_pool_scores`.
    subsets, holdouts : "all" or int
        See :func:`collect_subject_pool_scores`.
    n_bootstraps : int, default=100
    random_state : int, default=0
        Seeds the subset draws and, per neuroid, the bootstrap.

    Returns
    -------
    ExtrapolationResult
    """
    scores = collect_subject_pool_scores(
        neural, subjects, metric, subsets=subsets, holdouts=holdouts, random_state=random_state
    )
    return extrapolate_ceiling(scores, n_bootstraps=n_bootstraps, random_state=random_state)


# --------------------------------------------------------------------------- cache
_CACHE_VERSION = "brainalign-ceiling-cache-v1"


def _canonical(value: Any, where: str) -> Any:
    """A JSON-able, order-independent form of a cache key (arrays by checksum)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else repr(f)
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind in "OUS":
            payload = json.dumps(arr.tolist(), default=str).encode()
        else:
            payload = arr.tobytes()
        return {"__ndarray__": hashlib.sha256(payload).hexdigest(), "dtype": arr.dtype.str,
                "shape": list(arr.shape)}
    if isinstance(value, (os.PathLike,)):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise BrainalignError(f"cache key {where}: keys must be str, got {k!r}.")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v, where) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
    raise BrainalignError(
        f"cache key {where} has an unsupported type {type(value).__name__}; use str, numbers, bool, "
        "None, lists, dicts or numpy arrays."
    )


def _cache_hash(key: Any) -> str:
    text = json.dumps({"version": _CACHE_VERSION, "key": key}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_value(v) for k, v in value.items())
    return False


def _read_cached(json_path: Path, npz_path: Path, key: Any) -> tuple[bool, Any]:
    try:
        if json_path.exists():
            doc = json.loads(json_path.read_text(encoding="utf-8"))
            if doc.get("key") == key:
                return True, doc["value"]
        if npz_path.exists():
            with np.load(npz_path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                if meta.get("key") != key:
                    return False, None
                if meta["kind"] == "array":
                    return True, z["value"]
                value: dict[str, Any] = {}
                for name, kind in meta["entries"].items():
                    arr = z[f"v_{name}"]
                    value[name] = arr if kind == "array" else json.loads(str(arr))
                return True, value
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        pass  # unreadable or partial cache file: recompute and overwrite
    return False, None


def cached_ceiling(
    key_dict: Mapping[str, Any],
    compute_fn: Callable[[], Any],
    cache_dir: str | os.PathLike,
) -> Any:
    """Return ``compute_fn()``, cached on disk under a hash of ``key_dict``.

    Ceilings cost minutes to hours (the subject-pool extrapolation fits
    thousands of models), so they are computed once per input. The cache
    file is ``<cache_dir>/<sha256>.json`` (a value of JSON types) or
    ``<sha256>.npz`` (an array, or a dict with arrays), where the hash covers
    ``key_dict`` in canonical form: dict keys sorted, numpy arrays replaced by
    the SHA-256 of their bytes with their dtype and shape. The key is stored
    in the file and checked on reading. Files are written atomically
    (:func:`brainalign.io.atomic_path`); an unreadable file is recomputed.

    Parameters
    ----------
    key_dict : mapping of str to JSON-able values or numpy arrays
        Everything the ceiling depends on: the data (as arrays or their
        checksums), the metric name and its parameters, seeds, versions.
    compute_fn : callable
        No arguments; returns a float, int, str, bool, None, a list or dict of
        those, a numpy array, or a dict of str to numpy arrays and JSON values.
    cache_dir : str or path-like
        Folder of the cache files (created if missing).

    Returns
    -------
    value
        The cached value, equal to what ``compute_fn`` returned (floats
        exactly; tuples come back as lists, numpy scalars as Python numbers).
    """
    if not isinstance(key_dict, Mapping):
        raise BrainalignError(f"'key_dict' must be a mapping, got {type(key_dict).__name__}.")
    if not callable(compute_fn):
        raise BrainalignError(f"'compute_fn' must be callable, got {type(compute_fn).__name__}.")
    key = _canonical(dict(key_dict), "key_dict")
    digest = _cache_hash(key)
    folder = Path(os.path.expanduser(os.fspath(cache_dir)))
    json_path, npz_path = folder / f"{digest}.json", folder / f"{digest}.npz"
    hit, value = _read_cached(json_path, npz_path, key)
    if hit:
        return value

    # Imported here: brainalign.io pulls in pandas and h5py, kept out of the metric core.
    from brainalign.io import atomic_path

    value = compute_fn()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if _is_json_value(value):
        text = json.dumps({"key": key, "value": value}, sort_keys=True)
        with atomic_path(json_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return json.loads(text)["value"]
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        entries: dict[str, np.ndarray] = {"value": value}
        meta = {"key": key, "kind": "array"}
    elif isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        entries, kinds = {}, {}
        for name, v in value.items():
            if isinstance(v, np.ndarray) and v.dtype.kind != "O":
                entries[f"v_{name}"], kinds[name] = v, "array"
            else:
                v = v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v
                v = list(v) if isinstance(v, tuple) else v
                if not _is_json_value(v):
                    raise BrainalignError(
                        f"compute_fn's result[{name!r}] of type {type(v).__name__} cannot be cached; "
                        "use numbers, str, bool, None, lists, dicts or numpy arrays."
                    )
                entries[f"v_{name}"], kinds[name] = np.array(json.dumps(v)), "json"
        meta = {"key": key, "kind": "dict", "entries": kinds}
    else:
        raise BrainalignError(
            f"compute_fn returned a {type(value).__name__}, which cannot be cached; return a number, "
            "a numpy array, or a dict of numbers, strings and arrays."
        )
    entries["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **entries)
    hit, stored = _read_cached(json_path, npz_path, key)
    return stored if hit else value
