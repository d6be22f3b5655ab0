"""NIfTI in and out: 4-D BOLD images to :class:`~brainalign.io.Responses`, score maps back.

The first piece of whole-brain fMRI support (issue 4). Two ways to turn a 4-D
BOLD image into units:

* ``mask`` (or no ``mask`` and no ``labels``): one unit per voxel, in the
  order of ``numpy.nonzero(mask)`` (C order), named ``"v{i}"``, with its
  coordinates in mm from the image affine. A mask must already be on the BOLD
  grid: masks are **not** resampled, because resampling a binary mask silently
  changes which voxels are analysed.
* ``labels``: one unit per parcel of an integer label image (an atlas), the
  mean time course of its voxels (:class:`nilearn.maskers.NiftiLabelsMasker`).
  A label image on another grid is resampled to the BOLD grid with
  nearest-neighbour interpolation, and this is logged.

Every error is an :class:`~brainalign.InputFileError` that names the file and
the header field or property that is wrong.

The :class:`VolumeGrid` returned alongside the responses records the affine,
the 3-D shape and the mask, so that per-unit scores can be written back as a
NIfTI map in the data's space (:func:`write_score_map`).
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import InputFileError, check_fname
from ..io import Responses, atomic_path

__all__ = ["VolumeGrid", "load_bold_responses", "mask_on_grid", "labels_on_grid", "read_score_map",
           "write_score_map", "write_nifti"]

logger = logging.getLogger("brainalign")

_TIME_UNIT_SCALE = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


@dataclass
class VolumeGrid:
    """The voxel grid the units were taken from.

    Parameters
    ----------
    affine : ndarray of shape (4, 4)
        Voxel-to-mm affine of the BOLD image.
    shape : tuple of 3 int
        Shape of one 3-D volume.
    mask : ndarray of bool, shape ``shape``
        The voxels used (for label extraction: the voxels with a non-zero label).
    labels : ndarray of int, shape ``shape``, or None
        The label image on this grid when units are parcels, else None.
    label_ids : ndarray of int or None
        The label of each unit, in unit order, when units are parcels.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    mask: np.ndarray
    labels: np.ndarray | None = None
    label_ids: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        """Number of units: voxels in the mask, or parcels."""
        if self.label_ids is not None:
            return len(self.label_ids)
        return int(self.mask.sum())

    @property
    def unit_index(self) -> np.ndarray:
        """int32 volume of shape ``shape``: the unit of each voxel, -1 outside every unit."""
        index = np.full(self.shape, -1, dtype=np.int32)
        if self.label_ids is not None:
            for k, lab_id in enumerate(self.label_ids):
                index[self.labels == lab_id] = k
        else:
            index[self.mask] = np.arange(int(self.mask.sum()), dtype=np.int32)
        return index

    @classmethod
    def from_unit_index(cls, affine: np.ndarray, unit_index: np.ndarray) -> "VolumeGrid":
        """The grid stored with volume responses (``Responses.affine``, ``Responses.unit_index``)."""
        index = np.asarray(unit_index, dtype=np.int64)
        mask = index >= 0
        n_units = int(index.max()) + 1 if mask.any() else 0
        if mask.sum() == n_units and np.array_equal(index[mask], np.arange(n_units)):
            return cls(affine=np.asarray(affine, np.float64), shape=tuple(index.shape), mask=mask)
        return cls(affine=np.asarray(affine, np.float64), shape=tuple(index.shape), mask=mask,
                   labels=np.where(mask, index + 1, 0), label_ids=np.arange(1, n_units + 1))


# --------------------------------------------------------------------------- helpers
def _load_img(img: Any, what: str):
    """Return ``(nibabel image, path or None)`` for a path or an image."""
    import nibabel as nib

    if isinstance(img, (str, os.PathLike)):
        path = check_fname(img, "file", what)
        try:
            loaded = nib.load(str(path))
        except Exception as err:  # nibabel raises several types for bad files
            raise InputFileError(
                path, f"{what} is not a readable NIfTI image: its header cannot be read ({err})."
            ) from err
        return loaded, path
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise InputFileError(
            None, f"{what} must be a path or a nibabel image, got {type(img).__name__}."
        )
    fname = img.get_filename()
    return img, (Path(fname) if fname else None)


