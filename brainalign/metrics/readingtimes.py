"""Reading-time alignment: Brain-Score's Futrell2018 score and the held-out regression gain of surprisal.

Two scores of how well a language model's surprisal predicts human reading
times, both defined in ``docs/language.md``:

* :func:`futrell2018_score` — Brain-Score's benchmark (Futrell et al. 2018,
  Natural Stories): ``|Pearson r|`` between per-word surprisal (bits, summed
  over a word's sub-tokens) and the mean reading time over readers, the first
  word of each sentence dropped, divided by the split-half ceiling 0.858
  published with the benchmark (per-reader times, needed to recompute it, are
  not in the shared data).
* :func:`regression_gain` — the psycholinguists' standard: the held-out gain in
  log-likelihood per word (and in R²) of ``RT ~ baseline + surprisal`` over
  ``RT ~ baseline``, where the baseline is word length, log unigram frequency
  and position, each with the values of the previous one or two words
  (spillover); cross-validated over stories (leave one story out) and tested
  by permuting surprisal within stories.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._validation import BrainalignError, check_random_state

__all__ = ["FUTRELL2018_CEILING", "Futrell2018Score", "RegressionGain", "futrell2018_score",
           "regression_gain", "sentence_initial", "spillover_design"]

#: Brain-Score's Futrell2018 ceiling: median over 10 subject split-halves of the Spearman–Brown |r|.
FUTRELL2018_CEILING = 0.858

_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]]*$")


def sentence_initial(words: Sequence[str], groups: ArrayLike | None = None) -> np.ndarray:
    """Flag the first word of every sentence.

    A word starts a sentence when it is the first of its group (story) or the
    previous word ends in ``.``, ``!`` or ``?`` (optionally followed by closing
    quotes or brackets, as in ``mountains.'``).

    Parameters
    ----------
    words : sequence of str, length n_words
        Words in reading order, with their punctuation.
    groups : array-like of shape (n_words,), optional
        Story of each word; words of one story must be contiguous.

    Returns
    -------
    ndarray of bool, shape (n_words,)
    """
    words = [str(w) for w in words]
    first = np.zeros(len(words), dtype=bool)
    if not words:
        return first
    first[0] = True
    ends = np.array([bool(_SENTENCE_END.search(w)) for w in words])
    first[1:] = ends[:-1]
    if groups is not None:
        g = np.asarray(groups)
        first[1:] |= g[1:] != g[:-1]
    return first


@dataclass(frozen=True)
class Futrell2018Score:
    """Brain-Score's Futrell2018 score.

    Attributes
    ----------
    raw : float
        |Pearson r| between surprisal and mean reading time.
    ceiling : float
    normalized : float
        ``raw / ceiling``.
    n_words : int
        Words scored (sentence-initial words and words with a missing value dropped).
    n_dropped_missing : int
        Non-initial words dropped for a missing surprisal or reading time.
    """

    raw: float
    ceiling: float
    normalized: float
    n_words: int
    n_dropped_missing: int


def _finite_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise BrainalignError(f"surprisal has {x.size} words but reading_times has {y.size}.")
    return x, y


def futrell2018_score(surprisal: ArrayLike, reading_times: ArrayLike, initial: ArrayLike,
                      ceiling: float = FUTRELL2018_CEILING) -> Futrell2018Score:
    """|Pearson r| between per-word surprisal and mean reading time, first words of sentences dropped.

    Parameters
    ----------
    surprisal : array-like of shape (n_words,)
        Bits per word (NaN where the model has none, e.g. a story's first word).
    reading_times : array-like of shape (n_words,)
        Mean reading time over readers (ms).
    initial : array-like of bool, shape (n_words,)
        Sentence-initial words (:func:`sentence_initial`), which are dropped.
    ceiling : float, default=0.858
        Brain-Score's published split-half ceiling.

    Returns
    -------
    Futrell2018Score
    """
    x, y = _finite_pair(surprisal, reading_times)
    initial = np.asarray(initial, dtype=bool).ravel()
    if initial.shape != x.shape:
        raise BrainalignError(f"initial has {initial.size} words but surprisal has {x.size}.")
    keep = ~initial
    finite = np.isfinite(x) & np.isfinite(y)
    use = keep & finite
    if use.sum() < 3:
        raise BrainalignError(f"only {int(use.sum())} words have a finite surprisal and reading time; need >= 3.")
    xs, ys = x[use], y[use]
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        raise BrainalignError("surprisal or reading time is constant over the scored words: r is undefined.")
    xc, yc = xs - xs.mean(), ys - ys.mean()
    r = float(xc @ yc / np.sqrt((xc @ xc) * (yc @ yc)))
    raw = abs(r)
    return Futrell2018Score(raw, float(ceiling), raw / float(ceiling), int(use.sum()), int((keep & ~finite).sum()))


def spillover_design(table: pd.DataFrame, columns: Sequence[str], spillover: int, group: str) -> pd.DataFrame:
    """Each column and its values ``1..spillover`` words back, within each group.

    Parameters
    ----------
    table : DataFrame
        One row per word, in reading order within each group.
    columns : sequence of str
    spillover : int
        Previous words whose values enter (0: none).
    group : str
        Column of the story; lags never cross stories (NaN at a story's start).

    Returns
    -------
    DataFrame
        Columns ``<name>`` and ``<name>_lag<k>``.
    """
    out = {}
    grouped = table.groupby(group, sort=False)
    for name in columns:
        out[name] = table[name].astype(np.float64)
        for k in range(1, spillover + 1):
            out[f"{name}_lag{k}"] = grouped[name].shift(k).astype(np.float64)
    return pd.DataFrame(out, index=table.index)


def _lag_index(groups: np.ndarray, spillover: int) -> np.ndarray:
    """Row ``k`` words back within the group, -1 where it would cross a group start; shape (spillover + 1, n)."""
    n = len(groups)
    index = np.full((spillover + 1, n), -1)
    index[0] = np.arange(n)
    for k in range(1, spillover + 1):
        same = np.zeros(n, dtype=bool)
        same[k:] = groups[k:] == groups[:-k]
        # Groups are contiguous, so equal labels k rows apart mean no boundary in between.
        index[k, same] = np.flatnonzero(same) - k
    return index


def _lagged(values: np.ndarray, lag_index: np.ndarray) -> np.ndarray:
    """``values`` and its lags as columns (NaN where a lag crosses a group start)."""
    out = np.where(lag_index >= 0, values[np.maximum(lag_index, 0)], np.nan)
    return out.T


@dataclass(frozen=True)
class RegressionGain:
    """Held-out gain of adding surprisal to a reading-time regression.

    Attributes
    ----------
    delta_loglik : float
        Mean held-out Gaussian log-likelihood per word, full minus baseline (nats/word).
    delta_r2 : float
        Held-out R² of the full model minus that of the baseline (pooled over folds).
    r2_baseline, r2_full : float
    p_value : float
        Permutation p of ``delta_loglik`` (surprisal permuted within stories):
        ``(1 + #{null >= observed}) / (1 + n_permutations)``; NaN without permutations.
    null : ndarray of shape (n_permutations,)
    n_words : int
        Words in the regression (sentence-initial and incomplete rows dropped).
    per_group : DataFrame
        Per held-out story: ``group``, ``n_words``, ``delta_loglik``, ``delta_r2``.
    """

    delta_loglik: float
    delta_r2: float
    r2_baseline: float
    r2_full: float
    p_value: float
    null: np.ndarray
    n_words: int
    per_group: pd.DataFrame


class _FoldedOLS:
    """Leave-one-group-out OLS with an intercept, solved from per-group Gram matrices.

    The training Gram matrix of each fold is the total minus the held-out
    group's, so a permutation costs a few small products, not a refit per fold
    over every word. Columns are standardised first (OLS predictions do not
    change; the normal equations stay well conditioned).
    """

    def __init__(self, y: np.ndarray, groups: np.ndarray):
        self.y = y
        self.labels, self.codes = np.unique(groups, return_inverse=True)
        self.members = [np.flatnonzero(self.codes == k) for k in range(len(self.labels))]

    def fit(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Held-out residuals, Gaussian log-likelihoods and training means per word."""
        sd = X.std(0)
        Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
        A = np.column_stack([np.ones(len(self.y)), Z])
        y = self.y
        grams = np.stack([A[m].T @ A[m] for m in self.members])
        cross = np.stack([A[m].T @ y[m] for m in self.members])
        sq = np.array([y[m] @ y[m] for m in self.members])
        sums = np.array([y[m].sum() for m in self.members])
        counts = np.array([len(m) for m in self.members])
        resid = np.empty_like(y)
        loglik = np.empty_like(y)
        train_mean = np.empty_like(y)
        for k, test in enumerate(self.members):
            G = grams.sum(0) - grams[k]
            b = cross.sum(0) - cross[k]
            coef = np.linalg.lstsq(G, b, rcond=None)[0]
            n_train = counts.sum() - counts[k]
            # Maximum-likelihood noise variance of the training residuals.
            var = (sq.sum() - sq[k] - 2 * coef @ b + coef @ G @ coef) / n_train
            resid[test] = y[test] - A[test] @ coef
            loglik[test] = -0.5 * np.log(2 * np.pi * var) - resid[test] ** 2 / (2 * var)
            train_mean[test] = (sums.sum() - sums[k]) / n_train
        return resid, loglik, train_mean


def regression_gain(table: pd.DataFrame, predictor: str, *, target: str = "rt",
                    baseline: Sequence[str] = ("length", "log_frequency", "position"),
                    spillover: int = 2, group: str = "story", initial: str | None = "sentence_initial",
                    log_rt: bool = False, n_permutations: int = 1000,
                    random_state: int | np.random.Generator | None = 0) -> RegressionGain:
    """Held-out gain of ``predictor`` (surprisal) over a baseline reading-time regression.

    ``RT ~ baseline (+ spillover) + predictor (+ spillover)`` against
    ``RT ~ baseline (+ spillover)``, ordinary least squares with an intercept,
    fitted on all stories but one and evaluated on the held-out story, for
    every story.

    Parameters
    ----------
    table : DataFrame
        One row per word in reading order within each story, with the columns
        ``target``, ``predictor``, ``baseline``, ``group`` and ``initial``.
    predictor : str
        Column of the model's surprisal (bits).
    target : str, default="rt"
        Reading time (ms).
    baseline : sequence of str
        Baseline predictors (defaults: letters, log unigram frequency, word index).
    spillover : int, default=2
        Previous words whose predictor values enter (for the baseline and the predictor).
    group : str, default="story"
        Cross-validation groups (leave one out) and the permutation strata.
    initial : str or None, default="sentence_initial"
        Boolean column of rows to drop (their lags are still used by the next words).
    log_rt : bool, default=False
        Regress log reading time.
    n_permutations : int, default=1000
    random_state : int, Generator or None, default=0

    Returns
    -------
    RegressionGain
    """
    needed = [target, predictor, group, *baseline] + ([initial] if initial else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise BrainalignError(f"the word table has no column(s) {missing}; it has {list(table.columns)}.")
    story = table[group].to_numpy()
    changes = int(np.sum(story[1:] != story[:-1])) if len(story) else 0
    if changes + 1 != len(pd.unique(story)):
        raise BrainalignError(f"the words of each '{group}' must be contiguous and in reading order.")
    base_X = spillover_design(table, baseline, spillover, group)
    pred_X = spillover_design(table, [predictor], spillover, group)
    y = table[target].to_numpy(np.float64)
    if log_rt:
        if np.any(y[np.isfinite(y)] <= 0):
            raise BrainalignError(f"log_rt needs positive '{target}' values.")
        y = np.log(y)
    rows = np.isfinite(y) & np.isfinite(base_X.to_numpy()).all(1) & np.isfinite(pred_X.to_numpy()).all(1)
    if initial:
        rows &= ~table[initial].to_numpy(bool)
    groups = table[group].to_numpy()[rows]
    labels = pd.unique(groups)
    if len(labels) < 2:
        raise BrainalignError(f"regression_gain needs >= 2 values of '{group}' for held-out folds, got {len(labels)}.")
    yr = y[rows]
    ols = _FoldedOLS(yr, groups)
    Xb = base_X.to_numpy()[rows]
    res_b, ll_b, mean_b = ols.fit(Xb)
    sst = float(np.sum((yr - mean_b) ** 2))

    def full_fit(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        res_f, ll_f, _ = ols.fit(np.column_stack([Xb, pred[rows]]))
        return res_f, ll_f

    res_f, ll_f = full_fit(pred_X.to_numpy())
    per = []
    for g in labels:
        m = groups == g
        sst_g = float(np.sum((yr[m] - mean_b[m]) ** 2))
        per.append({"group": g, "n_words": int(m.sum()), "delta_loglik": float(np.mean(ll_f[m] - ll_b[m])),
                    "delta_r2": float((np.sum(res_b[m] ** 2) - np.sum(res_f[m] ** 2)) / sst_g)})
    observed = float(np.mean(ll_f - ll_b))
    rng = check_random_state(random_state)
    null = np.empty(int(n_permutations))
    if n_permutations:
        lag_index = _lag_index(table[group].to_numpy(), spillover)
        values = table[predictor].to_numpy(np.float64)
        # Missing values stay where they are, so the scored rows stay the same.
        by_story = [np.flatnonzero((story == g) & np.isfinite(values)) for g in pd.unique(story)]
        for i in range(int(n_permutations)):
            shuffled = values.copy()
            for idx in by_story:
                shuffled[idx] = values[rng.permutation(idx)]
            _, ll_p = full_fit(_lagged(shuffled, lag_index))
            null[i] = np.mean(ll_p - ll_b)
    p_value = float((1 + np.sum(null >= observed)) / (1 + n_permutations)) if n_permutations else float("nan")
    r2_b = 1 - float(np.sum(res_b ** 2)) / sst
    r2_f = 1 - float(np.sum(res_f ** 2)) / sst
    return RegressionGain(observed, r2_f - r2_b, r2_b, r2_f, p_value, null, int(rows.sum()), pd.DataFrame(per))
