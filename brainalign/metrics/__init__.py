"""Alignment metrics on plain arrays: correlations, ceilings, RSA, CKA, identification, statistics."""

from .ceilings import (
    analytic_isc,
    analytic_model_r,
    isc_ceiling,
    loso_isc,
    normalized_score,
)
from .cka import hsic_linear, linear_cka
from .correlation import pearsonr_columns
from .cv_permutation import refit_shift_test
from .identification import (
    binomial_chance_interval,
    identification_topk,
    retrieval_top1,
    two_way_identification,
)
from .rsa import compare_rdms, rdm, rsa_score, squareform
from .stats import (
    block_permutation_test,
    bootstrap_ci,
    circular_shift_test,
    fdr_correction,
    max_statistic_correction,
    paired_comparison,
)

__all__ = [
    "pearsonr_columns", "loso_isc", "isc_ceiling", "normalized_score", "analytic_model_r", "analytic_isc",
    "linear_cka", "hsic_linear", "rdm", "compare_rdms", "rsa_score", "squareform",
    "identification_topk", "two_way_identification", "retrieval_top1", "binomial_chance_interval",
    "refit_shift_test", "circular_shift_test", "block_permutation_test", "fdr_correction", "max_statistic_correction",
    "bootstrap_ci", "paired_comparison",
]
