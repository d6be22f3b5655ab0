"""Small validators whose messages name the file and the field.

Every user-facing error in brainalign is a :class:`BrainalignError` (or a
subclass). Messages follow one pattern: ``<file>: <field> <what is wrong>
(<what was expected>)``, so that a neuroscientist reading a log on a cluster
knows which file to open and which key, column or row to fix.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BrainalignError",
    "InputFileError",
    "ConfigError",
    "check_fname",
    "check_option",
    "check_type",
    "check_range",
    "check_finite",
    "check_2d",
    "check_random_state",
    "not_utf8_error",
]


class BrainalignError(ValueError):
    """Base class of the errors brainalign raises for bad input."""


class InputFileError(BrainalignError):
    """A data file is missing, unreadable or malformed.

    Parameters
    ----------
    path : str or path-like or None
        The offending file.
    message : str
        What is wrong, naming the field (column, row, key, dataset).
    """

    def __init__(self, path: str | os.PathLike | None, message: str):
        self.path = None if path is None else Path(path)
        self.detail = message
        prefix = f"{self.path}: " if self.path is not None else ""
        super().__init__(prefix + message)


class ConfigError(BrainalignError):
    """A configuration file has an unknown key, a wrong type or a bad value."""

    def __init__(self, path: str | os.PathLike | None, field: str, message: str):
        self.path = None if path is None else Path(path)
        self.field = field
        self.detail = message
        prefix = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{prefix}field '{field}': {message}")


def _suggest(value: Any, allowed: Iterable[Any]) -> str:
    matches = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise naming ``name``."""
    allowed = list(allowed)
    if value not in allowed:
        raise BrainalignError(
            f"Invalid value for the '{name}' parameter: {value!r}. Allowed values are "
            f"{', '.join(repr(a) for a in allowed)}.{_suggest(value, allowed)}"
        )
    return value


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> Any:
    """Return ``value`` if it is an instance of ``types``, else raise naming ``name``.

    A bool is not accepted as an int (Python's ``True`` is an ``int``) unless
    ``bool`` is one of ``types``.
    """
    wanted = types if isinstance(types, tuple) else (types,)
    refused_bool = isinstance(value, (bool, np.bool_)) and not any(t in (bool, np.bool_) for t in wanted)
    if refused_bool or not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise BrainalignError(
            f"'{name}' must be an instance of {names}, got {type(value).__name__} ({value!r})."
        )
    return value


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[low, high]`` (bounds optional), else raise.

    Booleans are refused (``True`` is an ``int`` in Python); numpy integers are accepted.
    """
    from numbers import Integral

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or \
            (low is not None and value < low) or (high is not None and value > high):
        bounds = " and ".join(b for b in (f">= {low}" if low is not None else "",
                                          f"<= {high}" if high is not None else "") if b)
        raise BrainalignError(f"'{name}' must be an int{' ' + bounds if bounds else ''}, got {value!r}.")
    return int(value)


def check_range(
    name: str, value: float, low: float | None = None, high: float | None = None
) -> float:
    """Return ``value`` if ``low <= value <= high`` (bounds optional), else raise."""
    if (low is not None and value < low) or (high is not None and value > high):
        raise BrainalignError(
            f"'{name}' must be in [{low if low is not None else '-inf'}, "
            f"{high if high is not None else 'inf'}], got {value!r}."
        )
    return value


def check_fname(path: str | os.PathLike, kind: str = "file", what: str = "input") -> Path:
    """Return ``path`` as an absolute :class:`~pathlib.Path` that exists.

    Parameters
    ----------
    path : str or path-like
        The path to check.
    kind : {"file", "directory"}
        What the path must be.
    what : str
        A short description used in the message (e.g. ``"TextGrid"``).
    """
    check_option("kind", kind, ["file", "directory"])
    p = Path(os.path.expanduser(os.fspath(path))).absolute()
    if not p.exists():
        raise InputFileError(p, f"{what} {kind} does not exist.")
    if kind == "file" and not p.is_file():
        raise InputFileError(p, f"{what} must be a file, but this is a directory.")
    if kind == "directory" and not p.is_dir():
        raise InputFileError(p, f"{what} must be a directory, but this is a file.")
    if not os.access(p, os.R_OK):
        raise InputFileError(p, f"{what} {kind} is not readable.")
    return p


def not_utf8_error(path: str | os.PathLike, what: str) -> InputFileError:
    """The error for a text file that is not UTF-8, naming the line and byte of its first bad byte.

    Parameters
    ----------
    path : str or path-like
        The file (read again here to locate the byte).
    what : str
        A short description used in the message (e.g. ``"events file"``).
    """
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return InputFileError(
            path, f"{what} is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line} (byte offset "
            f"{err.start}) is not valid UTF-8 ({err.reason}); re-save the file as UTF-8."
        )
    return InputFileError(path, f"{what} is not UTF-8 text.")


def check_finite(array: np.ndarray, path: str | os.PathLike | None, field: str) -> np.ndarray:
    """Raise :class:`InputFileError` naming the first non-finite element's row and column."""
    array = np.asarray(array)
    bad = ~np.isfinite(array)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = ", ".join(f"{ax}={i}" for ax, i in zip(("row", "column", "index"), idx))
        raise InputFileError(
            path, f"{field} contains {int(bad.sum())} NaN or infinite value(s), the first at {where}."
        )
    return array


def check_2d(a: Any, name: str, columns: str = "targets", *, require_finite: bool = True) -> np.ndarray:
    """Return ``a`` as a float64 array of shape (n_samples, n_<columns>); 1-D is one column.

    With ``require_finite`` the array must also be non-empty and free of NaN/inf.
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BrainalignError(
            f"'{name}' must be 2-D (n_samples, n_{columns}) or 1-D (n_samples,) for a single "
            f"column, got shape {arr.shape}."
        )
    if require_finite:
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise BrainalignError(f"'{name}' must not be empty, got shape {arr.shape}.")
        check_finite(arr, None, f"'{name}'")
    return arr


def check_random_state(seed: None | int | np.random.Generator) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    ``None`` gives a fresh unseeded generator, an int a seeded one; a
    Generator is returned unchanged.
    """
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    raise BrainalignError(
        f"'random_state' must be None, an int or a numpy Generator, got {type(seed).__name__}."
    )
