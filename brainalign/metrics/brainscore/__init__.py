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

# The package's modules, each with one job (splits <- results; regression alone; scores uses all three):
#   splits      Brain-Score's ShuffleSplit and GroupKFold(shuffle=True), the minimum test size
#   results     BrainScoreResult, NormalizedScore and normalize
#   regression  leave-one-out ridge, least squares, pearsonr_eps and their constants
#   scores      linear_pearsonr, ridge_pearsonr, cka_score, rdm_score over one or several layers
# PEARSON_EPS, LAYERS_MODES and Splits are not in __all__ but stay importable from here.
from .regression import (  # noqa: F401
    DEFAULT_RIDGE_ALPHAS,
    LSTSQ_RCOND_EPS,
    LSTSQ_RCOND_SKLEARN_1_9,
    PEARSON_EPS,
    pearsonr_eps,
    ridge_loo_shared_alpha,
)
from .results import BrainScoreResult, NormalizedScore, normalize
from .scores import LAYERS_MODES, cka_score, linear_pearsonr, rdm_score, ridge_pearsonr  # noqa: F401
from .splits import MIN_TEST_SIZE, Splits, group_kfold_shuffle, shuffle_split  # noqa: F401

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
