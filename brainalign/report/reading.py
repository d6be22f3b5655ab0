"""Report of a reading-time dataset: scores with ceilings, regression gains, scatter plots, stories, training curves."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import read_table, write_text
from .html import _img, _table_html, report_head
from .plots import _PALETTE, _grid, _pyplot, _save_and_close

__all__ = ["plot_reading_scores", "plot_surprisal_scatter", "plot_story_scores", "plot_training_curves", "plot_verbatim",
           "write_reading_report", "READING_FIGURES"]

READING_FIGURES = ("reading_scores.png", "surprisal_scatter.png", "story_scores.png", "training_curves.png",
                   "verbatim.png")
_CONDITION_COLOURS = {"repeated": _PALETTE[1], "permuted": _PALETTE[4], "control": _PALETTE[0]}
_SOURCE_COLOURS = {"builtin": _PALETTE[0], "corpus_ngram": _PALETTE[5], "trained": _PALETTE[1], "hf": _PALETTE[3],
                   "file": _PALETTE[2]}


def plot_reading_scores(scores: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Two panels per predictor: Futrell2018 normalized score, and the held-out ΔLogLik with its permutation p."""
    plt = _pyplot()
    order = scores.sort_values("normalized_futrell2018")
    colours = [_SOURCE_COLOURS.get(s, "grey") for s in order["source"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.35 * len(order) + 1.6), sharey=True)
    y = np.arange(len(order))
    left.barh(y, order["normalized_futrell2018"], color=colours)
    left.axvline(1.0, color="k", ls="--", lw=0.8)
    left.set_yticks(y, order["predictor"])
    left.set_xlabel(f"Futrell2018 |r| / ceiling ({order['ceiling'].iloc[0]:.3f})")
    for yi, raw in zip(y, order["metric_futrell2018"]):
        left.text(0.01, yi, f"r={raw:.3f}", va="center", fontsize=7, color="white")
    right.barh(y, order["delta_loglik"] * 1000, color=colours)
    right.axvline(0.0, color="k", lw=0.8)
    right.set_xlabel("held-out ΔLogLik over the baseline (millinats / word)")
    for yi, gain, p in zip(y, order["delta_loglik"] * 1000, order["p_value"]):
        right.text(gain, yi, f" p={p:.3g}" if np.isfinite(p) else "", va="center", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _SOURCE_COLOURS.values()]
    left.legend(handles, list(_SOURCE_COLOURS), fontsize=7, loc="lower right", title="source", title_fontsize=7)
    return _save_and_close(fig, out)


def plot_surprisal_scatter(predictors: pd.DataFrame, names: list[str], out: str | os.PathLike) -> Path:
    """Mean reading time against each predictor's surprisal (scored words), with binned means."""
    plt = _pyplot()
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), squeeze=False, sharey=True)
    scored = predictors[~predictors["sentence_initial"].astype(bool)]
    for ax, name in zip(axes.ravel(), names):
        data = scored[[name, "rt"]].dropna()
        ax.scatter(data[name], data["rt"], s=2, alpha=0.15, color=_PALETTE[0], rasterized=True)
        if len(data) > 20:
            bins = np.unique(np.quantile(data[name], np.linspace(0, 1, 11)))
            which = np.clip(np.digitize(data[name], bins[1:-1]), 0, len(bins) - 2)
            means = data.groupby(which).agg(x=(name, "mean"), y=("rt", "mean"))
            ax.plot(means["x"], means["y"], "o-", color=_PALETTE[1], ms=3)
        r = np.corrcoef(data[name], data["rt"])[0, 1] if len(data) > 2 else np.nan
        ax.set_title(f"{name} (r = {r:.3f}, n = {len(data)})", fontsize=8)
        ax.set_xlabel("surprisal (bits)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean reading time (ms)")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _save_and_close(fig, out)


