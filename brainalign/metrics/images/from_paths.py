"""MindEye2's feature extractors from the user's local weights, by path.

torchvision cannot be installed beside the project's CPU torch, and no
pretrained ImageNet weights ship with it, so each network of MindEye2's
evaluation is loaded from a file the user made once on a machine that has
them:

============  ==========================================================  ================================
name          file                                                        feature sets (MindEye2's)
============  ==========================================================  ================================
alexnet       torchvision AlexNet state dict (``torch.save(               ``alexnet.features.4``,
              alexnet(weights="IMAGENET1K_V1").state_dict(), path)``)      ``alexnet.features.11``
inception     TorchScript module: InceptionV3 to its 2048-d avgpool        ``inception``
clip          folder of a ``CLIPVisionModelWithProjection`` (ViT-L/14)     ``clip`` (the image embedding)
efficientnet  TorchScript module: EfficientNet-B1 to its avgpool           ``efficientnet``
swav          TorchScript module: SwAV ResNet-50 to its avgpool            ``swav``
============  ==========================================================  ================================

A TorchScript module takes the preprocessed ``(b, 3, size, size)`` batch and
returns the pooled features, e.g. ``torch.jit.script(torch.nn.Sequential(
*list(inception_v3(weights=...).children())[:-1], torch.nn.Flatten()))``
(see docs/decoding.md). When no path is given at all, a fixed random CNN is
the stand-in, named ``random_cnn`` (never AlexNet).

transformers is imported only when a CLIP folder is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from brainalign._validation import BrainalignError, check_fname

from .alexnet import AlexNet, alexnet_extractor
from .extractors import (
    FeatureExtractor,
    clip_vit_l14,
    efficientnet_b1_pool,
    inception_v3_pool,
    random_cnn_features,
    swav_resnet50_pool,
)

__all__ = ["METRIC_MODELS", "STAND_IN", "extractors_from_paths"]

#: The networks of MindEye2's image metrics, in the order they are reported.
METRIC_MODELS = ("alexnet", "inception", "clip", "efficientnet", "swav")

#: Name of the feature extractor used when no network is given.
STAND_IN = "random_cnn"


def _torchscript(path: str | os.PathLike, name: str) -> torch.jit.ScriptModule:
    file = check_fname(path, "file", f"{name} TorchScript module")
    try:
        return torch.jit.load(str(file), map_location="cpu").eval()
    except (RuntimeError, ValueError) as err:
        raise BrainalignError(f"{file}: not a TorchScript module ({' '.join(str(err).split())[:200]}); "
                              f"give decoding.image_metric_models.{name} a file saved with "
                              "torch.jit.script(model).save(path).") from err


def _clip_vision(path: str | os.PathLike):
    from transformers import CLIPVisionModelWithProjection

    folder = check_fname(path, "directory", "CLIP vision model folder")
    model = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True).eval()
    return lambda pixels: model(pixel_values=pixels).image_embeds


def extractors_from_paths(paths: Mapping[str, Any] | None, *, seed: int = 0) -> dict[str, FeatureExtractor]:
    """Feature extractors for :func:`image_metrics` from local weights.

    Parameters
    ----------
    paths : mapping of str to path or None
        Keys among :data:`METRIC_MODELS`; a None value leaves that network out.
    seed : int, default=0
        Seed of the stand-in.

    Returns
    -------
    dict of str to FeatureExtractor
        One entry per given network, in the order of :data:`METRIC_MODELS`,
        with MindEye2's preprocessing; ``{"random_cnn": ...}`` when none is
        given.
    """
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(METRIC_MODELS))
    if unknown:
        raise BrainalignError(f"unknown image-metric networks {unknown}; choose from {list(METRIC_MODELS)}.")
    out: dict[str, FeatureExtractor] = {}
    for name in METRIC_MODELS:
        path = paths.get(name)
        if path is None:
            continue
        if name == "alexnet":
            out[name] = alexnet_extractor(AlexNet.from_state_dict(path))
        elif name == "clip":
            out[name] = clip_vit_l14(_clip_vision(path))
        else:
            wrap = {"inception": inception_v3_pool, "efficientnet": efficientnet_b1_pool,
                    "swav": swav_resnet50_pool}[name]
            out[name] = wrap(_torchscript(path, name))
    return out or {STAND_IN: random_cnn_features(seed=seed)}
