"""The Natural Scenes Dataset (Allen et al. 2022) in its distributed layout.

Files read (paths relative to ``dataset.data_dir``, the folder holding
``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``):

- ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (trial →
  1-based column of ``subjectim``), ``subjectim`` (subject x 10,000 → 1-based
  73k image id) and ``sharedix`` (the 1,000 shared images, 1-based 73k ids);
- ``nsddata_betas/ppdata/subjXX/<space>/<betas>/betas_sessionNN.hdf5``: dataset
  ``betas`` of shape (trials, X, Y, Z), int16 scaled by 300 (NSD's convention);
- ``nsddata/ppdata/subjXX/<space>/roi/<roi>.nii.gz``: voxels > 0 are kept
  (``nsdgeneral`` by default);
- ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5``: ``imgBrick`` (73,000 x
  425 x 425 x 3, uint8; any size is accepted);
- captions: a CSV chosen in the config (``nsd.captions``) with columns
  ``nsd_id`` (0-based 73k id) and ``caption`` (NSD ships COCO ids only; users
  join the COCO caption annotations once).

Betas of repeated presentations are averaged per image, as MindEye does; the
test split is the shared images the subject saw (``sharedix``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .._validation import ConfigError, InputFileError, check_fname, resolve_against
from ..io import ImageBank, VoxelGeometry, load_image_folder, rows_of_image_ids
from ._preflight import count
from .registry import ImageData, ImagesKind, Preflight

__all__ = ["NSD_SCALE", "load_nsd_design", "load_nsd_subject", "load_nsd_geometry", "load_nsd_images",
           "load_nsd_captions", "NsdKind"]

#: NSD stores betas as int16 percent signal change times 300.
NSD_SCALE = 300.0


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputFileError(path, f"{what} is missing (NSD layout, see docs/decoding.md).")
    return path


def load_nsd_design(root: str | os.PathLike) -> dict[str, np.ndarray]:
    """``masterordering`` (0-based), ``subjectim`` (0-based 73k ids) and ``sharedix`` (0-based)."""
    from scipy.io import loadmat

    path = _require(Path(root) / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat", "the experiment design")
    try:
        mat = loadmat(path)
    except Exception as err:  # noqa: BLE001 -- scipy raises several types for a bad file
        raise InputFileError(path, f"not a readable MATLAB file ({err}).") from err
    out = {}
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in mat:
            raise InputFileError(path, f"variable {key!r} is missing.")
        out[key] = np.asarray(mat[key], dtype=np.int64) - 1
    out["masterordering"] = out["masterordering"].ravel()
    out["sharedix"] = out["sharedix"].ravel()
    return out


def load_nsd_subject(root: str | os.PathLike, subject: int, *, space: str = "func1pt8mm",
                     betas: str = "betas_fithrf_GLMdenoise_RR", roi: str = "nsdgeneral",
                     sessions: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repetition-averaged betas of one subject in one ROI.

    Returns
    -------
    betas : ndarray of shape (n_images, n_voxels), float32
        Percent signal change, averaged over each image's presentations.
    nsd_ids : ndarray of shape (n_images,)
        0-based 73k image ids, sorted.
    shared : ndarray of shape (n_images,), bool
        Whether the image is one of the shared (test) images.
    """
    root = Path(root)
    design = load_nsd_design(root)
    roi_path = _roi_path(root, subject, space, roi)
    mask = load_nsd_geometry(root, subject, space=space, roi=roi).mask
    folder, files = _betas_files(root, subject, space, betas, sessions)
    chunks, trial = [], 0
    for f in files:
        with h5py.File(f, "r") as h5:
            if "betas" not in h5:
                raise InputFileError(f, "dataset 'betas' is missing.")
            data = h5["betas"]
            if data.shape[1:] != mask.shape:
                raise InputFileError(f, f"dataset 'betas' has volumes of shape {data.shape[1:]}, but the ROI "
                                        f"{roi_path.name} has {mask.shape}.")
            chunks.append(data[()][:, mask].astype(np.float32) / NSD_SCALE)
        trial += chunks[-1].shape[0]
    X = np.concatenate(chunks)
    order = design["masterordering"]
    ids = design["subjectim"][subject - 1, order[_session_trials(folder, files, [len(c) for c in chunks], len(order))]]
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((len(unique), X.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, X)
    counts = np.bincount(inverse, minlength=len(unique))[:, None]
    return (sums / counts).astype(np.float32), unique, np.isin(unique, design["sharedix"])


def _betas_files(root: Path, subject: int, space: str, betas: str, sessions: list[int] | None,
                 ) -> tuple[Path, list[Path]]:
    """The folder of a subject's betas and its ``betas_sessionNN.hdf5`` files of ``sessions`` (None: all)."""
    folder = root / "nsddata_betas" / "ppdata" / f"subj{subject:02d}" / space / betas
    files = sorted(folder.glob("betas_session*.hdf5"))
    if sessions is not None:
        files = [f for f in files if int(f.stem.removeprefix("betas_session")) in sessions]
    if not files:
        raise InputFileError(folder, "no betas_sessionNN.hdf5 files (field dataset.nsd.sessions).")
    return folder, files


def _session_trials(folder: Path, files: list[Path], rows: list[int], n_order: int) -> np.ndarray:
    """Each betas row's index into ``masterordering``: session ``s`` holds trials ``(s - 1) * n … s * n - 1``.

    ``n`` is the trials of one session (750 in NSD), the rows of every file;
    a subset of sessions (``dataset.nsd.sessions``) keeps its own trials.
    """
    if len(set(rows)) != 1:
        raise InputFileError(folder, f"betas_sessionNN.hdf5 files hold different trial counts {sorted(set(rows))}; "
                                     "every session must hold the same number (750 in NSD).")
    per_session = rows[0]
    sessions = [int(f.stem.removeprefix("betas_session")) for f in files]
    index = np.concatenate([(s - 1) * per_session + np.arange(per_session) for s in sessions])
    if index.max() >= n_order:
        raise InputFileError(folder, f"session {max(sessions)} of {per_session} trials each ends at trial "
                                     f"{index.max() + 1}, but masterordering has {n_order}.")
    return index


def _stimuli_path(root: Path) -> Path:
    """The ``imgBrick`` file of the 73k images."""
    return root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"


def _roi_path(root: Path, subject: int, space: str, roi: str) -> Path:
    return _require(root / "nsddata" / "ppdata" / f"subj{subject:02d}" / space / "roi" / f"{roi}.nii.gz",
                     f"ROI {roi!r}")


def load_nsd_geometry(root: str | os.PathLike, subject: int, *, space: str = "func1pt8mm",
                      roi: str = "nsdgeneral") -> VoxelGeometry:
    """Where the voxels of :func:`load_nsd_subject` lie: the ROI's voxels > 0, in C order, and its affine."""
    import nibabel as nib

    img = nib.load(str(_roi_path(Path(root), subject, space, roi)))
    mask = np.asarray(img.get_fdata()) > 0
    return VoxelGeometry(np.argwhere(mask), np.asarray(img.affine), tuple(int(n) for n in mask.shape))


def load_nsd_images(root: str | os.PathLike, nsd_ids: np.ndarray) -> np.ndarray:
    """Images of the 0-based 73k ``nsd_ids`` from ``imgBrick``, (n, H, W, 3) uint8."""
    path = _require(_stimuli_path(Path(root)), "the stimuli file")
    with h5py.File(path, "r") as h5:
        if "imgBrick" not in h5:
            raise InputFileError(path, "dataset 'imgBrick' is missing.")
        brick = h5["imgBrick"]
        if np.max(nsd_ids) >= brick.shape[0]:
            raise InputFileError(path, f"image id {int(np.max(nsd_ids))} is beyond imgBrick's {brick.shape[0]} images.")
        order = np.argsort(nsd_ids)
        images = brick[np.asarray(nsd_ids)[order]]
    out = np.empty_like(images)
    out[order] = images
    return out


def load_nsd_captions(path: str | os.PathLike, nsd_ids: np.ndarray) -> list[str]:
    """The first caption of each image from a CSV with columns ``nsd_id`` and ``caption``."""
    path = Path(path)
    table = pd.read_csv(_require(path, "the captions table"))
    for col in ("nsd_id", "caption"):
        if col not in table.columns:
            raise InputFileError(path, f"column {col!r} is missing (field dataset.nsd.captions).")
    first = table.drop_duplicates("nsd_id")
    rows = rows_of_image_ids(path, first["nsd_id"].to_numpy(), nsd_ids, "caption")
    return [str(c) for c in first["caption"].to_numpy()[rows]]


class NsdKind(ImagesKind):
    """``nsd``: the Natural Scenes Dataset's betas and images under ``dataset.data_dir`` (``dataset.nsd``)."""

    name = "nsd"
    required = ("data_dir",)
    data_field = "dataset.data_dir"

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        nsd = cfg["dataset"].get("nsd", {})
        for key in ("captions", "embeddings"):
            if nsd.get(key) is not None:
                nsd[key] = resolve_against(base, nsd[key])

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        if cfg["dataset"]["nsd"]["embeddings"] is None or cfg.get("decoding", {}).get("selectivity_bank"):
            _check_targets(cfg, path)

    def image_data(self, cfg: dict[str, Any]) -> ImageData:
        """Betas of the configured ROI and sessions; images at 64 px; embeddings from ``dataset.nsd.embeddings``,
        else extracted from the images with ``decoding.targets`` (``clip_image`` pooled, ``git_tokens`` tokens;
        docs/decoding.md); the other targets as further spaces; the shared 1000 images held out."""
        ds, nsd = cfg["dataset"], cfg["dataset"]["nsd"]
        root = ds["data_dir"]
        betas, geometry, all_ids = {}, {}, []
        for subject, number in zip(self.subjects(cfg), nsd["subjects"]):
            trials, ids, _ = load_nsd_subject(root, number, space=nsd["space"], betas=nsd["betas"],
                                              roi=nsd["roi"], sessions=nsd["sessions"])
            betas[subject] = (trials, ids, np.asarray([nsd["roi"]] * trials.shape[1]))
            geometry[subject] = load_nsd_geometry(root, number, space=nsd["space"], roi=nsd["roi"])
            all_ids.append(ids)
        ids = np.unique(np.concatenate(all_ids))
        images = load_nsd_images(root, ids)
        if nsd["captions"] is None:
            raise InputFileError(None, "dataset.nsd.captions is required for NSD (a CSV of nsd_id, caption).")
        captions = load_nsd_captions(nsd["captions"], ids)
        # clip_image and git_tokens are the pooled and token targets unless an embeddings file gives them; every
        # other decoding.targets entry (vae_latent, depth, clip_text) is a further target space.
        own = ("clip_image", "git_tokens")
        further = tuple(n for n in cfg.get("decoding", {}).get("targets", {}) if n not in own)
        if nsd["embeddings"] is not None:
            tokens, pooled = _read_embeddings(nsd["embeddings"], ids)
            targets = self.extract_targets(cfg, images, captions, further, image_ids=ids)
        else:
            _check_targets(cfg, None)
            targets = self.extract_targets(cfg, images, captions, own + further, image_ids=ids)
            pooled, tokens = targets.pop("clip_image"), targets.pop("git_tokens")
        test = np.isin(ids, load_nsd_design(root)["sharedix"])
        return ImageData(_resize(images, 64), captions, tokens, pooled, ids, test, betas, targets, geometry)

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return [f"subj{s:02d}" for s in cfg["dataset"]["nsd"]["subjects"]]

    def embed_bank(self, cfg: dict[str, Any], folder: str | os.PathLike) -> ImageBank:
        """The folder's images at NSD's 425 px through ``decoding.targets`` clip_image and git_tokens."""
        images, names = load_image_folder(folder, 425)
        out = self.extract_targets(cfg, images, None, ("clip_image", "git_tokens"))
        return ImageBank(out["clip_image"], out["git_tokens"], names)

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The design, each subject's ROI and betas (HDF5 shapes only), the stimuli and the captions."""
        ds, nsd = cfg["dataset"], cfg["dataset"]["nsd"]
        root = Path(ds["data_dir"])
        check_fname(root, "directory", "NSD folder")
        design = load_nsd_design(root)
        seen = []
        for number in nsd["subjects"]:
            mask = load_nsd_geometry(root, number, space=nsd["space"], roi=nsd["roi"]).mask
            seen.append(_trial_images(root, number, nsd, mask.shape, design))
        _check_brick(_stimuli_path(root), int(max(np.max(ids) for ids in seen)))
        for key in ("captions", "embeddings"):
            if key == "captions" and nsd[key] is None:
                raise ConfigError(None, "dataset.nsd.captions", "is required for NSD (a CSV of nsd_id, caption).")
            if nsd[key] is not None and not Path(nsd[key]).is_file():
                raise ConfigError(None, f"dataset.nsd.{key}", f"the file {nsd[key]} does not exist.")
        counts = [ids.size for ids in seen]
        spread = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)} to {max(counts)}"
        return Preflight([f"{count(len(counts), 'subject')}, {spread} images each, ROI {nsd['roi']}"])

    def credit(self, cfg: dict[str, Any]) -> str:
        return ("Natural Scenes Dataset (Allen et al. 2022, Nature Neuroscience 25:116-126; cite as its terms "
                "of use ask).")


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])


