"""Brain-Score Language 2.3.0's alignment metrics, reproduced on plain arrays.

Each function here reproduces one metric of Brain-Score Language 2.3.0
(``brainscore_language.metrics``) number for number — same splits, same
seeds, same regression, same correlation — so that a score computed with
brainalign can be compared with a published Brain-Score value. The functions
take plain arrays, whose rows are the stimuli in the order of the neural
recordings (Brain-Score builds its splits over the rows of the *neural*
assembly, in its stored order), and return a :class:`BrainScoreResult`.

Schemes
-------
``linear_pearsonr`` (the "linear-shuffle" scheme)
    ``ShuffleSplit(n_splits=10, train_size=0.9, random_state=1)`` over
    stimuli; ordinary least squares with an intercept (scikit-learn's
    ``LinearRegression``: the minimum-norm solution when the features outnumber
    the training stimuli; its singular-value cutoff changed in scikit-learn
    1.9, see the ``rcond`` parameter).
``ridge_pearsonr``
    ``GroupKFold(n_splits=10, shuffle=True, random_state=1234)`` over the
    given groups (story for Pereira2018, story with 8 splits for Blank2014,
    sentence for Fedorenko2016); without groups Brain-Score falls back to
    ``ShuffleSplit(10, train_size=0.9, random_state=1)``. The regression is
    ridge with an intercept, float64, alphas ``logspace(-3, 3, 7)`` and **one
    alpha shared by all targets**, chosen by the efficient leave-one-out
    squared error averaged over samples and targets (scikit-learn's
    ``RidgeCV`` with ``gcv_mode`` auto and ``alpha_per_target=False``). No
    scaling of the features or the targets.
``cka_score`` / ``rdm_score``
    No fitting: ``ShuffleSplit(n_splits=10, test_size=0.9, random_state=1)``;
    each 90 % *test* subset is scored and the ten values averaged. CKA is
    linear CKA, ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with
    ``HSIC(K, L) = sum(HKH * HLH)``; RDM is ``1 - Pearson`` between stimulus
    rows, compared by the Spearman correlation of the upper triangles.

For the regression schemes, each split's per-neuroid score is the Pearson r
between prediction and truth on the test stimuli, with ``1e-8`` added to each
centred column norm (Brain-Score's batched correlation); the split's score is
the median over neuroids and the raw score is the mean over splits.

Every scheme refuses splits whose test set holds fewer than
:data:`MIN_TEST_SIZE` (3) stimuli, where Brain-Score would return a number:
on 2 stimuli a Pearson r is +1 or -1 and a linear CKA 1 whatever the data,
so with the default ``train_size=0.9`` fewer than 21 stimuli (test splits of
2) gave raw scores of +-0.4 to 0.6 on pure noise. Brain-Score's language
benchmarks have tens of stimuli per test split, so they are not affected.

Several layers
--------------
``model_features`` may be one array or several (a mapping from layer name to
array, or a sequence). ``layers_mode="per_layer"`` (Brain-Score 2.3.0's
benchmarks) scores every layer on its own; the raw score is the mean of the
layers' raw scores and the normalized score the mean of the layers' clipped
normalized scores. ``layers_mode="joint"`` (the code of the SUMA paper's era)
concatenates the units of all layers and scores them once.

Normalization
-------------
:func:`normalize` divides by the ceiling and clips to [0, 1]
(``ceiling_normalize``), keeping the raw and the unclipped value.

The split generators (:func:`shuffle_split`, :func:`group_kfold_shuffle`)
are written here, not imported from scikit-learn, and give the same indices
as ``sklearn.model_selection.ShuffleSplit`` and ``GroupKFold(shuffle=True)``
(scikit-learn >= 1.6) for the same seeds, so this module needs only numpy and
scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d, check_int, check_option
from brainalign.metrics.cka import linear_cka
from brainalign.metrics.rsa import rsa_score

__all__ = [
    "DEFAULT_RIDGE_ALPHAS",
    "LSTSQ_RCOND_EPS",
    "MIN_TEST_SIZE",
    "LSTSQ_RCOND_SKLEARN_1_9",
    "BrainScoreResult",
    "NormalizedScore",
    "cka_score",
    "group_kfold_shuffle",
    "linear_pearsonr",
    "normalize",
    "pearsonr_eps",
    "rdm_score",
    "ridge_loo_shared_alpha",
    "ridge_pearsonr",
    "shuffle_split",
]

#: Brain-Score's ridge grid, ``logspace(-3, 3, 7)``.
DEFAULT_RIDGE_ALPHAS: np.ndarray = np.logspace(-3, 3, 7)
DEFAULT_RIDGE_ALPHAS.flags.writeable = False

#: Added to each centred column norm in Brain-Score's batched Pearson r.
PEARSON_EPS = 1e-8

#: Fewest stimuli a test split may hold. On 2 stimuli a Pearson r is +1 or -1
#: (and a linear CKA 1, a Spearman r of RDMs undefined) whatever the data, so
#: each split's score is a coin flip: 12 to 20 stimuli of pure noise give
#: ``linear_pearsonr`` raw scores of +-0.4 to 0.6. From 3 stimuli on the
#: score depends on the data, though it stays noisy: the null standard
#: deviation of a split's r is about ``1 / sqrt(n_test - 1)``.
MIN_TEST_SIZE = 3

LAYERS_MODES = ("per_layer", "joint")

Splits = list[tuple[np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class NormalizedScore:
    """A raw score divided by a ceiling.

    Attributes
    ----------
    score : float
        ``raw / ceiling`` clipped to [0, 1] (NaN stays NaN).
    raw : float
        The raw score.
    ceiling : float
        The ceiling (> 0).
    unclipped : float
        ``raw / ceiling`` before clipping (Brain-Score's
        ``original_out_of_range_score`` when it lies outside [0, 1]).
    """

    score: float
    raw: float
    ceiling: float
    unclipped: float


@dataclass(frozen=True)
class BrainScoreResult:
    """Outcome of one Brain-Score metric.

    Attributes
    ----------
    metric : str
        ``"linear_pearsonr"``, ``"ridge_pearsonr"``, ``"cka"`` or ``"rdm"``.
    raw : float
        The raw score: the mean of ``split_scores`` over splits; for several
        layers scored ``"per_layer"``, the mean of the layers' raw scores.
    split_scores : ndarray of shape (n_splits,) or None
        Per split: the median over neuroids of ``neuroid_scores`` (regression
        metrics) or the CKA / RDM similarity of the test subset. None for
        ``"per_layer"`` results over several layers (see ``layers``).
    neuroid_scores : ndarray of shape (n_splits, n_neuroids) or None
        Per split and neuroid, the Pearson r of prediction and truth on the
        test stimuli (regression metrics only).
    alphas : ndarray of shape (n_splits,) or None
        The ridge penalty chosen in each split (``ridge_pearsonr`` only).
    splits : list of (train, test) index arrays or None
        The splits used, as row indices of the inputs. CKA and RDM score the
        ``test`` subsets only.
    ceiling : float or None
        The ceiling passed in, if any.
    score : float or None
        The normalized score, clipped to [0, 1] (None without a ceiling). For
        ``"per_layer"`` over several layers, the mean of the layers' clipped
        normalized scores.
    unclipped : float or None
        ``raw / ceiling`` before clipping; for ``"per_layer"`` over several
        layers, the mean of the layers' unclipped values.
    layers_mode : str
        ``"single"`` for one feature array, else ``"per_layer"`` or ``"joint"``.
    layers : dict of str to BrainScoreResult or None
        One result per layer for ``"per_layer"`` over several layers.
    """

    metric: str
    raw: float
    split_scores: np.ndarray | None = None
    neuroid_scores: np.ndarray | None = None
    alphas: np.ndarray | None = None
    splits: Splits | None = None
    ceiling: float | None = None
    score: float | None = None
    unclipped: float | None = None
    layers_mode: str = "single"
    layers: dict[str, BrainScoreResult] | None = field(default=None, repr=False)


def normalize(raw: float, ceiling: float) -> NormalizedScore:
    """Ceiling-normalize a raw score as Brain-Score does (clip to [0, 1], keep raw).

    Parameters
    ----------
    raw : float
        Raw score.
    ceiling : float
        Noise ceiling, > 0.

    Returns
    -------
    NormalizedScore
        ``score = clip(raw / ceiling, 0, 1)``, plus ``raw``, ``ceiling`` and
        the ``unclipped`` ratio.

    Notes
    -----
    Brain-Score divides by any ceiling (0 gives ±inf, clipped to 0 or 1);
    here a ceiling that is not a positive number is an error, since the ratio
    then means nothing.
    """
    raw = float(raw)
    ceiling = float(ceiling)
    if not (ceiling > 0) or not math.isfinite(ceiling):
        raise BrainalignError(f"'ceiling' must be a finite number > 0, got {ceiling!r}.")
    unclipped = raw / ceiling
    score = unclipped if math.isnan(unclipped) else min(max(unclipped, 0.0), 1.0)
    return NormalizedScore(score=score, raw=raw, ceiling=ceiling, unclipped=unclipped)


# --------------------------------------------------------------------------- splits


def _check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise BrainalignError(
            f"'random_state' must be a non-negative int (Brain-Score seeds numpy's legacy "
            f"RandomState), got {value!r}."
        )
    return int(value)


def _split_sizes(n: int, train_size: float | None, test_size: float | None) -> tuple[int, int]:
    """scikit-learn's ShuffleSplit size rule: ceil(test * n), floor(train * n)."""

    def kind(name: str, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool):
            raise BrainalignError(f"'{name}' must be a float in (0, 1) or an int, got {v!r}.")
        if isinstance(v, (int, np.integer)):
            if not 0 < v < n:
                raise BrainalignError(f"'{name}' must be in [1, {n - 1}] as an int, got {v}.")
            return "i"
        if isinstance(v, (float, np.floating)):
            if not 0 < v < 1:
                raise BrainalignError(f"'{name}' must be in (0, 1) as a float, got {v}.")
            return "f"
        raise BrainalignError(f"'{name}' must be a float in (0, 1) or an int, got {v!r}.")

    if train_size is None and test_size is None:
        test_size = 0.1
    k_train, k_test = kind("train_size", train_size), kind("test_size", test_size)
    n_test = math.ceil(test_size * n) if k_test == "f" else (int(test_size) if k_test == "i" else None)
    n_train = math.floor(train_size * n) if k_train == "f" else (int(train_size) if k_train == "i" else None)
    if n_train is None:
        n_train = n - n_test
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n or n_train <= 0 or n_test <= 0:
        raise BrainalignError(
            f"train_size={train_size!r} and test_size={test_size!r} give {n_train} training and "
            f"{n_test} test samples out of {n}; both must be >= 1 and sum to at most {n}."
        )
    return n_train, n_test


