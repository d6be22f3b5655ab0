"""The result of a reconstruction: the images, with the seeds and settings that made them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image


@dataclass(frozen=True)
class Reconstruction(Sequence):
    """Reconstructed images with the seeds and settings that made them.

    Behaves as a read-only sequence of the images (``len``, indexing,
    iteration), so it can be used wherever a ``list[PIL.Image.Image]`` is.

    Attributes
    ----------
    images : list of PIL.Image.Image
        ``n_images`` RGB images, in input order.
    seeds : list of int
        The seed of each image's CPU :class:`torch.Generator`.
    params : dict
        The settings of the call (steps, guidance, strength, ...), the
        pipeline class and where the weights came from (``source``).
    """

    images: list[PIL.Image.Image]
    seeds: list[int]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):  # type: ignore[override]
        return self.images[index]

    def __iter__(self) -> Iterator[PIL.Image.Image]:
        return iter(self.images)

    def to_numpy(self) -> np.ndarray:
        """Return the images as one uint8 array of shape (n_images, height, width, 3)."""
        return np.stack([np.asarray(im.convert("RGB")) for im in self.images])
