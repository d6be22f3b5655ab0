"""Brain responses in any of the forms a notebook holds them, as one list of subjects.

:func:`as_subjects` accepts arrays, pandas tables, :class:`~brainalign.io.Responses`
objects and their HDF5 files, NIfTI images (with an atlas or a mask), MNE
``Raw``/``Epochs``/``Evoked`` objects, and lists or dicts of these (one per
subject).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, InputFileError
from ..io.hdf5 import contract_of
from ..io.responses import Responses

__all__ = ["SubjectResponses", "as_subjects"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_TABLE_SUFFIXES = (".tsv", ".tsv.gz", ".npy")


@dataclass
class SubjectResponses:
    """One subject's responses, named.

    Attributes
    ----------
    subject : str
    data : ndarray of shape (n_samples, n_units), float64
    unit_names : list of str, length n_units
    unit_rois : list of str, length n_units
        ROI of each unit (the unit's own name when no ROIs were given).
    times : ndarray of shape (n_samples,) or None
        Sample times in seconds on the events' clock, where known.
    runs : ndarray of shape (n_samples,), int
        Run label of each sample (all 1 for one run).
    confounds : ndarray of shape (n_samples, n_confounds) or None
        Nuisance regressors carried by the input (e.g. motion of a
        :class:`~brainalign.io.Responses`).
    epochs : bool
        True when samples are epochs (MNE ``Epochs``): no time-series
        cleaning and no HRF applies.
    modality : str
        ``"fmri"`` unless the input says otherwise (MNE objects, a
        :class:`~brainalign.io.Responses` of M/EEG or sEEG): word-level
        features are convolved with the HRF for fMRI only.
    own_runs : bool
        The input labelled its samples' runs (a Responses); else ``runs`` of
        :func:`as_subjects` may label them.
    preprocessing : dict or None
        For the workflow's responses files, cleaned by its responses stage
        already: the ``preprocessing`` settings recorded in their provenance
        (the design is then cleaned with them, as the workflow's score stage
        does, and the responses are left as they are). None for raw inputs.
    """

    subject: str
    data: np.ndarray
    unit_names: list[str]
    unit_rois: list[str]
    times: np.ndarray | None
    runs: np.ndarray
    confounds: np.ndarray | None = None
    epochs: bool = False
    modality: str = "fmri"
    preprocessing: dict[str, Any] | None = None
    own_runs: bool = False


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in (*_NIFTI_SUFFIXES, *_TABLE_SUFFIXES, ".h5", ".hdf5") if name.endswith(s)), path.suffix)


def _from_responses(resp: Responses) -> SubjectResponses:
    return SubjectResponses(resp.subject, np.asarray(resp.data, dtype=np.float64), list(resp.unit_names),
                            list(resp.unit_rois), np.asarray(resp.times, dtype=np.float64),
                            np.asarray(resp.runs), resp.confounds, modality=resp.modality, own_runs=True)


def _from_nifti(img: Any, name: str, atlas: Any, mask: Any, atlas_labels: Sequence[str] | None,
                where: str) -> tuple[SubjectResponses, float | None]:
    """Average within atlas parcels, or take the mask's voxels; the TR from the header (s) when it has one."""
    from nilearn import image, maskers

    img = image.load_img(img)
    if img.ndim != 4:
        raise InputFileError(where, f"a NIfTI image of responses must be 4-D (x, y, z, volumes), got {img.ndim}-D.")
    zooms = img.header.get_zooms()
    tr = float(zooms[3]) if len(zooms) > 3 and zooms[3] > 0 else None
    if atlas is not None:
        masker = maskers.NiftiLabelsMasker(labels_img=atlas, resampling_target="data", strategy="mean",
                                           standardize=None)
        data = masker.fit_transform(img)
        values = [int(v) for v in masker.labels_ if int(v) != 0] if hasattr(masker, "labels_") else None
        values = values if values and len(values) == data.shape[1] else list(range(1, data.shape[1] + 1))
        if atlas_labels is not None:
            if len(atlas_labels) != data.shape[1]:
                raise BrainalignError(f"'atlas_labels' has {len(atlas_labels)} names but the atlas has "
                                      f"{data.shape[1]} parcels in {where}.")
            names = [str(label) for label in atlas_labels]
        else:
            names = [f"parcel_{v}" for v in values]
        rois = names
    elif mask is not None:
        masker = maskers.NiftiMasker(mask_img=mask, standardize=None)
        data = masker.fit_transform(img)
        ijk = np.argwhere(np.asarray(image.load_img(masker.mask_img_).dataobj) > 0)
        names = [f"voxel_{i}_{j}_{k}" for i, j, k in ijk]
        rois = list(names)  # each voxel its own ceiling; give rois= to group voxels
    else:
        raise BrainalignError(f"responses {where} are a NIfTI image: give 'atlas' (a labels image: one unit per "
                              "parcel) or 'mask' (a binary image: one unit per voxel).")
    n = data.shape[0]
    subject = SubjectResponses(name, np.asarray(data, dtype=np.float64), names, rois, None,
                               np.ones(n, dtype=np.int64))
    return subject, tr


def _from_mne(obj: Any, name: str) -> tuple[SubjectResponses, float | None]:
    """Continuous data (Raw, Evoked) as samples × channels; Epochs as epochs × (channel, time) units.

    Only data channels are kept (MEG, EEG, sEEG, ECoG, ...; no stimulus or
    misc channels), without the channels marked bad in ``info['bads']``.
    """
    inst = obj.copy().pick("data", exclude="bads")
    channels = [str(c) for c in inst.ch_names]
    if hasattr(inst, "events") and hasattr(inst, "get_data") and np.ndim(inst.get_data()) == 3:
        data = inst.get_data()  # (n_epochs, n_channels, n_times)
        times = np.asarray(inst.times)
        n_epochs = data.shape[0]
        units = [f"{c}@{t * 1000:.0f}ms" for c in channels for t in times]
        rois = [c for c in channels for _ in times]
        flat = data.reshape(n_epochs, -1)
        return SubjectResponses(name, flat.astype(np.float64), units, rois, None,
                                np.ones(n_epochs, dtype=np.int64), epochs=True, modality="meeg"), None
    data = inst.data if type(inst).__name__ == "Evoked" else inst.get_data()
    data = np.asarray(data, dtype=np.float64).T
    sfreq = float(inst.info["sfreq"])
    times = np.asarray(inst.times, dtype=np.float64)
    return SubjectResponses(name, data, channels, list(channels), times,
                            np.ones(data.shape[0], dtype=np.int64), modality="meeg"), 1.0 / sfreq


def _recorded_preprocessing(path: Path) -> dict[str, Any]:
    """The ``preprocessing`` section of the config recorded in a responses file's provenance."""
    import json

    import h5py

    with h5py.File(path, "r") as f:
        try:
            record = json.loads(str(f.attrs.get("provenance", "")))
            return dict(record["config"]["preprocessing"])
        except (ValueError, KeyError, TypeError):
            raise InputFileError(path, "attribute 'provenance' records no config.preprocessing: the responses "
                                       "stage's cleaning cannot be repeated on the design.") from None


def _is_mne(obj: Any) -> bool:
    return type(obj).__module__.startswith("mne.") and hasattr(obj, "ch_names")


def _is_nifti(obj: Any) -> bool:
    return type(obj).__module__.startswith("nibabel.") and hasattr(obj, "affine")


def _one_subject(item: Any, name: str, *, unit_names: Sequence[str] | None, rois: Sequence[str] | None,
                 atlas: Any, mask: Any, atlas_labels: Sequence[str] | None) -> tuple[SubjectResponses, float | None]:
    """One subject from one input; the sampling interval (s) when the input knows it."""
    if isinstance(item, Responses):
        resp = _from_responses(item)
        return resp, float(item.sampling) if item.modality == "fmri" else 1.0 / float(item.sampling)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        suffix = _suffix(path)
        if suffix in (*_NIFTI_SUFFIXES, ".h5", ".hdf5") and not path.is_file():
            raise InputFileError(path, "responses file does not exist.")
        if suffix in _NIFTI_SUFFIXES:
            return _from_nifti(path, name, atlas, mask, atlas_labels, str(path))
        if suffix in (".h5", ".hdf5") and contract_of(path).startswith("responses"):
            from ..io.responses import read_responses

            subject, interval = _one_subject(read_responses(path), name, unit_names=unit_names, rois=rois,
                                             atlas=atlas, mask=mask, atlas_labels=atlas_labels)
            subject.preprocessing = _recorded_preprocessing(path)
            return subject, interval
        if suffix in (*_TABLE_SUFFIXES, ".h5", ".hdf5"):
            from ..datasets.timeseries import read_timeseries

            data, names = read_timeseries(path, list(unit_names) if unit_names is not None else None)
            return _from_array(data, name, names, rois, str(path)), None
        raise InputFileError(path, "responses file must be NIfTI (.nii, .nii.gz), a brainalign responses HDF5, or a "
                                   "matrix (.tsv, .tsv.gz, .npy, .h5).")
    if _is_nifti(item):
        return _from_nifti(item, name, atlas, mask, atlas_labels, f"of subject {name!r}")
    if _is_mne(item):
        return _from_mne(item, name)
    if isinstance(item, pd.DataFrame):
        names = [str(c) for c in item.columns] if unit_names is None else list(unit_names)
        return _from_array(item.to_numpy(dtype=np.float64), name, names, rois, f"of subject {name!r}"), None
    return _from_array(item, name, unit_names, rois, f"of subject {name!r}"), None


def _from_array(data: Any, name: str, unit_names: Sequence[str] | None, rois: Sequence[str] | None,
                where: str) -> SubjectResponses:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BrainalignError(f"responses {where} must be 2-D (samples × units), got shape {arr.shape}.")
    n_units = arr.shape[1]
    names = [f"unit_{k}" for k in range(n_units)] if unit_names is None else [str(u) for u in unit_names]
    if len(names) != n_units:
        raise BrainalignError(f"'unit_names' has {len(names)} names but the responses {where} have "
                              f"{n_units} units (columns).")
    roi_list = list(names) if rois is None else [str(r) for r in rois]
    if len(roi_list) != n_units:
        raise BrainalignError(f"'rois' has {len(roi_list)} labels but the responses {where} have {n_units} "
                              "units (columns).")
    if not np.all(np.isfinite(arr)):
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise BrainalignError(f"responses {where} hold a NaN or infinite value (sample {row}, unit {names[col]!r}).")
    return SubjectResponses(name, arr, names, roi_list, None, np.ones(arr.shape[0], dtype=np.int64))


def as_subjects(
    responses: Any, *, subjects: Sequence[str] | None = None, unit_names: Sequence[str] | None = None,
    rois: Sequence[str] | Mapping[str, str] | None = None, atlas: Any = None, mask: Any = None,
    atlas_labels: Sequence[str] | None = None, runs: Any = None,
) -> tuple[list[SubjectResponses], float | None]:
    """Every subject's responses, and their sampling interval in seconds when an input states it.

    Parameters
    ----------
    responses : array-like, DataFrame, Responses, path, NIfTI image, MNE object, or a list/dict of these
        A 2-D array (samples × units) is one subject; a 3-D array is
        (subjects × samples × units); a list holds one item per subject and a
        dict maps subject names to items.
    subjects : sequence of str or None
        Subject names (default: the dict's keys, the Responses' subjects,
        else ``sub-01``, ``sub-02``, ...).
    unit_names, rois : sequence of str or None
        Names and ROI labels of the units (columns) of array inputs; ``rois``
        may also map unit names to ROIs for any input.
    atlas, mask : path or NIfTI image or None
        For NIfTI inputs: a labels image (one unit per parcel, the mean of its
        voxels) or a binary mask (one unit per voxel).
    atlas_labels : sequence of str or None
        Names of the atlas parcels in label order (label 0 is background).
    runs : array-like of shape (n_samples,) or None
        Run label of each sample, in run order, for inputs that do not label
        their runs (arrays, tables, NIfTI): the same for every such subject.
        Default: one run.

    Returns
    -------
    subjects : list of SubjectResponses
    sampling_interval : float or None
        Seconds between samples, from a Responses object, a NIfTI header or
        an MNE ``info['sfreq']``.
    """
    roi_map = dict(rois) if isinstance(rois, Mapping) else None
    roi_seq = None if roi_map is not None else rois
    if isinstance(responses, Mapping):
        names, items = [str(k) for k in responses], list(responses.values())
    elif isinstance(responses, (list, tuple)):
        names, items = None, list(responses)
    elif isinstance(responses, np.ndarray) and responses.ndim == 3:
        names, items = None, list(responses)
    else:
        names, items = None, [responses]
    if not items:
        raise BrainalignError("'responses' holds no subject.")
    if subjects is not None:
        if len(subjects) != len(items):
            raise BrainalignError(f"'subjects' names {len(subjects)} subjects but 'responses' holds {len(items)}.")
        names = [str(s) for s in subjects]
    out, intervals = [], set()
    for k, item in enumerate(items):
        default = names[k] if names is not None else f"sub-{k + 1:02d}"
        subject, interval = _one_subject(item, default, unit_names=unit_names, rois=roi_seq, atlas=atlas,
                                         mask=mask, atlas_labels=atlas_labels)
        if names is not None:
            subject.subject = names[k]
        if roi_map is not None:
            missing = [u for u in subject.unit_names if u not in roi_map]
            if missing:
                raise BrainalignError(f"'rois' gives no ROI for unit(s) {missing[:5]} of subject {subject.subject!r}.")
            subject.unit_rois = [str(roi_map[u]) for u in subject.unit_names]
        if runs is not None and not subject.own_runs:
            labels = np.asarray(runs)
            if labels.shape != (subject.data.shape[0],):
                raise BrainalignError(f"'runs' must give one run label per sample: shape {labels.shape}, but "
                                      f"subject {subject.subject!r} has {subject.data.shape[0]} samples.")
            subject.runs = labels
        if interval is not None:
            intervals.add(round(interval, 9))
        out.append(subject)
    seen = [s.subject for s in out]
    if len(set(seen)) != len(seen):
        raise BrainalignError(f"subject names must be unique, got {seen}.")
    if len(intervals) > 1:
        raise BrainalignError(f"the subjects' responses have different sampling intervals {sorted(intervals)} s.")
    return out, (intervals.pop() if intervals else None)
