"""Identification and retrieval: can a prediction pick out its own stimulus?

Given predictions (e.g. model features decoded from the brain, or brain
responses predicted by an encoder) paired row by row with the true values,
each prediction is compared with every candidate true row by a similarity;
it is *identified* when the true row ranks high among the candidates.

- :func:`identification_topk`: n-way top-k accuracy over all (deduplicated)
  candidates, as in Défossez et al. 2023 (rank all unique test segments).
- :func:`two_way_identification`: MindEye's two-way identification, the
  share of other candidates less similar than the true one (chance 0.5).
- :func:`retrieval_top1`: MindEye2's retrieval, top-1 among 300 random pairs,
  both directions, averaged over 30 draws.
- :func:`binomial_chance_interval`: the range of accuracies expected by
  chance for predictions that rank their target uniformly at random;
- :func:`identification_shift_test`: a permutation test of top-k accuracy
  (targets shifted along the stimulus sequence within each run), valid also
  when a decoder learned the targets' frequencies.

Ties are counted against the prediction everywhere (a candidate exactly as
similar as the true one ranks above it), so a degenerate prediction -- the
same vector for every stimulus -- scores at or below chance, never at 100 %.

This module imports only numpy and scipy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from brainalign._validation import (
    BrainalignError,
    check_2d,
    check_option,
    check_random_state,
)

__all__ = [
    "IdentificationTestResult",
    "accuracy_shift_test",
    "binomial_chance_interval",
    "identification_shift_test",
    "identification_topk",
    "retrieval_top1",
    "similarity_matrix",
    "two_way_identification",
]

_BLOCK = 1024  # predictions per block of the similarity matrix


def _check_ks(k: object) -> list[int]:
    """``k`` (an int or an iterable of ints) as a non-empty list of positive ints."""
    ks = list(k) if isinstance(k, Iterable) and not isinstance(k, (str, bytes)) else [k]
    if not ks or any(isinstance(kk, (bool, np.bool_)) or not isinstance(kk, (int, np.integer)) or kk < 1
                     for kk in ks):
        raise BrainalignError(f"'k' must be a positive int or a non-empty sequence of them, got {k!r}.")
    return [int(kk) for kk in ks]


def _pair(predicted: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    P = check_2d(predicted, "predicted", "features")
    T = check_2d(true, "true", "features")
    if P.shape != T.shape:
        raise BrainalignError(
            f"'predicted' and 'true' must have the same shape (n_samples, n_features), got "
            f"{P.shape} and {T.shape}."
        )
    if P.shape[0] < 2:
        raise BrainalignError(f"Identification needs at least 2 samples, got {P.shape[0]}.")
    return P, T


def _normalize_rows(A: np.ndarray, center: bool) -> np.ndarray:
    if center:
        A = A - A.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", A, A))
    out = np.zeros_like(A)
    np.divide(A, norm[:, None], out=out, where=norm[:, None] > 0)
    return out


def similarity_matrix(a: ArrayLike, b: ArrayLike, metric: str = "cosine") -> np.ndarray:
    """Similarity between every row of ``a`` and every row of ``b``.

    Parameters
    ----------
    a : array-like of shape (n_a, n_features)
    b : array-like of shape (n_b, n_features)
    metric : {"cosine", "correlation"}
        ``"cosine"``: ``S[i, j] = a_iᵀ b_j / (||a_i|| ||b_j||)``.
        ``"correlation"``: the Pearson correlation across features,
        i.e. the cosine of the rows after subtracting each row's mean.

    Returns
    -------
    S : ndarray of float64, shape (n_a, n_b)
        A zero-norm row (all zeros; for correlation, a constant row) has
        similarity 0 with everything.
    """
    check_option("metric", metric, ("cosine", "correlation"))
    A = check_2d(a, "a", "features")
    B = check_2d(b, "b", "features")
    if A.shape[1] != B.shape[1]:
        raise BrainalignError(
            f"'a' and 'b' must have the same number of features (columns), got {A.shape[1]} "
            f"and {B.shape[1]}."
        )
    center = metric == "correlation"
    return _normalize_rows(A, center) @ _normalize_rows(B, center).T


def identification_topk(
    predicted: ArrayLike,
    true: ArrayLike,
    k: int | Iterable[int] = (1, 5, 10),
    metric: str = "cosine",
    unique: bool = True,
) -> dict:
    """n-way top-k identification accuracy.

    For each prediction ``p_i``, every candidate true row ``c`` is scored by
    ``s_ic = sim(p_i, c)``. With ``c(i)`` the candidate equal to ``true[i]``,
    the rank of prediction ``i`` is::

        rank_i = #{c != c(i) : s_ic >= s_i,c(i)}      (0 = best; ties count against)

    and the top-k accuracy is ``mean_i [rank_i < k]``. Its chance level, for
    a prediction unrelated to the truth, is ``min(k, C) / C`` with ``C`` the
    number of candidates.

    Parameters
    ----------
    predicted : array-like of shape (n_samples, n_features)
        Predictions, row ``i`` paired with ``true[i]``.
    true : array-like of shape (n_samples, n_features)
        True values (e.g. the stimulus features of each test segment).
    k : int or iterable of int
        The ``k`` of each top-k accuracy (each >= 1).
    metric : {"cosine", "correlation"}
        Similarity (see :func:`similarity_matrix`).
    unique : bool
        If True, identical rows of ``true`` (the same stimulus presented
        several times, e.g. repeated words) form one candidate, so that a
        prediction is not penalised for ranking a copy of its own stimulus
        above it; the candidates are the unique rows of ``true``. If False,
        every row is a candidate (``C = n_samples``).

    Returns
    -------
    result : dict
        ``"accuracy"``: {k: float} top-k accuracy; ``"chance"``: {k: float}
        ``min(k, C) / C``; ``"rank"``: ndarray of int64, shape (n_samples,),
        the 0-based rank of each prediction's true candidate;
        ``"n_candidates"``: int ``C``; ``"candidate_index"``: ndarray of
        int64, shape (n_samples,), the candidate of each row of ``true``
        (``candidates = true[first_index]``); ``"first_index"``: ndarray of
        int64, shape (C,), the first row of ``true`` holding each candidate.

    Raises
    ------
    BrainalignError
        If the shapes differ, there are fewer than 2 samples or 2 candidates,
        or a ``k`` is not a positive int.
    """
    check_option("metric", metric, ("cosine", "correlation"))
    P, T = _pair(predicted, true)
    ks = _check_ks(k)
    n = P.shape[0]
    if unique:
        _, first, inverse = np.unique(T, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # keep candidates in order of first appearance
        order = np.argsort(first, kind="stable")
        remap = np.empty_like(order)
        remap[order] = np.arange(order.shape[0])
        first = first[order].astype(np.int64)
        cand_of = remap[inverse].astype(np.int64)
    else:
        first = np.arange(n, dtype=np.int64)
        cand_of = np.arange(n, dtype=np.int64)
    C = first.shape[0]
    if C < 2:
        raise BrainalignError(
            f"Identification needs at least 2 distinct candidates, got {C} (all rows of 'true' "
            "are identical)."
        )
    center = metric == "correlation"
    Pn = _normalize_rows(P, center)
    Cn = _normalize_rows(T[first], center)
    rank = np.empty(n, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        S = Pn[start:stop] @ Cn.T
        rows = np.arange(stop - start)
        s_true = S[rows, cand_of[start:stop]]
        rank[start:stop] = (S >= s_true[:, None]).sum(axis=1) - 1
    return {
        "accuracy": {int(kk): float(np.mean(rank < kk)) for kk in ks},
        "chance": {int(kk): min(int(kk), C) / C for kk in ks},
        "rank": rank,
        "n_candidates": int(C),
        "candidate_index": cand_of,
        "first_index": first,
    }


def two_way_identification(
    predicted: ArrayLike, true: ArrayLike, metric: str = "correlation"
) -> float:
    """Two-way identification (MindEye's definition); chance is 0.5.

    For each prediction ``p_i``, the share of the other true rows ``t_j``
    (``j != i``) that are *less* similar to it than its own true row::

        score = 1/n Σ_i  #{j != i : sim(p_i, t_j) < sim(p_i, t_i)} / (n - 1).

    Equivalently, the fraction of all (i, j) two-alternative choices between
    ``t_i`` and ``t_j`` that are won. A tie counts as a loss.

    Parameters
    ----------
    predicted : array-like of shape (n_samples, n_features)
        E.g. features of the reconstructed images.
    true : array-like of shape (n_samples, n_features)
        E.g. features of the true images, row ``i`` paired with
        ``predicted[i]``.
    metric : {"correlation", "cosine"}
        Similarity; MindEye uses the Pearson correlation (``np.corrcoef``).

    Returns
    -------
    score : float
        In [0, 1]; 0.5 expected by chance, 1.0 for perfect identification.
    """
    check_option("metric", metric, ("correlation", "cosine"))
    P, T = _pair(predicted, true)
    n = P.shape[0]
    center = metric == "correlation"
    Pn = _normalize_rows(P, center)
    Tn = _normalize_rows(T, center)
    wins = 0
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        S = Pn[start:stop] @ Tn.T
        s_true = S[np.arange(stop - start), np.arange(start, stop)]
        wins += int((S < s_true[:, None]).sum())  # the diagonal never counts (not <)
    return wins / (n * (n - 1))


def retrieval_top1(
    a: ArrayLike,
    b: ArrayLike,
    n_way: int = 300,
    n_draws: int = 30,
    random_state: None | int | np.random.Generator = 0,
) -> dict:
    """Top-1 retrieval in both directions among random subsets (MindEye2).

    For each of ``n_draws`` draws, ``n_way`` row indices are drawn without
    replacement; the rows of ``a`` and ``b`` are L2-normalized and
    ``S = â b̂ᵀ`` (cosine similarity, shape (n_way, n_way)). Then::

        a_to_b = 1/n_way Σ_i [S[i, i] > S[i, j] for all j != i]
        b_to_a = 1/n_way Σ_j [S[j, j] > S[i, j] for all i != j]

    (a tie counts as a miss), and each is averaged over draws. Chance is
    ``1 / n_way``.

    Parameters
    ----------
    a : array-like of shape (n_samples, n_features)
        E.g. embeddings predicted from the brain.
    b : array-like of shape (n_samples, n_features)
        E.g. the true image embeddings, row ``i`` paired with ``a[i]``.
    n_way : int
        Candidates per draw (300 in MindEye2); ``2 <= n_way <= n_samples``.
    n_draws : int
        Number of random subsets (30 in MindEye2).
    random_state : None, int or numpy Generator
        Seed of the draws.

    Returns
    -------
    result : dict
        ``"a_to_b"`` and ``"b_to_a"``: float, mean top-1 accuracy;
        ``"a_to_b_draws"`` and ``"b_to_a_draws"``: ndarray of shape
        (n_draws,); ``"chance"``: ``1 / n_way``.

    Notes
    -----
    MindEye2 draws with the global numpy generator; here the draws come from
    ``numpy.random.default_rng(random_state)``, so individual subsets differ
    from theirs while the estimator is the same.
    """
    rng = check_random_state(random_state)
    A, B = _pair(a, b)
    n = A.shape[0]
    for name, val, low, high in (("n_way", n_way, 2, n), ("n_draws", n_draws, 1, None)):
        if (
            isinstance(val, bool)
            or not isinstance(val, (int, np.integer))
            or val < low
            or (high is not None and val > high)
        ):
            raise BrainalignError(
                f"'{name}' must be an int in [{low}, {high if high is not None else 'inf'}], got "
                f"{val!r}" + (f" (there are {n} samples)." if name == "n_way" else ".")
            )
    An = _normalize_rows(A, center=False)
    Bn = _normalize_rows(B, center=False)
    fwd = np.empty(n_draws)
    bwd = np.empty(n_draws)
    for d in range(n_draws):
        idx = rng.choice(n, size=n_way, replace=False)
        S = An[idx] @ Bn[idx].T
        diag = np.diag(S)
        fwd[d] = np.mean((S >= diag[:, None]).sum(axis=1) == 1)
        bwd[d] = np.mean((S >= diag[None, :]).sum(axis=0) == 1)
    return {
        "a_to_b": float(fwd.mean()),
        "b_to_a": float(bwd.mean()),
        "a_to_b_draws": fwd,
        "b_to_a_draws": bwd,
        "chance": 1.0 / n_way,
    }


def binomial_chance_interval(
    n_trials: int, p_chance: float, level: float = 0.99
) -> tuple[float, float]:
    """Central interval of the accuracy expected by chance.

    With ``n_trials`` independent trials each correct with probability
    ``p_chance``, the number correct is ``Binomial(n_trials, p_chance)``; the
    interval is ``[F⁻¹((1 - level)/2), F⁻¹((1 + level)/2)] / n_trials`` with
    ``F⁻¹`` its quantile function (:func:`scipy.stats.binom.ppf`). An
    accuracy above ``high`` is above chance at (two-sided) level ``level``.

    Parameters
    ----------
    n_trials : int
        Number of trials (e.g. test predictions), >= 1.
    p_chance : float
        Chance accuracy per trial, in [0, 1] (e.g. ``k / n_candidates``).
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float
        Accuracies (fractions of ``n_trials``).

    Notes
    -----
    Identification trials on one test set share candidates, so they are
    not strictly independent; the interval is the usual approximation.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise BrainalignError(f"'n_trials' must be an int >= 1, got {n_trials!r}.")
    if not (0.0 <= float(p_chance) <= 1.0):
        raise BrainalignError(f"'p_chance' must be in [0, 1], got {p_chance!r}.")
    if not (0.0 < float(level) < 1.0):
        raise BrainalignError(f"'level' must be in (0, 1), got {level!r}.")
    lo = scipy.stats.binom.ppf((1.0 - level) / 2.0, n_trials, p_chance)
    hi = scipy.stats.binom.ppf((1.0 + level) / 2.0, n_trials, p_chance)
    return float(lo) / n_trials, float(hi) / n_trials


class IdentificationTestResult(NamedTuple):
    """Result of :func:`identification_shift_test` (dicts keyed by ``k``).

    Attributes
    ----------
    accuracy : dict of int -> float
        The observed top-k accuracy (as :func:`identification_topk`).
    pvalues : dict of int -> float
        One-sided ``(1 + #{null >= observed}) / (1 + n_permutations)``.
    null_mean : dict of int -> float
        Mean accuracy under the shift null: the chance level of *these*
        predictions and targets, which exceeds ``k / C`` when a decoder
        learned the targets' frequencies (frequent words are both predicted
        and presented more often).
    null : ndarray of float64, shape (n_permutations, n_k)
        Null accuracies, columns in the order of ``accuracy``.
    """

    accuracy: dict
    pvalues: dict
    null_mean: dict
    null: np.ndarray


def _candidate_ranks(P: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """rank[i, c] = #{c' != c : sim(p_i, c') >= sim(p_i, c)} (0 = best; ties count against)."""
    center = metric == "correlation"
    Pn = _normalize_rows(P, center)
    Cn = _normalize_rows(candidates, center)
    n, C = P.shape[0], candidates.shape[0]
    rank = np.empty((n, C), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        S = Pn[start:start + _BLOCK] @ Cn.T
        ordered = np.sort(S, axis=1)
        for row in range(S.shape[0]):
            rank[start + row] = C - np.searchsorted(ordered[row], S[row], side="left") - 1
    return rank


def _shifted_values(
    values: np.ndarray, stimulus: ArrayLike | None, runs: ArrayLike | None, n_permutations: int, min_shift: int,
    random_state: None | int | np.random.Generator, what: str,
) -> np.ndarray:
    """Each row's value (target, label) after shifting the stimulus sequence, per permutation.

    Returns an array of shape (n_permutations, n_rows): row ``i`` of
    permutation ``b`` gets the value of the position its own position is
    shifted to, within its run (:func:`brainalign.metrics.cv_permutation.circular_shift_indices`
    over each run's sorted positions).
    """
    from brainalign.metrics.cv_permutation import circular_shift_indices

    n = values.shape[0]
    pos = np.arange(n) if stimulus is None else np.asarray(stimulus)
    run = np.zeros(n, dtype=np.int64) if runs is None else np.asarray(runs)
    if pos.shape != (n,) or run.shape != (n,):
        raise BrainalignError(f"'stimulus' and 'runs' must have one value per row ({n}), got shapes "
                              f"{pos.shape} and {run.shape}.")
    positions, pos_index = np.unique(pos, return_inverse=True)
    pos_index = pos_index.reshape(-1)
    pos_run = np.empty(positions.size, dtype=run.dtype)
    pos_value = np.empty(positions.size, dtype=values.dtype)
    pos_run[pos_index] = run
    pos_value[pos_index] = values
    if np.any(pos_run[pos_index] != run) or np.any(pos_value[pos_index] != values):
        raise BrainalignError(f"rows with the same 'stimulus' position must have the same run and the same {what}.")
    # Positions in (run, position) order, so that each run is one contiguous block.
    order = np.lexsort((positions, pos_run))
    where = np.empty_like(order)
    where[order] = np.arange(order.size)
    shifted = circular_shift_indices(pos_run[order], n_permutations, min_shift, random_state)
    return pos_value[order][shifted][:, where[pos_index]]


def accuracy_shift_test(
    predicted: ArrayLike,
    true: ArrayLike,
    *,
    stimulus: ArrayLike | None = None,
    runs: ArrayLike | None = None,
    n_permutations: int = 1000,
    min_shift: int = 1,
    random_state: None | int | np.random.Generator = None,
) -> tuple[float, float, float]:
    """Permutation test of classification accuracy by circular shifts of the label sequence.

    As :func:`identification_shift_test`, for predicted class labels: each
    prediction is scored against the label of another position of its run,
    so a classifier that learned the class frequencies is compared with what
    those frequencies give by themselves, not with ``1 / n_classes``.

    Parameters
    ----------
    predicted, true : array-like of shape (n_samples,)
        Predicted and true labels.
    stimulus, runs, n_permutations, min_shift, random_state
        As :func:`identification_shift_test`.

    Returns
    -------
    accuracy : float
    pvalue : float
        One-sided ``(1 + #{null >= accuracy}) / (1 + n_permutations)``.
    null_mean : float
        Mean accuracy under the shift null.
    """
    pred = np.asarray(predicted)
    labels, codes = np.unique(np.asarray(true), return_inverse=True)
    codes = codes.reshape(-1)
    if pred.shape != codes.shape:
        raise BrainalignError(f"'predicted' and 'true' must have the same length, got {pred.shape} and {codes.shape}.")
    null_codes = _shifted_values(codes, stimulus, runs, n_permutations, min_shift, random_state, "label")
    hit = labels[null_codes] == pred[None, :]
    null = hit.mean(axis=1)
    accuracy = float(np.mean(labels[codes] == pred))
    return accuracy, float((1 + np.sum(null >= accuracy - 1e-12)) / (1 + null.size)), float(null.mean())


def identification_shift_test(
    predicted: ArrayLike,
    true: ArrayLike,
    k: int | Iterable[int] = (1, 5, 10),
    *,
    stimulus: ArrayLike | None = None,
    runs: ArrayLike | None = None,
    metric: str = "cosine",
    n_permutations: int = 1000,
    min_shift: int = 1,
    random_state: None | int | np.random.Generator = None,
) -> IdentificationTestResult:
    """Permutation test of top-k identification by circular shifts of the stimulus sequence.

    The binomial chance interval (:func:`binomial_chance_interval`) assumes
    every prediction ranks its target uniformly at random under the null.
    That fails when a decoder learns the targets' distribution: trained on
    noise, a ridge decoder predicts the mean target, which is most similar to
    the frequent words, which are also the most frequent targets, so its
    accuracy exceeds ``k / C`` with no signal at all. It also ignores that
    neighbouring windows overlap and that pooled subjects share their
    targets. Here the null keeps all of that: the predictions stay fixed and
    the sequence of targets is shifted circularly within each run (each run
    by its own random amount), so every prediction is scored against the
    target of another position of the same run, the candidates are unchanged,
    and rows that share a stimulus position (the same word for several
    subjects) move together.

    Parameters
    ----------
    predicted : array-like of shape (n_samples, n_features)
    true : array-like of shape (n_samples, n_features)
        As :func:`identification_topk` (unique rows of ``true`` are the candidates).
    k : int or iterable of int
    stimulus : array-like of int, shape (n_samples,), optional
        Position of each row's stimulus in the presentation order (e.g. the
        word's row in the events table); rows with the same position share
        it. Default: each row is its own position, in order.
    runs : array-like, shape (n_samples,), optional
        Run of each row (one run per position); positions are shifted within
        their run. Default: one run.
    metric : {"cosine", "correlation"}
    n_permutations, min_shift, random_state
        As :func:`brainalign.metrics.cv_permutation.circular_shift_indices`
        (over each run's positions).

    Returns
    -------
    IdentificationTestResult
        The observed accuracies (equal to :func:`identification_topk`'s),
        p-values, the null's mean accuracy, and the null accuracies.

    Notes
    -----
    The test is valid when the predictions of the tested rows were made
    without their targets (held-out runs) and the target sequence is
    stationary over shifts (a story's words, a block of trials).
    """
    check_option("metric", metric, ("cosine", "correlation"))
    P, T = _pair(predicted, true)
    n = P.shape[0]
    ks = _check_ks(k)
    base = identification_topk(P, T, k=ks, metric=metric)
    rank = _candidate_ranks(P, T[base["first_index"]], metric)
    null_cand = _shifted_values(base["candidate_index"], stimulus, runs, n_permutations, min_shift, random_state,
                                "row of 'true'")
    null_rank = rank[np.arange(n)[None, :], null_cand]
    null = np.stack([np.mean(null_rank < kk, axis=1) for kk in ks], axis=1)
    observed = np.array([base["accuracy"][int(kk)] for kk in ks])
    exceed = (null >= observed - 1e-12).sum(axis=0)
    pvalues = (1.0 + exceed) / (1.0 + null.shape[0])
    return IdentificationTestResult(
        {int(kk): float(observed[j]) for j, kk in enumerate(ks)},
        {int(kk): float(pvalues[j]) for j, kk in enumerate(ks)},
        {int(kk): float(null[:, j].mean()) for j, kk in enumerate(ks)},
        null,
    )