def shuffle_split(
    n_samples: int,
    n_splits: int = 10,
    *,
    train_size: float | None = None,
    test_size: float | None = None,
    random_state: int = 1,
) -> Splits:
    """Random train/test splits, index for index as scikit-learn's ``ShuffleSplit``.

    One ``numpy.random.RandomState(random_state)`` draws a permutation of the
    samples per split; the first ``n_test`` indices are the test set, the next
    ``n_train`` the training set. ``n_test = ceil(test_size * n)`` and
    ``n_train = floor(train_size * n)`` for floats; a missing size is the
    complement of the other (both missing: ``test_size=0.1``).

    Parameters
    ----------
    n_samples : int
        Number of samples (stimuli), >= 2.
    n_splits : int, default=10
    train_size, test_size : float in (0, 1), int or None
    random_state : int, default=1

    Returns
    -------
    splits : list of (train, test)
        Index arrays of shapes (n_train,) and (n_test,), in permutation order
        (not sorted), as scikit-learn yields them.
    """
    n = check_int("n_samples", n_samples, 2)
    n_splits = check_int("n_splits", n_splits, 1)
    n_train, n_test = _split_sizes(n, train_size, test_size)
    rng = np.random.RandomState(_check_seed(random_state))
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((perm[n_test : n_test + n_train], perm[:n_test]))
    return out


