"""MindEye2's preprocessing constants: normalisations, grayscale weights, AlexNet layers."""

from __future__ import annotations

from typing import Any


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
