"""Model checkpoints: safetensors weights plus a JSON sidecar, written atomically, never pickled.

A checkpoint named ``model`` (or ``model.safetensors``/``model.json``) is the
pair ``model.safetensors`` (tensors) and ``model.json`` (parameters, fitted
metadata, ``format`` and ``format_version``). Both files go through
:func:`brainalign.io.atomic_path`, so a killed process leaves no half-written
checkpoint; reading checks the format and version before any tensor is used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._validation import BrainalignError, check_fname
from .io import atomic_path

__all__ = [
    "checkpoint_paths",
    "finite_or_none",
    "history_from_json",
    "history_to_json",
    "read_checkpoint",
    "write_checkpoint",
]


def finite_or_none(value: float) -> float | None:
    """``float(value)``, or None (JSON null) for NaN and infinities, which JSON cannot hold."""
    return float(value) if math.isfinite(value) else None


def history_to_json(history: Mapping[str, Sequence[Any]], labels: Collection[str]) -> dict[str, list[Any]]:
    """A training history (column name -> per-epoch values) in JSON form.

    Columns named in ``labels`` (``"epoch"``, ``"phase"``) are kept as they are;
    the others are floats, with NaN and infinities stored as null.
    """
    return {k: [v if k in labels else finite_or_none(float(v)) for v in vals] for k, vals in history.items()}


def history_from_json(history: Mapping[str, Sequence[Any]], labels: Collection[str]) -> dict[str, list[Any]]:
    """Invert :func:`history_to_json` (null becomes NaN)."""
    return {k: [v if k in labels else (math.nan if v is None else float(v)) for v in vals]
            for k, vals in history.items()}


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) paths of the checkpoint ``path`` (with or without a suffix)."""
    p = Path(os.path.expanduser(os.fspath(path)))
    base = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def write_checkpoint(path: str | os.PathLike, state: dict[str, Any], meta: dict[str, Any], fmt: str,
                     version: int) -> tuple[Path, Path]:
    """Atomically write ``state`` (name → tensor) and ``meta`` (JSON-serialisable, finite floats)."""
    from safetensors.torch import save_file

    weights, sidecar = checkpoint_paths(path)
    meta = {"format": fmt, "format_version": version, **meta}
    text = json.dumps(meta, indent=1, allow_nan=False)
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": fmt})
    with atomic_path(sidecar) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return weights, sidecar


def read_checkpoint(path: str | os.PathLike, fmt: str, version: int, what: str,
                    device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Returns
    -------
    state : dict of str to torch.Tensor
    meta : dict
        The sidecar, ``format`` and ``format_version`` checked.
    sidecar : Path
        For error messages naming the file.
    """
    from safetensors.torch import load_file

    weights, sidecar = checkpoint_paths(path)
    check_fname(sidecar, what=f"{what} sidecar")
    check_fname(weights, what=f"{what} weights")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrainalignError(f"{sidecar}: not valid JSON ({err}).") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise BrainalignError(f"{sidecar}: field 'format' is {got!r}, expected {fmt!r}.")
    if meta.get("format_version") != version:
        raise BrainalignError(f"{sidecar}: field 'format_version' is {meta.get('format_version')!r}, this "
                              f"brainalign reads {version}.")
    return load_file(str(weights), device=device), meta, sidecar
