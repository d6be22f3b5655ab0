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
from .plots import (
    plot_ceilings,
    plot_layer_curves,
    plot_subject_scores,
    plot_variance_partition,
)
from .tables import comparison_table, partition_table, summary_table

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
    return table.to_html(index=False, escape=True, border=0)


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


def _fmriprep_confounds_text(pre: dict[str, Any]) -> str:
    """Which fMRIPrep confounds were regressed (empty unless ``confounds`` is ``fmriprep``)."""
    if pre["confounds"] != "fmriprep":
        return ""
    settings = pre["fmriprep_confounds"]
    if settings["preset"]:
        return f", fMRIPrep confounds: nilearn preset {settings['preset']!r}"
    parts = []
    for component in settings["strategy"]:
        if component == "scrub":
            parts.append(f"scrub (FD > {settings['fd_threshold']:g} mm or std DVARS > "
                         f"{settings['std_dvars_threshold']:g}, segments < {settings['scrub']} volumes)")
        elif component == "compcor":
            parts.append(f"compcor ({settings['compcor']}, {settings['n_compcor']})")
        elif component in settings:
            parts.append(f"{component} ({settings[component]})")
        else:
            parts.append(component)
    return f", fMRIPrep confounds: {', '.join(parts)}"


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


def _normalized_section(cfg: dict[str, Any], results_dir: Path) -> str:
    """Normalized scores per ROI and model (nested best layer), with how many scores exceed the ceiling."""
    from ..pipeline.aggregate import normalization_counts

    summary = read_table(results_dir / "best_layer_summary.csv")
    scores = read_table(results_dir / "scores.csv")
    min_ceiling = cfg["statistics"]["min_ceiling"]
    counts = normalization_counts(scores)
    cells = []
    for _, row in summary.iterrows():
        clipped, raw = row["normalized_mean"], row.get("normalized_mean_unclipped", float("nan"))
        text = "– (ceiling below minimum)" if pd.isna(raw) else f"{clipped:.2f} (unclipped {raw:.2f})"
        cells.append({"model": row["model"], "ROI": row["roi"], "normalized score": text})
    table = (pd.DataFrame(cells).pivot(index="ROI", columns="model", values="normalized score")
             .reindex(list(dict.fromkeys(summary["roi"]))).reset_index() if cells else pd.DataFrame())
    return "\n".join([
        "<h2>Normalized scores</h2>",
        "<p>Brain-Score's normalization: the mean nested-best-layer score over subjects divided by the ROI's "
        "ceiling, clipped to [0, 1] (the unclipped ratio in brackets); missing where the ceiling is below "
        f"<code>statistics.min_ceiling</code> = {min_ceiling:g}. A ratio above 1 means the model predicts a "
        "subject better than the other subjects' mean does (the ceiling is itself attenuated by the group's "
        "noise, docs/method.md §5), or sampling noise.</p>",
        f"<p><b>{counts['n_exceeding']} of {counts['n_scores']}</b> subject-level scores (subject × layer × ROI × "
        f"feature set) exceed their ROI's ceiling (flagged <code>exceeds_ceiling</code> in "
        f"<code>scores.csv</code>, clipped to 1); {counts['n_without_ceiling']} have no normalized score "
        "(ceiling below the minimum).</p>",
        _table_html(table),
    ])


