"""Argument checks shared by the reconstructors: seeds (and their CPU generators),
tensors, numbers, local model folders and dtypes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError

_MAX_SEED = 2**63 - 1


def _resolve_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per image: ``seed + i`` for an int, else the given sequence."""
    if isinstance(seed, bool):
        raise BrainalignError(f"'seed' must be an int or a sequence of ints, got {seed!r}.")
    if isinstance(seed, Integral):
        seeds = [int(seed) + i for i in range(n)]
    elif isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str):
        seeds = list(seed)
        if len(seeds) != n:
            raise BrainalignError(
                f"'seed' has {len(seeds)} seeds but there are {n} images (give one int, "
                "or one seed per image)."
            )
        if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in seeds):
            raise BrainalignError(f"'seed' must contain only ints, got {seeds!r}.")
        seeds = [int(s) for s in seeds]
    else:
        raise BrainalignError(
            f"'seed' must be an int or a sequence of ints, got {type(seed).__name__}."
        )
    if any(s < 0 or s > _MAX_SEED for s in seeds):
        raise BrainalignError(f"'seed' values must be in [0, 2**63 - 1], got {seeds!r}.")
    return seeds


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """CPU generators (reproducible across devices: diffusers draws on CPU and moves)."""
    return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` (array-like or tensor) as a finite float32 CPU tensor."""
    if value is None:
        raise BrainalignError(f"'{name}' is required.")
    try:
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu", torch.float32)
        else:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise BrainalignError(f"'{name}' must be a numeric array or tensor: {err}") from None
    if t.numel() == 0:
        raise BrainalignError(f"'{name}' is empty (shape {tuple(t.shape)}).")
    if not torch.isfinite(t).all():
        raise BrainalignError(f"'{name}' contains NaN or infinite values.")
    return t


def _check_float(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise BrainalignError(f"'{name}' must be a finite number, got {value!r}.")
    if value < low or (high is not None and value > high):
        hi = "inf" if high is None else high
        raise BrainalignError(f"'{name}' must be in [{low}, {hi}], got {value!r}.")
    return float(value)


def _local_dir(path: str | os.PathLike, name: str = "path") -> Path:
    """An existing local folder (never a hub name: nothing is downloaded)."""
    if not isinstance(path, str | os.PathLike):
        raise BrainalignError(f"'{name}' must be a path to a local folder, got {path!r}.")
    p = Path(os.path.expanduser(os.fspath(path))).absolute()
    if not p.is_dir():
        raise BrainalignError(
            f"'{name}' must be an existing local folder saved with save_pretrained "
            f"(models are never downloaded), got {os.fspath(path)!r}."
        )
    return p


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise BrainalignError(f"'dtype' must be a floating torch.dtype, got {dtype!r}.")
    return dtype
