"""Image-reconstruction metrics as defined in MindEye2's evaluation.

Scotti et al. 2024 (MindEye2: shared-subject models enable fMRI-to-image
with 1 hour of data, ICML), following Ozcelik & VanRullen 2023
(Brain-Diffuser), score reconstructions ``recon[i]`` of test images
``true[i]`` with eight numbers, computed here as:

- **PixCorr** (:func:`pixcorr`): both images resized to 425 × 425 (bilinear),
  Pearson r of the flattened RGB pixels of each pair, averaged over pairs.
- **SSIM** (:func:`ssim`): both images resized to 425 × 425 and converted
  to grayscale; Gaussian-weighted SSIM (σ = 1.5 px, population covariance,
  data range 1), averaged over the image and then over pairs.
- **Two-way identification** (:func:`two_way_identification`) on network
  features: AlexNet ``features.4`` ("AlexNet(2)") and ``features.11``
  ("AlexNet(5)"), InceptionV3 avgpool, CLIP ViT-L/14 image embedding.
- **Correlation distance** (:func:`correlation_distance`), mean ``1 - r``
  between paired features: EfficientNet-B1 avgpool and SwAV-ResNet50
  avgpool (lower is better).

Network features come from a :class:`FeatureExtractor`, any callable
mapping a float batch ``(n, 3, H, W)`` in [0, 1] to features. AlexNet is
built here in plain torch (:class:`AlexNet`, parameter names identical to
torchvision's, so a saved torchvision state dict loads with
:meth:`AlexNet.from_state_dict`). InceptionV3, CLIP, EfficientNet and SwAV
are **not** re-implemented: pass your own model callable to
:func:`inception_v3_pool`, :func:`clip_vit_l14`, :func:`efficientnet_b1_pool`
or :func:`swav_resnet50_pool`, which only add MindEye2's preprocessing
(see :data:`MINDEYE2_PREPROCESS`).

Images are given as arrays or tensors of shape ``(n, H, W, 3)`` (or
``(n, 3, H, W)`` with ``channels_first=True``), uint8 in [0, 255] or float
in [0, 1], or as lists of PIL images / ``(H, W, 3)`` arrays. Everything is
processed in batches, so memory does not grow with ``n`` except for the
network features kept for identification.

This module imports only numpy, scipy and torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from brainalign._validation import BrainalignError, check_fname, check_int, check_option
from brainalign.metrics import identification as _identification

__all__ = [
    "ALEXNET_LAYERS",
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LUMA_WEIGHTS",
    "MINDEYE2_PREPROCESS",
    "AlexNet",
    "FeatureExtractor",
    "alexnet_extractor",
    "alexnet_features",
    "clip_vit_l14",
    "correlation_distance",
    "correlation_distance_per_image",
    "efficientnet_b1_pool",
    "extract_features",
    "image_metrics",
    "inception_v3_pool",
    "make_extractor",
    "pixcorr",
    "pixcorr_per_image",
    "preprocess",
    "random_cnn_features",
    "ssim",
    "ssim_per_image",
    "swav_resnet50_pool",
    "two_way_identification",
    "two_way_identification_per_image",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: Grayscale weights (R, G, B). ``"skimage"`` is ``skimage.color.rgb2gray``,
#: which MindEye2's evaluation code calls before SSIM; ``"bt601"`` is the
#: ITU-R BT.601 luma.
LUMA_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "skimage": (0.2125, 0.7154, 0.0721),
    "bt601": (0.299, 0.587, 0.114),
}

#: MindEye2's preprocessing per network: square side (px) the images are
#: resized to (bilinear) and the normalisation applied after it.
MINDEYE2_PREPROCESS: dict[str, dict[str, Any]] = {
    "alexnet": {"size": 256, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "inception_v3": {"size": 342, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "clip_vit_l14": {"size": 224, "mean": CLIP_MEAN, "std": CLIP_STD},
    "efficientnet_b1": {"size": 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "swav_resnet50": {"size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
}

#: The AlexNet modules MindEye2 reads: the ReLU after conv 2 ("AlexNet(2)")
#: and the ReLU after conv 5 ("AlexNet(5)").
ALEXNET_LAYERS: tuple[str, str] = ("features.4", "features.11")

_BATCH = 32


# --------------------------------------------------------------------------- #
# Image input
# --------------------------------------------------------------------------- #




def _item_to_chw(item: Any, name: str, index: int, channels_first: bool) -> torch.Tensor:
    """One image (PIL, array or tensor) as a float32 (3, H, W) tensor in [0, 1]."""
    if hasattr(item, "convert") and hasattr(item, "size") and not isinstance(item, np.ndarray):
        arr: Any = np.asarray(item.convert("RGB"))  # PIL: always (H, W, 3) uint8
        first = False
    else:
        arr = item
        first = channels_first
    t = _to_float_tensor(arr, f"{name}[{index}]")
    if t.ndim != 3:
        raise BrainalignError(
            f"'{name}[{index}]' must be one RGB image of 3 dimensions, got shape {tuple(t.shape)}."
        )
    return _channels_to_front(t, f"{name}[{index}]", axis=0 if first else -1)


def _to_float_tensor(arr: Any, name: str) -> torch.Tensor:
    """uint8 -> /255; float -> as is (must lie in [0, 1]); float32 CPU result."""
    if isinstance(arr, torch.Tensor):
        t = arr.detach().cpu()
    else:
        a = np.asarray(arr)
        if a.dtype == object:
            raise BrainalignError(f"'{name}' must be a numeric image array, got dtype object.")
        t = torch.from_numpy(np.array(a, copy=True))  # writable, contiguous
    if t.dtype == torch.uint8:
        return t.to(torch.float32) / 255.0
    if not t.is_floating_point():
        raise BrainalignError(
            f"'{name}' must be uint8 in [0, 255] or float in [0, 1], got dtype {t.dtype}."
        )
    t = t.to(torch.float32)
    if t.numel():
        if not bool(torch.isfinite(t).all()):
            raise BrainalignError(f"'{name}' contains NaN or infinite values.")
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise BrainalignError(
                f"'{name}' is float but has values in [{lo:.4g}, {hi:.4g}]; float images must be "
                "in [0, 1] (divide 0-255 images by 255, or pass them as uint8)."
            )
    return t


def _channels_to_front(t: torch.Tensor, name: str, axis: int) -> torch.Tensor:
    """Move the colour axis of a (.., C, ..) tensor to position -3."""
    if t.shape[axis] != 3:
        other = t.shape[-3] if axis == -1 else t.shape[-1]
        hint = (f"channels_first={axis == -1}" if t.ndim >= 3 and other == 3 else "RGB images")
        raise BrainalignError(
            f"'{name}' must have 3 colour channels on axis {axis}, got shape {tuple(t.shape)} "
            f"(use {hint})."
        )
    return t if axis != -1 else t.movedim(-1, -3)


class _Images:
    """A batch source over arrays, tensors or lists of images."""

    def __init__(self, images: Any, name: str, channels_first: bool):
        self.name = name
        self.channels_first = bool(channels_first)
        if isinstance(images, (list, tuple)):
            self.items: Sequence[Any] | None = images
            self.array: Any = None
            self.n = len(images)
        else:
            self.items = None
            self.array = images if isinstance(images, torch.Tensor) else np.asarray(images)
            if self.array.ndim != 4:
                layout = "(n, 3, H, W)" if channels_first else "(n, H, W, 3)"
                raise BrainalignError(
                    f"'{name}' must be a batch of images of shape {layout} or a list of images, "
                    f"got shape {tuple(self.array.shape)}."
                )
            self.n = int(self.array.shape[0])
        if self.n == 0:
            raise BrainalignError(f"'{name}' holds no images.")

    def batch(self, start: int, stop: int) -> list[torch.Tensor]:
        """Images ``start:stop`` as a list of (1 or b, 3, H, W) float32 tensors."""
        if self.items is None:
            t = _to_float_tensor(self.array[start:stop], self.name)
            return [_channels_to_front(t, self.name, axis=1 if self.channels_first else -1)]
        chw = [
            _item_to_chw(self.items[i], self.name, i, self.channels_first)
            for i in range(start, stop)
        ]
        if all(c.shape == chw[0].shape for c in chw):
            return [torch.stack(chw)]
        return [c[None] for c in chw]


def _resize(x: torch.Tensor, size: int | None, antialias: bool) -> torch.Tensor:
    """Bilinear resize of (b, C, H, W) to (b, C, size, size); no-op if already that size."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=antialias)


