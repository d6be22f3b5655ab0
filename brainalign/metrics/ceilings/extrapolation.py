"""Brain-Score's subject-pool extrapolation ceiling for neural data.

Held-out subjects are scored from pools of ``n = 2 ... N`` other subjects
(:func:`collect_subject_pool_scores`), and ``v(n) = v0 (1 - exp(-n / tau0))``
(:func:`saturating_curve`) is fitted per neuroid by bootstrap
(:func:`extrapolate_ceiling`); :func:`subject_pool_extrapolation` runs both,
and :class:`ExtrapolationResult` holds the outcome.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int

__all__ = [
    "ExtrapolationResult",
    "collect_subject_pool_scores",
    "extrapolate_ceiling",
    "saturating_curve",
    "subject_pool_extrapolation",
]


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