def _read_data(img, path: Path | None, what: str, dtype: Any = None) -> np.ndarray:
    """The voxel values of ``img`` (float ``dtype``, or as stored when None), or an error naming the file."""
    try:
        return img.get_fdata(dtype=dtype) if dtype is not None else np.asanyarray(img.dataobj)
    except Exception as err:  # EOFError, zlib.error, OSError, ValueError: truncated or corrupt data
        raise InputFileError(
            path, f"{what} data (the voxel values after the header) cannot be read: the file is truncated "
            f"or corrupt ({type(err).__name__}: {err})."
        ) from err


def _label(path: Path | None, what: str) -> str:
    return what if path is None else f"{what} ({path.name})"


def _header_tr(img, path: Path | None) -> float | None:
    """TR in seconds from pixdim[4] (zooms[3]) and the time unit; None when absent."""
    zooms = img.header.get_zooms()
    if len(zooms) < 4:
        return None
    tr = float(zooms[3])
    if not np.isfinite(tr) or tr <= 0:
        return None
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # noqa: BLE001 - non-NIfTI headers
        unit = "sec"
    tr *= _TIME_UNIT_SCALE.get(unit, 1.0)
    if tr > 100:
        logger.warning(
            "%s: header field pixdim[4] gives TR = %g s, which looks like milliseconds; "
            "pass tr= to override.", path if path is not None else "BOLD image", tr,
        )
    return tr


def _same_grid(img_a, img_b) -> bool:
    return tuple(img_a.shape[:3]) == tuple(img_b.shape[:3]) and np.allclose(
        img_a.affine, img_b.affine, atol=1e-5
    )


