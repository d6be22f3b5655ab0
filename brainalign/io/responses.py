"""The *Responses* contract (``responses/1``): one subject's brain responses in HDF5."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError, check_finite
from .atomic import _json, atomic_path
from .hdf5 import _json_attr, _open_h5, _read_numeric, _require, _require_2d


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
