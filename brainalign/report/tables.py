"""Summary tables rendered from ``results/<dataset>/`` (Markdown for the README, HTML for the report)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_table

__all__ = ["summary_table", "comparison_table", "to_markdown"]


def _fmt(mean: float, sem: float | None = None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    return f"{mean:.3f}" if sem is None or np.isnan(sem) else f"{mean:.3f} ± {sem:.3f}"


def _sem(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def summary_table(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Per ROI: the model's nested-best-layer score, each baseline's, and the ceiling (mean ± SEM).

    Returns a DataFrame of formatted strings, one row per ROI, columns
    ``ROI``, ``ceiling``, one column per model family (``<family> r``) and the
    model's normalized score.
    """
    results_dir = Path(results_dir)
    nested = read_table(results_dir / "best_layer.csv", required=["model", "roi", "subject", "score"])
    ceiling = read_table(results_dir / "ceiling_summary.csv", required=["roi", "ceiling", "sem"])
    curve = read_table(results_dir / "layer_curve.csv", required=["model", "layer", "roi", "mean"])
    rois = list(ceiling["roi"])
    families = list(dict.fromkeys(curve["model"]))
    rows = []
    for roi in rois:
        c = ceiling.set_index("roi").loc[roi]
        row = {"ROI": roi, "ceiling": _fmt(c["ceiling"], c["sem"])}
        for fam in families:
            vals = nested[(nested.model == fam) & (nested.roi == roi)]
            row[f"{fam} r"] = _fmt(vals["score"].mean(), _sem(vals["score"]))
            layers = vals["chosen_layer"].astype(str)
            if curve[curve.model == fam]["layer"].nunique() > 1:
                row[f"{fam} layer"] = layers.mode().iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(results_dir: str | os.PathLike) -> pd.DataFrame:
    """The paired tests (model vs each baseline, per ROI), formatted."""
    tests = read_table(Path(results_dir) / "comparisons.csv")
    if tests.empty:
        return tests
    return pd.DataFrame({
        "ROI": tests["roi"], "comparison": tests["model"] + " − " + tests["baseline"],
        "mean Δr": tests["mean_difference"].map(lambda v: f"{v:+.3f}"),
        "t": tests["t"].map(lambda v: f"{v:.2f}"),
        "p (t)": tests["p_ttest"].map(lambda v: f"{v:.2g}"),
        "p (Wilcoxon)": tests["p_wilcoxon"].map(lambda v: f"{v:.2g}"),
        "subjects better": tests["n_model_better"].astype(str) + "/" + tests["n_subjects"].astype(str),
    })


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines)
