"""Running a :class:`~.extractors.FeatureExtractor` over images in batches (:func:`extract_features`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError, check_int

from .constants import _BATCH
from .extractors import FeatureExtractor
from .inputs import _Images


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
