"""Small validators whose messages name the file and the field.

Every user-facing error in brainalign is a :class:`BrainalignError` (or a
subclass). Messages follow one pattern: ``<file>: <field> <what is wrong>
(<what was expected>)``, so that a neuroscientist reading a log on a cluster
knows which file to open and which key, column or row to fix.
"""

from __future__ import annotations

import difflib
import os
import sys
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
    "check_array_input",
    "as_float64",
    "ArrayTypeError",
    "check_not_empty",
    "check_n_features",
    "check_is_fitted",
    "NotFittedError",
    "check_random_state",
    "not_utf8_error",
    "check_params",
    "is_int",
    "Constraint",
    "Interval",
    "OddInt",
    "Options",
    "Boolean",
    "NoneValue",
    "RandomStateLike",
    "TorchDevice",
    "HasMethods",
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


def check_array_input(a: Any, name: str) -> None:
    """Refuse what no array validator here converts: ``None``, sparse matrices, complex numbers.

    The messages carry the phrases scikit-learn's estimator checks look for
    (``requires y to be passed``, ``sparse``, ``Complex data not supported``).
    """
    if a is None:
        if name.lower() == "y":
            raise BrainalignError(f"'{name}' is required: this estimator requires y to be passed, but the target "
                                  "y is None.")
        raise BrainalignError(f"'{name}' is None; pass an array.")
    if hasattr(a, "tocsr") or type(a).__module__.startswith("scipy.sparse"):
        raise BrainalignError(f"'{name}' is a sparse matrix: sparse input is not supported; pass a dense "
                              f"array ({name}.toarray()).")
    dtype = getattr(a, "dtype", None)
    # NumPy arrays by dtype, sequences by value; other array types (torch) are checked by their callers.
    if isinstance(dtype, np.dtype):
        is_complex = dtype.kind == "c"
    elif dtype is None:
        try:
            is_complex = np.asarray(a).dtype.kind == "c"
        except ValueError:  # ragged sequences (e.g. per-subject arrays of different widths): checked per item
            is_complex = False
    else:
        is_complex = False
    if is_complex:
        raise BrainalignError(f"'{name}' must hold real numbers, got complex values: Complex data not supported.")


