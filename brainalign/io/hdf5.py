"""Opening and checking contract HDF5 files: the ``contract`` attribute, required items, shapes, dtypes, JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError


def _open_any_h5(path: str | os.PathLike) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError as err:
        raise InputFileError(path, "HDF5 file does not exist.") from err
    except OSError as err:
        raise InputFileError(path, f"not a readable HDF5 file ({err}).") from err


def contract_of(path: str | os.PathLike) -> str:
    """The ``contract`` attribute of an HDF5 file (``"responses/1"``, ``"design/1"``, ...); empty for an HDF5
    file written by something else.

    Raises
    ------
    InputFileError
        The file does not exist or is not HDF5.
    """
    with _open_any_h5(path) as f:
        return str(f.attrs.get("contract", ""))


def _open_h5(path: str | os.PathLike, contract: str) -> h5py.File:
    f = _open_any_h5(path)
    found = f.attrs.get("contract", None)
    if found is None or not str(found).startswith(contract.split("/")[0]):
        f.close()
        raise InputFileError(path, f"attribute 'contract' is {found!r}, expected {contract!r}.")
    return f


def _require(f: h5py.File, path: str | os.PathLike, datasets: Sequence[str] = (),
             attributes: Sequence[str] = ()) -> None:
    """Raise naming the first missing dataset or attribute of an open contract file."""
    for name in datasets:
        if not isinstance(f.get(name), h5py.Dataset):
            raise InputFileError(path, f"dataset {name!r} is missing (contract {f.attrs.get('contract')!r}).")
    for name in attributes:
        if name not in f.attrs:
            raise InputFileError(path, f"attribute {name!r} is missing (contract {f.attrs.get('contract')!r}).")


def _require_2d(arr: np.ndarray, path: str | os.PathLike, name: str, rows: str) -> None:
    if arr.ndim != 2:
        raise InputFileError(path, f"dataset {name!r} has shape {arr.shape}, expected 2-D ({rows}, n_columns).")
    if 0 in arr.shape:
        raise InputFileError(path, f"dataset {name!r} has shape {arr.shape}: it is empty (expected at least one "
                                   f"row ({rows}) and one column).")


_DTYPE_WORDS = {"S": "text", "U": "text", "O": "text or objects", "c": "complex numbers", "b": "booleans",
                "V": "compound records"}


def _read_numeric(f: h5py.File, path: str | os.PathLike, name: str) -> np.ndarray:
    """Dataset ``name`` of an open contract file, refused unless it holds real numbers (int or float)."""
    dtype = f[name].dtype
    if dtype.kind not in "fiu":
        raise InputFileError(path, f"dataset {name!r} holds {_DTYPE_WORDS.get(dtype.kind, 'values')} (dtype "
                                   f"{dtype}), expected real numbers (float or int).")
    return f[name][()]


def _json_attr(f: h5py.File, path: str | os.PathLike, name: str, kind: type[list] | type[dict]) -> Any:
    """Attribute ``name`` parsed as JSON; a list must hold strings only."""
    try:
        value = json.loads(f.attrs[name])
    except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise InputFileError(path, f"attribute {name!r} is not valid JSON ({err}).") from None
    if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
        expected = "a JSON list of strings" if kind is list else "a JSON object"
        raise InputFileError(path, f"attribute {name!r} must be {expected}, got {str(value)[:80]!r}.")
    return value
