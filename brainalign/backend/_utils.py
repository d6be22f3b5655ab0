"""Choose the array library that brainalign's compute code runs on.

The current backend is a module-level name. :func:`set_backend` changes it and
returns the backend module; :func:`get_backend` returns the current one (or a
named one, without changing the current choice). Every backend module exports
the same names (see :mod:`brainalign.backend.numpy`), so compute code starts
with ``backend = get_backend()`` and calls ``backend.*`` only.

``torch_cuda`` is the module ``brainalign/backend/torch.py`` loaded a second
time under the name ``brainalign.backend.torch_cuda``: that copy puts its
arrays on the CUDA device. Importing it without a CUDA device raises
:class:`~brainalign._validation.BrainalignError` (under pytest it skips the
calling test instead).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

from brainalign._validation import BrainalignError, check_option

__all__ = ["ALL_BACKENDS", "get_backend", "set_backend"]

#: Names accepted by :func:`set_backend`.
ALL_BACKENDS = ["numpy", "torch", "torch_cuda"]

_CURRENT = "numpy"


def _import_torch_cuda() -> ModuleType:
    name = "brainalign.backend.torch_cuda"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).with_name("torch.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load(name: str) -> ModuleType:
    """Import the backend module called ``name`` (raises ImportError if unusable)."""
    check_option("backend", name, ALL_BACKENDS)
    if name == "torch_cuda":
        return _import_torch_cuda()
    return importlib.import_module(f"brainalign.backend.{name}")


def get_backend(name: str | None = None) -> ModuleType:
    """Return a backend module.

    Parameters
    ----------
    name : str or None
        ``None`` gives the current backend (set by :func:`set_backend`,
        ``"numpy"`` by default); a name from :data:`ALL_BACKENDS` gives that
        backend without changing the current one.

    Returns
    -------
    module
        The backend module (attributes ``name``, ``asarray``, ``to_numpy``...).

    Raises
    ------
    BrainalignError
        If ``name`` is unknown, or its library (torch) or device (CUDA) is
        missing.
    """
    if name is None:
        name = _CURRENT
    try:
        return _load(name)
    except ImportError as err:
        raise BrainalignError(f"The '{name}' backend is not available: {err}") from err


def set_backend(name: str, on_error: str = "raise") -> ModuleType:
    """Set the current backend and return its module.

    Parameters
    ----------
    name : {"numpy", "torch", "torch_cuda"}
        The backend to use from now on.
    on_error : {"raise", "warn"}
        What to do when the backend cannot be loaded (torch not installed, no
        CUDA device): raise :class:`~brainalign._validation.BrainalignError`, or
        warn and keep the current backend.

    Returns
    -------
    module
        The backend module now current (the previous one after a warning).
    """
    global _CURRENT
    check_option("on_error", on_error, ["raise", "warn"])
    check_option("backend", name, ALL_BACKENDS)
    try:
        module = get_backend(name)
    except BrainalignError as err:
        if on_error == "raise":
            raise
        warnings.warn(f"{err} Keeping the '{_CURRENT}' backend.", stacklevel=2)
        return get_backend()
    _CURRENT = name
    return module