def _check_nan(values: np.ndarray, path: Path | None, what: str, coords: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        nvox = int(bad.any(axis=1).sum())
        first = tuple(int(c) for c in coords[np.argmax(bad.any(axis=1))])
        raise InputFileError(
            path,
            f"{what} data has {nvox} voxel(s) with NaN or infinite values among the voxels "
            f"analysed, the first at voxel index {first}.",
        )


# --------------------------------------------------------------------------- masks and labels
def mask_on_grid(mask: Any, ref_img: Any, what: str = "mask image") -> tuple[np.ndarray, Path | None]:
    """A 3-D binary mask on the grid of ``ref_img``, as a bool array.

    Masks are never resampled: a mask on another grid (shape or affine), a
    mask that is not 3-D, or one with values other than 0 and 1 is an
    :class:`~brainalign.InputFileError` naming the file and the header field
    or property.
    """
    mimg, mpath = _load_img(mask, what)
    mname = _label(mpath, what)
    if len(mimg.shape) != 3:
        raise InputFileError(
            mpath, f"{mname} must be 3-D, but its header field 'dim' gives shape {tuple(mimg.shape)}."
        )
    if not _same_grid(mimg, ref_img):
        ref_path = ref_img.get_filename()
        ref_name = Path(ref_path).name if ref_path else "the BOLD image"
        raise InputFileError(
            mpath, f"{mname} is on another grid than {ref_name}: shape {tuple(mimg.shape)} "
            f"vs {tuple(ref_img.shape[:3])}, affine\n{np.array2string(mimg.affine, precision=3)}\nvs\n"
            f"{np.array2string(np.asarray(ref_img.affine), precision=3)}. Masks are not resampled; "
            "resample it to the BOLD grid first."
        )
    marr = _read_data(mimg, mpath, mname)
    values = np.unique(marr[np.isfinite(marr)]) if marr.size else np.array([])
    if not np.all(np.isin(values, (0, 1))) or not np.isfinite(marr).all():
        raise InputFileError(
            mpath, f"{mname} must be binary (0 and 1), but its data contains values "
            f"{values[:5].tolist()}{' ...' if len(values) > 5 else ''}"
            f"{' and NaN' if not np.isfinite(marr).all() else ''}."
        )
    return marr.astype(bool), mpath


def labels_on_grid(labels: Any, ref_img: Any) -> tuple[np.ndarray, Path | None]:
    """An integer label image (atlas) on the grid of ``ref_img`` (int64 array, 0 = background).

    Values must be integers up to 1e-3 (Analyze/NIfTI scaling can store label 3
    as 3.00009); a trailing singleton 4th dimension is dropped. A label image
    on another grid is resampled with nearest-neighbour interpolation, which is
    logged.
    """
    import nibabel as nib
    from nilearn.image import resample_to_img

    limg, lpath = _load_img(labels, "label image")
    lname = _label(lpath, "label image")
    larr = _read_data(limg, lpath, lname)
    if larr.ndim == 4 and larr.shape[3] == 1:
        larr = larr[..., 0]
    if larr.ndim != 3:
        raise InputFileError(
            lpath, f"{lname} must be 3-D, but its header field 'dim' gives shape {tuple(limg.shape)}."
        )
    if not np.isfinite(larr).all() or np.abs(larr - np.rint(larr)).max(initial=0) > 1e-3:
        raise InputFileError(lpath, f"{lname} data must be integer labels (found NaN or "
                                    "non-integer values).")
    limg = nib.Nifti1Image(np.rint(larr).astype(np.int32), limg.affine)
    if not _same_grid(limg, ref_img):
        logger.info(
            "%s: resampling the label image from shape %s to the grid %s (nearest-neighbour).",
            lpath or "label image", tuple(limg.shape), tuple(ref_img.shape[:3]),
        )
        limg = resample_to_img(
            limg, nib.Nifti1Image(np.zeros(ref_img.shape[:3], np.int8), ref_img.affine),
            interpolation="nearest", force_resample=True, copy_header=True,
        )
    return np.rint(np.asanyarray(limg.get_fdata())).astype(np.int64), lpath


# --------------------------------------------------------------------------- reading
def load_bold_responses(
    bold: Any,
    *,
    mask: Any = None,
    labels: Any = None,
    tr: float | None = None,
    subject: str = "sub-01",
    run: int = 1,
    confounds: np.ndarray | None = None,
    confound_names: Any = (),
) -> tuple[Responses, VolumeGrid]:
    """Read a 4-D BOLD image into a :class:`~brainalign.io.Responses`.

    Parameters
    ----------
    bold : str, path-like or nibabel image
        A 4-D image (x, y, z, time).
    mask : str, path-like, nibabel image or None
        A 3-D binary image on the BOLD grid (same shape and affine). Not
        resampled: a mask on another grid is an error. When neither ``mask``
        nor ``labels`` is given, the mask is every voxel whose time course is
        not constant (non-zero variance), which drops the zero background of
        skull-stripped or fMRIPrep images without estimating a brain mask.
    labels : str, path-like, nibabel image or None
        A 3-D integer label image (0 = background). Resampled to the BOLD grid
        with nearest-neighbour interpolation when on another grid. Mutually
        exclusive with ``mask``.
    tr : float or None
        Repetition time in seconds; default from the header (pixdim[4], in
        the header's time unit).
    subject : str
        Subject identifier stored in the responses.
    run : int
        Run label of every sample.
    confounds : ndarray of shape (n_volumes, n_confounds) or None
        Nuisance regressors, stored unchanged.
    confound_names : sequence of str
        Names of the confound columns.

    Returns
    -------
    responses : Responses
        ``data`` of shape (n_volumes, n_units), ``times = arange(n) * tr``;
        voxel units are named ``"v{i}"`` with ROI ``"mask"`` and coordinates in
        mm, parcel units ``"label_<k>"`` (name and ROI) with the centroid of the
        parcel in mm.
    grid : VolumeGrid
        Affine, 3-D shape and mask, for :func:`write_score_map`.
    """
    from nibabel.affines import apply_affine

    if mask is not None and labels is not None:
        raise InputFileError(None, "pass either mask= or labels=, not both.")
    img, path = _load_img(bold, "BOLD image")
    name = _label(path, "BOLD image")
    if len(img.shape) != 4:
        raise InputFileError(
            path, f"{name} must be 4-D (x, y, z, time), but its header field 'dim' gives "
            f"shape {tuple(img.shape)}."
        )
    if tr is None:  # the workflow passes the TR it read once per run (datasets.bids.run_geometry)
        header_tr = _header_tr(img, path)
        if header_tr is None:
            raise InputFileError(
                path, f"{name} header field pixdim[4] (TR) is missing or zero, and no tr= "
                "was given."
            )
        tr = header_tr
    elif not (np.isfinite(tr) and tr > 0):
        raise InputFileError(path, f"tr must be a positive number of seconds, got {tr!r}.")
    tr = float(tr)
    shape3 = tuple(int(s) for s in img.shape[:3])
    affine = np.asarray(img.affine, dtype=np.float64)
    data4 = _read_data(img, path, name, np.float32)
    n_vol = data4.shape[3]

    if labels is None:
        if mask is None:
            _check_nan(data4.reshape(-1, n_vol), path, name,
                       np.array(np.unravel_index(np.arange(int(np.prod(shape3))), shape3)).T)
            mask_arr = np.ptp(data4, axis=3) > 0
            where = "the non-constant voxels"
        else:
            mask_arr, mpath = mask_on_grid(mask, img, "mask image")
            mname = _label(mpath, "mask image")
            where = mname
            path_for_empty = mpath
        if not mask_arr.any():
            raise InputFileError(
                path if mask is None else path_for_empty,
                f"the mask ({where}) contains no voxels.",
            )
        ijk = np.argwhere(mask_arr)  # C order == numpy boolean indexing order
        series = data4[mask_arr]  # (n_voxels, n_volumes)
        _check_nan(series, path, name, ijk)
        out = series.T
        names = [f"v{i}" for i in range(out.shape[1])]
        rois = ["mask"] * out.shape[1]
        coords = apply_affine(affine, ijk)
        grid = VolumeGrid(affine=affine, shape=shape3, mask=mask_arr)
    else:
        out, names, coords, grid = _extract_labels(img, path, name, data4, labels, tr)
        rois = list(names)

    responses = Responses(
        data=out,
        sampling=tr,
        times=np.arange(n_vol, dtype=np.float64) * tr,
        runs=np.full(n_vol, int(run), dtype=np.int64),
        unit_names=names,
        unit_rois=rois,
        subject=subject,
        modality="fmri",
        unit_coords=np.asarray(coords, dtype=np.float64),
        confounds=confounds,
        confound_names=list(confound_names),
    )
    return responses, grid


def _extract_labels(img, path, name, data4, labels, tr):
    import nibabel as nib
    from nibabel.affines import apply_affine
    from nilearn.maskers import NiftiLabelsMasker

    lab, lpath = labels_on_grid(labels, img)
    lname = _label(lpath, "label image")
    mask_arr = lab != 0
    if not mask_arr.any():
        raise InputFileError(lpath, f"{lname} has no non-zero label on the BOLD grid.")
    ijk = np.argwhere(mask_arr)
    _check_nan(data4[mask_arr], path, name, ijk)
    ids = np.unique(lab[mask_arr])
    bold_img = nib.Nifti1Image(data4, img.affine)
    masker = NiftiLabelsMasker(
        labels_img=nib.Nifti1Image(lab.astype(np.int32), img.affine),
        background_label=0, strategy="mean", standardize=None, t_r=tr,
        resampling_target=None, reports=False,
    )
    signals = masker.fit_transform(bold_img)
    if signals.shape[1] != len(ids):  # pragma: no cover - guards a nilearn change
        raise InputFileError(lpath, f"{lname}: nilearn returned {signals.shape[1]} parcels "
                                    f"for {len(ids)} labels.")
    names = [f"label_{k}" for k in ids]
    coords = np.array([apply_affine(img.affine, np.argwhere(lab == k)).mean(axis=0) for k in ids])
    grid = VolumeGrid(affine=np.asarray(img.affine, np.float64),
                      shape=tuple(int(s) for s in img.shape[:3]),
                      mask=mask_arr, labels=lab, label_ids=ids)
    return signals, names, coords, grid


# --------------------------------------------------------------------------- writing
def write_score_map(values: Any, grid: VolumeGrid, path: str | os.PathLike) -> Path:
    """Atomically write per-unit values as a float32 NIfTI map on ``grid``.

    Parameters
    ----------
    values : array of shape (n_units,) or (n_units, n_maps)
        One value per unit (voxel of the mask, or parcel) in unit order.
    grid : VolumeGrid
        From :func:`load_bold_responses`.
    path : str or path-like
        Ends in ``.nii`` or ``.nii.gz``.

    Returns
    -------
    path : Path

    Notes
    -----
    Voxels outside the mask (or with label 0) are written as 0, not NaN, so
    that common viewers and thresholding tools display the map directly; read
    the mask from the grid to tell "outside" from "score 0". A 1-D ``values``
    gives a 3-D image, a 2-D one a 4-D image with one volume per map. Gzipped
    files are written with a zero gzip timestamp, so identical inputs give
    identical bytes.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputFileError(path, "score map file name must end in '.nii' or '.nii.gz'.")
    vals = np.asarray(values, dtype=np.float32)
    if vals.ndim not in (1, 2) or vals.shape[0] != grid.n_units:
        raise InputFileError(
            path, f"values have shape {vals.shape}, expected ({grid.n_units},) or "
            f"({grid.n_units}, n_maps) for this grid."
        )
    vals2 = vals[:, None] if vals.ndim == 1 else vals
    volume = np.zeros(tuple(grid.shape) + (vals2.shape[1],), dtype=np.float32)
    if grid.label_ids is not None:
        for k, lab_id in enumerate(grid.label_ids):
            volume[grid.labels == lab_id] = vals2[k]
    else:
        volume[grid.mask] = vals2
    if vals.ndim == 1:
        volume = volume[..., 0]
    img = nib.Nifti1Image(volume, grid.affine)
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm", "sec")
    return write_nifti(path, img)


def write_nifti(path: str | os.PathLike, img: Any, *, compresslevel: int = 9) -> Path:
    """Atomically write a NIfTI image to ``path`` (``.nii``, or gzipped ``.nii.gz``).

    Parameters
    ----------
    path : str or path-like
        Ends in ``.nii`` or ``.nii.gz``.
    img : nibabel.Nifti1Image
    compresslevel : int, default=9
        gzip level for ``.nii.gz`` (1 is several times faster on large 4-D images).

    Returns
    -------
    path : Path

    Notes
    -----
    The gzip header's timestamp is zero, so identical images give identical
    bytes. The image is serialised in memory: the temporary file's name ends
    in ``.part``, from which nibabel could not infer the format.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputFileError(path, "a NIfTI file name must end in '.nii' or '.nii.gz'.")
    with atomic_path(path) as tmp:
        raw = img.to_bytes()
        tmp.write_bytes(gzip.compress(raw, compresslevel=compresslevel, mtime=0)
                        if path.name.endswith(".gz") else raw)
    return path


def read_score_map(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a map written by :func:`write_score_map`.

    Returns
    -------
    data : ndarray, float32, 3-D or 4-D
        The map (0 outside the mask).
    affine : ndarray of shape (4, 4)
    """
    img, path = _load_img(path, "score map")
    return _read_data(img, path, "score map", np.float32), np.asarray(img.affine, dtype=np.float64)
