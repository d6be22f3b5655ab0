"""Feature extractors: the :class:`FeatureExtractor` protocol and wrappers adding MindEye2's preprocessing.

The networks (InceptionV3, CLIP, EfficientNet, SwAV) are not bundled: the
wrappers take the user's model callable; :func:`random_cnn_features` is a tiny
fixed random CNN for tests and smoke runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from brainalign._validation import BrainalignError, check_int

from .constants import IMAGENET_MEAN, IMAGENET_STD, MINDEYE2_PREPROCESS
from .inputs import _check_size, _resize


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
