"""The image-decoding contracts: ``images.h5`` (``images/1``) and ``betas/<subject>.h5`` (``betas/1``) in HDF5."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError
from .atomic import _json, atomic_path
from .hdf5 import _open_h5


def write_images(path: Path, images: np.ndarray, captions: list[str], tokens: np.ndarray, pooled: np.ndarray,
                 ids: np.ndarray, test: np.ndarray, prov: dict[str, Any],
                 targets: dict[str, np.ndarray] | None = None) -> Path:
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
        out["captions"] = json.loads(f.attrs["captions"])
    return out


def write_betas(path: Path, betas: np.ndarray, ids: np.ndarray, rois: np.ndarray, prov: dict[str, Any]) -> Path:
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

    Returns
    -------
    path : Path
        ``path``.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("betas", data=betas.astype(np.float32), track_times=False)
        f.create_dataset("image_id", data=np.asarray(ids, np.int64), track_times=False)
        f.attrs["rois"] = json.dumps([str(r) for r in rois])
        f.attrs["contract"] = "betas/1"
        f.attrs["provenance"] = _json(prov)
    return path


def read_betas(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(betas (n_images, n_voxels), image ids, ROI label per voxel)."""
    with _open_h5(path, "betas/1") as f:
        betas, ids, rois = f["betas"][()], f["image_id"][()], np.asarray(json.loads(f.attrs["rois"]))
    if not np.isfinite(betas).all():
        bad = np.flatnonzero(~np.isfinite(betas).all(axis=0))
        raise InputFileError(path, f"dataset 'betas' has non-finite values in voxel(s) {bad[:10].tolist()}.")
    return betas, ids, rois
