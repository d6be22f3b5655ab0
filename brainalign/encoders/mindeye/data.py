"""Input validation and the validation split of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

Voxel patterns (one array or a list of 1-D arrays whose widths may differ
across subjects), subject labels and the per-subject stratified split.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError, as_float64, check_array_input, check_not_empty
from brainalign.encoders.contrastive.data import _python_label


def _as_samples(X: Any, name: str) -> list[np.ndarray] | np.ndarray:
    """Validate voxel patterns: a (n, n_voxels) float32 array or a list of 1-D float32 arrays."""
    check_array_input(X, name)
    if isinstance(X, np.ndarray) or torch.is_tensor(X) or hasattr(X, "__array__"):
        arr = as_float64(X, name, np.float32)
        if arr.ndim != 2:
            hint = " Reshape your data: one sample is X.reshape(1, -1)." if arr.ndim == 1 else ""
            raise BrainalignError(
                f"'{name}' must be a non-empty array of shape (n_samples, n_voxels) or a list of "
                f"1-D (n_voxels,) arrays, got shape {arr.shape}.{hint}"
            )
        check_not_empty(arr, name, "features")
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise BrainalignError(
                f"'{name}' contains NaN or infinite values, the first at sample {i}, voxel {j}."
            )
        return arr
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise BrainalignError(
            f"'{name}' must be an array (n_samples, n_voxels) or a list of 1-D (n_voxels,) "
            f"arrays, got {type(X).__name__}."
        )
    if len(X) == 0:
        raise BrainalignError(f"'{name}' must not be empty.")
    out = []
    for i, x in enumerate(X):
        a = np.asarray(x, dtype=np.float32)
        if a.ndim != 1 or a.shape[0] == 0:
            raise BrainalignError(
                f"'{name}[{i}]' must be a non-empty 1-D array (n_voxels,), got shape {a.shape}."
            )
        if not np.all(np.isfinite(a)):
            raise BrainalignError(f"'{name}[{i}]' contains NaN or infinite values.")
        out.append(a)
    return out


def _widths(X: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(X, list):
        return np.array([x.shape[0] for x in X], dtype=np.int64)
    return np.full(X.shape[0], X.shape[1], dtype=np.int64)


def _stack(X: list[np.ndarray] | np.ndarray, rows: np.ndarray) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X[rows]
    return np.stack([X[i] for i in rows]) if rows.size else np.zeros((0, 0), np.float32)


def _labels(subjects: Any, n: int) -> list[Hashable]:
    if subjects is None:
        return [None] * n
    arr = np.asarray(subjects, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise BrainalignError(
            f"'subjects' must have one label per sample ({n}), got shape {arr.shape}."
        )
    return [_python_label(v) for v in arr]


def _stratified_split(
    subject_idx: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``round(val_fraction · n_s)`` random samples of every subject."""
    n = subject_idx.shape[0]
    if val_fraction == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    val = []
    for s in np.unique(subject_idx):
        rows = np.flatnonzero(subject_idx == s)
        k = min(round(val_fraction * rows.size), rows.size - 2)
        val.append(rows[rng.permutation(rows.size)[: max(k, 0)]])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train = np.setdiff1d(np.arange(n), val_idx).astype(np.int64)
    if val_idx.size < 2:
        raise BrainalignError(
            f"The validation split holds {val_idx.size} sample(s) (n_samples={n}, "
            f"val_fraction={val_fraction}); it needs at least 2 (use more data, a larger "
            "val_fraction, or val_fraction=0)."
        )
    return train, val_idx
