"""PixCorr (MindEye2): Pearson correlation of the resized RGB pixels of each pair of images."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .constants import _BATCH
from .inputs import _check_size, _paired_batches


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r between paired rows of (n, d) tensors, in float64; 0 for a constant row."""
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    num = (a * b).sum(dim=1)
    den = torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1))
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(num))


def pixcorr_per_image(
    recon: Any,
    true: Any,
    size: int = 425,
    *,
    channels_first: bool = False,
    antialias: bool = True,
    batch_size: int = _BATCH,
) -> np.ndarray:
    """Pixel correlation of each reconstruction with its true image (MindEye2).

    Both images are resized to ``size`` × ``size`` (bilinear, see
    :func:`preprocess`), flattened over rows, columns and RGB channels, and
    compared by the Pearson correlation ``r_i = corr(vec(recon_i),
    vec(true_i))`` (Scotti et al. 2024, "PixCorr").

    Parameters
    ----------
    recon, true : array-like, tensor or list of images
        ``(n, H, W, 3)`` (``(n, 3, H, W)`` with ``channels_first``), uint8
        in [0, 255] or float in [0, 1]; or lists of ``n`` PIL images or
        ``(H, W, 3)`` arrays. ``recon[i]`` is paired with ``true[i]``;
        sizes may differ between the two sets.
    size : int
        Side in pixels of the common resolution (425 in MindEye2).
    channels_first : bool
        Whether array/tensor inputs are ``(n, 3, H, W)``.
    antialias : bool
        Anti-aliased bilinear resize (``torch.nn.functional.interpolate``).
    batch_size : int
        Images resized at a time.

    Returns
    -------
    r : ndarray of float64, shape (n,)
        In [-1, 1]; 0 where either image is constant (correlation undefined).
    """
    size = _check_size(size)
    out = [
        _pearson_rows(r.flatten(1), t.flatten(1))
        for r, t in _paired_batches(recon, true, size, channels_first, antialias, batch_size)
    ]
    return torch.cat(out).numpy()


def pixcorr(
    recon: Any,
    true: Any,
    size: int = 425,
    *,
    channels_first: bool = False,
    antialias: bool = True,
    batch_size: int = _BATCH,
) -> float:
    """PixCorr (MindEye2): mean over pairs of :func:`pixcorr_per_image`.

    Parameters
    ----------
    recon, true, size, channels_first, antialias, batch_size
        As in :func:`pixcorr_per_image`.

    Returns
    -------
    pixcorr : float
        Mean pixel correlation, in [-1, 1] (MindEye2, 40 h: 0.322).
    """
    return float(np.mean(pixcorr_per_image(recon, true, size, channels_first=channels_first,
                                           antialias=antialias, batch_size=batch_size)))
