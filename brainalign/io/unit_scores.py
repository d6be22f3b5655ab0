"""The *Unit scores* contract (``unit_scores/1``): per-unit arrays of the volume score and ceiling stages in HDF5."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError
from .atomic import _json, atomic_path
from .hdf5 import _open_h5
from .responses import Responses


def write_unit_scores(
    path: str | os.PathLike, subjects: Sequence[Responses], arrays: dict[str, dict[str, np.ndarray]],
    attrs: dict[str, Any], prov: dict[str, Any],
) -> Path:
    """Atomically write per-unit arrays of several subjects on their shared grid (contract ``unit_scores/1``).

    Read by :func:`read_unit_scores`.

    Parameters
    ----------
    path : path-like
        The output file.
    subjects : sequence of Responses
        The subjects whose units the arrays hold; they must share one grid
        (``unit_index``), whose affine, unit index and ``unit_rois`` are stored.
    arrays : dict
        Subject -> {array name -> ndarray}, one HDF5 group per subject.
    attrs : dict
        File attributes, each stored as JSON (e.g. ``layers``, ``feature_set``).
    prov : dict
        Provenance (:func:`~brainalign.io.provenance`).

    Returns
    -------
    path : Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    InputFileError
        When two subjects have different units.
    """
    ref = subjects[0]
    for resp in subjects[1:]:
        if resp.unit_index is None or not np.array_equal(resp.unit_index, ref.unit_index):
            raise InputFileError(path, f"subjects {ref.subject} and {resp.subject} have different units; "
                                       "volume datasets share one analysis mask.")
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["contract"] = "unit_scores/1"
        for key, value in attrs.items():
            f.attrs[key] = _json(value)
        f.attrs["unit_rois"] = _json(list(ref.unit_rois))
        f.attrs["provenance"] = _json(prov)
        f.create_dataset("grid_affine", data=np.asarray(ref.affine, np.float64), track_times=False)
        f.create_dataset("grid_unit_index", data=ref.unit_index, compression="gzip", track_times=False)
        for subject, store in arrays.items():
            group = f.create_group(subject, track_order=True)
            for key, value in store.items():
                group.create_dataset(key, data=value, compression="gzip", compression_opts=1, track_times=False)
    return Path(path)


def read_unit_scores(path: str | os.PathLike) -> dict[str, Any]:
    """Read an HDF5 file written by the volume score or ceiling stage.

    Returns
    -------
    dict
        ``attrs`` (decoded), ``affine``, ``unit_index``, ``unit_rois`` and
        ``subjects``: subject → {array name → ndarray}.
    """
    with _open_h5(path, "unit_scores/1") as f:
        try:
            attrs = {k: json.loads(v) for k, v in f.attrs.items() if k not in ("contract",)}
            out = {"attrs": attrs, "affine": f["grid_affine"][()], "unit_index": f["grid_unit_index"][()],
                   "unit_rois": attrs.get("unit_rois", []),
                   "subjects": {name: {k: g[k][()] for k in g} for name, g in f.items()
                                if isinstance(g, h5py.Group)}}
        except KeyError as err:
            raise InputFileError(path, f"missing dataset or attribute {err}.") from err
    return out
