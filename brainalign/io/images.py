"""The image-decoding contracts: ``images.h5`` (``images/1``) and ``betas/<subject>.h5`` (``betas/1``) in HDF5."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError
from .atomic import _json, atomic_path
from .hdf5 import _open_h5


def write_images(path: Path, images: np.ndarray, captions: list[str], tokens: np.ndarray, pooled: np.ndarray,
                 ids: np.ndarray, test: np.ndarray, prov: dict[str, Any],
                 targets: dict[str, np.ndarray] | None = None, bank: ImageBank | None = None) -> Path:
    """Atomically write the ``images.h5`` contract (``images/1``; read by :func:`read_images`).

    Parameters
    ----------
    path : Path
        The output file.
    images : ndarray of shape (n_images, height, width, 3), uint8
    captions : list of str, length n_images
    tokens : ndarray of shape (n_images, n_tokens, dim)
        Token embeddings of the images (stored as float32).
    pooled : ndarray of shape (n_images, dim)
        Pooled image embeddings (stored as float32).
    ids : ndarray of shape (n_images,), int
        Image ids.
    test : ndarray of shape (n_images,), bool
        Held-out images.
    prov : dict
        Provenance (:func:`~brainalign.io.provenance`).
    targets : dict of str to ndarray, optional
        Further target spaces, one array per image each (stored as float32
        under the group ``targets``, in the dict's order).
    bank : ImageBank, optional
        The image bank that selectivity is projected onto, when it is not the
        training images (group ``bank``).

    Returns
    -------
    path : Path
        ``path``.

    Notes
    -----
    The dataset ``text`` holds the captions' sentence embeddings
    (all-MiniLM-L6-v2, :func:`brainalign.metrics.captions.sentence_embeddings`),
    computed here.
    """
    from ..metrics.captions import sentence_embeddings

    # Caption embeddings (all-MiniLM-L6-v2): the text target of the decoders.
    text = sentence_embeddings(list(captions))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("text", data=np.asarray(text, np.float32), track_times=False)
        f.create_dataset("images", data=images, track_times=False)
        f.create_dataset("tokens", data=tokens.astype(np.float32), track_times=False)
        f.create_dataset("pooled", data=pooled.astype(np.float32), track_times=False)
        f.create_dataset("image_id", data=np.asarray(ids, np.int64), track_times=False)
        f.create_dataset("test", data=np.asarray(test, bool), track_times=False)
        group = f.create_group("targets", track_order=True)
        for name, values in (targets or {}).items():
            if len(values) != len(images):
                raise ValueError(f"target {name!r} has {len(values)} rows for {len(images)} images.")
            group.create_dataset(name, data=np.asarray(values, np.float32), track_times=False)
        if bank is not None:
            g = f.create_group("bank")
            g.create_dataset("pooled", data=np.asarray(bank.pooled, np.float32), track_times=False)
            g.create_dataset("tokens", data=np.asarray(bank.tokens, np.float32), track_times=False)
            g.attrs["names"] = json.dumps(list(bank.names))
        f.attrs["captions"] = json.dumps(list(captions))
        f.attrs["contract"] = "images/1"
        f.attrs["provenance"] = _json(prov)
    return path


def read_images(path: str | os.PathLike) -> dict[str, Any]:
    """The ``images.h5`` contract: images, captions, embeddings (pooled, tokens, text), ids, test flags and the
    further target spaces (``targets``: name → array, in their written order; absent in older files)."""
    with _open_h5(path, "images/1") as f:
        out = {k: f[k][()] for k in ("images", "tokens", "pooled", "text", "image_id", "test")}
        out["targets"] = {name: ds[()] for name, ds in f["targets"].items()} if "targets" in f else {}
        out["bank"] = (ImageBank(f["bank"]["pooled"][()], f["bank"]["tokens"][()], json.loads(f["bank"].attrs["names"]))
                       if "bank" in f else None)
        out["captions"] = json.loads(f.attrs["captions"])
    return out


@dataclass(frozen=True)
class ImageBank:
    """Embedded images that voxel preferences are projected onto (BrainSCUBA's bank).

    Attributes
    ----------
    pooled : ndarray of shape (n_bank, dim)
    tokens : ndarray of shape (n_bank, n_tokens, width)
    names : list of str
        The image files' names.
    """

    pooled: np.ndarray
    tokens: np.ndarray
    names: list[str]


def rows_of_image_ids(path: str | os.PathLike, stored: Any, wanted: Any, what: str,
                      field: str | None = None) -> np.ndarray:
    """The row of each ``wanted`` image id among a file's ``stored`` ids.

    Raises
    ------
    InputFileError
        Naming ``path`` (and ``field``) and the first missing ids: "no <what> for image id(s) [...]".
    """
    index = {int(i): k for k, i in enumerate(np.asarray(stored))}
    missing = [int(i) for i in wanted if int(i) not in index]
    if missing:
        where = f" (field {field})" if field else ""
        raise InputFileError(path, f"no {what} for image id(s) {missing[:10]}{where}.")
    return np.asarray([index[int(i)] for i in wanted], dtype=np.int64)


def load_image_folder(folder: str | os.PathLike, size: int) -> tuple[np.ndarray, list[str]]:
    """The ``.png``/``.jpg``/``.jpeg`` images of a folder, sorted by name, as RGB uint8 resized (bicubic) to
    ``size`` x ``size``: (n, size, size, 3) and their file names."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "is not a folder of images (field decoding.selectivity_bank).")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise InputFileError(folder, "holds no .png, .jpg or .jpeg image (field decoding.selectivity_bank).")
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for k, path in enumerate(files):
        try:
            with Image.open(path) as img:
                images[k] = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC))
        except (UnidentifiedImageError, OSError) as err:
            raise InputFileError(path, f"is not a readable image ({err}).") from err
    return images, [p.name for p in files]


