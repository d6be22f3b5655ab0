"""Summary tables rendered from ``results/<dataset>/`` (Markdown for the README, HTML for the report)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io import read_table

__all__ = ["MISSING", "MIN_SUBJECTS_FOR_SPREAD", "summary_table", "ceiling_table", "comparison_table",
           "partition_table", "to_markdown"]

#: How a value that is missing or was not computed is shown (each table's note says why).
MISSING = "—"

#: Fewer subjects give no spread of the leave-one-subject-out ISC: with two, both are the same correlation.
MIN_SUBJECTS_FOR_SPREAD = 3


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))


def _num(value: object, spec: str) -> str:
    return MISSING if _missing(value) else format(value, spec)


def _fmt(mean: float, sem: float | None = None) -> str:
    if _missing(mean):
        return MISSING
    return f"{mean:.3f}" if _missing(sem) else f"{mean:.3f} ± {sem:.3f}"


def _ci(low: float, high: float) -> str:
    return MISSING if _missing(low) or _missing(high) else f"[{low:.3f}, {high:.3f}]"


def _ceiling_spread(row: pd.Series) -> float | None:
    """The ceiling's SEM over subjects, or None where it is not computed (too few subjects)."""
    if row.get("n_subjects", MIN_SUBJECTS_FOR_SPREAD) < MIN_SUBJECTS_FOR_SPREAD or _missing(row["sem"]):
        return None
    return float(row["sem"])


def _below(ceiling: float, min_ceiling: float | None) -> bool:
    return min_ceiling is not None and not _missing(ceiling) and ceiling < min_ceiling


def summary_table(results_dir: str | os.PathLike, min_ceiling: float | None = None) -> pd.DataFrame:
    """Per ROI: each model family's nested-best-layer score (mean, 95 % CI, FDR q) and the ceiling.

    The ceiling's ± SEM is left out where it is not computed (fewer than
    :data:`MIN_SUBJECTS_FOR_SPREAD` subjects); with ``min_ceiling`` a ceiling
    below it is marked "†" (no normalized score).

    Returns a DataFrame of formatted strings, one row per ROI.
    """
    results_dir = Path(results_dir)
    summary = read_table(results_dir / "best_layer_summary.csv",
                         required=["model", "roi", "mean", "ci_low", "ci_high", "p_group_fdr", "modal_layer"])
    ceiling = read_table(results_dir / "ceiling_summary.csv", required=["roi", "ceiling", "sem"])
    curve = read_table(results_dir / "layer_curve.csv", required=["model", "layer"])
    families = list(dict.fromkeys(summary["model"]))
    rows = []
    for roi in ceiling["roi"]:
        c = ceiling.set_index("roi").loc[roi]
        mark = "†" if _below(c["ceiling"], min_ceiling) else ""
        row = {"ROI": roi, "ceiling": _fmt(c["ceiling"], _ceiling_spread(c)) + mark}
        for fam in families:
            r = summary[(summary.model == fam) & (summary.roi == roi)]
            if r.empty:
                continue
            r = r.iloc[0]
            row[f"{fam} r [95% CI]"] = f"{_num(r['mean'], '.3f')} {_ci(r['ci_low'], r['ci_high'])}"
            row[f"{fam} q"] = _num(r["p_group_fdr"], ".2g")
            if curve[curve.model == fam]["layer"].nunique() > 1:
                row[f"{fam} layer"] = str(r["modal_layer"])
        rows.append(row)
    return pd.DataFrame(rows)


def partition_table(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Per ROI: mean over subjects of held-out R² and the unique/shared variance (empty if absent)."""
    path = Path(results_dir) / "variance_partition.csv"
    if not path.exists():
        return pd.DataFrame()
    table = read_table(path, required=["subject", "roi", "r2_joint", "unique_model", "unique_baseline", "shared"])
    cols = ["r2_model", "r2_baseline", "r2_joint", "unique_model", "unique_baseline", "shared"]
    per_subject = table.groupby(["roi", "subject"], sort=False)[cols].mean().reset_index()
    out = per_subject.groupby("roi", sort=False)[cols].mean().reset_index()
    model, baseline = table["model"].iloc[0], table["baseline"].iloc[0]
    names = {"roi": "ROI", "r2_model": f"R² {model}", "r2_baseline": f"R² {baseline}", "r2_joint": "R² joint",
             "unique_model": f"unique {model}", "unique_baseline": f"unique {baseline}", "shared": "shared"}
    for col in cols:
        out[col] = out[col].map(lambda v: _num(v, ".4f"))
    return out.rename(columns=names)


def ceiling_table(results_dir: str | os.PathLike, min_ceiling: float) -> pd.DataFrame:
    """Per ROI: the ceiling (mean LOSO ISC over subjects), its SEM where computed, and whether it normalizes.

    Returns a DataFrame of formatted strings, one row per ROI; the report's
    notes say why a SEM or a normalized score is missing.
    """
    ceiling = read_table(Path(results_dir) / "ceiling_summary.csv", required=["roi", "ceiling", "sem"])
    rows = []
    for _, c in ceiling.iterrows():
        rows.append({"ROI": c["roi"], "ceiling (LOSO ISC)": _num(c["ceiling"], ".3f"),
                     "SEM": _num(_ceiling_spread(c), ".3f"), "subjects": _num(c.get("n_subjects"), ".0f"),
                     "normalized score": (f"none (ceiling < {min_ceiling:g})" if _below(c["ceiling"], min_ceiling)
                                          else "yes")})
    return pd.DataFrame(rows)


def comparison_table(results_dir: str | os.PathLike) -> pd.DataFrame:
    """The paired tests (model vs each baseline, per ROI), formatted."""
    tests = read_table(Path(results_dir) / "comparisons.csv")
    if tests.empty:
        return tests
    return pd.DataFrame({
        "ROI": tests["roi"], "comparison": tests["model"] + " − " + tests["baseline"],
        "mean Δr [95% CI]": [f"{_num(d, '+.3f')} [{_num(lo, '+.3f')}, {_num(hi, '+.3f')}]"
                             for d, lo, hi in zip(tests["mean_difference"], tests["ci_low"], tests["ci_high"])],
        "t": tests["t"].map(lambda v: _num(v, ".2f")),
        "p (t)": tests["p_ttest"].map(lambda v: _num(v, ".2g")),
        "q (t, FDR)": tests["p_ttest_fdr"].map(lambda v: _num(v, ".2g")),
        "p (Wilcoxon)": tests["p_wilcoxon"].map(lambda v: _num(v, ".2g")),
        "subjects better": tests["n_model_better"].astype(str) + "/" + tests["n_subjects"].astype(str),
    })


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines)
