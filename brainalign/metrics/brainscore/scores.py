"""Brain-Score's score functions: linear and ridge Pearson r, CKA and RDM.

Each function takes plain arrays (one or several layers of model features,
and the neural responses), builds Brain-Score's splits, fits or compares on
them and returns a :class:`~brainalign.metrics.brainscore.BrainScoreResult`,
normalized by a ceiling when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d, check_option
from brainalign.metrics.cka import linear_cka
from brainalign.metrics.rsa import rsa_score

from .regression import (
    DEFAULT_RIDGE_ALPHAS,
    LSTSQ_RCOND_SKLEARN_1_9,
    _ols_min_norm,
    pearsonr_eps,
    ridge_loo_shared_alpha,
)
from .results import BrainScoreResult, normalize
from .splits import Splits, _check_test_sizes, group_kfold_shuffle, shuffle_split

LAYERS_MODES = ("per_layer", "joint")


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
