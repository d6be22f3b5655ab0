"""SSIM (MindEye2): Gaussian-weighted structural similarity of the resized grayscale images."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.ndimage
import torch

from brainalign._validation import BrainalignError, check_option

from .constants import LUMA_WEIGHTS
from .inputs import _check_size, _paired_batches


def _to_gray(x: torch.Tensor, luma: str) -> np.ndarray:
    """(b, 3, H, W) in [0, 1] -> (b, H, W) float64 gray in [0, 1]."""
    w = np.asarray(LUMA_WEIGHTS[luma], dtype=np.float64)
    return np.einsum("bchw,c->bhw", x.to(torch.float64).numpy(), w)


def _gaussian_window(sigma: float, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian weights on ``-radius..radius`` (as scipy.ndimage)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _gaussian_filter(maps: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, 'reflect' boundary, same size.

    ``mode="reflect"`` mirrors including the edge sample (``d c b a | a b c
    d``), as skimage's SSIM does.
    """
    win = _gaussian_window(sigma, radius).numpy()
    out = scipy.ndimage.correlate1d(maps, win, axis=-2, mode="reflect")
    return scipy.ndimage.correlate1d(out, win, axis=-1, mode="reflect")


def _ssim_gray(
    x: np.ndarray,
    y: np.ndarray,
    sigma: float,
    truncate: float = 3.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Mean SSIM of paired (b, H, W) float64 images; see :func:`ssim_per_image`."""
    radius = int(truncate * sigma + 0.5)
    h, w = x.shape[-2:]
    if min(h, w) < 2 * radius + 1:
        raise BrainalignError(
            f"'size' must be at least the SSIM window ({2 * radius + 1} px for sigma={sigma}), "
            f"got images of {h} x {w}."
        )
    maps = np.stack([x, y, x * x, y * y, x * y], axis=1)
    ux, uy, uxx, uyy, uxy = np.moveaxis(_gaussian_filter(maps, sigma, radius), 1, 0)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    s = s[:, radius:h - radius, radius:w - radius]
    return s.mean(axis=(1, 2))


def ssim_per_image(
    recon: Any,
    true: Any,
    size: int = 425,
    sigma: float = 1.5,
    *,
    luma: str = "skimage",
    channels_first: bool = False,
    antialias: bool = True,
    batch_size: int = 16,
) -> np.ndarray:
    """Structural similarity of each reconstruction with its true image (MindEye2).

    As in Scotti et al. 2024 (which calls ``skimage.metrics.
    structural_similarity(rec, im, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0)`` on ``rgb2gray`` images):
    both images are resized to ``size`` × ``size``, converted to gray
    ``g = w_R R + w_G G + w_B B`` in [0, 1], and, with ``G_σ *`` a Gaussian
    filter (σ = ``sigma`` px, truncated at ``r = int(3.5 σ + 0.5)`` px, i.e.
    an 11-tap window for σ = 1.5, mirrored boundary)::

        μx = G*x,  σx² = G*(x²) - μx²,  σxy = G*(xy) - μx μy   (population moments)
        S  = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
        C1 = (0.01 L)², C2 = (0.03 L)², L = 1 (data range),

    and the score is the mean of ``S`` over the image minus an ``r``-pixel
    border (as skimage crops).

    Parameters
    ----------
    recon, true : array-like, tensor or list of images
        As in :func:`pixcorr_per_image`.
    size : int
        Side in pixels of the common resolution (425 in MindEye2); at least
        the window width ``2 r + 1``.
    sigma : float
        Standard deviation of the Gaussian window, in pixels (> 0).
    luma : {"skimage", "bt601"}
        Grayscale weights (:data:`LUMA_WEIGHTS`): ``"skimage"`` (0.2125,
        0.7154, 0.0721) is what MindEye2's code uses (``skimage.color.
        rgb2gray``); ``"bt601"`` (0.299, 0.587, 0.114) is ITU-R BT.601.
    channels_first, antialias : bool
        As in :func:`pixcorr_per_image`.
    batch_size : int
        Images processed at a time.

    Returns
    -------
    ssim : ndarray of float64, shape (n,)
        At most 1 (identical images give exactly 1).

    Notes
    -----
    MindEye2 also passes ``multichannel=True`` to skimage; on a 2-D gray
    image recent skimage versions ignore it (the 2-D SSIM computed here),
    while skimage 0.19-0.20 turned it into ``channel_axis=-1`` (a 1-D SSIM
    per image column). Published numbers may therefore depend slightly on
    their skimage version.
    """
    size = _check_size(size)
    check_option("luma", luma, tuple(LUMA_WEIGHTS))
    if not isinstance(sigma, (int, float, np.floating)) or isinstance(sigma, bool) or not sigma > 0:
        raise BrainalignError(f"'sigma' must be a positive number (pixels), got {sigma!r}.")
    out = [
        _ssim_gray(_to_gray(r, luma), _to_gray(t, luma), float(sigma))
        for r, t in _paired_batches(recon, true, size, channels_first, antialias, batch_size)
    ]
    return np.concatenate(out)


def ssim(
    recon: Any,
    true: Any,
    size: int = 425,
    sigma: float = 1.5,
    *,
    luma: str = "skimage",
    channels_first: bool = False,
    antialias: bool = True,
    batch_size: int = 16,
) -> float:
    """SSIM (MindEye2): mean over pairs of :func:`ssim_per_image`.

    Parameters
    ----------
    recon, true, size, sigma, luma, channels_first, antialias, batch_size
        As in :func:`ssim_per_image`.

    Returns
    -------
    ssim : float
        Mean SSIM (MindEye2, 40 h: 0.431).
    """
    return float(np.mean(ssim_per_image(recon, true, size, sigma, luma=luma,
                                        channels_first=channels_first, antialias=antialias,
                                        batch_size=batch_size)))
