"""MindEye2's image-reconstruction metrics in one call (:func:`image_metrics`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from brainalign._validation import BrainalignError

from .constants import _BATCH
from .extraction import extract_features
from .extractors import FeatureExtractor
from .feature_scores import correlation_distance, two_way_identification
from .pixcorr import pixcorr
from .ssim import ssim


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
