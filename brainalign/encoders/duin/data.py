"""Du-IN's inputs: checking trials and labels, and packing the trials per subject.

Checks the epochs ``X`` and the labels ``y`` and ``subjects`` given to
:class:`~brainalign.encoders.duin.DuINWordDecoder`, turns labels into Python
scalars (dict keys, the JSON sidecar), and stores the trials as one tensor per
subject, addressed by global trial index and grouped by subject per batch
(``_Packed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError


def _as_trials(X: Any, name: str = "X") -> list[np.ndarray]:
    """A list of float32 (n_channels_i, n_times_i) arrays, checked finite, one per trial."""
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        arr = np.asarray(X.detach().cpu() if torch.is_tensor(X) else X)
        if arr.ndim != 3:
            raise BrainalignError(
                f"'{name}' must be 3-D (n_trials, n_channels, n_times) or a list of 2-D "
                f"(n_channels, n_times) trials, got an array of shape {arr.shape}."
            )
        trials = list(arr)
    elif isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
        trials = list(X)
    else:
        raise BrainalignError(
            f"'{name}' must be an array (n_trials, n_channels, n_times) or a list of "
            f"(n_channels, n_times) arrays, got {type(X).__name__}."
        )
    if not trials:
        raise BrainalignError(f"'{name}' must contain at least one trial, got 0.")
    out = []
    for i, t in enumerate(trials):
        a = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t)
        if a.dtype.kind not in "biuf":
            raise BrainalignError(
                f"'{name}' trial {i} must hold real numbers, got dtype {a.dtype}."
            )
        if a.ndim != 2:
            raise BrainalignError(
                f"'{name}' trial {i} must be 2-D (n_channels, n_times), got shape {a.shape}."
            )
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise BrainalignError(f"'{name}' trial {i} is empty (shape {a.shape}).")
        if not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise BrainalignError(
                f"'{name}' trial {i} contains NaN or infinite values (first at channel "
                f"{bad[0]}, sample {bad[1]})."
            )
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out


def _as_labels(v: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(v)
    if arr.ndim != 1:
        raise BrainalignError(
            f"'{name}' must be 1-D (n_trials,), got shape {arr.shape}."
        )
    if arr.shape[0] != n:
        raise BrainalignError(
            f"'{name}' has {arr.shape[0]} entries but 'X' has {n} trials; they must match."
        )
    return arr


def _unique(arr: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.unique(arr)
    except TypeError:
        types = sorted({type(a).__name__ for a in arr})
        raise BrainalignError(
            f"'{name}' mixes label types that cannot be sorted ({types})."
        ) from None


def _py(v: Any) -> Any:
    """A Python scalar for dict keys and JSON (numpy scalars unwrapped)."""
    return v.item() if isinstance(v, np.generic) else v


def _json_labels(values: np.ndarray, name: str) -> list[Any]:
    out = []
    for v in values:
        v = _py(v)
        if not isinstance(v, (bool, int, float, str)):
            raise BrainalignError(
                f"Cannot save '{name}': label {v!r} of type {type(v).__name__} is not a JSON "
                "scalar (use int, float, bool or str labels)."
            )
        out.append(v)
    return out


class _Packed:
    """Trials stored per subject as (n_s, C_s, T) tensors, addressed by global index."""

    def __init__(
        self,
        trials: list[np.ndarray],
        subj_idx: np.ndarray,
        n_subjects: int,
        n_times: int,
    ):
        self.subj = subj_idx.astype(np.int64)
        self.local = np.zeros(len(trials), dtype=np.int64)
        self.xs: list[torch.Tensor | None] = [None] * n_subjects
        for s in range(n_subjects):
            members = np.flatnonzero(self.subj == s)
            self.local[members] = np.arange(members.size)
            if members.size:
                self.xs[s] = torch.from_numpy(
                    np.stack([trials[i][:, :n_times] for i in members])
                )

    def __len__(self) -> int:
        return self.subj.size

    def batch(
        self, idx: np.ndarray, device: torch.device
    ) -> tuple[list[tuple[int, torch.Tensor]], np.ndarray]:
        """Group a batch by subject: ``(groups, order)`` with ``order`` the trials' global
        indices in the groups' concatenation order."""
        order = idx[np.argsort(self.subj[idx], kind="stable")]
        groups = []
        for s in np.unique(self.subj[order]):
            loc = self.local[order[self.subj[order] == s]]
            groups.append((int(s), self.xs[s][torch.from_numpy(loc)].to(device)))
        return groups, order
