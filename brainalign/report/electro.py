"""Report of an electrophysiology dataset: identification or word-decoding scores, top-k curve, confusion matrix."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import config_hash, read_table, write_text
from .html import _CSS, _img, _table_html
from .plots import _pyplot, _save

__all__ = ["plot_confusion", "plot_history", "plot_topk_curve", "preprocessing_text", "run_electro_report"]


def plot_topk_curve(curve: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Top-k identification accuracy against k, per decoder, subject and pooled, with the chance line.

    The brain module's curves are solid, the ridge baseline's dotted (same colour per subject); a table
    without a ``decoder`` column is the brain module's.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    if "decoder" not in curve:
        curve = curve.assign(decoder="brain_module")
    colours = {s: f"C{i}" for i, s in enumerate(sorted(set(curve["subject"]) - {"pooled"}))}
    colours["pooled"] = "k"
    for (decoder, subject), part in curve.groupby(["decoder", "subject"], sort=True):
        pooled = subject == "pooled"
        ax.plot(part["k"], part["accuracy"], color=colours[subject], lw=2.0 if pooled else 1.0,
                ls="-" if decoder == "brain_module" else ":", alpha=1.0 if pooled else 0.6,
                label=f"{subject} ({decoder.replace('_', ' ')})")
    pooled = curve[(curve["subject"] == "pooled") & (curve["decoder"] == curve["decoder"].iloc[0])]
    ax.plot(pooled["k"], pooled["chance"], "--", color="grey", label="chance")
    ax.set_xlabel("k (rank among the unique test segments)")
    ax.set_ylabel("top-k accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, frameon=False)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def plot_confusion(confusion: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Row-normalised confusion matrix (true word in rows, predicted in columns)."""
    plt = _pyplot()
    labels = list(confusion["true"])
    counts = confusion.drop(columns="true").to_numpy(dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.0 + 0.32 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(rates, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted word")
    ax.set_ylabel("presented word")
    fig.colorbar(im, ax=ax, label="share of test trials")
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def plot_history(history: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Training curves: every loss/accuracy column of ``history.csv`` against the epoch."""
    plt = _pyplot()
    cols = [c for c in history.columns if c != "epoch" and history[c].notna().any()]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.0 * len(cols), 2.6), squeeze=False)
    for ax, col in zip(axes[0], cols):
        ax.plot(history["epoch"], history[col])
        ax.set_title(col)
        ax.set_xlabel("epoch")
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def preprocessing_text(ep: dict[str, Any]) -> str:
    """The preprocessing of the ``electrophysiology`` section in words; a step that was not run says so (never
    "None")."""
    low, high = ep["l_freq"], ep["h_freq"]
    if low is None and high is None:
        band = "no band-pass filter"
    elif high is None:
        band = f"high-pass {low:g} Hz"
    elif low is None:
        band = f"low-pass {high:g} Hz"
    else:
        band = f"band-pass {low:g}–{high:g} Hz"
    gamma = ("no high-gamma envelope" if ep["high_gamma"] is None
             else "high-gamma envelope (analytic amplitude) {:g}–{:g} Hz".format(*ep["high_gamma"]))
    reference = "no re-referencing" if ep["reference"] == "none" else f"{ep['reference']} re-referencing"
    baseline = ("no baseline correction" if ep["baseline"] is None
                else "baseline {:g}…{:g} s subtracted".format(*ep["baseline"]))
    scaling = ("no scaling" if ep["scaling"] == "none"
               else f"per-channel {ep['scaling']} scaling fitted on the training runs")
    clamp = "no clamping" if ep["clamp"] is None else f"clamp ±{ep['clamp']:g}"
    bad = "bad channels dropped" if ep["bad_channel_method"] == "drop" else "bad channels interpolated"
    return (f"{bad}; {reference}; {band}; {gamma}; resampled to {ep['sfreq']:g} Hz; epochs {ep['tmin']:g}…"
            f"{ep['tmax']:g} s around word onsets (shift {ep['shift']:g} s); {baseline}; {scaling}; {clamp}")


def _test_split(prov: dict[str, Any], ep: dict[str, Any]) -> str:
    """The split as the decoding stage recorded it (older outputs: as configured)."""
    settings = prov.get("settings", {})
    if "test_split" not in settings:
        return f"runs {ep['test_runs'] or 'the last run'} (whole runs)"
    counts = ", ".join(f"{s} {n}" for s, n in sorted(settings.get("n_test_epochs", {}).items()))
    return f"{settings['test_split']}; test epochs: {counts}"


def _edge_drops(prov: dict[str, Any], ep: dict[str, Any]) -> str:
    """Words without an epoch because their window crosses a recording's edge, per subject."""
    dropped = prov.get("settings", {}).get("edge_epochs_dropped")
    if dropped is None:
        return f"Words whose window crosses a recording's edge: drop_edge_epochs {ep['drop_edge_epochs']}."
    counts = ", ".join(f"{s} {n}" for s, n in sorted(dropped.items()))
    return (f"Words without an epoch, their window crossing a recording's edge (drop_edge_epochs "
            f"{ep['drop_edge_epochs']}): {counts}.")


def run_electro_report(cfg: dict[str, Any], decoding_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Figures next to ``out`` (``figures/``) and the self-contained HTML report."""
    from ..pipeline.electro import electro_modality, target_set

    decoding_dir, out = Path(decoding_dir), Path(out)
    figures = out.parent / "figures"
    scores = read_table(decoding_dir / "scores.csv")
    prov_path = decoding_dir / "scores.csv.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    ep = cfg["electrophysiology"]
    name = cfg["dataset"]["name"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>brainalign — {html.escape(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>brainalign report: {html.escape(name)}</h1>",
        f"<p class='note'>config sha256 <code>{config_hash(cfg)[:16]}</code>; git "
        f"<code>{html.escape(str(prov.get('git_commit', 'unknown'))[:12])}</code></p>",
    ]
    shown = scores.assign(value=scores["value"].round(4), chance=scores["chance"].round(4),
                          chance_low=scores["chance_low"].round(4), chance_high=scores["chance_high"].round(4))
    if "chance_null" in shown:
        shown = shown.assign(chance_null=shown["chance_null"].round(4), p_value=shown["p_value"].map(
            lambda v: "–" if pd.isna(v) else f"{v:.3g}"))
    null_note = ("<p><b>Significance.</b> <code>chance_null</code> is the mean accuracy when every window is "
                 "scored against the target of another word of its run (targets shifted circularly along the "
                 "word sequence, each run by its own amount), and <code>p_value</code> that permutation test's "
                 "one-sided p (<code>statistics.n_permutations</code> shifts). Unlike k / candidates, this "
                 "chance level includes what a decoder gains from the words' frequencies alone: a decoder "
                 "trained on noise predicts the mean target, which resembles the frequent words, which are also "
                 "the most frequent targets (docs/method.md).</p>")
    if electro_modality(cfg) == "meeg":
        feature, layer = target_set(cfg)
        plot_topk_curve(read_table(decoding_dir / "topk.csv"), figures / "topk_curve.png")
        parts += [
            "<h2>Segment identification (Défossez et al. 2023)</h2>",
            f"<p>For each held-out window, all unique held-out segments are ranked by the cosine similarity "
            f"between the decoder's output and their {html.escape(feature)} layer {html.escape(layer)} "
            "embedding; top-k = share of windows whose own segment ranks in the first k. chance = k / "
            "candidates; [chance_low, chance_high] = its 99 % binomial interval. Decoders: the contrastive "
            "<code>brain_module</code>, and its linear baseline <code>ridge</code> (one ridge per subject from the "
            "same scaled windows to the same targets, penalty chosen by cross-validation on the training data), "
            "scored among the same candidates.</p>",
            _table_html(shown), null_note, _img(figures / "topk_curve.png", "top-k curve"),
        ]
    else:
        plot_confusion(read_table(decoding_dir / "confusion.csv"), figures / "confusion.png")
        parts += [
            "<h2>Word decoding (Du-IN style)</h2>",
            "<p>Accuracy of the word classifier (<code>duin</code>) and of its linear baseline "
            "(<code>ridge</code>: a ridge classifier per subject on the same scaled windows, penalty chosen by "
            "cross-validation on the training data) on the held-out runs; chance = 1 / words, with its 99 % "
            "binomial interval. The confusion matrix is the word classifier's.</p>",
            _table_html(shown), null_note, "<h3>Confusion matrix (pooled over subjects)</h3>",
            _img(figures / "confusion.png", "confusion matrix"),
        ]
    history = decoding_dir / "history.csv"
    if history.exists():
        plot_history(read_table(history), figures / "training.png")
        parts += ["<h2>Training</h2>", _img(figures / "training.png", "training curves")]
    parts += [
        "<h2>Method</h2><ul>",
        f"<li>Preprocessing: {html.escape(preprocessing_text(ep))}.</li>",
        f"<li>Test data: {html.escape(_test_split(prov, ep))} (never random windows).</li>",
        f"<li>{html.escape(_edge_drops(prov, ep))}</li>",
        "</ul></body></html>",
    ]
    return write_text(out, "\n".join(parts) + "\n")
