"""Aggregate per-feature-set scores: ceilings, layer curves, nested best layer, paired tests.

Definitions (see docs/method.md):

* **ceiling** of an ROI = the leave-one-subject-out inter-subject correlation
  averaged over the ROI's units, then over usable subjects;
* scores of an ROI with several units (voxels) are averaged over its units;
* **normalized score** = score / ceiling of the ROI (not clipped);
* **layer curve** = mean ± SEM over subjects of each layer's score (random
  embeddings: averaged over seeds within a subject first);
* **nested best layer** = for subject s, the layer with the highest mean score
  over the *other* subjects; s's score at that layer is what is reported, so the
  layer is never chosen on the subject being reported;
* **paired comparison** = per ROI, the model's nested-best-layer scores against
  each baseline's (also nested) over subjects: paired t-test and Wilcoxon
  signed-rank test (two-sided), bootstrap CI of the mean difference, and
  Benjamini–Hochberg q-values across ROIs and baselines;
* **confidence intervals** = subject-level percentile bootstrap of the mean
  (``statistics.n_bootstraps`` resamples, seeded);
* **group significance** = one-sided one-sample t-test of the subjects' scores
  against 0, FDR-corrected (BH) across layers and ROIs of each model;
* **per-subject significance** (``p_value`` in ``scores.csv``) = circular-shift
  test of the held-out predictions, FDR-corrected (``p_fdr``) across layers and
  units within each subject and feature set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..config import comparison_sets
from ..io import SCORE_COLUMNS, provenance, read_table, write_table

__all__ = ["run_aggregate", "ceiling_per_subject", "subject_scores", "best_layer_summary", "layer_curve", "nested_best_layer", "paired_comparisons"]


def _layer_key(layer: Any) -> tuple[int, str]:
    text = str(layer)
    return (int(text), text) if text.isdigit() else (10**9, text)


def ceiling_per_subject(ceiling: pd.DataFrame) -> pd.DataFrame:
    """Each subject's ISC per ROI (averaged over the ROI's units), ROIs in first-seen order."""
    order = list(dict.fromkeys(ceiling["roi"]))
    out = ceiling.groupby(["subject", "roi"], as_index=False, sort=True)["ceiling"].mean()
    out["roi"] = pd.Categorical(out["roi"], categories=order, ordered=True)
    return out.sort_values(["roi", "subject"]).assign(roi=lambda d: d["roi"].astype(str)).reset_index(drop=True)


def _in_roi_order(table: pd.DataFrame, order: list[str], by: list[str]) -> pd.DataFrame:
    """Sort by ``by`` with the ``roi`` column in ``order`` (the units' order in the data)."""
    key = {roi: k for k, roi in enumerate(order)}
    return (table.assign(_roi=table["roi"].map(key)).sort_values(["_roi" if c == "roi" else c for c in by],
                                                                  kind="stable")
            .drop(columns="_roi").reset_index(drop=True))


def subject_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One score per (model, subject, layer, roi): fold means, averaged over seeds."""
    means = scores[scores["fold"].astype(str) == "mean"]
    return (means.groupby(["model", "subject", "layer", "roi"], as_index=False, sort=True)
            .agg(score=("score", "mean"), normalized_score=("normalized_score", "mean"),
                 ceiling=("ceiling", "first"), n_seeds=("seed", "nunique")))


def _group_stats(values: np.ndarray, stats_cfg: dict[str, Any], seed_key: int) -> dict[str, float]:
    """Bootstrap CI of the mean over subjects and a one-sided one-sample t-test (mean > 0)."""
    from ..metrics.stats import bootstrap_ci

    values = np.asarray(values, dtype=np.float64)
    out = {"ci_low": np.nan, "ci_high": np.nan, "p_group": np.nan}
    if len(values) < 2:
        return out
    ci = bootstrap_ci(values, n_bootstraps=stats_cfg["n_bootstraps"], level=stats_cfg["ci_level"],
                      random_state=np.random.default_rng([stats_cfg["seed"], seed_key]))
    out.update(ci_low=ci["low"], ci_high=ci["high"])
    if np.std(values) > 0:
        out["p_group"] = float(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue)
    return out


def _fdr_within(table: pd.DataFrame, column: str, by: list[str]) -> pd.Series:
    """Benjamini–Hochberg q-values of ``column`` within each group of ``by`` (NaN kept)."""
    from ..metrics.stats import fdr_correction

    q = pd.Series(np.nan, index=table.index)
    for _, idx in table.groupby(by if len(by) > 1 else by[0], sort=False).groups.items():
        p = table.loc[idx, column]
        ok = p.notna()
        if ok.any():
            q.loc[p.index[ok]] = fdr_correction(p[ok].to_numpy(), method="bh")
    return q


def layer_curve(per_subject: pd.DataFrame, stats_cfg: dict[str, Any] | None = None) -> pd.DataFrame:
    """Mean, SEM, bootstrap CI and group p-value over subjects for each model, layer and ROI.

    ``p_group`` is a one-sided one-sample t-test of the subjects' scores
    against 0; ``p_group_fdr`` its Benjamini–Hochberg correction across all
    layers and ROIs of the model.
    """
    stats_cfg = stats_cfg or {"n_bootstraps": 10000, "ci_level": 0.95, "seed": 0}
    rows = []
    for k, ((model, layer, roi), grp) in enumerate(per_subject.groupby(["model", "layer", "roi"], sort=True)):
        v = grp["score"].to_numpy()
        rows.append({"model": model, "layer": layer, "roi": roi, "mean": float(v.mean()),
                     "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan,
                     "n_subjects": len(v), **_group_stats(v, stats_cfg, k),
                     "normalized_mean": float(grp["normalized_score"].mean()),
                     "ceiling": float(grp["ceiling"].iloc[0])})
    out = pd.DataFrame(rows)
    out["p_group_fdr"] = _fdr_within(out, "p_group", ["model"])
    out["layer_order"] = out["layer"].map(lambda v: _layer_key(v)[0])
    order = list(dict.fromkeys(per_subject["roi"]))
    return _in_roi_order(out, order, ["model", "roi", "layer_order"]).drop(columns="layer_order")


def best_layer_summary(nested: pd.DataFrame, stats_cfg: dict[str, Any]) -> pd.DataFrame:
    """Per model and ROI: the nested-best-layer score over subjects with CI and FDR-corrected p."""
    rows = []
    for k, ((model, roi), grp) in enumerate(nested.groupby(["model", "roi"], sort=False)):
        v = grp["score"].to_numpy()
        rows.append({"model": model, "roi": roi, "mean": float(v.mean()),
                     "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan,
                     "n_subjects": len(v), **_group_stats(v, stats_cfg, 10_000 + k),
                     "normalized_mean": float(grp["normalized_score"].mean()),
                     "modal_layer": str(grp["chosen_layer"].astype(str).mode().iloc[0])})
    out = pd.DataFrame(rows)
    out["p_group_fdr"] = _fdr_within(out, "p_group", ["model"])
    return out


def nested_best_layer(per_subject: pd.DataFrame) -> pd.DataFrame:
    """For each model, subject and ROI: the layer chosen on the other subjects, and the score there."""
    rows = []
    for (model, roi), grp in per_subject.groupby(["model", "roi"], sort=False):
        table = grp.pivot(index="subject", columns="layer", values="score")
        norm = grp.pivot(index="subject", columns="layer", values="normalized_score")
        layers = sorted(table.columns, key=_layer_key)
        table, norm = table[layers], norm[layers]
        for subject in table.index:
            others = table.drop(index=subject)
            chosen = layers[int(np.argmax(others.mean(axis=0).to_numpy()))] if len(others) else layers[0]
            rows.append({"model": model, "roi": roi, "subject": subject, "chosen_layer": chosen,
                         "score": float(table.loc[subject, chosen]),
                         "normalized_score": float(norm.loc[subject, chosen])})
    return pd.DataFrame(rows)


def paired_comparisons(nested: pd.DataFrame, model: str, baselines: Sequence[str],
                       stats_cfg: dict[str, Any] | None = None) -> pd.DataFrame:
    """Paired tests of ``model`` against each baseline, per ROI, over subjects.

    Paired t-test and Wilcoxon signed-rank test (two-sided), the bootstrap CI
    of the mean difference, and Benjamini–Hochberg q-values of the t-test
    across ROIs and baselines (``p_ttest_fdr``).
    """
    from ..metrics.stats import bootstrap_ci

    stats_cfg = stats_cfg or {"n_bootstraps": 10000, "ci_level": 0.95, "seed": 0}
    rows = []
    for k, baseline in enumerate(baselines):
        for roi in dict.fromkeys(nested["roi"]):
            a = nested[(nested.model == model) & (nested.roi == roi)].set_index("subject")["score"]
            b = nested[(nested.model == baseline) & (nested.roi == roi)].set_index("subject")["score"]
            common = a.index.intersection(b.index)
            if len(common) < 2:
                continue
            a, b = a[common].to_numpy(), b[common].to_numpy()
            t = stats.ttest_rel(a, b)
            diff = a - b
            w_p = float(stats.wilcoxon(a, b).pvalue) if np.any(diff != 0) else 1.0
            ci = bootstrap_ci(diff, n_bootstraps=stats_cfg["n_bootstraps"], level=stats_cfg["ci_level"],
                              random_state=np.random.default_rng([stats_cfg["seed"], 20_000 + k, len(rows)]))
            rows.append({"roi": roi, "model": model, "baseline": baseline, "n_subjects": len(common),
                         "model_mean": float(a.mean()), "baseline_mean": float(b.mean()),
                         "mean_difference": float(diff.mean()), "ci_low": ci["low"], "ci_high": ci["high"],
                         "t": float(t.statistic), "p_ttest": float(t.pvalue), "p_wilcoxon": w_p,
                         "n_model_better": int((diff > 0).sum())})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_ttest_fdr"] = _fdr_within(out.assign(_all=0), "p_ttest", ["_all"])
    return out


def run_aggregate(
    cfg: dict[str, Any], score_paths: Sequence[str | os.PathLike], ceiling_path: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict[str, Path]:
    """Write ``scores.csv``, ``layer_curve.csv``, ``best_layer.csv``, ``comparisons.csv`` and ``ceiling.csv`` summaries."""
    out_dir = Path(out_dir)
    required = [c for c in SCORE_COLUMNS if c not in ("ceiling", "normalized_score")] + ["seed", "feature_set"]
    scores = pd.concat([read_table(p, required=required) for p in score_paths], ignore_index=True)
    scores["layer"] = scores["layer"].astype(str)
    ceiling = ceiling_per_subject(read_table(ceiling_path, required=["subject", "roi", "ceiling"]))
    roi_ceiling = ceiling.groupby("roi")["ceiling"].mean()
    scores["ceiling"] = scores["roi"].map(roi_ceiling)
    scores["normalized_score"] = np.where(scores["ceiling"] > 0, scores["score"] / scores["ceiling"], np.nan)
    extra = [c for c in scores.columns if c not in SCORE_COLUMNS]
    scores = scores[SCORE_COLUMNS + extra]

    stats_cfg = cfg["statistics"]
    if "p_value" in scores.columns:
        means = scores["fold"].astype(str) == "mean"
        scores["p_fdr"] = np.nan
        scores.loc[means, "p_fdr"] = _fdr_within(scores[means], "p_value", ["subject", "feature_set"])
    per_subject = _in_roi_order(subject_scores(scores), list(dict.fromkeys(scores["roi"])),
                                ["model", "roi", "subject", "layer"])
    curve = layer_curve(per_subject, stats_cfg)
    nested = nested_best_layer(per_subject)
    summary = best_layer_summary(nested, stats_cfg)
    model, baselines = comparison_sets(cfg)
    tests = (paired_comparisons(nested, model, [b for b in baselines if b in set(nested.model)], stats_cfg)
             if model else pd.DataFrame())
    ceiling_summary = (ceiling.groupby("roi", sort=False)["ceiling"]
                       .agg(ceiling="mean", sem=lambda x: x.std(ddof=1) / np.sqrt(len(x)), n_subjects="size")
                       .reset_index())
    prov = provenance(cfg, [*score_paths, ceiling_path], stage="aggregate")
    outputs = {
        "scores": write_table(out_dir / "scores.csv", scores, prov),
        "layer_curve": write_table(out_dir / "layer_curve.csv", curve, prov),
        "best_layer": write_table(out_dir / "best_layer.csv", nested, prov),
        "best_layer_summary": write_table(out_dir / "best_layer_summary.csv", summary, prov),
        "comparisons": write_table(out_dir / "comparisons.csv", tests, prov),
        "ceiling": write_table(out_dir / "ceiling_summary.csv", ceiling_summary, prov),
    }
    return outputs