def check_2d(a: Any, name: str, columns: str = "targets", *, require_finite: bool = True) -> np.ndarray:
    """Return ``a`` as a float64 array of shape (n_samples, n_<columns>); 1-D is one column.

    With ``require_finite`` the array must also be non-empty and free of NaN/inf.
    """
    check_array_input(a, name)
    arr = as_float64(a, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BrainalignError(
            f"'{name}' must be 2-D (n_samples, n_{columns}) or 1-D (n_samples,) for a single "
            f"column, got shape {arr.shape}."
        )
    if require_finite:
        check_not_empty(arr, name, columns)
        check_finite(arr, None, f"'{name}'")
    return arr


def check_not_empty(arr: Any, name: str, columns: str = "features") -> None:
    """Refuse a 2-D array with no rows or no columns (the message is scikit-learn's wording)."""
    n, k = arr.shape
    if n == 0 or k == 0:
        count, noun = (n, "sample") if n == 0 else (k, columns.rstrip("s") if columns.endswith("s") else columns)
        raise BrainalignError(f"'{name}' must not be empty, got shape {tuple(arr.shape)}: {count} {noun}(s) "
                              f"(shape={tuple(arr.shape)}) while a minimum of 1 is required.")


class ArrayTypeError(BrainalignError, TypeError):
    """An array holds values that are not real numbers (strings, dicts, ...)."""


def as_float64(a: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """``a`` as a float NumPy array (float64, or ``dtype``); values that are not numbers raise
    :class:`ArrayTypeError` naming ``name``."""
    try:
        return np.asarray(a, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ArrayTypeError(f"'{name}' must hold real numbers: {err}.") from None


class NotFittedError(BrainalignError, AttributeError):
    """An estimator was used before ``fit``.

    When scikit-learn is already imported (the caller uses its tools), the
    error raised is also a :class:`sklearn.exceptions.NotFittedError`, so
    ``except NotFittedError`` works with either class; brainalign itself never
    imports scikit-learn for it.
    """


_SKLEARN_NOT_FITTED: dict[type, type] = {}


def check_is_fitted(estimator: Any, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has ``attribute`` (set only by ``fit``)."""
    if hasattr(estimator, attribute):
        return
    message = f"This {type(estimator).__name__} instance is not fitted yet; call 'fit' first."
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        raise NotFittedError(message)
    base = sklearn_exceptions.NotFittedError
    if base not in _SKLEARN_NOT_FITTED:
        _SKLEARN_NOT_FITTED[base] = type("NotFittedError", (NotFittedError, base), {"__module__": __name__})
    raise _SKLEARN_NOT_FITTED[base](message)


def check_n_features(estimator: Any, X: Any, n_features: int, was_1d: bool = False) -> None:
    """Refuse ``X`` whose number of features differs from the one ``estimator`` was fit with.

    ``was_1d``: ``X`` was given as a 1-D array (read as one feature).
    """
    expected = estimator.n_features_in_
    if n_features != expected:
        hint = (" Reshape your data: a 1-D array is read as one feature; pass X of shape (n_samples, "
                f"{expected}).") if was_1d else ""
        raise BrainalignError(f"X has {n_features} features, but {type(estimator).__name__} is expecting "
                              f"{expected} features as input.{hint}")


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


# --------------------------------------------------------------------------- parameter constraints
# Estimators declare ``_parameter_constraints = {name: [constraint, ...]}`` (any one may hold), as
# scikit-learn does, and :func:`check_params` checks them all in one place.
class Constraint:
    """One allowed kind of value of a parameter (see :func:`check_params`)."""

    description = "a valid value"

    def accepts(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    from numbers import Integral

    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    import math
    from numbers import Real

    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(float(value))


class Interval(Constraint):
    """An int (``kind="int"``) or finite real number (``kind="real"``) in an interval.

    ``low``/``high`` may be None (unbounded); ``closed`` is ``"both"``, ``"left"``,
    ``"right"`` or ``"neither"``.
    """

    def __init__(self, kind: str, low: float | None, high: float | None, closed: str = "both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if not (is_int(value) if self.kind == "int" else _is_real(value)):
            return False
        low_open, high_open = self.closed in ("right", "neither"), self.closed in ("left", "neither")
        if self.low is not None and (value < self.low or (low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (high_open and value == self.high))

    @property
    def description(self) -> str:
        if self.kind == "real" and self.low == 0 and self.high is None and self.closed in ("right", "neither"):
            return "a number > 0"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        noun = "an int" if self.kind == "int" else "a number"
        return f"{noun} in {left}{self.low if self.low is not None else '-inf'}, " \
               f"{self.high if self.high is not None else 'inf'}{right}"


class OddInt(Constraint):
    """An odd int ``>= low``."""

    def __init__(self, low: int):
        self.low = low
        self.description = f"an odd int >= {low}"

    def accepts(self, value: Any) -> bool:
        return is_int(value) and value >= self.low and value % 2 == 1


class Options(Constraint):
    """One of a fixed set of strings."""

    def __init__(self, *values: str):
        self.values = values
        self.description = ", ".join(repr(v) for v in values)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values


class Boolean(Constraint):
    """``True`` or ``False`` (Python or NumPy booleans)."""

    description = "True or False"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))


class NoneValue(Constraint):
    """``None``."""

    description = "None"

    def accepts(self, value: Any) -> bool:
        return value is None


class RandomStateLike(Constraint):
    """A seed: ``None``, an int or a :class:`numpy.random.Generator`."""

    description = "None, an int or a numpy Generator"

    def accepts(self, value: Any) -> bool:
        return value is None or is_int(value) or isinstance(value, np.random.Generator)


class TorchDevice(Constraint):
    """A torch device name; ``cuda`` only when CUDA is available (torch is imported on use)."""

    description = "a torch device such as 'cpu' or 'cuda:0' (CUDA must be available)"

    def accepts(self, value: Any) -> bool:
        import torch

        try:
            device = torch.device(value)
        except (TypeError, RuntimeError, ValueError):
            return False
        return device.type != "cuda" or torch.cuda.is_available()


class HasMethods(Constraint):
    """An object with the given methods (e.g. a cross-validation splitter with ``split``)."""

    def __init__(self, *methods: str):
        self.methods = methods
        self.description = "an object with a " + " and ".join(f"{m}()" for m in methods) + " method"

    def accepts(self, value: Any) -> bool:
        return not isinstance(value, (str, bytes)) and all(callable(getattr(value, m, None)) for m in self.methods)


def check_params(owner: str, params: dict[str, Any], constraints: dict[str, list[Constraint]]) -> None:
    """Check every parameter named in ``constraints`` against its list of allowed kinds.

    Parameters
    ----------
    owner : str
        Who takes the parameters (an estimator's class name), for the message.
    params : dict
        Parameter name -> value.
    constraints : dict
        Parameter name -> constraints; the value must satisfy at least one.

    Raises
    ------
    BrainalignError
        ``The '<name>' parameter of <owner> must be <allowed>; got <value>.``,
        for the first parameter (in ``constraints``' order) that fails.
    """
    for name, allowed in constraints.items():
        value = params[name]
        if not any(c.accepts(value) for c in allowed):
            text = " or ".join(c.description for c in allowed)
            options = [v for c in allowed if isinstance(c, Options) for v in c.values]
            hint = _suggest(value, options) if isinstance(value, str) and options else ""
            raise BrainalignError(f"The '{name}' parameter of {owner} must be {text}; got {value!r}.{hint}")


def is_hub_name(value: str) -> bool:
    """Whether ``value`` reads as a Hugging Face hub name (``name`` or ``org/name``) rather than a path."""
    return (not os.path.isabs(value) and not value.startswith((".", "~")) and value.count("/") <= 1
            and all(part for part in value.split("/")) and "\\" not in value)


def resolve_against(base: str | os.PathLike, value: str | os.PathLike) -> str:
    """``value`` (``~`` expanded) as an absolute path, relative to ``base`` when relative: how a config's paths are
    read (relative to the config file's folder)."""
    return str((Path(base) / os.path.expanduser(value)).resolve())
