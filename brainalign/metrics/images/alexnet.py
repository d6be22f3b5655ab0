"""AlexNet in plain torch (torchvision's parameter names) and its activations at MindEye2's layers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from brainalign._validation import BrainalignError, check_fname

from .constants import ALEXNET_LAYERS, IMAGENET_MEAN, IMAGENET_STD, MINDEYE2_PREPROCESS, _BATCH
from .extraction import extract_features
from .extractors import FeatureExtractor, preprocess
from .inputs import _check_size


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
