"""NumPy backend (CPU): arrays are :class:`numpy.ndarray`.

Every backend module defines the same names with the same semantics:

- ``name``, ``device``: the backend's name and where its arrays live;
- ``as_dtype(spec)``: the backend dtype for ``"float32"``/``"float64"`` (or a
  NumPy dtype);
- ``asarray(x, dtype=None)``: an array of this backend (no copy when ``x``
  already is one of the right dtype); ``to_numpy(x)``: back to NumPy on CPU;
- ``zeros``, ``empty``, ``astype``, ``take`` (rows or columns by integer
  index), ``matmul(a, b, out=None)``, ``add``/``subtract``/``multiply``/``square``
  with optional ``out`` (in-place when ``out`` is an input), ``einsum``;
- ``eigh`` (ascending eigenvalues of a symmetric matrix), ``svd`` (thin);
- ``mean_float64``/``sum_float64``: reductions accumulated **and returned**
  in float64, whatever the input dtype;
- ``all_finite``, ``synchronize`` (wait for queued device work; a no-op on
  CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

name = "numpy"
device = "cpu"

_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(spec: Any) -> type:
    """NumPy dtype for ``"float32"``, ``"float64"`` or a NumPy float dtype."""
    key = np.dtype(spec).name if not isinstance(spec, str) else spec
    return _DTYPES[key]


def asarray(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as an ndarray (of ``dtype`` if given); a torch tensor is moved to CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    if dtype is None:
        return np.asarray(x)
    return np.asarray(x, dtype=as_dtype(dtype))


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on CPU (no copy for an ndarray)."""
    return np.asarray(x)


def zeros(shape: Any, dtype: Any = "float64") -> np.ndarray:
    return np.zeros(shape, dtype=as_dtype(dtype))


def empty(shape: Any, dtype: Any = "float64") -> np.ndarray:
    return np.empty(shape, dtype=as_dtype(dtype))


def astype(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` cast to ``dtype`` (no copy when it already has it)."""
    return x.astype(as_dtype(dtype), copy=False)


def take(x: np.ndarray, indices: Any, axis: int = 0) -> np.ndarray:
    """Copy of ``x`` restricted to integer ``indices`` along ``axis``."""
    return np.take(x, np.asarray(indices, dtype=np.intp), axis=axis)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.matmul(a, b, out=out)


def add(a: Any, b: Any, out: np.ndarray | None = None) -> np.ndarray:
    return np.add(a, b, out=out)


def subtract(a: Any, b: Any, out: np.ndarray | None = None) -> np.ndarray:
    return np.subtract(a, b, out=out)


def multiply(a: Any, b: Any, out: np.ndarray | None = None) -> np.ndarray:
    return np.multiply(a, b, out=out)


def square(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.square(x, out=out)


def einsum(subscripts: str, *operands: np.ndarray) -> np.ndarray:
    """Einstein summation (``numpy.einsum``); accumulates in the operands' dtype."""
    return np.einsum(subscripts, *operands)


def eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric ``a``."""
    try:
        return scipy.linalg.eigh(a, driver="evd", check_finite=False)
    except np.linalg.LinAlgError:  # pragma: no cover - divide and conquer rarely fails
        return scipy.linalg.eigh(a, driver="ev", check_finite=False)


def svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``a = U @ diag(s) @ Vt`` (singular values descending)."""
    try:
        return scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    except np.linalg.LinAlgError:  # pragma: no cover
        return scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesvd", check_finite=False)


def mean_float64(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean accumulated in float64; the result is float64."""
    return np.mean(x, axis=axis, dtype=np.float64)


def sum_float64(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Sum accumulated in float64; the result is float64."""
    return np.sum(x, axis=axis, dtype=np.float64)


def all_finite(x: np.ndarray) -> bool:
    return bool(np.isfinite(x).all())


def synchronize() -> None:
    """Wait for queued work (nothing to wait for on CPU)."""
