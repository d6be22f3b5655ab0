"""Figures a scientist wants to look at: layer curves, per-subject scores, ceilings.

This module is a leaf: nothing in the computation imports it. matplotlib is
imported lazily with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_head_functions", "layer_curves_figure", "plot_layer_curves", "plot_subject_scores", "plot_ceilings",
           "plot_variance_partition", "head_maps_figure", "plot_head_maps", "head_matrix"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False,
                         "font.size": 9, "svg.hashsalt": "brainalign"})
    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, n)
    return int(np.ceil(n / cols)), cols


def _save(fig, path: str | os.PathLike) -> Path:
    from ..io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight",
                    metadata={"Software": None} if path.suffix == ".png" else None)
    return path


def _save_and_close(fig, path: str | os.PathLike) -> Path:
    """:func:`_save`, then close the figure even if saving fails."""
    import matplotlib.pyplot as plt

    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def layer_curves_figure(
    curve: pd.DataFrame, ceiling: pd.DataFrame, model: str, baselines: Sequence[str],
    roi_order: Sequence[str] | None = None,
) -> Figure:
    """The figure of :func:`plot_layer_curves`: one panel per ROI, all on the same y-axis.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Open; the caller saves and closes it.
    """
    plt = _pyplot()
    rois = list(roi_order or curve["roi"].drop_duplicates())
    rows, cols = _grid(len(rois))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    ceil = ceiling.set_index("roi")
    for ax, roi in zip(axes.flat, rois):
        sub = curve[(curve.model == model) & (curve.roi == roi)]
        x = np.arange(len(sub))
        ax.errorbar(x, sub["mean"], yerr=sub["sem"], color=_PALETTE[0], marker="o", ms=3,
                    capsize=2, label=model)
        if "p_group_fdr" in sub:
            sig = (sub["p_group_fdr"] < 0.05).to_numpy()
            top = (sub["mean"] + sub["sem"].fillna(0)).to_numpy()
            ax.scatter(x[sig], top[sig] * 1.0 + 0.02 * np.nanmax(np.abs(top)), marker="*", s=18,
                       color="black", label="q < 0.05 (FDR)" if roi == rois[0] else None)
        for k, base in enumerate(baselines):
            b = curve[(curve.model == base) & (curve.roi == roi)]
            if b.empty:
                continue
            best = b.loc[b["mean"].idxmax()]
            color = _PALETTE[(k + 1) % len(_PALETTE)]
            ax.axhline(best["mean"], color=color, lw=1.2, label=base)
            ax.axhspan(best["mean"] - best["sem"], best["mean"] + best["sem"], color=color, alpha=0.15, lw=0)
        if roi in ceil.index:
            ax.axhline(ceil.loc[roi, "ceiling"], color="black", ls="--", lw=1, label="ceiling (LOSO ISC)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(roi)
        ax.set_xticks(x, sub["layer"].astype(str))
        ax.set_xlabel("layer")
    for ax in axes[:, 0]:
        ax.set_ylabel("Pearson r (held out)")
    for ax in list(axes.flat)[len(rois):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, 1.04))
    fig.tight_layout()
    return fig


def plot_layer_curves(
    curve: pd.DataFrame, ceiling: pd.DataFrame, model: str, baselines: Sequence[str],
    out: str | os.PathLike, roi_order: Sequence[str] | None = None,
) -> Path:
    """Layer-wise score (mean ± SEM over subjects) per ROI, with baselines and the ceiling.

    The ROI panels share one y-axis, so that an effect of ±0.001 looks as small as it is.

    Parameters
    ----------
    curve : DataFrame
        ``layer_curve.csv`` (columns model, layer, roi, mean, sem).
    ceiling : DataFrame
        ``ceiling_summary.csv`` (columns roi, ceiling, sem).
    model : str
        The model family drawn as a curve over layers.
    baselines : sequence of str
        Families drawn as horizontal bands (their best layer).
    out : path-like
        Output image (PNG or SVG).
    roi_order : sequence of str, optional
        The panels' order (default: as in ``curve``).
    """
    return _save_and_close(layer_curves_figure(curve, ceiling, model, baselines, roi_order), out)


def plot_subject_scores(
    nested: pd.DataFrame, models: Sequence[str], out: str | os.PathLike,
    roi_order: Sequence[str] | None = None,
) -> Path:
    """Each subject's nested-best-layer score per ROI and model (dots), with the mean (bar)."""
    plt = _pyplot()
    rois = list(roi_order or nested["roi"].drop_duplicates())
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rois) * max(1, len(models)) / 2), 3.2))
    width = 0.8 / max(1, len(models))
    rng = np.random.default_rng(0)
    for k, model in enumerate(models):
        for i, roi in enumerate(rois):
            vals = nested[(nested.model == model) & (nested.roi == roi)]["score"].to_numpy()
            if vals.size == 0:
                continue
            x = i - 0.4 + width * (k + 0.5)
            ax.bar(x, vals.mean(), width * 0.9, color=_PALETTE[k % len(_PALETTE)], alpha=0.35,
                   label=model if i == 0 else None)
            ax.scatter(x + rng.uniform(-width / 4, width / 4, vals.size), vals, s=6,
                       color=_PALETTE[k % len(_PALETTE)])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(range(len(rois)), rois)
    ax.set_ylabel("Pearson r (nested best layer)")
    ax.legend(frameon=False, ncol=len(models), loc="upper center", bbox_to_anchor=(0.5, 1.15))
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path