def group_kfold_shuffle(groups: ArrayLike, n_splits: int = 10, *, random_state: int = 1234) -> Splits:
    """K folds of whole groups, as scikit-learn's ``GroupKFold(shuffle=True)``.

    The distinct group labels are **sorted** (``numpy.unique``), permuted by
    ``numpy.random.RandomState(random_state)`` and cut into ``n_splits``
    consecutive chunks of near-equal numbers of groups (``numpy.array_split``);
    fold ``k`` tests every sample whose label is in chunk ``k``. Because the
    labels are sorted first, string labels (``'story_10'`` before
    ``'story_2'``) give different folds from the same stories numbered as
    integers.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Group label of each sample (story, sentence, ...).
    n_splits : int, default=10
        Number of folds, at most the number of distinct groups.
    random_state : int, default=1234

    Returns
    -------
    splits : list of (train, test)
        Sorted index arrays; the test sets partition the samples.
    """
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.shape[0] < 2:
        raise BrainalignError(
            f"'groups' must be 1-D with one label per sample (>= 2 samples), got shape {labels.shape}."
        )
    n_splits = check_int("n_splits", n_splits, 2)
    unique = np.unique(labels)
    if n_splits > unique.shape[0]:
        raise BrainalignError(
            f"'n_splits' ({n_splits}) must not exceed the number of distinct groups "
            f"({unique.shape[0]})."
        )
    rng = np.random.RandomState(_check_seed(random_state))
    shuffled = unique[rng.permutation(unique.shape[0])]
    indices = np.arange(labels.shape[0])
    out = []
    for chunk in np.array_split(shuffled, n_splits):
        test_mask = np.isin(labels, chunk)
        out.append((indices[~test_mask], indices[test_mask]))
    return out


