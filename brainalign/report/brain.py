"""Brain views of the voxel-wise maps: glass brains per layer, slices on the template."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .plots import _pyplot, _save_and_close

if TYPE_CHECKING:
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure

__all__ = ["best_map_layer", "glass_layers_figure", "plot_glass_layers", "slices_figure", "plot_slices"]


def _thresholded(maps_dir: Path, prefix: str, k: int, alpha: float):
    """Volume ``k`` of the r map, zero where the FDR q is above ``alpha``."""
    import nibabel as nib

    r = nib.load(str(maps_dir / f"{prefix}_stat-r.nii.gz"))
    logq = nib.load(str(maps_dir / f"{prefix}_stat-logq.nii.gz"))
    rv = np.asarray(r.dataobj)[..., k]
    qv = np.asarray(logq.dataobj)[..., k]
    keep = qv > -np.log10(alpha)
    label = f"q < {alpha} ({int(keep.sum())} voxels)"
    if not keep.any():
        # Too few subjects (or no effect) for the random-effects test: show the
        # strongest 1 % of voxels instead, and say so in the title.
        inside = rv != 0
        cut = np.quantile(np.abs(rv[inside]), 0.99) if inside.any() else 0.0
        keep = np.abs(rv) >= max(cut, 1e-12)
        label = f"no voxel at q < {alpha}; top 1 % |r| shown"
    return nib.Nifti1Image(np.where(keep, rv, 0).astype(np.float32), r.affine), label


def best_map_layer(maps_dir: str | os.PathLike) -> tuple[int, str]:
    """Index and name of the layer whose group r map has the largest mean over the analysed voxels."""
    import nibabel as nib

    maps_dir = Path(maps_dir)
    meta = json.loads((maps_dir / "maps.json").read_text())
    r = np.asarray(nib.load(str(maps_dir / "group_stat-r.nii.gz")).dataobj)
    r = r.reshape(-1, r.shape[-1]) if r.ndim == 4 else r.reshape(-1, 1)
    inside = np.any(r != 0, axis=1)
    k = int(np.argmax(r[inside].mean(axis=0)))
    return k, meta["layers"][k]


#: The colour-bar label of every brain map.
_R_LABEL = "group mean Pearson r (held out)"


def _r_colorbar(fig: Figure, vmax: float, **where: object) -> Colorbar:
    """A colour bar of the group r on nilearn's ``cold_hot`` scale from −vmax to vmax, labelled."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(norm=Normalize(-vmax, vmax), cmap="cold_hot")
    return fig.colorbar(mappable, label=_R_LABEL, **where)


def glass_layers_figure(maps_dir: str | os.PathLike, alpha: float = 0.05) -> Figure:
    """The figure of :func:`plot_glass_layers`: one row per layer, each with a labelled colour bar.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Open; the caller saves and closes it.
    """
    from nilearn import plotting

    maps_dir = Path(maps_dir)
    meta = json.loads((maps_dir / "maps.json").read_text())
    layers = meta["layers"]
    plt = _pyplot()
    fig, axes = plt.subplots(len(layers), 1, figsize=(9, 2.6 * len(layers)), squeeze=False)
    imgs = [_thresholded(maps_dir, "group", k, alpha) for k in range(len(layers))]
    vmax = max(float(np.abs(np.asarray(img.dataobj)).max()) for img, _ in imgs) or 1.0
    for k, (img, n_sig) in enumerate(imgs):
        _r_colorbar(fig, vmax, ax=axes[k, 0], fraction=0.03, pad=0.01)
        plotting.plot_glass_brain(
            img, display_mode="lzr", axes=axes[k, 0], colorbar=False, plot_abs=False, cmap="cold_hot",
            vmin=-vmax, vmax=vmax, threshold=1e-6,
            title=f"{meta['feature_set']} layer {layers[k]}: group r, {n_sig}",
        )
    return fig


def plot_glass_layers(maps_dir: str | os.PathLike, out: str | os.PathLike, alpha: float = 0.05) -> Path:
    """One glass brain (left, top and right views) of the group r per layer, FDR-thresholded."""
    return _save_and_close(glass_layers_figure(maps_dir, alpha), out)


def slices_figure(maps_dir: str | os.PathLike, layer_index: int | None = None, alpha: float = 0.05) -> Figure:
    """The figure of :func:`plot_slices`, with a labelled colour bar.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Open; the caller saves and closes it.
    """
    from nilearn import plotting
    from nilearn.datasets import load_mni152_template

    maps_dir = Path(maps_dir)
    meta = json.loads((maps_dir / "maps.json").read_text())
    k = best_map_layer(maps_dir)[0] if layer_index is None else layer_index
    img, n_sig = _thresholded(maps_dir, "group", k, alpha)
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 3))
    vmax = float(np.abs(np.asarray(img.dataobj)).max()) or 1.0
    plotting.plot_stat_map(
        img, bg_img=load_mni152_template(resolution=2), display_mode="z", cut_coords=(-20, -8, 4, 16, 28, 40),
        axes=fig.add_axes((0.0, 0.0, 0.93, 1.0)), colorbar=False, cmap="cold_hot", vmax=vmax,
        symmetric_cbar=True, threshold=1e-6,
        title=f"{meta['feature_set']} layer {meta['layers'][k]}: group r, {n_sig}",
    )
    _r_colorbar(fig, vmax, cax=fig.add_axes((0.94, 0.1, 0.012, 0.8)))
    return fig


def plot_slices(maps_dir: str | os.PathLike, out: str | os.PathLike, layer_index: int | None = None,
                alpha: float = 0.05) -> Path:
    """Axial slices of the group r (FDR-thresholded) over nilearn's MNI152 template."""
    return _save_and_close(slices_figure(maps_dir, layer_index, alpha), out)
