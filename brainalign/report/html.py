"""The self-contained HTML report of one dataset (figures embedded, no network)."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import comparison_sets
from ..io import config_hash, read_table, write_text
from ..pipeline.aggregate import ceiling_per_subject
from .method import fmriprep_confounds_text, method_items, partition_reason, recorded_config
from .plots import (
    plot_ceilings,
    plot_layer_curves,
    plot_subject_scores,
    plot_variance_partition,
)
from .tables import MISSING, MIN_SUBJECTS_FOR_SPREAD, ceiling_table, comparison_table, partition_table, summary_table

__all__ = ["run_report", "report_head", "FIGURES"]

#: The figures every report has, by file name.
FIGURES = ("layer_curves.png", "subject_scores.png", "ceilings.png")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
code{background:#f5f5f5;padding:1px 3px}.note{color:#555;font-size:0.9em}
"""


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p class='note'>(none)</p>"
    return table.to_html(index=False, escape=True, border=0, na_rep=MISSING)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'/>"


def _dataset_credit(cfg: dict[str, Any]) -> str:
    """The report's "Data" line: the dataset kind's own credit (where the data come from, whom to cite)."""
    from ..datasets.registry import get_kind

    return f"<p><b>Data:</b> {html.escape(get_kind(cfg).credit(cfg))}</p>"