# --------------------------------------------------------------------------- regression
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
    Everything is float64; nothing is scaled.

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
    n = X.shape[0]
    x_mean = X.mean(axis=0)
    y_mean = Y.mean(axis=0)
    Xc = X - x_mean
    Yc = Y - y_mean
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    s2 = s * s
    UtY = U.T @ Yc
    U2 = U * U
    loo_mse = np.empty(alphas.shape[0])
    for k, alpha in enumerate(alphas):
        shrink = s2 / (s2 + alpha)
        resid = Yc - U @ (shrink[:, None] * UtY)
        leverage = 1.0 / n + U2 @ shrink
        loo = resid / (1.0 - leverage)[:, None]
        loo_mse[k] = np.mean(loo * loo)
    best = int(np.argmin(loo_mse))  # first minimum, as a strict ">" over the grid
    alpha = float(alphas[best])
    coef = Vt.T @ ((s / (s2 + alpha))[:, None] * UtY)
    intercept = y_mean - x_mean @ coef
    return coef, intercept, alpha, loo_mse


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


# --------------------------------------------------------------------------- inputs
def _layers(model_features: Any) -> dict[str, np.ndarray] | None:
    """A dict of layers if several arrays were given, else None."""
    if isinstance(model_features, Mapping):
        items = list(model_features.items())
    elif (
        isinstance(model_features, (list, tuple))
        and model_features
        and all(isinstance(f, np.ndarray) and f.ndim == 2 for f in model_features)
    ):
        # A list of 2-D arrays is several layers; a nested list of numbers is one array.
        items = [(str(i), f) for i, f in enumerate(model_features)]
    else:
        return None
    if not items:
        raise BrainalignError("'model_features' holds no layers.")
    return {str(k): check_2d(v, f"model_features[{k!r}]", "units") for k, v in items}


