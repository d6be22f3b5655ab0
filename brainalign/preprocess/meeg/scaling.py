"""Per-channel robust scaling of epochs (:class:`RobustScaler`) and clamping (:func:`clamp`).

Steps 5 and 6 of the Défossez et al. (2023) chain: median and interquartile
range fitted on the training epochs, then values clipped at ±20.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import BrainalignError


def _check_epochs_array(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim not in (2, 3):
        raise BrainalignError(
            f"'{name}' must be 3-D (n_epochs, n_channels, n_times) or 2-D (n_channels, n_times), "
            f"got shape {X.shape}."
        )
    if X.size == 0:
        raise BrainalignError(f"'{name}' must not be empty, got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number):
        raise BrainalignError(f"'{name}' must be numeric, got dtype {X.dtype}.")
    return X


class RobustScaler:
    """Per-channel robust scaler: subtract the median, divide by the IQR.

    Défossez et al. (2023) scale each channel by statistics fitted on the
    training epochs; this is scikit-learn's ``RobustScaler`` with channels as
    features and every (epoch, time) pair as a sample.

    Parameters
    ----------
    quantile_range : (float, float)
        Percentiles (0–100) whose difference is the scale; (25, 75) gives the
        interquartile range. Percentiles are interpolated linearly as in
        :func:`numpy.percentile`.

    Attributes
    ----------
    center_ : ndarray of shape (n_channels,), float64
        Median of each channel over epochs and times.
    scale_ : ndarray of shape (n_channels,), float64
        Quantile range of each channel; 1.0 where it is exactly zero (a
        constant channel), so such a channel is only centred. (scikit-learn
        replaces scales below 10 machine epsilons; we keep every non-zero
        scale since M/EEG data in SI units are legitimately tiny, e.g. 1e-13 T.)
    n_channels_ : int
    """

    def __init__(self, quantile_range: tuple[float, float] = (25.0, 75.0)):
        self.quantile_range = quantile_range

    def _check_quantiles(self) -> tuple[float, float]:
        try:
            q_min, q_max = (float(q) for q in self.quantile_range)
        except (TypeError, ValueError):
            raise BrainalignError(
                f"'quantile_range' must be a pair of percentiles, got {self.quantile_range!r}."
            ) from None
        if not 0.0 <= q_min <= q_max <= 100.0:
            raise BrainalignError(
                f"'quantile_range' must satisfy 0 <= low <= high <= 100, got {self.quantile_range!r}."
            )
        return q_min, q_max

    @staticmethod
    def _by_channel(X: np.ndarray) -> np.ndarray:
        """(n_channels, n_samples) view of epochs (n_epochs, n_channels, n_times) or (n_channels, n_times)."""
        if X.ndim == 2:
            return X
        return X.transpose(1, 0, 2).reshape(X.shape[1], -1)

    def fit(self, X: np.ndarray, y: Any = None) -> RobustScaler:
        """Fit the median and quantile range of each channel.

        Parameters
        ----------
        X : ndarray of shape (n_epochs, n_channels, n_times) or (n_channels, n_times)
            Finite data.
        y : ignored

        Returns
        -------
        self
        """
        q_min, q_max = self._check_quantiles()
        X = _check_epochs_array(X)
        by_channel = self._by_channel(X).astype(np.float64, copy=False)
        bad = ~np.isfinite(by_channel).all(axis=1)
        if bad.any():
            raise BrainalignError(
                f"'X' contains NaN or infinite values in channel(s) {np.flatnonzero(bad)[:10].tolist()}."
            )
        self.center_ = np.median(by_channel, axis=1)
        low, high = np.percentile(by_channel, [q_min, q_max], axis=1)
        scale = high - low
        self.scale_ = np.where(scale == 0.0, 1.0, scale)
        self.n_channels_ = X.shape[-2]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` with the fitted statistics.

        Parameters
        ----------
        X : ndarray of shape (n_epochs, n_channels, n_times) or (n_channels, n_times)

        Returns
        -------
        X_scaled : ndarray of the same shape
            ``(X - center_) / scale_`` per channel; float32 input stays
            float32, anything else becomes float64.
        """
        if not hasattr(self, "center_"):
            raise BrainalignError("This RobustScaler is not fitted yet; call 'fit' first.")
        X = _check_epochs_array(X)
        if X.shape[-2] != self.n_channels_:
            raise BrainalignError(
                f"'X' has {X.shape[-2]} channels but the scaler was fitted on {self.n_channels_}."
            )
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        out = (X.astype(np.float64) - self.center_[:, None]) / self.scale_[:, None]
        return out.astype(dtype, copy=False)

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)


def clamp(X: np.ndarray, value: float | None = 20.0) -> np.ndarray:
    """Clip values to ``[-value, value]`` (Défossez et al.: 20, after robust scaling).

    Parameters
    ----------
    X : ndarray
    value : float or None
        Positive bound; None returns ``X`` unchanged (as an array, not copied).

    Returns
    -------
    X_clamped : ndarray of the same shape and dtype
    """
    X = np.asarray(X)
    if value is None:
        return X
    if not (np.isfinite(value) and value > 0):
        raise BrainalignError(f"'value' must be a positive number or None, got {value!r}.")
    return np.clip(X, -value, value)
