"""Alignment metrics on plain arrays: correlations and noise ceilings."""

from .ceilings import analytic_isc, analytic_model_r, isc_ceiling, loso_isc, normalized_score
from .correlation import pearsonr_columns

__all__ = ["pearsonr_columns", "loso_isc", "isc_ceiling", "normalized_score", "analytic_model_r", "analytic_isc"]
