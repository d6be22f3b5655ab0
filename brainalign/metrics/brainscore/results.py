"""Results of Brain-Score's metrics, and their normalization by a ceiling.

The frozen records a score function returns (:class:`BrainScoreResult`) and
:func:`normalize`, which divides a raw score by a noise ceiling and clips to
[0, 1] as Brain-Score's ``ceiling_normalize`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from brainalign._validation import BrainalignError

from .splits import Splits


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