def plot_ceilings(ceiling_subjects: pd.DataFrame, out: str | os.PathLike,
                  roi_order: Sequence[str] | None = None) -> Path:
    """Leave-one-subject-out ISC per ROI: one dot per subject, the mean as a bar."""
    plt = _pyplot()
    rois = list(roi_order or ceiling_subjects["roi"].drop_duplicates())
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(rois)), 3.0))
    rng = np.random.default_rng(0)
    for i, roi in enumerate(rois):
        vals = ceiling_subjects[ceiling_subjects.roi == roi]["ceiling"].to_numpy()
        ax.bar(i, vals.mean(), 0.6, color="#cccccc")
        ax.scatter(i + rng.uniform(-0.15, 0.15, vals.size), vals, s=6, color="black")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(range(len(rois)), rois)
    ax.set_ylabel("ISC (each subject vs mean of others)")
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path


def plot_variance_partition(table: pd.DataFrame, out: str | os.PathLike,
                            roi_order: Sequence[str] | None = None) -> Path:
    """Stacked bars per ROI: R² unique to the model, shared, unique to the baseline (mean over subjects)."""
    plt = _pyplot()
    per_subject = table.groupby(["roi", "subject"], sort=False)[["unique_model", "shared", "unique_baseline"]].mean()
    means = per_subject.groupby("roi", sort=False).mean()
    rois = [r for r in (roi_order or means.index) if r in means.index]
    means = means.loc[rois]
    model, baseline = table["model"].iloc[0], table["baseline"].iloc[0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rois)), 3.0))
    bottom = np.zeros(len(rois))
    for col, label, color in (("unique_model", f"unique {model}", _PALETTE[0]), ("shared", "shared", "#999999"),
                              ("unique_baseline", f"unique {baseline}", _PALETTE[2])):
        vals = means[col].to_numpy()
        ax.bar(range(len(rois)), vals, 0.6, bottom=np.where(vals >= 0, bottom, 0), color=color, label=label)
        bottom = bottom + np.clip(vals, 0, None)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(range(len(rois)), rois)
    ax.set_ylabel("held-out R² (mean over subjects)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path


def head_matrix(curve: pd.DataFrame, model: str, roi: str, column: str = "mean") -> tuple[np.ndarray, list[int]]:
    """Scores of ``model``'s heads as a (blocks × heads) matrix for one ROI (layers named ``"k.hHH"``)."""
    rows = curve[(curve["model"] == model) & (curve["roi"] == roi)]
    parsed = rows["layer"].astype(str).str.extract(r"^(\d+)\.h(\d+)$").dropna().astype(int)
    blocks = sorted(parsed[0].unique())
    n_heads = int(parsed[1].max()) + 1
    mat = np.full((len(blocks), n_heads), np.nan)
    for (b, h), value in zip(parsed.itertuples(index=False), rows.loc[parsed.index, column]):
        mat[blocks.index(b), h] = value
    return mat, blocks


#: The heads' attention statistics: title and colour-bar label (quantity and unit) of each.
_ATTENTION_PANELS = (("attention entropy", "entropy (nats)"),
                     ("weight on first token", "attention weight (fraction, 0–1)"),
                     ("weight on previous token", "attention weight (fraction, 0–1)"))


def head_maps_figure(curve: pd.DataFrame, model: str, roi_order: Sequence[str] | None = None,
                     attention_stats: dict[str, np.ndarray] | None = None) -> Figure:
    """The figure of :func:`plot_head_maps`; every colour bar names its quantity and unit.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Open; the caller saves and closes it.
    """
    plt = _pyplot()
    rois = list(roi_order or curve[curve["model"] == model]["roi"].drop_duplicates())
    mats = {roi: head_matrix(curve, model, roi) for roi in rois}
    vmax = max(float(np.nanmax(np.abs(m))) for m, _ in mats.values()) or 1.0
    n_rows, n_cols = _grid(len(rois))
    extra = 1 if attention_stats else 0
    fig, axes = plt.subplots(n_rows + extra, n_cols if not extra else max(n_cols, 3),
                             figsize=(4.2 * max(n_cols, 3 if extra else 1), 2.6 * (n_rows + extra)), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for k, roi in enumerate(rois):
        ax = axes[k // n_cols, k % n_cols]
        ax.set_visible(True)
        mat, blocks = mats[roi]
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_yticks(range(len(blocks)), [str(b) for b in blocks])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(roi)
        fig.colorbar(im, ax=ax, label="Pearson r (mean over subjects)")
    if attention_stats:
        blocks = sorted(attention_stats, key=int)
        means = np.stack([attention_stats[b].mean(axis=0) for b in blocks])  # (blocks, heads, 3)
        for j, (title, unit) in enumerate(_ATTENTION_PANELS):
            ax = axes[-1, j]
            ax.set_visible(True)
            im = ax.imshow(means[:, :, j], cmap="viridis", aspect="auto")
            ax.set_yticks(range(len(blocks)), blocks)
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_title(title)
            fig.colorbar(im, ax=ax, label=unit)
    fig.suptitle(f"{model}: each attention head's output as features (mean r over subjects)")
    fig.tight_layout()
    return fig


def plot_head_maps(curve: pd.DataFrame, model: str, out: str | os.PathLike, roi_order: Sequence[str] | None = None,
                   attention_stats: dict[str, np.ndarray] | None = None) -> Path:
    """Heads × layers heat maps of the mean held-out r per ROI, and the heads' attention statistics.

    ``attention_stats`` maps block → (n_words, n_heads, 3) (entropy, first-token
    weight, previous-token weight); their means over words are drawn in a
    last row of panels when given.
    """
    return _save_and_close(head_maps_figure(curve, model, roi_order, attention_stats), out)


def plot_head_functions(functions: pd.DataFrame, brain: pd.DataFrame, related: pd.DataFrame,
                        out: str | os.PathLike) -> Path:
    """Per head function, each head's function score against its brain score (one colour per ROI), ρ and p in the title."""
    from ..features.head_functions import HEAD_FUNCTIONS

    plt = _pyplot()
    names = [n for n in HEAD_FUNCTIONS if functions[n].notna().any()]
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.0), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        titles = []
        for k, (roi, group) in enumerate(brain.groupby("roi", sort=False)):
            merged = functions.merge(group, on=["layer", "head"])
            ax.scatter(merged[name], merged["score"], s=8, alpha=0.7, color=_PALETTE[k % len(_PALETTE)], label=roi)
            row = related[(related["function"] == name) & (related["roi"] == roi)]
            if len(row):
                titles.append(f"{roi}: ρ={row['spearman'].iloc[0]:.2f}, p={row['p_value'].iloc[0]:.3g}")
        ax.set_xlabel(f"{name.replace('_', '-')} score")
        ax.set_title("\n".join(titles[:3]), fontsize=7)
    axes[0][0].set_ylabel("head's brain score (mean r)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path