def _pair(model_features: Any, neural: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    X = check_2d(model_features, "model_features", "units")
    Y = check_2d(neural, "neural", "neuroids")
    if X.shape[0] != Y.shape[0]:
        raise BrainalignError(
            f"'model_features' and 'neural' must have one row per stimulus, in the same order; got "
            f"{X.shape[0]} and {Y.shape[0]} rows (shapes {X.shape} and {Y.shape})."
        )
    if X.shape[0] < 3:
        raise BrainalignError(f"At least 3 stimuli are needed, got {X.shape[0]}.")
    return X, Y


def _with_layers(
    metric: str,
    model_features: Any,
    neural: ArrayLike,
    layers_mode: str,
    ceiling: float | None,
    score_one: Callable[[np.ndarray, np.ndarray], BrainScoreResult],
) -> BrainScoreResult:
    check_option("layers_mode", layers_mode, LAYERS_MODES)
    if ceiling is not None:
        normalize(0.0, ceiling)  # validate early
    layers = _layers(model_features)

    def finish(result: BrainScoreResult, mode: str) -> BrainScoreResult:
        if ceiling is None:
            return BrainScoreResult(**{**result.__dict__, "layers_mode": mode})
        norm = normalize(result.raw, ceiling)
        return BrainScoreResult(
            **{**result.__dict__, "layers_mode": mode, "ceiling": norm.ceiling,
               "score": norm.score, "unclipped": norm.unclipped}
        )

    if layers is None:
        return finish(score_one(*_pair(model_features, neural)), "single")
    if len(layers) == 1 or layers_mode == "joint":
        rows = {v.shape[0] for v in layers.values()}
        if len(rows) > 1:
            raise BrainalignError(
                f"All layers of 'model_features' must have the same rows, got "
                f"{ {k: v.shape for k, v in layers.items()} }."
            )
        joint = np.concatenate(list(layers.values()), axis=1)
        return finish(score_one(*_pair(joint, neural)), "joint" if len(layers) > 1 else "single")
    per = {name: finish(score_one(*_pair(feat, neural)), "single") for name, feat in layers.items()}
    raw = float(np.mean([r.raw for r in per.values()]))
    score = unclipped = None
    if ceiling is not None:
        score = float(np.mean([r.score for r in per.values()]))
        unclipped = float(np.mean([r.unclipped for r in per.values()]))
    return BrainScoreResult(
        metric=metric, raw=raw, ceiling=None if ceiling is None else float(ceiling), score=score,
        unclipped=unclipped, layers_mode="per_layer", layers=per,
    )


def _check_test_sizes(metric: str, splits: Splits, n: int, remedy: str) -> None:
    """Refuse splits whose smallest test set has fewer than :data:`MIN_TEST_SIZE` stimuli."""
    smallest = min(test.size for _, test in splits)
    if smallest < MIN_TEST_SIZE:
        raise BrainalignError(
            f"{metric}: a test split holds {smallest} of the {n} stimuli, fewer than MIN_TEST_SIZE = "
            f"{MIN_TEST_SIZE}: on 2 stimuli a split's score says nothing about the data (a Pearson r is +1 "
            f"or -1, a linear CKA 1), so the result would be noise. {remedy}"
        )


def _regression_result(
    metric: str,
    X: np.ndarray,
    Y: np.ndarray,
    splits: Splits,
    fit: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float | None]],
    remedy: str,
) -> BrainScoreResult:
    _check_test_sizes(metric, splits, X.shape[0], remedy)
    neuroid_scores = np.empty((len(splits), Y.shape[1]))
    alphas = np.full(len(splits), np.nan)
    for k, (train, test) in enumerate(splits):
        coef, intercept, alpha = fit(X[train], Y[train])
        prediction = X[test] @ coef + intercept
        neuroid_scores[k] = pearsonr_eps(prediction, Y[test])
        if alpha is not None:
            alphas[k] = alpha
    with np.errstate(all="ignore"):
        split_scores = np.nanmedian(neuroid_scores, axis=1)
        raw = float(np.nanmean(split_scores))
    return BrainScoreResult(
        metric=metric, raw=raw, split_scores=split_scores, neuroid_scores=neuroid_scores,
        alphas=None if np.all(np.isnan(alphas)) else alphas, splits=splits,
    )


# --------------------------------------------------------------------------- metrics
def linear_pearsonr(
    model_features: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike],
    neural: ArrayLike,
    *,
    splits: int = 10,
    train_size: float = 0.9,
    random_state: int = 1,
    rcond: float = LSTSQ_RCOND_SKLEARN_1_9,
    layers_mode: str = "per_layer",
    ceiling: float | None = None,
) -> BrainScoreResult:
    """Brain-Score's ``linear_pearsonr`` (the "linear-shuffle" scheme).

    ``ShuffleSplit(n_splits=splits, train_size=train_size,
    random_state=random_state)`` over the stimuli; per split, least squares
    with intercept on the training stimuli (minimum-norm when rank
    deficient), Pearson r per neuroid on the test stimuli (:func:`pearsonr_eps`),
    median over neuroids; raw = mean over splits.

    Parameters
    ----------
    model_features : array-like of shape (n_stimuli, n_units), or a mapping / sequence of them
        Model activations, one row per stimulus in the order of ``neural``.
        Several arrays are several layers (see ``layers_mode``).
    neural : array-like of shape (n_stimuli, n_neuroids)
        Responses (voxels, fROIs, electrodes), rows in their stored order.
    splits : int, default=10
    train_size : float, default=0.9
    random_state : int, default=1
    rcond : float, default=1e-6
        Singular values of the centred training features below
        ``rcond * s_max`` count as zero. Brain-Score calls scikit-learn's
        ``LinearRegression()``, whose cutoff depends on the scikit-learn
        version: ``1e-6`` from 1.9 on (``LinearRegression(tol=1e-6)``, what
        ``pip install brainscore-language==2.3.0`` gets today), machine
        epsilon (:data:`LSTSQ_RCOND_EPS`) before 1.9, so scores computed
        with an older scikit-learn used that. The two differ when the features are ill-conditioned,
        as language-model activations often are. With more units than
        training stimuli the centred features have a null direction whose
        singular value is itself near machine epsilon, so the epsilon cutoff
        is then sensitive to rounding.
    layers_mode : {"per_layer", "joint"}, default="per_layer"
        How several layers are scored (module docstring).
    ceiling : float or None
        If given, the result is also normalized (:func:`normalize`).

    Returns
    -------
    BrainScoreResult
        ``split_scores`` (n_splits,), ``neuroid_scores`` (n_splits, n_neuroids).

    Raises
    ------
    BrainalignError
        If a test split holds fewer than :data:`MIN_TEST_SIZE` stimuli
        (module docstring), among the checks of the inputs.
    """
    if not (isinstance(rcond, (int, float, np.floating)) and 0 <= rcond < 1):
        raise BrainalignError(f"'rcond' must be a float in [0, 1), got {rcond!r}.")

    def score_one(X: np.ndarray, Y: np.ndarray) -> BrainScoreResult:
        sp = shuffle_split(X.shape[0], splits, train_size=train_size, random_state=random_state)
        return _regression_result(
            "linear_pearsonr", X, Y, sp, lambda a, b: (*_ols_min_norm(a, b, float(rcond)), None),
            f"Use more stimuli, or a smaller train_size (now {train_size!r}).",
        )

    return _with_layers("linear_pearsonr", model_features, neural, layers_mode, ceiling, score_one)


