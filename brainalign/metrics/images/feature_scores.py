"""Scores on paired network features: two-way identification and correlation distance (MindEye2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError
from brainalign.metrics import identification as _identification

from .pixcorr import _pearson_rows


def _flat_pair(recon_features: Any, true_features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float64 (n, d) arrays, flattening all but the first axis."""
    out = []
    for name, f in (("recon_features", recon_features), ("true_features", true_features)):
        if isinstance(f, torch.Tensor):
            f = f.detach().cpu().to(torch.float64).numpy()
        a = np.asarray(f, dtype=np.float64)
        if a.ndim < 2:
            raise BrainalignError(
                f"'{name}' must have shape (n_images, ...) with at least 2 dimensions, got "
                f"shape {a.shape}."
            )
        a = a.reshape(a.shape[0], -1)
        if a.size == 0:
            raise BrainalignError(f"'{name}' must not be empty, got shape {a.shape}.")
        if not np.isfinite(a).all():
            raise BrainalignError(f"'{name}' contains NaN or infinite values.")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise BrainalignError(
            "'recon_features' and 'true_features' must have the same shape once flattened to "
            f"(n_images, n_features), got {out[0].shape} and {out[1].shape}."
        )
    return out[0], out[1]


def two_way_identification(recon_features: Any, true_features: Any) -> float:
    """MindEye's two-way identification on features (Scotti et al. 2024).

    With ``r_ij`` the Pearson correlation between the flattened features of
    reconstruction ``i`` and true image ``j``::

        score = 1/n Σ_i #{j != i : r_ij < r_ii} / (n - 1),

    the share of two-alternative choices (own image vs another) won; a tie
    is a loss; chance is 0.5. This flattens the features and calls
    :func:`brainalign.metrics.identification.two_way_identification` with
    ``metric="correlation"``.

    Parameters
    ----------
    recon_features, true_features : array-like or tensor, shape (n, ...)
        Features of the reconstructions and of the true images (e.g. AlexNet
        ``features.4`` maps of shape (n, 192, 31, 31)), row ``i`` paired;
        ``n >= 2``.

    Returns
    -------
    score : float
        Percent correct as a fraction in [0, 1].
    """
    P, T = _flat_pair(recon_features, true_features)
    return _identification.two_way_identification(P, T, metric="correlation")


def two_way_identification_per_image(recon_features: Any, true_features: Any) -> np.ndarray:
    """Per-reconstruction two-way identification, ``#{j != i : r_ij < r_ii} / (n - 1)``.

    Parameters
    ----------
    recon_features, true_features : array-like or tensor, shape (n, ...)
        As in :func:`two_way_identification`.

    Returns
    -------
    scores : ndarray of float64, shape (n,)
        Their mean is :func:`two_way_identification`.
    """
    P, T = _flat_pair(recon_features, true_features)
    n = P.shape[0]
    if n < 2:
        raise BrainalignError(f"Two-way identification needs at least 2 images, got {n}.")
    S = _identification.similarity_matrix(P, T, metric="correlation")
    own = np.diag(S)
    return (S < own[:, None]).sum(axis=1) / (n - 1)


def correlation_distance_per_image(recon_features: Any, true_features: Any) -> np.ndarray:
    """Correlation distance ``1 - r_ii`` of each pair of flattened features.

    Parameters
    ----------
    recon_features, true_features : array-like or tensor, shape (n, ...)
        Paired features.

    Returns
    -------
    d : ndarray of float64, shape (n,)
        In [0, 2]; 1 where a feature vector is constant (``r`` undefined,
        taken as 0).
    """
    P, T = _flat_pair(recon_features, true_features)
    return 1.0 - _pearson_rows(torch.from_numpy(P), torch.from_numpy(T)).numpy()


def correlation_distance(recon_features: Any, true_features: Any) -> float:
    """Mean correlation distance (MindEye2's EfficientNet-B1 and SwAV metric).

    ``1/n Σ_i (1 - corr(recon_i, true_i))`` over flattened features, as
    ``scipy.spatial.distance.correlation`` averaged over pairs in Scotti et
    al. 2024; lower is better (MindEye2, 40 h: EfficientNet 0.619, SwAV
    0.344).

    Parameters
    ----------
    recon_features, true_features : array-like or tensor, shape (n, ...)
        Paired features.

    Returns
    -------
    distance : float
        In [0, 2].
    """
    return float(np.mean(correlation_distance_per_image(recon_features, true_features)))
