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

# The package's modules, each with one job (none imports another):
#   isc            leave-one-subject-out ISC ceilings, normalized scores, analytic limits
#   split_half     Brain-Score's split-half consistency with the Spearman-Brown correction
#   extrapolation  Brain-Score's subject-pool extrapolation ceiling
#   cache          the on-disk cache of computed ceilings
# DEFAULT_MIN_CEILING is not in __all__ but stays importable from here (pipeline.aggregate uses it).
from .cache import cached_ceiling
from .extrapolation import (
    ExtrapolationResult,
    collect_subject_pool_scores,
    extrapolate_ceiling,
    saturating_curve,
    subject_pool_extrapolation,
)
from .isc import DEFAULT_MIN_CEILING  # noqa: F401
from .isc import (
    analytic_isc,
    analytic_model_r,
    isc_ceiling,
    loso_isc,
    normalized_score,
)
from .split_half import SplitHalfResult, spearman_brown, split_half_consistency

__all__ = [
    "loso_isc",
    "isc_ceiling",
    "normalized_score",
    "analytic_model_r",
    "analytic_isc",
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