def ridge_pearsonr(
    model_features: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike],
    neural: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    splits: int = 10,
    random_state: int | None = None,
    alphas: ArrayLike = DEFAULT_RIDGE_ALPHAS,
    layers_mode: str = "per_layer",
    ceiling: float | None = None,
) -> BrainScoreResult:
    """Brain-Score's ``ridge_pearsonr``: shared-alpha leave-one-out ridge.

    With ``groups`` (story for Pereira2018 and Blank2014, sentence for
    Fedorenko2016): ``GroupKFold(n_splits=splits, shuffle=True,
    random_state=1234)`` (:func:`group_kfold_shuffle`; Blank2014 uses
    ``splits=8``). Without: Brain-Score's fallback ``ShuffleSplit(splits,
    train_size=0.9, random_state=1)``. Per split, :func:`ridge_loo_shared_alpha`
    on the training stimuli, Pearson r per neuroid on the test stimuli
    (:func:`pearsonr_eps`), median over neuroids; raw = mean over splits.

    Parameters
    ----------
    model_features : array-like of shape (n_stimuli, n_units), or a mapping / sequence of them
        See :func:`linear_pearsonr`.
    neural : array-like of shape (n_stimuli, n_neuroids)
    groups : array-like of shape (n_stimuli,) or None
        Group label per stimulus. Labels are sorted before shuffling, so pass
        them exactly as Brain-Score stores them (strings stay strings).
    splits : int, default=10
    random_state : int or None
        None uses Brain-Score's seed for the scheme: 1234 with groups, 1
        without.
    alphas : array-like of shape (n_alphas,), default=logspace(-3, 3, 7)
    layers_mode : {"per_layer", "joint"}, default="per_layer"
    ceiling : float or None

    Returns
    -------
    BrainScoreResult
        Also ``alphas`` (n_splits,): the penalty chosen in each split.

    Raises
    ------
    BrainalignError
        If a test split holds fewer than :data:`MIN_TEST_SIZE` stimuli
        (module docstring), among the checks of the inputs.
    """
    alphas = np.asarray(alphas, dtype=np.float64)

    def score_one(X: np.ndarray, Y: np.ndarray) -> BrainScoreResult:
        if groups is None:
            seed = 1 if random_state is None else random_state
            sp = shuffle_split(X.shape[0], splits, train_size=0.9, random_state=seed)
            remedy = "Use more stimuli (at least 21 without groups)."
        else:
            g = np.asarray(groups)
            if g.shape != (X.shape[0],):
                raise BrainalignError(
                    f"'groups' must have one label per stimulus, shape ({X.shape[0]},), got {g.shape}."
                )
            seed = 1234 if random_state is None else random_state
            sp = group_kfold_shuffle(g, splits, random_state=seed)
            remedy = f"Use fewer splits (now {splits}) or larger groups."

        def fit(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            coef, intercept, alpha, _ = ridge_loo_shared_alpha(a, b, alphas)
            return coef, intercept, alpha

        return _regression_result("ridge_pearsonr", X, Y, sp, fit, remedy)

    return _with_layers("ridge_pearsonr", model_features, neural, layers_mode, ceiling, score_one)


def _test_only(
    metric: str,
    model_features: Any,
    neural: ArrayLike,
    similarity: Callable[[np.ndarray, np.ndarray], float],
    splits: int,
    test_size: float,
    random_state: int,
    layers_mode: str,
    ceiling: float | None,
) -> BrainScoreResult:
    def score_one(X: np.ndarray, Y: np.ndarray) -> BrainScoreResult:
        sp = shuffle_split(X.shape[0], splits, test_size=test_size, random_state=random_state)
        _check_test_sizes(metric, sp, X.shape[0], f"Use more stimuli, or a larger test_size (now {test_size!r}).")
        values = np.array([similarity(X[test], Y[test]) for _, test in sp])
        with np.errstate(all="ignore"):
            raw = float(np.nanmean(values))
        return BrainScoreResult(metric=metric, raw=raw, split_scores=values, splits=sp)

    return _with_layers(metric, model_features, neural, layers_mode, ceiling, score_one)


def cka_score(
    model_features: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike],
    neural: ArrayLike,
    *,
    splits: int = 10,
    test_size: float = 0.9,
    random_state: int = 1,
    layers_mode: str = "per_layer",
    ceiling: float | None = None,
) -> BrainScoreResult:
    """Brain-Score's cross-validated linear CKA (``cka``), without fitting.

    ``ShuffleSplit(n_splits=splits, test_size=test_size,
    random_state=random_state)``; for each split, linear CKA between the
    model's and the neural test rows,
    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X X^T``,
    ``L = Y Y^T``, ``H`` the centring matrix and ``HSIC(K, L) = sum(HKH * HLH)``
    (equal to ``||Xc^T Yc||_F^2`` on column-centred data; the cheaper form is
    used). Raw = mean over splits.

    Parameters
    ----------
    model_features : array-like of shape (n_stimuli, n_units), or a mapping / sequence of them
    neural : array-like of shape (n_stimuli, n_neuroids)
    splits : int, default=10
    test_size : float, default=0.9
    random_state : int, default=1
    layers_mode : {"per_layer", "joint"}, default="per_layer"
    ceiling : float or None

    Returns
    -------
    BrainScoreResult
        ``split_scores`` (n_splits,): the CKA of each 90 % test subset.

    Raises
    ------
    BrainalignError
        If a test split holds fewer than :data:`MIN_TEST_SIZE` stimuli
        (module docstring), among the checks of the inputs.
    """
    return _test_only("cka", model_features, neural, linear_cka, splits, test_size, random_state,
                      layers_mode, ceiling)