def write_betas(path: Path, betas: np.ndarray, ids: np.ndarray, rois: np.ndarray, prov: dict[str, Any],
                geometry: VoxelGeometry | None = None) -> Path:
    """Atomically write one subject's ``betas/<subject>.h5`` (contract ``betas/1``; read by :func:`read_betas`).

    Parameters
    ----------
    path : Path
        The output file.
    betas : ndarray of shape (n_images, n_voxels)
        Betas (stored as float32).
    ids : ndarray of shape (n_images,), int
        Image id of each row.
    rois : ndarray of shape (n_voxels,)
        ROI label of each voxel.
    prov : dict
        Provenance (:func:`~brainalign.io.provenance`).
    geometry : VoxelGeometry, optional
        Where each voxel is in a volume (stored as ``voxel_ijk`` and the
        attributes ``affine`` and ``volume_shape``), for maps on the brain.

    Returns
    -------
    path : Path
        ``path``.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        if geometry is not None:
            if len(geometry.ijk) != betas.shape[1]:
                raise ValueError(f"{len(geometry.ijk)} voxel coordinates for {betas.shape[1]} voxels.")
            f.create_dataset("voxel_ijk", data=np.asarray(geometry.ijk, np.int32), track_times=False)
            f.attrs["affine"] = json.dumps(np.asarray(geometry.affine, float).tolist())
            f.attrs["volume_shape"] = json.dumps([int(n) for n in geometry.shape])
        f.create_dataset("betas", data=betas.astype(np.float32), track_times=False)
        f.create_dataset("image_id", data=np.asarray(ids, np.int64), track_times=False)
        f.attrs["rois"] = json.dumps([str(r) for r in rois])
        f.attrs["contract"] = "betas/1"
        f.attrs["provenance"] = _json(prov)
    return path


@dataclass(frozen=True)
class VoxelGeometry:
    """Where the voxels of a betas file lie in a volume.

    Attributes
    ----------
    ijk : ndarray of shape (n_voxels, 3), int
        Voxel indices in the volume, in the betas' column order.
    affine : ndarray of shape (4, 4)
        Voxel → world (mm) transform of the volume.
    shape : tuple of 3 int
        The volume's shape.
    """

    ijk: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]

    @property
    def mask(self) -> np.ndarray:
        """Boolean volume of the voxels' positions."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[tuple(np.asarray(self.ijk).T)] = True
        return mask

    def to_volume(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Values per voxel, shape (n_voxels,) or (n_voxels, k), placed in the volume (``fill`` elsewhere)."""
        values = np.asarray(values, dtype=np.float32)
        out = np.full(tuple(self.shape) + values.shape[1:], fill, dtype=np.float32)
        out[tuple(np.asarray(self.ijk).T)] = values
        return out


def read_voxel_geometry(path: str | os.PathLike) -> VoxelGeometry | None:
    """The voxels' :class:`VoxelGeometry` of a ``betas/<subject>.h5``, or None when it has none."""
    with _open_h5(path, "betas/1") as f:
        if "voxel_ijk" not in f:
            return None
        return VoxelGeometry(f["voxel_ijk"][()], np.asarray(json.loads(f.attrs["affine"])),
                             tuple(json.loads(f.attrs["volume_shape"])))


def read_betas(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(betas (n_images, n_voxels), image ids, ROI label per voxel)."""
    with _open_h5(path, "betas/1") as f:
        betas, ids, rois = f["betas"][()], f["image_id"][()], np.asarray(json.loads(f.attrs["rois"]))
    if not np.isfinite(betas).all():
        bad = np.flatnonzero(~np.isfinite(betas).all(axis=0))
        raise InputFileError(path, f"dataset 'betas' has non-finite values in voxel(s) {bad[:10].tolist()}.")
    return betas, ids, rois