def _paired_batches(
    recon: Any,
    true: Any,
    size: int,
    channels_first: bool,
    antialias: bool,
    batch_size: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield resized float32 (b, 3, size, size) batches of both image sets, in order."""
    check_int("batch_size", batch_size, 1)
    R = _Images(recon, "recon", channels_first)
    T = _Images(true, "true", channels_first)
    if R.n != T.n:
        raise BrainalignError(
            f"'recon' and 'true' must hold the same number of images, got {R.n} and {T.n}."
        )
    for start in range(0, R.n, batch_size):
        stop = min(start + batch_size, R.n)
        r = torch.cat([_resize(b, size, antialias) for b in R.batch(start, stop)])
        t = torch.cat([_resize(b, size, antialias) for b in T.batch(start, stop)])
        yield r, t


def _check_size(size: Any, low: int = 1) -> int:
    return check_int("size", size, low)


# --------------------------------------------------------------------------- #
# PixCorr
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# SSIM
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Feature-based scores
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Feature extractors
# --------------------------------------------------------------------------- #


@runtime_checkable
class FeatureExtractor(Protocol):
    """A callable from images to features.

    Called with a float32 tensor of shape (b, 3, H, W), RGB in [0, 1], at
    the images' own resolution, on the ``device`` given to
    :func:`extract_features`; it applies its own preprocessing (resize,
    normalisation) and returns a tensor of shape (b, ...) or a mapping of
    layer names to such tensors. It is called under ``torch.no_grad()``.
    """

    def __call__(self, images: torch.Tensor) -> torch.Tensor | Mapping[str, torch.Tensor]:
        ...


def preprocess(
    images: torch.Tensor,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize to ``size`` × ``size`` (bilinear) and normalise per channel.

    MindEye2's network preprocessing: ``transforms.Resize(size, BILINEAR)``
    (square NSD images, so the short side and the square agree) followed by
    ``transforms.Normalize(mean, std)``.

    Parameters
    ----------
    images : tensor, shape (b, 3, H, W)
        Float RGB in [0, 1].
    size : int
        Output side in pixels.
    mean, std : sequence of 3 floats
        Per-channel normalisation, ``(x - mean) / std``.
    antialias : bool
        Anti-aliased interpolation when downsampling.

    Returns
    -------
    x : tensor, shape (b, 3, size, size)
    """
    size = _check_size(size)
    x = _resize(images, size, antialias)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def make_extractor(
    model: Callable[[torch.Tensor], Any],
    *,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    output: str | None = None,
    antialias: bool = True,
) -> FeatureExtractor:
    """Wrap a user model as a :class:`FeatureExtractor` with MindEye2-style preprocessing.

    Parameters
    ----------
    model : callable
        Takes the preprocessed (b, 3, size, size) batch and returns a tensor
        (b, ...) or a mapping containing ``output``.
    size : int
        Square side the images are resized to, in pixels.
    mean, std : sequence of 3 floats
        Normalisation (see :func:`preprocess`).
    output : str or None
        Key to pick when ``model`` returns a mapping (e.g. ``"avgpool"``
        from ``torchvision.models.feature_extraction.create_feature_extractor``).
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
    """
    if not callable(model):
        raise BrainalignError(f"'model' must be callable, got {type(model).__name__}.")
    size = _check_size(size)

    def extractor(images: torch.Tensor) -> torch.Tensor:
        out = model(preprocess(images, size, mean, std, antialias=antialias))
        if isinstance(out, Mapping):
            if output is None or output not in out:
                raise BrainalignError(
                    f"The model returned a mapping with keys {sorted(out)}; set 'output' to one "
                    f"of them (got {output!r})."
                )
            out = out[output]
        if not isinstance(out, torch.Tensor):
            raise BrainalignError(
                f"The model must return a tensor (or a mapping of tensors), got "
                f"{type(out).__name__}."
            )
        return out

    return extractor


def _named_extractor(key: str, model: Callable[[torch.Tensor], Any], output: str | None,
                     antialias: bool) -> FeatureExtractor:
    cfg = MINDEYE2_PREPROCESS[key]
    return make_extractor(model, size=cfg["size"], mean=cfg["mean"], std=cfg["std"],
                          output=output, antialias=antialias)


def inception_v3_pool(model: Callable[[torch.Tensor], Any], *, output: str | None = None,
                      antialias: bool = True) -> FeatureExtractor:
    """InceptionV3 avgpool features, MindEye2 preprocessing (342 px, ImageNet norm).

    The network is not bundled: pass a callable returning the 2048-d
    average-pooled features, e.g. torchvision's ``inception_v3`` in eval
    mode with ``model.fc = torch.nn.Identity()``, or a
    ``create_feature_extractor(..., return_nodes=["avgpool"])`` module with
    ``output="avgpool"``. Used for two-way identification (MindEye2, 40 h:
    95.4 %).

    Parameters
    ----------
    model : callable
        (b, 3, 342, 342) normalised batch -> (b, 2048[, 1, 1]) tensor or mapping.
    output : str or None
        Key to pick from a mapping output.
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
    """
    return _named_extractor("inception_v3", model, output, antialias)


def clip_vit_l14(model: Callable[[torch.Tensor], Any], *, output: str | None = None,
                 antialias: bool = True) -> FeatureExtractor:
    """CLIP ViT-L/14 image embeddings, MindEye2 preprocessing (224 px, CLIP norm).

    Pass the image encoder (e.g. OpenAI CLIP's ``model.encode_image``).
    MindEye2 resizes to 224 × 224 and normalises with :data:`CLIP_MEAN` /
    :data:`CLIP_STD`; used for two-way identification (40 h: 93.0 %).

    Parameters
    ----------
    model : callable
        (b, 3, 224, 224) normalised batch -> (b, d) embedding.
    output : str or None
        Key to pick from a mapping output.
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
    """
    return _named_extractor("clip_vit_l14", model, output, antialias)


def efficientnet_b1_pool(model: Callable[[torch.Tensor], Any], *, output: str | None = None,
                         antialias: bool = True) -> FeatureExtractor:
    """EfficientNet-B1 avgpool features, MindEye2 preprocessing (255 px, ImageNet norm).

    Pass a callable returning the average-pooled features (e.g.
    torchvision's ``efficientnet_b1`` with ``return_nodes=["avgpool"]`` and
    ``output="avgpool"``). Used with :func:`correlation_distance` (40 h:
    0.619).

    Parameters
    ----------
    model : callable
        (b, 3, 255, 255) normalised batch -> (b, 1280[, 1, 1]) tensor or mapping.
    output : str or None
        Key to pick from a mapping output.
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
    """
    return _named_extractor("efficientnet_b1", model, output, antialias)


def swav_resnet50_pool(model: Callable[[torch.Tensor], Any], *, output: str | None = None,
                       antialias: bool = True) -> FeatureExtractor:
    """SwAV ResNet-50 avgpool features, MindEye2 preprocessing (224 px, ImageNet norm).

    Pass a callable returning the average-pooled features of the SwAV
    ResNet-50 (facebookresearch/swav). Used with
    :func:`correlation_distance` (40 h: 0.344).

    Parameters
    ----------
    model : callable
        (b, 3, 224, 224) normalised batch -> (b, 2048[, 1, 1]) tensor or mapping.
    output : str or None
        Key to pick from a mapping output.
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
    """
    return _named_extractor("swav_resnet50", model, output, antialias)


class AlexNet(nn.Module):
    """AlexNet with torchvision's module layout and parameter names.

    ``features``: 0 Conv(3→64, k11, s4, p2), 1 ReLU, 2 MaxPool(k3, s2),
    3 Conv(64→192, k5, p2), 4 ReLU, 5 MaxPool, 6 Conv(192→384, k3, p1),
    7 ReLU, 8 Conv(384→256, k3, p1), 9 ReLU, 10 Conv(256→256, k3, p1),
    11 ReLU, 12 MaxPool; ``avgpool``: AdaptiveAvgPool2d(6); ``classifier``:
    0 Dropout, 1 Linear(9216→4096), 2 ReLU, 3 Dropout, 4 Linear(4096→4096),
    5 ReLU, 6 Linear(4096→num_classes).

    Parameters
    ----------
    num_classes : int
        Output classes (1000 for the ImageNet weights).
    dropout : float
        Dropout probability of the classifier (inactive in eval mode).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a normalised (b, 3, H, W) batch, shape (b, num_classes)."""
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor] | str | os.PathLike) -> AlexNet:
        """Build an AlexNet in eval mode from torchvision-style weights.

        Parameters
        ----------
        state_dict : mapping or path
            A state dict (e.g. ``torchvision.models.alexnet(weights=
            "IMAGENET1K_V1").state_dict()``) or the path of one saved with
            ``torch.save``; loaded with ``torch.load(path, map_location="cpu",
            weights_only=True)``. Keys must match exactly (strict loading).

        Returns
        -------
        model : AlexNet
            In eval mode, gradients off, on CPU, with the dtype of the weights
            given (a mapping is copied, not shared).
        """
        if isinstance(state_dict, (str, os.PathLike)):
            path = check_fname(state_dict, "file", "AlexNet state dict")
            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # unpickling errors have many types
                raise BrainalignError(f"{path}: cannot load an AlexNet state dict ({err}).") from err
        elif isinstance(state_dict, Mapping):
            state_dict = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                          for k, v in state_dict.items()}
        if not isinstance(state_dict, Mapping):
            raise BrainalignError(
                f"'state_dict' must be a mapping of parameter names to tensors or a path, got "
                f"{type(state_dict).__name__}."
            )
        n_classes = state_dict.get("classifier.6.weight")
        with torch.device("meta"):  # no random initialisation: every tensor is assigned
            model = cls(num_classes=int(n_classes.shape[0])
                        if isinstance(n_classes, torch.Tensor) else 1000)
        try:
            model.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as err:
            raise BrainalignError(
                f"'state_dict' does not match torchvision's AlexNet: {' '.join(str(err).split())}"
            ) from err
        return model.eval().requires_grad_(False)