def plot_story_scores(per_story: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Heat map of the Futrell2018 |r| per predictor and story, values written in the cells."""
    plt = _pyplot()
    wide = per_story.pivot(index="predictor", columns="story", values="metric_futrell2018")
    fig, ax = plt.subplots(figsize=(0.6 * wide.shape[1] + 2.5, 0.35 * wide.shape[0] + 1.5))
    image = ax.imshow(wide.to_numpy(), cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(wide.shape[1]), wide.columns)
    ax.set_yticks(range(wide.shape[0]), wide.index)
    ax.set_xlabel("story")
    for (i, j), value in np.ndenumerate(wide.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(image, ax=ax, label="|Pearson r| (surprisal vs mean RT)")
    return _save_and_close(fig, out)


def plot_training_curves(histories: dict[str, pd.DataFrame], ngram: pd.DataFrame | None, out: str | os.PathLike) -> Path:
    """Held-out perplexity against training tokens per model; the corpus n-gram baseline as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, (name, hist) in enumerate(histories.items()):
        ax.plot(hist["tokens"], hist["valid_perplexity"], "o-", ms=3, color=_PALETTE[k % len(_PALETTE)], label=name)
    if ngram is not None and len(ngram):
        row = ngram.iloc[0]
        ax.axhline(row["valid_perplexity"], color="k", ls="--", lw=0.8, label=f"{row['model']} (count-based)")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return _save_and_close(fig, out)


def plot_verbatim(summary: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Repeat surprisal (median over trials, 95 % CI) against list length (left) and intervening length (right), per model."""
    plt = _pyplot()
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(8, 2.6 * len(models)), squeeze=False, sharey=True)
    longest = summary["intervening_length"].max()
    longest_list = summary["list_length"].max()
    for row, model in zip(axes, models):
        data = summary[summary["model"] == model]
        for x_key, fixed_key, fixed, ax in (("list_length", "intervening_length", longest, row[0]),
                                            ("intervening_length", "list_length", longest_list, row[1])):
            part = data[data[fixed_key] == fixed]
            for condition, group in part.groupby("condition", sort=False):
                group = group.sort_values(x_key)
                colour = _CONDITION_COLOURS.get(condition, "grey")
                ax.plot(group[x_key], group["median"], "o-", color=colour, label=condition, ms=3)
                ax.fill_between(group[x_key], group["ci_low"], group["ci_high"], color=colour, alpha=0.2)
            ax.axhline(100, color="k", lw=0.6, ls="--")
            ax.set_xlabel(f"{x_key.replace('_', ' ')} ({fixed_key.replace('_', ' ')} {fixed})")
        row[0].set_ylabel(f"{model}\nrepeat surprisal (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save_and_close(fig, out)


def _verdict(scores: pd.DataFrame) -> str:
    """One sentence per metric: the best predictor, and whether a baseline beats every trained model."""
    lines = []
    for metric, label in (("normalized_futrell2018", "Futrell2018"), ("delta_loglik", "ΔLogLik")):
        best = scores.loc[scores[metric].idxmax()]
        lines.append(f"Best on {label}: <b>{html.escape(str(best['predictor']))}</b> ({best[metric]:.4g}).")
        trained = scores[scores["source"] == "trained"]
        baselines = scores[scores["source"].isin(["builtin", "corpus_ngram"]) & (scores["architecture"] == "ngram")]
        if len(trained) and len(baselines):
            top_base = baselines.loc[baselines[metric].idxmax()]
            beaten = trained[trained[metric] < top_base[metric]]["predictor"].tolist()
            if beaten:
                lines.append(f"On {label}, the n-gram baseline {html.escape(str(top_base['predictor']))} "
                             f"({top_base[metric]:.4g}) beats the trained model(s) {html.escape(', '.join(beaten))}.")
    return "<p>" + "<br/>".join(lines) + "</p>"


def _verbatim_verdict(trials: pd.DataFrame) -> str:
    """One line per model: repeated against control lists, paired by trial, with a Wilcoxon signed-rank test."""
    from scipy.stats import wilcoxon

    keys = ["list_length", "intervening_length", "trial"]
    lines = []
    for model, group in trials.groupby("model", sort=False):
        wide = group.pivot_table(index=keys, columns="condition", values="repeat_surprisal")
        if not {"repeated", "control"} <= set(wide.columns):
            continue
        diff = (wide["control"] - wide["repeated"]).dropna()
        p = float(wilcoxon(diff).pvalue) if len(diff) > 5 and diff.abs().sum() > 0 else float("nan")
        found = p < 0.05 and diff.median() > 0
        lines.append(f"{html.escape(str(model))}: repeated {wide['repeated'].median():.1f} % vs control "
                     f"{wide['control'].median():.1f} %; paired difference (control − repeated) median "
                     f"{diff.median():.1f} points over {len(diff)} trials, Wilcoxon p = {p:.3g}: "
                     f"{'a verbatim effect' if found else 'no verbatim effect'}.")
    return "<p>" + "<br/>".join(lines) + "</p>"


def write_reading_report(cfg: dict[str, Any], results_dir: str | os.PathLike, out: str | os.PathLike,
                         figures_dir: str | os.PathLike) -> Path:
    """Draw the figures into ``figures_dir`` and write the reading report's HTML to ``out``."""
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    scores = read_table(results_dir / "scores.csv")
    per_story = read_table(results_dir / "per_story.csv")
    predictors = read_table(results_dir / "predictors.csv")
    histories = {p.stem.removesuffix("_history"): read_table(p) for p in sorted((results_dir / "lm").glob("*_history.csv"))}
    ngram_path = results_dir / "lm" / "ngram.csv"
    ngram = read_table(ngram_path) if ngram_path.exists() else None
    names = scores["predictor"].tolist()
    plot_reading_scores(scores, figures_dir / READING_FIGURES[0])
    plot_surprisal_scatter(predictors, names, figures_dir / READING_FIGURES[1])
    plot_story_scores(per_story, figures_dir / READING_FIGURES[2])
    training_html = "<p class='note'>(no language model trained in this config)</p>"
    if histories:
        plot_training_curves(histories, ngram, figures_dir / READING_FIGURES[3])
        training_html = _img(figures_dir / READING_FIGURES[3], "training curves")
    verbatim_html = "<p class='note'>(verbatim paradigm not run: language.verbatim.enabled is false or no model)</p>"
    verbatim_files = sorted((results_dir / "verbatim").glob("*.csv"))
    if verbatim_files:
        from ..features.verbatim import summarize_repeat_surprisal

        trials = pd.concat([read_table(p) for p in verbatim_files], ignore_index=True)
        summary = summarize_repeat_surprisal(trials)
        plot_verbatim(summary, figures_dir / READING_FIGURES[4])
        overall = trials.groupby(["model", "condition"])["repeat_surprisal"].median().unstack()
        verbatim_html = "".join([
            "<p>Repeat surprisal = median surprisal over the second list's nouns / over the first list's (%), "
            "per trial; lines: median over trials with 95 % bootstrap intervals (docs/language.md). Below 100 % "
            "for repeated lists and near 100 % for new nouns (control) is verbatim retrieval.</p>",
            _img(figures_dir / READING_FIGURES[4], "verbatim memory"),
            "<p>Median repeat surprisal over all trials (%):</p>", overall.round(1).reset_index().to_html(index=False, border=0),
            _verbatim_verdict(trials)])
    prov_path = results_dir / "scores.csv.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    reading, lang = cfg["reading"], cfg["language"]
    shown = scores.drop(columns=["dataset"]).round(5)
    parts = [
        *report_head(cfg, prov),
        "<h2>Scores</h2>", _verdict(scores), _img(figures_dir / READING_FIGURES[0], "reading scores"),
        _table_html(shown),
        "<h2>Surprisal against reading time</h2>", _img(figures_dir / READING_FIGURES[1], "scatter plots"),
        "<h2>Per story</h2>", _img(figures_dir / READING_FIGURES[2], "per-story scores"),
        _table_html(per_story.round(4)),
        "<h2>Training</h2>", training_html,
        "<h2>Verbatim short-term memory</h2>", verbatim_html,
        "<h2>Method</h2><ul>",
        "<li>Surprisal: −log2 p(word | preceding words of the story) in bits, summed over a word's sub-tokens "
        "(docs/language.md). Words with a sub-token outside a trained model's vocabulary: "
        f"{'dropped' if lang['unknown_words'] == 'drop' else 'kept'} (column n_unknown_words). "
        + ("Every predictor is scored on the same words: those where all predictors have a value."
           if reading["common_words"] else "Each predictor is scored on its own words (column n_words).")
        + "</li>",
        f"<li>Futrell2018 (Brain-Score): |Pearson r| between surprisal and mean reading time, first word of each "
        f"sentence dropped; normalized = raw / {reading['ceiling']:g}, Brain-Score's published split-half ceiling "
        "(per-reader times are not in the data, so the ceiling is not recomputed).</li>",
        f"<li>Regression gain: OLS of {'log ' if reading['log_rt'] else ''}RT on word length, log unigram frequency "
        f"and position (+ surprisal), each with {reading['spillover']} previous word(s) (spillover); held-out "
        f"Gaussian log-likelihood per word, leave one story out; p from {reading['n_permutations']} permutations "
        "of surprisal within stories. The unigram surprisal (ngram1) is the baseline's own frequency predictor, "
        "so its gain is 0 by construction.</li>",
        f"<li>Trained models: corpus <code>{html.escape(Path(lang['corpus']).name if lang['corpus'] else 'none')}</code>, vocabulary "
        f"{lang['vocab_size']} tokens, held-out fraction {lang['valid_fraction']:g}; early stopping on held-out "
        f"perplexity; the count-based baseline is a {lang['ngram_order']}-gram with interpolated absolute "
        "discounting on the same corpus.</li></ul>",
        "</body></html>",
    ]
    return write_text(out, "\n".join(parts) + "\n")
