"""Image input: arrays, tensors or lists of images as float32 (b, 3, H, W) batches in [0, 1].

Checks dtype, range and colour axis (naming the offending image), resizes
(bilinear) and yields paired batches of reconstructions and true images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from brainalign._validation import BrainalignError, check_int


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
