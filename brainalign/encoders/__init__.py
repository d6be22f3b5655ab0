"""Encoders: ridge regression with contiguous (time-series) cross-validation."""

from .cv import ContiguousKFold
from .ridge import RidgeCVEncoder, cross_validated_pearson, ridge_svd_path

__all__ = ["ContiguousKFold", "RidgeCVEncoder", "cross_validated_pearson", "ridge_svd_path"]
