"""The *Features* contract (``features/1``, and ``design/1`` for designs): per-layer arrays of one model in HDF5."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError, check_finite
from .atomic import _json, atomic_path
from .hdf5 import _json_attr, _open_h5, _read_numeric, _require, _require_2d


@dataclass
class Features:
    """Per-layer features of one model (the *Features* contract).

    Parameters
    ----------
    layers : dict of str to ndarray of shape (n_items, n_features)
        One float32 array per layer, in the model's layer order. ``n_items``
        is the number of events (words) for word-level features, or the
        number of samples (TRs) for design matrices.
    model : str
        The feature set's name in the config (e.g. ``"minilm"``).
    settings : dict
        Model identity and extraction settings (path, weights hash, context
        window, pooling, seed, ...).
    times : ndarray of shape (n_items,) or None
        Time of each row in seconds (word onsets, or frame times).
    """

    layers: dict[str, np.ndarray]
    model: str
    settings: dict[str, Any] = field(default_factory=dict)
    times: np.ndarray | None = None

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)


def write_features(
    path: str | os.PathLike, features: Features, prov: Mapping[str, Any], kind: str = "features"
) -> Path:
    """Atomically write a :class:`Features` to HDF5 (one dataset per layer)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        grp = f.create_group("layers", track_order=True)
        for name, arr in features.layers.items():
            grp.create_dataset(name, data=np.asarray(arr, dtype=np.float32), track_times=False)
        if features.times is not None:
            f.create_dataset("times", data=np.asarray(features.times, float), track_times=False)
        f.attrs["contract"] = f"{kind}/1"
        f.attrs["model"] = features.model
        f.attrs["layer_order"] = _json(list(features.layers))
        f.attrs["settings"] = _json(features.settings)
        f.attrs["provenance"] = _json(prov)
    return Path(path)


def read_features(
    path: str | os.PathLike, layers: Sequence[str] | None = None, kind: str = "features"
) -> Features:
    """Read a :class:`Features` file, optionally only some ``layers``."""
    with _open_h5(path, f"{kind}/1") as f:
        _require(f, path, (), ("layer_order", "model", "settings"))
        order = _json_attr(f, path, "layer_order", list)
        if not order:
            raise InputFileError(path, "attribute 'layer_order' lists no layer.")
        wanted = order if layers is None else list(layers)
        missing = [name for name in wanted if name not in order]
        if missing:
            raise InputFileError(path, f"layer(s) {missing} not found; available: {order}.")
        _require(f, path, [f"layers/{name}" for name in wanted])
        for name in wanted:
            _require_2d(f["layers"][name], path, f"layers/{name}", "n_items")
        arrays = {name: _read_numeric(f, path, f"layers/{name}") for name in wanted}
        times = _read_numeric(f, path, "times") if "times" in f else None
        feats = Features(arrays, str(f.attrs["model"]), _json_attr(f, path, "settings", dict), times)
    for name, arr in arrays.items():
        check_finite(arr, path, f"dataset 'layers/{name}'")
    return feats