def _check_targets(cfg: dict[str, Any], path: str | os.PathLike | None) -> dict[str, Any]:
    """``decoding.targets`` with the two the NSD kind extracts when no embeddings file is given."""
    targets = cfg.get("decoding", {}).get("targets", {})
    for name in ("clip_image", "git_tokens"):
        if name not in targets:
            raise ConfigError(path, f"decoding.targets.{name}.model_path",
                              "is required when dataset.nsd.embeddings is null or decoding.selectivity_bank is set: "
                              "the NSD kind extracts the pooled (clip_image) and token (git_tokens) embeddings from "
                              "the images with local weights (docs/decoding.md), or reads the dataset's from "
                              "dataset.nsd.embeddings.")
    return targets


def _read_embeddings(path: str | os.PathLike, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        for key in ("nsd_id", "tokens", "pooled"):
            if key not in f:
                raise InputFileError(path, f"dataset {key!r} is missing (field dataset.nsd.embeddings).")
        rows = rows_of_image_ids(path, f["nsd_id"][()], ids, "embedding")
        return f["tokens"][()][rows], f["pooled"][()][rows]


# --------------------------------------------------------------------------- checks before a run
def _trial_images(root: Path, number: int, nsd: dict[str, Any], shape: tuple[int, ...],
                  design: dict[str, np.ndarray]) -> np.ndarray:
    """The distinct images of one subject's trials (betas' HDF5 shapes only), with at least 2 shared (test) and
    2 other images."""
    folder, files = _betas_files(root, number, nsd["space"], nsd["betas"], nsd["sessions"])
    rows = []
    for f in files:
        with h5py.File(f, "r") as h5:
            if "betas" not in h5:
                raise InputFileError(f, "dataset 'betas' is missing.")
            if h5["betas"].shape[1:] != shape:
                raise InputFileError(f, f"dataset 'betas' has volumes of shape {h5['betas'].shape[1:]}, but the "
                                        f"ROI {nsd['roi']} has {shape}.")
            rows.append(h5["betas"].shape[0])
    order = design["masterordering"]
    ids = np.unique(design["subjectim"][number - 1, order[_session_trials(folder, files, rows, len(order))]])
    test = np.isin(ids, design["sharedix"])
    if test.sum() < 2 or (~test).sum() < 2:
        raise InputFileError(folder, f"{int(test.sum())} test and {int((~test).sum())} training images; need at "
                                     "least 2 of each.")
    return ids


def _check_brick(path: Path, top: int) -> None:
    """The stimuli file holds ``imgBrick`` with image ``top`` (the highest id of the trials)."""
    check_fname(path, "file", "the NSD stimuli")
    with h5py.File(path, "r") as h5:
        if "imgBrick" not in h5:
            raise InputFileError(path, "dataset 'imgBrick' is missing.")
        if top >= h5["imgBrick"].shape[0]:
            raise InputFileError(path, f"image id {top} is beyond imgBrick's {h5['imgBrick'].shape[0]} images.")