def _encoder_method(enc: dict[str, Any], results_dir: Path) -> str:
    """The Method line of the encoder: the folds and alpha criterion the scores table records."""
    from ..encoders.ridge_core import ALPHA_CRITERIA

    scores = read_table(results_dir / "scores.csv", required=["cv", "alpha_criterion"])
    cvs = ", ".join(html.escape(str(v)) for v in sorted(set(scores["cv"].astype(str))))
    criteria = sorted(set(scores["alpha_criterion"].astype(str)))
    chosen = "per target" if enc["alpha_per_target"] else "shared by all targets"
    defined = "; ".join(f"<code>{html.escape(c)}</code>: {html.escape(ALPHA_CRITERIA.get(c, c))}" for c in criteria)
    return (f"Encoder: ridge with intercept; outer folds <code>{cvs}</code> ({enc['gap']} samples dropped at each "
            f"test boundary); alphas {chosen}, chosen on the outer training set alone by an inner "
            f"{enc['inner_folds']}-fold contiguous CV with the same gap (leave-one-run-out over the training runs "
            f"when the outer folds are runs and at least two remain) by {defined}.")


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

    partition_html = "<p class='note'>(no word-rate baseline configured)</p>"
    if (results_dir / "variance_partition.csv").exists():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            fig = plot_variance_partition(read_table(results_dir / "variance_partition.csv"),
                                          Path(tmp) / "partition.png", rois)
            partition_html = _img(fig, "variance partitioning") + _table_html(partition_table(results_dir))

    brain_html = _brain_section(cfg, results_dir)
    heads_html = _heads_section(cfg, results_dir, curve, rois)

    prov_path = results_dir / "ceiling.csv.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    excluded = prov.get("settings", {}).get("excluded", {})
    excl_html = ("".join(f"<li>{html.escape(s)}: {html.escape(r)}</li>" for s, r in excluded.items())
                 or "<li>none</li>")
    enc = cfg["encoder"]
    pre = cfg["preprocessing"]
    curve_cells = curve.assign(cell=[
        f"{m:.3f} [{lo:.3f}, {hi:.3f}]" + ("*" if q < 0.05 else "")
        for m, lo, hi, q in zip(curve["mean"], curve["ci_low"], curve["ci_high"], curve["p_group_fdr"].fillna(1))])
    curve_wide = curve_cells.pivot(index=["model", "roi"], columns="layer", values="cell")
    parts = [
        *report_head(cfg, prov, packages=True),
        "<h2>Layer-wise scores</h2>",
        "<p>Held-out Pearson r per layer (mean ± SEM over subjects); baselines as bands at their best "
        "layer; dashed: the ceiling (leave-one-subject-out ISC).</p>",
        _img(figures_dir / FIGURES[0], "layer curves"),
        "<h2>Summary per ROI (nested best layer)</h2><p>Mean r over subjects [95 % subject-level "
        "bootstrap CI]; q = FDR-corrected one-sided t-test of mean &gt; 0.</p>",
        _table_html(summary_table(results_dir)),
        "<h2>Per-subject scores</h2>", _img(figures_dir / FIGURES[1], "per-subject scores"),
        "<h2>Paired comparisons</h2>", _table_html(comparison_table(results_dir)),
        "<h2>Ceiling</h2>", _img(figures_dir / FIGURES[2], "ceilings"), _table_html(ceiling),
        _normalized_section(cfg, results_dir),
        "<h2>Layer curves</h2><p>Mean r over subjects [95 % bootstrap CI]; * = group mean > 0 at "
        "q < 0.05 (one-sided one-sample t-test, Benjamini–Hochberg across layers and ROIs).</p>",
        curve_wide.to_html(border=0),
        "<h2>Variance partitioning</h2><p>Held-out R² of the model at each subject's nested best layer, "
        "of word rate, and of both (banded ridge); unique = R²(joint) − R²(other); "
        "shared = R²(model) + R²(word rate) − R²(joint).</p>", partition_html,
        brain_html,
        heads_html,
        "<h2>Excluded subjects</h2>", f"<ul>{excl_html}</ul>",
        "<h2>Method</h2><ul>",
        f"<li>Cleaning (responses and designs alike): nilearn.signal.clean(detrend={pre['detrend']}, "
        f"high_pass={pre['high_pass']}, standardize={pre['standardize']!r}, confounds={pre['confounds']!r})"
        f"{html.escape(_fmriprep_confounds_text(pre))}.</li>",
        f"<li>Design: {html.escape(cfg['design']['model'])} ({html.escape(cfg['design']['hrf_model'])} HRF).</li>",
        f"<li>{_encoder_method(enc, results_dir)}</li>",
        "<li>Score: Pearson r within each outer fold, averaged over folds"
        + (" (pooled held-out predictions)" if enc["pooled"] else "") + ".</li>",
        f"<li>Normalized score = score / ceiling of the ROI clipped to [0, 1] (Brain-Score's), unclipped "
        f"ratio kept; missing where the ceiling is below {cfg['statistics']['min_ceiling']:g}.</li>",
        "<li>Best layer: chosen on the other subjects (nested), never on the subject reported.</li></ul>",
        "</body></html>",
    ]
    return write_text(out, "\n".join(parts) + "\n")
