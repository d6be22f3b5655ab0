"""The workflow's one ``device`` setting: which torch device the heavy stages use.

``device: auto | cpu | cuda | cuda:N`` in a dataset config. ``auto`` is the
first CUDA device when torch sees one and the CPU otherwise; ``cuda`` and
``cuda:N`` are refused with a clear error where no such device exists (at
``brainalign validate`` time and again in the stage that needs it, which on a
cluster runs on another node).

On a GPU, :func:`resolve_device` also makes runs of one config on one machine
repeatable: deterministic algorithms (``torch.use_deterministic_algorithms``)
and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG``). CPU runs are not
touched: their results are bit-identical with or without this setting.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["DEVICE_PATTERN", "check_device", "resolve_device", "ridge_backend", "uses_gpu"]

#: What the config's ``device`` may say.
DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:[0-9]{1,2})$"


def _available_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(spec: str, *, field: str = "device", path: Any = None) -> str:
    """The concrete device ``spec`` names on this machine (``"cpu"`` or ``"cuda:N"``).

    Parameters
    ----------
    spec : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    field, path
        The config key and file named in the error.

    Raises
    ------
    ConfigError
        ``spec`` is malformed, or names a CUDA device this machine does not have.
    """
    from .._validation import ConfigError

    if not isinstance(spec, str) or not re.match(DEVICE_PATTERN, spec):
        raise ConfigError(path, field, f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}.")
    if spec == "cpu":
        return "cpu"
    count = _available_gpus()
    if spec == "auto":
        return "cuda:0" if count else "cpu"
    index = int(spec.partition(":")[2] or 0)
    if count == 0:
        import torch

        raise ConfigError(path, field, f"is {spec!r} but torch sees no CUDA device on this machine "
                                       f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                                       "use 'cpu' or 'auto', or run on a GPU node.")
    if index >= count:
        raise ConfigError(path, field, f"is {spec!r} but this machine has {count} CUDA device(s) "
                                       f"(cuda:0 to cuda:{count - 1}).")
    return f"cuda:{index}"


def uses_gpu(spec: str) -> bool:
    """Whether ``spec`` asks for a GPU explicitly (``cuda``/``cuda:N``; ``auto`` does not)."""
    return isinstance(spec, str) and spec.startswith("cuda")


def resolve_device(cfg: dict[str, Any], *, field: str = "device") -> str:
    """The device of a stage: ``cfg[field]`` checked on this machine, made deterministic on a GPU.

    Parameters
    ----------
    cfg : dict
        A loaded config.
    field : str
        Dotted key of the setting (``"device"``, or ``"language.device"``,
        which defaults to the top-level ``device``).

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda:N"``.
    """
    node: Any = cfg
    for part in field.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        node, field = cfg.get("device", "cpu"), "device"
    device = check_device(node, field=field)
    if device.startswith("cuda"):
        _deterministic_cuda(int(device.partition(":")[2]))
    return device


def _deterministic_cuda(index: int) -> None:
    """Deterministic kernels and a fixed cuBLAS workspace (set before cuBLAS first runs)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.cuda.set_device(index)


def ridge_backend(device: str, requested: str | None = None) -> str:
    """The array backend of the ridge encoders for ``device``.

    A GPU runs the ``torch_cuda`` backend; on the CPU the configured backend
    (``requested``, default ``numpy``) is kept, so CPU results do not change.
    """
    if device.startswith("cuda"):
        return "torch_cuda"
    return requested or "numpy"