def _hooked_forward(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Run ``model`` and return the outputs of the named submodules (forward hooks)."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules or name == ""]
    if missing:
        avail = [n for n in modules if n]
        raise BrainalignError(
            f"Invalid value for the 'layers' parameter: {missing}; the model's modules are "
            f"{avail}."
        )
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        def hook(_mod: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
            captured[name] = out.detach().clone()
        handles.append(modules[name].register_forward_hook(hook))
    try:
        features = getattr(model, "features", None)
        if isinstance(features, nn.Module) and all(n.startswith("features.") for n in layers):
            features(x)  # the classifier is not needed
        else:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {name: captured[name] for name in layers}


def alexnet_extractor(
    model: nn.Module,
    layers: Sequence[str] = ALEXNET_LAYERS,
    *,
    size: int = MINDEYE2_PREPROCESS["alexnet"]["size"],
    antialias: bool = True,
) -> FeatureExtractor:
    """A :class:`FeatureExtractor` returning AlexNet activations by module name.

    Preprocessing as MindEye2 (Scotti et al. 2024): resize to ``size`` ×
    ``size`` (256 in their code) and ImageNet normalisation; the outputs of
    ``layers`` are read with forward hooks.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`AlexNet` (or torchvision ``alexnet``), in eval mode.
    layers : sequence of str
        Module names; MindEye2 uses ``"features.4"`` (AlexNet(2)) and
        ``"features.11"`` (AlexNet(5)).
    size : int
        Input side in pixels. With 224: features.4 is (b, 192, 27, 27) and
        features.11 (b, 256, 13, 13); with 256: (b, 192, 31, 31) and
        (b, 256, 15, 15).
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    extractor : FeatureExtractor
        Returns ``{layer: tensor}``.
    """
    if not isinstance(model, nn.Module):
        raise BrainalignError(f"'model' must be a torch.nn.Module, got {type(model).__name__}.")
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise BrainalignError("'layers' must name at least one module.")
    size = _check_size(size)

    def extractor(images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = preprocess(images, size, IMAGENET_MEAN, IMAGENET_STD, antialias=antialias)
        return _hooked_forward(model, x, layers)

    return extractor


def alexnet_features(
    images: Any,
    model: nn.Module,
    layers: Sequence[str] = ALEXNET_LAYERS,
    *,
    size: int = MINDEYE2_PREPROCESS["alexnet"]["size"],
    channels_first: bool = False,
    batch_size: int = _BATCH,
    device: str | torch.device | None = None,
    antialias: bool = True,
) -> dict[str, torch.Tensor]:
    """AlexNet activations of images at MindEye2's layers.

    Parameters
    ----------
    images : array-like, tensor or list of images
        As in :func:`pixcorr_per_image`.
    model : torch.nn.Module
        An :class:`AlexNet` with trained weights (see
        :meth:`AlexNet.from_state_dict`), in eval mode, on ``device``.
    layers : sequence of str
        Module names (default ``("features.4", "features.11")``).
    size : int
        Input side in pixels (256 as in MindEye2's code).
    channels_first : bool
        Whether array/tensor inputs are ``(n, 3, H, W)``.
    batch_size : int
        Images per forward pass.
    device : str, torch.device or None
        Where to run the model (None: CPU).
    antialias : bool
        Anti-aliased resize.

    Returns
    -------
    features : dict of str to tensor
        ``{layer: float32 CPU tensor of shape (n, C, h, w)}``.
    """
    out = extract_features(images, alexnet_extractor(model, layers, size=size, antialias=antialias),
                           channels_first=channels_first, batch_size=batch_size, device=device,
                           flatten=False)
    return {k: torch.from_numpy(v) for k, v in cast(dict, out).items()}


def random_cnn_features(seed: int = 0, *, channels: int = 8, size: int = 32) -> FeatureExtractor:
    """A tiny fixed random CNN extractor, for tests and smoke runs.

    Two 3 × 3, stride-2 convolutions with ReLU, weights drawn from a
    ``torch.Generator`` seeded with ``seed`` (the global RNG is untouched),
    on images resized to ``size`` × ``size`` and ImageNet-normalised.

    Parameters
    ----------
    seed : int
        Seed of the weights; the same seed gives the same extractor.
    channels : int
        Channels of both convolutions.
    size : int
        Input side in pixels (>= 8).

    Returns
    -------
    extractor : FeatureExtractor
        Returns a tensor of shape (b, channels, h, w).
    """
    seed = check_int("seed", seed, 0)
    channels = check_int("channels", channels, 1)
    size = _check_size(size, 8)
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):  # no default initialisation: the global RNG is not used
        net = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
        )
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else channels
            p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
    net.eval().requires_grad_(False)

    def extractor(images: torch.Tensor) -> torch.Tensor:
        x = preprocess(images, size, IMAGENET_MEAN, IMAGENET_STD)
        return net.to(device=x.device, dtype=x.dtype)(x)

    return extractor


# --------------------------------------------------------------------------- #
# Aggregation
# --------------------------------------------------------------------------- #


def extract_features(
    images: Any,
    extractor: FeatureExtractor,
    *,
    channels_first: bool = False,
    batch_size: int = _BATCH,
    device: str | torch.device | None = None,
    flatten: bool = True,
) -> np.ndarray | dict[str, np.ndarray]:
    """Run a :class:`FeatureExtractor` over images in batches.

    Parameters
    ----------
    images : array-like, tensor or list of images
        As in :func:`pixcorr_per_image`; a list of images of different
        sizes is passed to ``extractor`` one image at a time.
    extractor : FeatureExtractor
        Callable on float32 (b, 3, H, W) batches in [0, 1].
    channels_first : bool
        Whether array/tensor inputs are ``(n, 3, H, W)``.
    batch_size : int
        Images per call.
    device : str, torch.device or None
        Device the batches are moved to (None: CPU).
    flatten : bool
        Reshape each output to (n, n_features).

    Returns
    -------
    features : ndarray or dict of str to ndarray
        float32 arrays of shape (n, ...) (or (n, n_features)), a dict when
        ``extractor`` returns a mapping.
    """
    if not callable(extractor):
        raise BrainalignError(f"'extractor' must be callable, got {type(extractor).__name__}.")
    check_int("batch_size", batch_size, 1)
    src = _Images(images, "images", channels_first)
    dev = torch.device("cpu") if device is None else torch.device(device)
    chunks: list[Any] = []
    with torch.no_grad():
        for start in range(0, src.n, batch_size):
            for batch in src.batch(start, min(start + batch_size, src.n)):
                chunks.append(_collect(extractor(batch.to(dev)), batch.shape[0], flatten))
    if isinstance(chunks[0], dict):
        return {k: _concat([c[k] for c in chunks], f"output {k!r}") for k in chunks[0]}
    return _concat(chunks, "its output")


def _concat(parts: list[np.ndarray], what: str) -> np.ndarray:
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise BrainalignError(
            f"The extractor's {what} has a different shape for different images "
            f"({sorted(shapes)}); make it resize its input to a fixed size."
        )
    return np.concatenate(parts)


def _collect(out: Any, b: int, flatten: bool) -> np.ndarray | dict[str, np.ndarray]:
    def one(t: Any, what: str) -> np.ndarray:
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or t.shape[0] != b:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise BrainalignError(
                f"The extractor must return tensors of shape ({b}, ...) for a batch of {b} "
                f"images; {what} is {shape}."
            )
        a = t.detach().to(device="cpu", dtype=torch.float32).numpy()
        return a.reshape(b, -1) if flatten else a

    if isinstance(out, Mapping):
        return {str(k): one(v, f"output {k!r}") for k, v in out.items()}
    return one(out, "its output")


def image_metrics(
    recon: Any,
    true: Any,
    *,
    extractors: Mapping[str, FeatureExtractor] | None = None,
    size: int = 425,
    luma: str = "skimage",
    channels_first: bool = False,
    batch_size: int = _BATCH,
    device: str | torch.device | None = None,
    antialias: bool = True,
) -> dict[str, float]:
    """MindEye2's image-reconstruction metrics in one call (Scotti et al. 2024).

    Parameters
    ----------
    recon, true : array-like, tensor or list of images
        Paired images, as in :func:`pixcorr_per_image` (``n >= 2`` when
        ``extractors`` are given).
    extractors : mapping of str to FeatureExtractor, or None
        Named feature extractors, e.g. ``{"alexnet":
        alexnet_extractor(AlexNet.from_state_dict(path)), "inception":
        inception_v3_pool(my_inception)}``. Each gives one feature set named
        after it, or, when it returns a mapping, one per key, named
        ``"<name>.<key>"`` (e.g. ``"alexnet.features.4"``). For every
        feature set both :func:`two_way_identification` and
        :func:`correlation_distance` are reported; MindEye2 reports the
        former for AlexNet, Inception and CLIP and the latter for
        EfficientNet and SwAV.
    size : int
        PixCorr/SSIM resolution in pixels (425).
    luma : {"skimage", "bt601"}
        Grayscale weights for SSIM (see :func:`ssim_per_image`).
    channels_first : bool
        Whether array/tensor inputs are ``(n, 3, H, W)``.
    batch_size : int
        Images per batch.
    device : str, torch.device or None
        Device for the extractors (None: CPU).
    antialias : bool
        Anti-aliased resize for PixCorr/SSIM.

    Returns
    -------
    metrics : dict of str to float
        ``"pixcorr"`` (in [-1, 1]), ``"ssim"`` (<= 1) and, for each feature
        set ``s``, ``"<s>_two_way"`` (fraction in [0, 1], chance 0.5) and
        ``"<s>_correlation_distance"`` (in [0, 2], lower is better).
    """
    result: dict[str, float] = {
        "pixcorr": pixcorr(recon, true, size, channels_first=channels_first, antialias=antialias,
                           batch_size=batch_size),
        "ssim": ssim(recon, true, size, luma=luma, channels_first=channels_first,
                     antialias=antialias, batch_size=min(batch_size, 16)),
    }
    if extractors is None:
        return result
    if not isinstance(extractors, Mapping):
        raise BrainalignError(
            f"'extractors' must be a mapping of names to feature extractors, got "
            f"{type(extractors).__name__}."
        )
    for name, extractor in extractors.items():
        kw = {"channels_first": channels_first, "batch_size": batch_size, "device": device}
        fr = extract_features(recon, extractor, **kw)
        ft = extract_features(true, extractor, **kw)
        sets = ({f"{name}.{k}": (fr[k], ft[k]) for k in fr} if isinstance(fr, dict)
                else {str(name): (fr, ft)})
        for key, (a, b) in sets.items():
            result[f"{key}_two_way"] = two_way_identification(a, b)
            result[f"{key}_correlation_distance"] = correlation_distance(a, b)
    return result
