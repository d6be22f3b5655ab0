"""The on-disk cache of computed ceilings, keyed by a hash of everything they depend on.

:func:`cached_ceiling` returns a cached value or computes and stores it (JSON
for plain values, NPZ for arrays), with keys made canonical and hashed by
``_canonical`` and ``_cache_hash``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brainalign._validation import BrainalignError

__all__ = ["cached_ceiling"]

_CACHE_VERSION = "brainalign-ceiling-cache-v1"


def _canonical(value: Any, where: str) -> Any:
    """A JSON-able, order-independent form of a cache key (arrays by checksum)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else repr(f)
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind in "OUS":
            payload = json.dumps(arr.tolist(), default=str).encode()
        else:
            payload = arr.tobytes()
        return {"__ndarray__": hashlib.sha256(payload).hexdigest(), "dtype": arr.dtype.str,
                "shape": list(arr.shape)}
    if isinstance(value, (os.PathLike,)):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise BrainalignError(f"cache key {where}: keys must be str, got {k!r}.")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v, where) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
    raise BrainalignError(
        f"cache key {where} has an unsupported type {type(value).__name__}; use str, numbers, bool, "
        "None, lists, dicts or numpy arrays."
    )


def _cache_hash(key: Any) -> str:
    text = json.dumps({"version": _CACHE_VERSION, "key": key}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_value(v) for k, v in value.items())
    return False


def _read_cached(json_path: Path, npz_path: Path, key: Any) -> tuple[bool, Any]:
    try:
        if json_path.exists():
            doc = json.loads(json_path.read_text(encoding="utf-8"))
            if doc.get("key") == key:
                return True, doc["value"]
        if npz_path.exists():
            with np.load(npz_path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                if meta.get("key") != key:
                    return False, None
                if meta["kind"] == "array":
                    return True, z["value"]
                value: dict[str, Any] = {}
                for name, kind in meta["entries"].items():
                    arr = z[f"v_{name}"]
                    value[name] = arr if kind == "array" else json.loads(str(arr))
                return True, value
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        pass  # unreadable or partial cache file: recompute and overwrite
    return False, None


def cached_ceiling(
    key_dict: Mapping[str, Any],
    compute_fn: Callable[[], Any],
    cache_dir: str | os.PathLike,
) -> Any:
    """Return ``compute_fn()``, cached on disk under a hash of ``key_dict``.

    Ceilings cost minutes to hours (the subject-pool extrapolation fits
    thousands of models), so they are computed once per input. The cache
    file is ``<cache_dir>/<sha256>.json`` (a value of JSON types) or
    ``<sha256>.npz`` (an array, or a dict with arrays), where the hash covers
    ``key_dict`` in canonical form: dict keys sorted, numpy arrays replaced by
    the SHA-256 of their bytes with their dtype and shape. The key is stored
    in the file and checked on reading. Files are written atomically
    (:func:`brainalign.io.atomic_path`); an unreadable file is recomputed.

    Parameters
    ----------
    key_dict : mapping of str to JSON-able values or numpy arrays
        Everything the ceiling depends on: the data (as arrays or their
        checksums), the metric name and its parameters, seeds, versions.
    compute_fn : callable
        No arguments; returns a float, int, str, bool, None, a list or dict of
        those, a numpy array, or a dict of str to numpy arrays and JSON values.
    cache_dir : str or path-like
        Folder of the cache files (created if missing).

    Returns
    -------
    value
        The cached value, equal to what ``compute_fn`` returned (floats
        exactly; tuples come back as lists, numpy scalars as Python numbers).
    """
    if not isinstance(key_dict, Mapping):
        raise BrainalignError(f"'key_dict' must be a mapping, got {type(key_dict).__name__}.")
    if not callable(compute_fn):
        raise BrainalignError(f"'compute_fn' must be callable, got {type(compute_fn).__name__}.")
    key = _canonical(dict(key_dict), "key_dict")
    digest = _cache_hash(key)
    folder = Path(os.path.expanduser(os.fspath(cache_dir)))
    json_path, npz_path = folder / f"{digest}.json", folder / f"{digest}.npz"
    hit, value = _read_cached(json_path, npz_path, key)
    if hit:
        return value

    # Imported here: brainalign.io pulls in pandas and h5py, kept out of the metric core.
    from brainalign.io import atomic_path

    value = compute_fn()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if _is_json_value(value):
        text = json.dumps({"key": key, "value": value}, sort_keys=True)
        with atomic_path(json_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return json.loads(text)["value"]
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        entries: dict[str, np.ndarray] = {"value": value}
        meta = {"key": key, "kind": "array"}
    elif isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        entries, kinds = {}, {}
        for name, v in value.items():
            if isinstance(v, np.ndarray) and v.dtype.kind != "O":
                entries[f"v_{name}"], kinds[name] = v, "array"
            else:
                v = v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v
                v = list(v) if isinstance(v, tuple) else v
                if not _is_json_value(v):
                    raise BrainalignError(
                        f"compute_fn's result[{name!r}] of type {type(v).__name__} cannot be cached; "
                        "use numbers, str, bool, None, lists, dicts or numpy arrays."
                    )
                entries[f"v_{name}"], kinds[name] = np.array(json.dumps(v)), "json"
        meta = {"key": key, "kind": "dict", "entries": kinds}
    else:
        raise BrainalignError(
            f"compute_fn returned a {type(value).__name__}, which cannot be cached; return a number, "
            "a numpy array, or a dict of numbers, strings and arrays."
        )
    entries["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **entries)
    hit, stored = _read_cached(json_path, npz_path, key)
    return stored if hit else value
