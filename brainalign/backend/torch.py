"""PyTorch backends: ``torch`` (CPU) and ``torch_cuda`` (first CUDA device).

Defines the same names as :mod:`brainalign.backend.numpy` (see its docstring
for the list and semantics); arrays are :class:`torch.Tensor` on ``device``.

This file is imported twice: as ``brainalign.backend.torch`` (CPU tensors) and,
through :func:`brainalign.backend.set_backend`, as
``brainalign.backend.torch_cuda`` (CUDA tensors). The second import raises
``ImportError`` when no CUDA device is visible, or skips the calling test when
running under pytest.

Float32 matrix products follow PyTorch's global settings: brainalign never
enables TF32, but it does not disable it either (set
``torch.backends.cuda.matmul.allow_tf32 = False`` for full float32 accuracy).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

try:
    import torch
except ImportError as _err:  # pragma: no cover - torch is a dependency
    raise ImportError("the torch backends need PyTorch: pip install torch") from _err

if __name__.endswith("torch_cuda"):
    name = "torch_cuda"
    device = "cuda"
    if not torch.cuda.is_available():
        _msg = (
            "no CUDA device is available (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, built with CUDA {torch.version.cuda}). Use the 'torch' "
            "or 'numpy' backend instead."
        )
        if "pytest" in sys.modules:
            import pytest

            pytest.skip(_msg, allow_module_level=True)
        raise ImportError(_msg)
else:
    name = "torch"
    device = "cpu"

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def as_dtype(spec: Any) -> torch.dtype:
    """Torch dtype for ``"float32"``, ``"float64"``, a NumPy dtype or a torch dtype."""
    if isinstance(spec, torch.dtype):
        return spec
    key = spec if isinstance(spec, str) else np.dtype(spec).name
    return _DTYPES[key]


def asarray(x: Any, dtype: Any = None) -> torch.Tensor:
    """``x`` as a tensor on ``device`` (of ``dtype`` if given); shares memory when possible."""
    target = None if dtype is None else as_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=target)
    arr = np.asarray(x)
    if any(s < 0 for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=target, device=device)


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def zeros(shape: Any, dtype: Any = "float64") -> torch.Tensor:
    return torch.zeros(shape, dtype=as_dtype(dtype), device=device)


def empty(shape: Any, dtype: Any = "float64") -> torch.Tensor:
    return torch.empty(shape, dtype=as_dtype(dtype), device=device)


def astype(x: torch.Tensor, dtype: Any) -> torch.Tensor:
    """``x`` cast to ``dtype`` (no copy when it already has it)."""
    return x.to(dtype=as_dtype(dtype))


def take(x: torch.Tensor, indices: Any, axis: int = 0) -> torch.Tensor:
    """Copy of ``x`` restricted to integer ``indices`` along ``axis``."""
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=x.device)
    return torch.index_select(x, axis, idx)


def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    if out is None:
        return torch.matmul(a, b)
    return torch.matmul(a, b, out=out)


def add(a: Any, b: Any, out: torch.Tensor | None = None) -> torch.Tensor:
    if out is None:
        return torch.add(a, b)
    return torch.add(a, b, out=out)


def subtract(a: Any, b: Any, out: torch.Tensor | None = None) -> torch.Tensor:
    if out is None:
        return torch.sub(a, b)
    return torch.sub(a, b, out=out)


def multiply(a: Any, b: Any, out: torch.Tensor | None = None) -> torch.Tensor:
    if out is None:
        return torch.mul(a, b)
    return torch.mul(a, b, out=out)


def square(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    if out is None:
        return torch.square(x)
    return torch.square(x, out=out)


def einsum(subscripts: str, *operands: torch.Tensor) -> torch.Tensor:
    """Einstein summation (``torch.einsum``); accumulates in the operands' dtype."""
    return torch.einsum(subscripts, *operands)


def eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric ``a``."""
    return torch.linalg.eigh(a)


def svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``a = U @ diag(s) @ Vt`` (singular values descending)."""
    return torch.linalg.svd(a, full_matrices=False)


def mean_float64(x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """Mean accumulated in float64; the result is float64."""
    if axis is None:
        return torch.mean(x, dtype=torch.float64)
    return torch.mean(x, dim=axis, dtype=torch.float64)


def sum_float64(x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """Sum accumulated in float64; the result is float64."""
    if axis is None:
        return torch.sum(x, dtype=torch.float64)
    return torch.sum(x, dim=axis, dtype=torch.float64)


def all_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def synchronize() -> None:
    """Wait for queued device work (CUDA kernels are asynchronous)."""
    if device == "cuda":
        torch.cuda.synchronize()
