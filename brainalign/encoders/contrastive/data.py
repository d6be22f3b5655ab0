"""Input validation and splits of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

Brain windows (one array or a list of per-window arrays whose channel counts
may differ across subjects), their zero padding, subject labels (also used by
:mod:`brainalign.encoders.mindeye`) and the training/validation split that
holds out whole groups.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError, is_int


def _python_label(v: Any) -> Hashable:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, str) or is_int(v):
        return v
    raise BrainalignError(
        f"'subjects' labels must be ints or strings (they are saved as JSON), got "
        f"{type(v).__name__} ({v!r})."
    )


def _as_windows(X: Any, name: str = "X") -> tuple[list[np.ndarray] | np.ndarray, int]:
    """Validate windows; return (array (n, C, T) or list of (C_i, T) arrays, n_times)."""
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 3:
            raise BrainalignError(
                f"'{name}' must be an array of shape (n_windows, n_channels, n_times) or a list "
                f"of (n_channels, n_times) arrays, got shape {arr.shape}."
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
            raise BrainalignError(f"'{name}' must not be empty, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            idx = np.argwhere(~np.isfinite(arr))[0]
            raise BrainalignError(
                f"'{name}' contains NaN or infinite values, the first at window {idx[0]}, "
                f"channel {idx[1]}, sample {idx[2]}."
            )
        return arr, arr.shape[2]
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise BrainalignError(
            f"'{name}' must be an array (n_windows, n_channels, n_times) or a list of "
            f"(n_channels, n_times) arrays, got {type(X).__name__}."
        )
    if len(X) == 0:
        raise BrainalignError(f"'{name}' must not be empty.")
    out = []
    n_times = None
    for i, w in enumerate(X):
        a = np.asarray(w, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise BrainalignError(
                f"'{name}[{i}]' must be a non-empty 2-D array (n_channels, n_times), got shape "
                f"{a.shape}."
            )
        if n_times is None:
            n_times = a.shape[1]
        elif a.shape[1] != n_times:
            raise BrainalignError(
                f"All windows of '{name}' must have the same number of samples; '{name}[0]' has "
                f"{n_times} and '{name}[{i}]' has {a.shape[1]}."
            )
        if not np.all(np.isfinite(a)):
            raise BrainalignError(f"'{name}[{i}]' contains NaN or infinite values.")
        out.append(a)
    return out, int(n_times)


def _n_windows(X: list[np.ndarray] | np.ndarray) -> int:
    return len(X) if isinstance(X, list) else X.shape[0]


def _window_channels(X: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(X, list):
        return np.array([w.shape[0] for w in X], dtype=np.int64)
    return np.full(X.shape[0], X.shape[1], dtype=np.int64)


def _pad(X: list[np.ndarray] | np.ndarray, n_max: int) -> np.ndarray:
    """Zero-pad windows to (n, n_max, n_times), float32."""
    if isinstance(X, np.ndarray):
        if X.shape[1] == n_max:
            return np.ascontiguousarray(X, dtype=np.float32)
        out = np.zeros((X.shape[0], n_max, X.shape[2]), dtype=np.float32)
        out[:, : X.shape[1]] = X
        return out
    out = np.zeros((len(X), n_max, X[0].shape[1]), dtype=np.float32)
    for i, w in enumerate(X):
        out[i, : w.shape[0]] = w
    return out


def _subject_labels(subjects: Any, n: int) -> list[Hashable]:
    if subjects is None:
        return [None] * n
    arr = np.asarray(subjects, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise BrainalignError(
            f"'subjects' must have one label per window ({n}), got shape {arr.shape}."
        )
    return [_python_label(v) for v in arr]


def _sort_labels(labels: Sequence[Hashable]) -> list[Hashable]:
    unique = list(dict.fromkeys(labels))
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:
        return unique


def _fmt_subject(label: Hashable) -> str:
    return (
        "the (only) subject (subjects=None)" if label is None else f"subject {label!r}"
    )


def _train_val_split(
    n: int, groups: np.ndarray | None, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices; whole groups are held out when ``groups`` is given."""
    if val_fraction == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if groups is None:
        perm = rng.permutation(n)
        n_val = max(2, round(val_fraction * n))
        val = np.sort(perm[:n_val])
    else:
        uniq, inverse = np.unique(groups, return_inverse=True)
        inverse = inverse.reshape(-1)
        if uniq.size < 2:
            raise BrainalignError(
                f"'groups' has a single group ({uniq[0].item()!r}); holding out whole groups for "
                "validation needs at least 2 (or set val_fraction=0)."
            )
        counts = np.bincount(inverse, minlength=uniq.size)
        order = rng.permutation(uniq.size)
        target = val_fraction * n
        chosen: list[int] = []
        total = 0
        for g in order:
            if total >= target or len(chosen) == uniq.size - 1:
                break
            chosen.append(int(g))
            total += int(counts[g])
        val = np.flatnonzero(np.isin(inverse, chosen))
    train = np.setdiff1d(np.arange(n), val)
    if val.size < 2 or train.size < 2:
        raise BrainalignError(
            f"The validation split holds {val.size} window(s) and leaves {train.size} for "
            f"training (n_windows={n}, val_fraction={val_fraction}); each needs at least 2 "
            "(use more data, another val_fraction, or val_fraction=0)."
        )
    return train, val
