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

# The package's modules, each with one job (a module imports only those listed above it):
#   constants       MindEye2's normalisations, grayscale weights and AlexNet layers
#   inputs          images (arrays, tensors, lists) as checked, resized float batches
#   pixcorr         PixCorr
#   ssim            SSIM
#   feature_scores  two-way identification and correlation distance on features
#   extractors      the FeatureExtractor protocol and MindEye2-preprocessing wrappers
#   extraction      running an extractor over images in batches
#   alexnet         AlexNet (torchvision's names) and its activations
#   suite           all the metrics in one call
from .alexnet import AlexNet, alexnet_extractor, alexnet_features
from .constants import (
    ALEXNET_LAYERS,
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LUMA_WEIGHTS,
    MINDEYE2_PREPROCESS,
)
from .extraction import extract_features
from .extractors import (
    FeatureExtractor,
    clip_vit_l14,
    efficientnet_b1_pool,
    inception_v3_pool,
    make_extractor,
    preprocess,
    random_cnn_features,
    swav_resnet50_pool,
)
from .feature_scores import (
    correlation_distance,
    correlation_distance_per_image,
    two_way_identification,
    two_way_identification_per_image,
)
from .pixcorr import pixcorr, pixcorr_per_image
from .ssim import ssim, ssim_per_image
from .suite import image_metrics

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