def rdm_score(
    model_features: ArrayLike | Mapping[str, ArrayLike] | Sequence[ArrayLike],
    neural: ArrayLike,
    *,
    splits: int = 10,
    test_size: float = 0.9,
    random_state: int = 1,
    layers_mode: str = "per_layer",
    ceiling: float | None = None,
) -> BrainScoreResult:
    """Brain-Score's cross-validated RDM similarity (``rdm``), without fitting.

    ``ShuffleSplit(n_splits=splits, test_size=test_size,
    random_state=random_state)``; for each split, the RDMs
    ``1 - corrcoef(rows)`` (stimulus by stimulus) of the model's and the
    neural test rows, compared by the Spearman correlation (average ranks for
    ties) of their upper triangles without the diagonal. Raw = mean over
    splits. A stimulus whose row is constant gives NaN for that split (NaN
    splits are left out of the mean).

    Parameters
    ----------
    model_features : array-like of shape (n_stimuli, n_units), or a mapping / sequence of them
    neural : array-like of shape (n_stimuli, n_neuroids)
    splits : int, default=10
    test_size : float, default=0.9
    random_state : int, default=1
    layers_mode : {"per_layer", "joint"}, default="per_layer"
    ceiling : float or None

    Returns
    -------
    BrainScoreResult
        ``split_scores`` (n_splits,): the RDM similarity of each test subset.

    Raises
    ------
    BrainalignError
        If a test split holds fewer than :data:`MIN_TEST_SIZE` stimuli
        (module docstring), among the checks of the inputs.
    """
    return _test_only("rdm", model_features, neural, rsa_score, splits, test_size, random_state,
                      layers_mode, ceiling)