def report_head(cfg: dict[str, Any], prov: dict[str, Any], packages: bool = False) -> list[str]:
    """The opening of every report: HTML head, title, the data credit, config hash, git commit (and packages)."""
    name = html.escape(cfg["dataset"]["name"])
    versions = (f"; packages {html.escape(', '.join(f'{k} {v}' for k, v in prov.get('packages', {}).items()))}"
                if packages else "")
    return [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>brainalign — {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>brainalign report: {name}</h1>",
        _dataset_credit(cfg),
        f"<p class='note'>config sha256 <code>{config_hash(cfg)[:16]}</code>; git "
        f"<code>{html.escape(str(prov.get('git_commit', 'unknown'))[:12])}</code>{versions}</p>",
    ]


#: The name tests and callers used before the Method moved to :mod:`.method`.
_fmriprep_confounds_text = fmriprep_confounds_text


def _heads_section(cfg: dict[str, Any], results_dir: Path, curve: pd.DataFrame, rois: list[str]) -> str:
    """Heads × layers heat maps for every transformer feature set scored per attention head."""
    import tempfile

    from ..config import feature_set_instances
    from ..features.activations import read_attention_stats
    from ..features.model_sets import read_head_functions
    from .plots import plot_head_maps

    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in feature_set_instances(cfg).items():
            if spec["kind"] != "transformer" or "heads" not in spec["units"]:
                continue
            feats = results_dir / "features" / f"{name}.h5"
            stats = read_attention_stats(feats) if feats.exists() else {}
            fig = plot_head_maps(curve, spec["family"], Path(tmp) / f"{name}_heads.png", rois, stats or None)
            parts += [f"<h3>{html.escape(name)}</h3>", _img(fig, f"{name} heads")]
            functions = read_head_functions(feats) if feats.exists() else None
            if functions is not None:
                parts += _head_function_parts(functions, curve, spec["family"], Path(tmp) / f"{name}_functions.png")
    if not parts:
        return ""
    return "\n".join(["<h2>Attention heads</h2><p>Each head's output (before the output projection) scored as a "
                       "feature set of its own, through the same encoder; bottom row: the heads' attention "
                       "statistics averaged over words.</p>", *parts])


def _head_function_parts(functions: pd.DataFrame, curve: pd.DataFrame, model: str, figure: Path) -> list[str]:
    """Rank correlation across heads between each head function and the heads' brain scores, per ROI."""
    from ..features.head_functions import relate_head_scores
    from .plots import plot_head_functions

    rows = curve[curve["model"] == model]
    parsed = rows["layer"].astype(str).str.extract(r"^(\d+)\.h(\d+)$").dropna().astype(int)
    brain = pd.DataFrame({"layer": parsed[0], "head": parsed[1], "roi": rows.loc[parsed.index, "roi"],
                          "score": rows.loc[parsed.index, "mean"]})
    related = relate_head_scores(functions, brain)
    plot_head_functions(functions, brain, related, figure)
    reason = functions.attrs.get("successor_reason", "")
    note = f" Successor scores: none ({html.escape(reason)})." if reason else ""
    return ["<p>Head functions (docs/language.md) against each head's brain score (mean r over subjects): "
            f"Spearman ρ across heads, two-sided permutation p (1000 permutations).{note}</p>",
            _img(figure, "head functions"), _table_html(related.round(4))]


def _brain_section(cfg: dict[str, Any], results_dir: Path) -> str:
    """Glass brains per layer and template slices of every feature set's maps (volume datasets)."""
    import tempfile

    from .brain import best_map_layer, plot_glass_layers, plot_slices

    maps = sorted((results_dir / "maps").glob("*/maps.json"))
    if not maps:
        return ""
    alpha = cfg["maps"]["fdr_alpha"]
    parts = ["<h2>Brain maps</h2>",
             f"<p>Group mean of the subjects' held-out r, shown where a one-sided t-test of Fisher-z r &gt; 0 "
             f"across subjects survives Benjamini–Hochberg at q &lt; {alpha} over voxels. NIfTI maps of r, "
             f"normalized r and −log10 q per subject and for the group are in <code>maps/&lt;feature set&gt;/"
             f"</code> (volume k = layer k of <code>maps.json</code>). The summary table above gives the same "
             f"scores averaged within each parcel.</p>"]
    with tempfile.TemporaryDirectory() as tmp:
        for meta in maps:
            folder = meta.parent
            _, layer = best_map_layer(folder)
            glass = plot_glass_layers(folder, Path(tmp) / f"{folder.name}_glass.png", alpha)
            slices = plot_slices(folder, Path(tmp) / f"{folder.name}_slices.png", alpha=alpha)
            warning = json.loads(meta.read_text()).get("fdr_resolution_warning")
            if warning:
                parts.append(f"<p class='note'><b>Per-subject FDR maps:</b> {html.escape(warning)}</p>")
            parts += [f"<h3>{html.escape(folder.name)}</h3>",
                      f"<p>Slices at the layer with the highest mean group r (layer {html.escape(str(layer))}), "
                      "over the MNI152 template:</p>", _img(slices, f"{folder.name} slices"),
                      _img(glass, f"{folder.name} glass brains per layer")]
    return "\n".join(parts)


def _signed(value: float) -> str:
    """``value`` to 3 decimals with a true minus sign."""
    return f"{value:.3f}".replace("-", "−")


def _low_ceilings(results_dir: Path, min_ceiling: float) -> dict[str, float]:
    """ROI -> ceiling, for the ROIs whose ceiling is below ``min_ceiling`` (no normalized score)."""
    ceiling = read_table(results_dir / "ceiling_summary.csv", required=["roi", "ceiling"])
    return {str(r): float(c) for r, c in zip(ceiling["roi"], ceiling["ceiling"]) if c < min_ceiling}


def _normalized_section(results_dir: Path, min_ceiling: float) -> str:
    """Normalized scores per ROI and model (nested best layer), with how many scores exceed the ceiling."""
    from ..pipeline.aggregate import normalization_counts

    summary = read_table(results_dir / "best_layer_summary.csv")
    scores = read_table(results_dir / "scores.csv")
    low = _low_ceilings(results_dir, min_ceiling)
    counts = normalization_counts(scores)
    cells = []
    for _, row in summary.iterrows():
        clipped, raw = row["normalized_mean"], row.get("normalized_mean_unclipped", float("nan"))
        if not pd.isna(raw):
            text = f"{clipped:.2f} (unclipped {raw:.2f})"
        elif row["roi"] in low:
            text = f"{MISSING} (ceiling {_signed(low[row['roi']])} < {min_ceiling:g})"
        else:
            text = MISSING
        cells.append({"model": row["model"], "ROI": row["roi"], "normalized score": text})
    table = (pd.DataFrame(cells).pivot(index="ROI", columns="model", values="normalized score")
             .reindex(list(dict.fromkeys(summary["roi"]))).fillna(MISSING).reset_index() if cells else pd.DataFrame())
    return "\n".join([
        "<h2>Normalized scores</h2>",
        "<p>Brain-Score's normalization: the mean nested-best-layer score over subjects divided by the ROI's "
        "ceiling, clipped to [0, 1] (the unclipped ratio in brackets); missing where the ceiling is below "
        f"<code>statistics.min_ceiling</code> = {min_ceiling:g} (see Ceiling). A ratio above 1 means the model "
        "predicts a subject better than the other subjects' mean does (the ceiling is itself attenuated by the "
        "group's noise, docs/method.md §5), or sampling noise.</p>",
        f"<p><b>{counts['n_exceeding']} of {counts['n_scores']}</b> subject-level scores (subject × layer × ROI × "
        f"feature set) exceed their ROI's ceiling (flagged <code>exceeds_ceiling</code> in "
        f"<code>scores.csv</code>, clipped to 1); {counts['n_without_ceiling']} have no normalized score "
        "(ceiling below the minimum).</p>",
        _table_html(table),
    ])


def _ceiling_notes(results_dir: Path, min_ceiling: float) -> list[str]:
    """Why a ceiling has no SEM or no normalized score, one sentence per case (HTML)."""
    ceiling = read_table(results_dir / "ceiling_summary.csv", required=["roi", "ceiling"])
    notes = []
    few = sorted({int(n) for n in ceiling.get("n_subjects", pd.Series(dtype=float)).dropna()
                  if n < MIN_SUBJECTS_FOR_SPREAD})
    for n in few:
        notes.append(f"SEM {MISSING}: not computed: with 2 subjects each one's leave-one-subject-out ISC is the "
                     "correlation between the two, the same value twice, so there is no spread to estimate."
                     if n == 2 else f"SEM {MISSING}: not computed from {n} subject(s).")
    limit = f"<code>statistics.min_ceiling</code> = {min_ceiling:g}"
    for roi, value in _low_ceilings(results_dir, min_ceiling).items():
        why = (f"is negative, below {limit}: the subjects' responses there do not follow the other subjects' "
               "mean (no shared stimulus-driven signal), so score / ceiling means nothing" if value < 0 else
               f"is below {limit}: divided by a ceiling this near 0, noise would give large ratios")
        notes.append(f"{html.escape(roi)}: ceiling {_signed(value)} {why}; no normalized score.")
    return [f"<p class='note'>{note}</p>" for note in notes]


def _curve_cell(mean: float, low: float, high: float, q: float) -> str:
    if pd.isna(mean):
        return MISSING
    ci = f"[{low:.3f}, {high:.3f}]" if not (pd.isna(low) or pd.isna(high)) else f"[{MISSING}]"
    return f"{mean:.3f} {ci}" + ("*" if q < 0.05 else "")


def _curve_section(curve: pd.DataFrame) -> str:
    """The layer × (model, ROI) table of mean r [CI], a dash where a feature set has no such layer (HTML)."""
    cells = curve.assign(cell=[_curve_cell(*values) for values in zip(
        curve["mean"], curve["ci_low"], curve["ci_high"], curve["p_group_fdr"].fillna(1))])
    wide = cells.pivot(index=["model", "roi"], columns="layer", values="cell")
    layers = [str(c) for c in wide.columns]
    partial = {model: [str(x) for x in dict.fromkeys(group["layer"])]
               for model, group in curve.groupby("model", sort=False) if group["layer"].nunique() < len(layers)}
    notes = []
    if partial:
        scored = "; ".join(f"{html.escape(m)}: layer{'s' if len(v) > 1 else ''} {html.escape(', '.join(v))} only"
                           for m, v in partial.items())
        notes.append(f"{MISSING} : no such layer ({scored}).")
    if (curve["ci_low"].isna() | curve["ci_high"].isna()).any():
        notes.append(f"[{MISSING}] : no bootstrap CI was computed.")
    return (wide.to_html(border=0, na_rep=MISSING)
            + "".join(f"<p class='note'>{note}</p>" for note in notes))


def _partition_section(cfg: dict[str, Any], results_dir: Path, rois: list[str]) -> str:
    """The variance partitioning figure and table, or why there is none (HTML)."""
    import tempfile

    path = results_dir / "variance_partition.csv"
    if not path.exists():
        return f"<p class='note'>{partition_reason(cfg, results_dir)}</p>"
    with tempfile.TemporaryDirectory() as tmp:
        fig = plot_variance_partition(read_table(path), Path(tmp) / "partition.png", rois)
        return _img(fig, "variance partitioning") + _table_html(partition_table(results_dir))


def run_report(cfg: dict[str, Any], results_dir: str | os.PathLike, out: str | os.PathLike,
               figures_dir: str | os.PathLike) -> Path:
    """Draw the figures into ``figures_dir`` and write the HTML report to ``out``."""
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    curve = read_table(results_dir / "layer_curve.csv")
    nested = read_table(results_dir / "best_layer.csv")
    ceiling = read_table(results_dir / "ceiling_summary.csv")
    ceiling_subjects = ceiling_per_subject(read_table(results_dir / "ceiling.csv"))
    model, baselines = comparison_sets(cfg)
    rois = list(ceiling["roi"])
    families = [m for m in [model, *baselines] if m is not None and m in set(curve["model"])]
    plot_layer_curves(curve, ceiling, model or families[0], baselines, figures_dir / FIGURES[0], rois)
    plot_subject_scores(nested, families, figures_dir / FIGURES[1], rois)
    plot_ceilings(ceiling_subjects, figures_dir / FIGURES[2], rois)

    brain_html = _brain_section(cfg, results_dir)
    heads_html = _heads_section(cfg, results_dir, curve, rois)

    prov_path = results_dir / "ceiling.csv.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    excluded = prov.get("settings", {}).get("excluded", {})
    excl_html = ("".join(f"<li>{html.escape(s)}: {html.escape(r)}</li>" for s, r in excluded.items())
                 or "<li>none</li>")
    min_ceiling = float(recorded_config(results_dir / "scores.csv")["statistics"]["min_ceiling"])
    low_note = (f"<p class='note'>† below <code>statistics.min_ceiling</code> = {min_ceiling:g}: no normalized "
                "score (see Ceiling).</p>" if _low_ceilings(results_dir, min_ceiling) else "")
    parts = [
        *report_head(cfg, prov, packages=True),
        "<h2>Layer-wise scores</h2>",
        "<p>Held-out Pearson r per layer (mean ± SEM over subjects); baselines as bands at their best "
        "layer; dashed: the ceiling (leave-one-subject-out ISC). The ROI panels share one y-axis.</p>",
        _img(figures_dir / FIGURES[0], "layer curves"),
        "<h2>Summary per ROI (nested best layer)</h2><p>Mean r over subjects [95 % subject-level "
        "bootstrap CI]; q = FDR-corrected one-sided t-test of mean &gt; 0.</p>",
        _table_html(summary_table(results_dir, min_ceiling)), low_note,
        "<h2>Per-subject scores</h2>", _img(figures_dir / FIGURES[1], "per-subject scores"),
        "<h2>Paired comparisons</h2>", _table_html(comparison_table(results_dir)),
        "<h2>Ceiling</h2>", _img(figures_dir / FIGURES[2], "ceilings"),
        _table_html(ceiling_table(results_dir, min_ceiling)), *_ceiling_notes(results_dir, min_ceiling),
        _normalized_section(results_dir, min_ceiling),
        "<h2>Layer curves</h2><p>Mean r over subjects [95 % bootstrap CI]; * = group mean &gt; 0 at "
        "q &lt; 0.05 (one-sided one-sample t-test, Benjamini–Hochberg across layers and ROIs).</p>",
        _curve_section(curve),
        "<h2>Variance partitioning</h2><p>Held-out R² of the model at each subject's nested best layer, "
        "of word rate, and of both (banded ridge); unique = R²(joint) − R²(other); "
        "shared = R²(model) + R²(word rate) − R²(joint).</p>", _partition_section(cfg, results_dir, rois),
        brain_html,
        heads_html,
        "<h2>Excluded subjects</h2>", f"<ul>{excl_html}</ul>",
        "<h2>Method</h2><ul>", *(f"<li>{item}</li>" for item in method_items(results_dir)), "</ul>",
        "</body></html>",
    ]
    return write_text(out, "\n".join(parts) + "\n")
