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

__all__ = ["write_decoding_report", "plot_reconstructions", "plot_retrieval", "plot_token_correlations",
           "plot_category_maps"]


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
    """Retrieval top-1 per target space (one panel each): bars per subject and decoder, both directions, with
    the chance level and its 99 % interval."""
    plt = _pyplot()
    part = scores[scores["metric"].str.startswith("retrieval_")]
    targets = list(dict.fromkeys(part["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(max(4.0, 2.4 * len(targets)), 3.0), sharey=True,
                             squeeze=False)
    width = 0.38
    for ax, target in zip(axes[0], targets):
        sub = part[part["target"] == target]
        labels = [f"{s}\n{d}" for s, d in sub[["subject", "decoder"]].drop_duplicates().itertuples(index=False)]
        for k, direction in enumerate(("image", "brain")):
            values = sub[sub["metric"] == f"retrieval_{direction}_top1"]["value"].to_numpy()
            ax.bar(np.arange(len(values)) + (k - 0.5) * width, values, width, label=f"{direction} retrieval")
        ax.axhline(float(sub["chance"].iloc[0]), color="grey", ls="--", label="chance")
        ax.axhspan(float(sub["chance_low"].iloc[0]), float(sub["chance_high"].iloc[0]), color="grey", alpha=0.15,
                   label="99 % chance interval")
        ax.set_xticks(range(len(labels)), labels, fontsize=6)
        ax.set_title(target, fontsize=9)
    axes[0][0].set_ylabel("top-1 accuracy")
    axes[0][0].set_ylim(0, 1)
    axes[0][0].legend(fontsize=6, frameon=False)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def plot_token_correlations(tokens: pd.DataFrame, out: Path) -> Path:
    """Per-token Pearson r of the predicted token sequences (``tokens.csv``), one line per subject and decoder."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    for (subject, decoder, target), sub in tokens.groupby(["subject", "decoder", "target"], sort=False):
        ax.plot(sub["token"], sub["r"], marker=".", lw=1, label=f"{subject} {decoder} {target}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("token position")
    ax.set_ylabel("mean r over features")
    ax.legend(fontsize=6, frameon=False)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def plot_category_maps(path: Path, names: list[str], out: Path) -> Path:
    """Maximum-intensity projections (over the third axis) of each word category's share map, one panel each."""
    import nibabel as nib

    plt = _pyplot()
    data = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float64)
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.4), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        volume = data[..., k]
        valid = ~np.isnan(volume)  # NaN: no captioned voxel there
        mip = np.where(valid.any(axis=2), np.max(np.where(valid, volume, -np.inf), axis=2), np.nan)
        im = ax.imshow(mip.T, origin="lower", cmap="viridis", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="share of caption words")
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
        "chance = 1 / n-way with its 99 % binomial interval. One ridge and one MindEye-style MLP per target "
        "space: the pooled image embedding, the image-encoder tokens, the caption embeddings and the spaces "
        "of decoding.targets (VAE latents, depth maps, ...). The MLP is scored in its contrastive space "
        "(projector outputs against z-scored targets, as MindEye2), ridge on the targets themselves.</p>",
        _img(figures / "retrieval.png", "retrieval"),
    ]
    token_tables = [read_table(d / "tokens.csv") for d in decode_dirs if (d / "tokens.csv").exists()]
    tokens = pd.concat(token_tables, ignore_index=True) if token_tables else pd.DataFrame()
    if len(tokens):
        parts += ["<h2>Token by token</h2><p>Per position of the predicted token sequences (what GIT reads), the "
                  "Pearson r across test images, averaged over the token's features.</p>",
                  _img(plot_token_correlations(tokens, figures / "token_r.png"), "per-token r")]
    wide = scores.pivot_table(index=["subject", "decoder", "target"], columns="metric", values="value").round(4)
    given = {k: v for k, v in cfg["decoding"]["image_metric_models"].items() if v}
    networks = ("; ".join(f"{html.escape(k)}: <code>{html.escape(Path(v).name)}</code>" for k, v in given.items())
                if given
                else "<b>random_cnn</b>, a fixed random-weight CNN standing in for MindEye2's networks (no weights "
                     "given in decoding.image_metric_models): its two-way identification is not AlexNet's, "
                     "Inception's or CLIP's")
    parts += ["<h2>All metrics</h2>", f"<p>Image feature metrics on {networks}. <i>retrieved_image</i>: the "
              "nearest training image (a baseline); <i>generated_image</i>: unCLIP; <i>brain_captioning</i>: "
              "img2img + ControlNet-depth.</p>", wide.reset_index().to_html(index=False, border=0)]
    for d in decode_dirs:
        subject = d.name
        with h5py.File(d / "reconstructions.h5", "r") as f:
            true = f["true"][()]
            rows = {"retrieved (nearest training image)": f["retrieved"][()]}
            if "generated" in f:
                rows["unCLIP"] = f["generated"][()]
            if "brain_captioning" in f:
                rows["Brain Captioning (img2img)"] = f["brain_captioning"][()]
        fig = plot_reconstructions(true, rows, figures / f"reconstructions_{subject}.png")
        captions = read_table(d / "captions.csv").head(8)[["image_id", "true", "decoded"]]
        selectivity = read_table(d / "selectivity.csv")[["roi", "caption", "top_captions"]]
        rows_note = ("<p>Rows: the seen test images; the nearest training image to the predicted embedding"
                     + ("; unCLIP from the predicted image embeddings" if "unCLIP" in rows else "")
                     + ("; Brain Captioning: img2img from the predicted VAE latent, prompted by the decoded "
                        "caption (with ControlNet-depth from the predicted depth when configured)"
                        if "Brain Captioning (img2img)" in rows else "") + ".</p>")
        parts += [f"<h2>{html.escape(subject)}</h2>", _img(fig, f"reconstructions {subject}"), rows_note,
                  "<h3>Captions from predicted embeddings</h3>", _table_html(captions),
                  "<h3>ROI selectivity captions (BrainSCUBA)</h3><p>Each ROI's mean encoder weight vector, "
                  "projected onto the training images' embeddings (softmax, inverse temperature "
                  f"{cfg['decoding']['selectivity_temperature']}), decoded by the captioner; with the captions of "
                  "the three most weighted training images.</p>", _table_html(selectivity)]
        voxels = read_table(d / "voxel_captions.csv") if (d / "voxel_captions.csv").exists() else None
        if voxels is not None and len(voxels):
            vc = cfg["decoding"]["voxel_captions"]
            names = sorted(vc["categories"])  # the map's volume order
            shares = [f"share_{n}" for n in names]
            summary = voxels.groupby("roi")[shares].mean().round(3)
            summary.insert(0, "voxels captioned", voxels.groupby("roi").size())
            summary.insert(1, "most frequent caption", voxels.groupby("roi")["caption"].agg(
                lambda c: c.value_counts().index[0]))
            maps = plot_category_maps(d / "word_categories.nii.gz", names, figures / f"categories_{subject}.png")
            parts += ["<h3>Voxel captions (BrainSCUBA per voxel)</h3><p>Every voxel whose forward encoder reaches "
                      f"test r ≥ {vc['min_r']} (at most {vc['max_voxels']}), its weight vector projected onto the "
                      "image bank and captioned; per ROI, the mean share of caption content words in each word "
                      "category. Map: the shares placed in the volume (word_categories.nii.gz), maximum over the "
                      "third axis.</p>", _table_html(summary.reset_index()), _img(maps, f"word categories {subject}")]
    parts += ["</body></html>"]
    return write_text(out, "\n".join(parts) + "\n")
