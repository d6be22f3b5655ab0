"""Report of an image-decoding dataset: retrieval, reconstructions with their metrics, captions, ROI captions."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..io import config_hash, read_table, write_text
from .html import _CSS, _img, _table_html
from .plots import _pyplot, _save

__all__ = ["write_decoding_report", "plot_reconstructions", "plot_retrieval"]


def plot_reconstructions(true: np.ndarray, rows: dict[str, np.ndarray], out: Path, n: int = 8) -> Path:
    """Grid: the seen images in the first row, one row per reconstruction method."""
    plt = _pyplot()
    n = min(n, len(true))
    names = ["seen", *rows]
    fig, axes = plt.subplots(len(names), n, figsize=(1.3 * n, 1.4 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        images = true if name == "seen" else rows[name]
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c])
        axes[r][0].set_title(name, fontsize=8, loc="left")
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def plot_retrieval(scores: pd.DataFrame, out: Path) -> Path:
    """Retrieval top-1 per subject and decoder, both directions, with the chance level."""
    plt = _pyplot()
    part = scores[scores["metric"].str.startswith("retrieval_")]
    labels = [f"{s}\n{d}\n{t}" for s, d, t in
              part[["subject", "decoder", "target"]].drop_duplicates().itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels)), 3.0))
    width = 0.38
    for k, direction in enumerate(("image", "brain")):
        values = part[part["metric"] == f"retrieval_{direction}_top1"]["value"].to_numpy()
        ax.bar(np.arange(len(values)) + (k - 0.5) * width, values, width, label=f"{direction} retrieval")
    ax.axhline(float(part["chance"].iloc[0]), color="grey", ls="--", label="chance")
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, frameon=False)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def write_decoding_report(cfg: dict[str, Any], decode_dirs: list[Path], scores: pd.DataFrame, out: Path) -> Path:
    """Figures (``figures/`` beside ``out``) and the self-contained HTML report of the decoding stage."""
    figures = out.parent / "figures"
    plot_retrieval(scores, figures / "retrieval.png")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>brainalign — {html.escape(cfg['dataset']['name'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>brainalign decoding report: {html.escape(cfg['dataset']['name'])}</h1>",
        f"<p class='note'>config sha256 <code>{config_hash(cfg)[:16]}</code></p>",
        "<h2>Retrieval (MindEye2's definition)</h2><p>Top-1 among 300 random test pairs (or all test images "
        "when fewer), cosine similarity of L2-normalised embeddings, both directions, averaged over 30 draws; "
        "chance = 1 / n-way with its 99 % binomial interval. Targets: the pooled image embedding (ridge and "
        "the MindEye-style MLP), the image-encoder tokens and the caption embeddings (ridge).</p>",
        _img(figures / "retrieval.png", "retrieval"),
    ]
    wide = scores.pivot_table(index=["subject", "decoder", "target"], columns="metric", values="value").round(4)
    parts += ["<h2>All metrics</h2>", wide.reset_index().to_html(index=False, border=0)]
    for d in decode_dirs:
        subject = d.name
        with h5py.File(d / "reconstructions.h5", "r") as f:
            true = f["true"][()]
            rows = {"retrieved (nearest training image)": f["retrieved"][()]}
            if "generated" in f:
                rows["unCLIP"] = f["generated"][()]
        fig = plot_reconstructions(true, rows, figures / f"reconstructions_{subject}.png")
        captions = read_table(d / "captions.csv").head(8)[["image_id", "true", "decoded"]]
        selectivity = read_table(d / "selectivity.csv")[["roi", "caption", "top_captions"]]
        parts += [f"<h2>{html.escape(subject)}</h2>", _img(fig, f"reconstructions {subject}"),
                  "<h3>Captions from predicted embeddings</h3>", _table_html(captions),
                  "<h3>ROI selectivity captions (BrainSCUBA)</h3><p>Each ROI's mean encoder weight vector, "
                  "projected onto the training images' embeddings (softmax, inverse temperature "
                  f"{cfg['decoding']['selectivity_temperature']}), decoded by the captioner; with the captions of "
                  "the three most weighted training images.</p>", _table_html(selectivity)]
    parts += ["</body></html>"]
    return write_text(out, "\n".join(parts) + "\n")
