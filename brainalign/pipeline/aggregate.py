"""Aggregate per-feature-set scores: ceilings, layer curves, nested best layer, paired tests.

Definitions (see docs/method.md):

* **ceiling** of an ROI = the leave-one-subject-out inter-subject correlation
  averaged over the ROI's units, then over usable subjects;
* scores of an ROI with several units (voxels) are averaged over its units;
* **normalized score** = Brain-Score's: score / ceiling of the ROI clipped to
  [0, 1] (``normalized_score``), the ratio kept as
  ``normalized_score_unclipped``; both missing where the ceiling is below
  ``statistics.min_ceiling``; rows whose unclipped ratio exceeds 1 are flagged
  (``exceeds_ceiling``) and counted in the log and the report. Group values
  (layer curves, summaries) normalize the mean score the same way;
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
* **per-subject significance** (``p_value`` in ``scores.csv``) = refit
  circular-shift test of the cross-validated score
  (:func:`brainalign.metrics.cv_permutation.refit_shift_test`), FDR-corrected
  (``p_fdr``) across layers and units within each subject and feature set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import InputFileError
from ..config import comparison_sets
from ..io import SCORE_COLUMNS, provenance, read_table, write_table
from ..metrics.ceilings import DEFAULT_MIN_CEILING, normalized_score

__all__ = ["run_aggregate", "ceiling_per_subject", "subject_scores", "best_layer_summary", "layer_curve",
           "nested_best_layer", "paired_comparisons", "normalization_counts"]


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


def subject_scores(scores: pd.DataFrame, min_ceiling: float = DEFAULT_MIN_CEILING) -> pd.DataFrame:
    """One score per (model, subject, layer, roi): fold means, averaged over seeds, then normalized."""
    means = scores[scores["fold"].astype(str) == "mean"]
    extra = {"score_pooled": ("score_pooled", "mean")} if "score_pooled" in means else {}
    out = (means.groupby(["model", "subject", "layer", "roi"], as_index=False, sort=True)
           .agg(score=("score", "mean"), ceiling=("ceiling", "first"), n_seeds=("seed", "nunique"), **extra))
    return _with_normalized(out, "score", "ceiling", "normalized_score", min_ceiling)


def _with_normalized(table: pd.DataFrame, score: str, ceiling: str, name: str, min_ceiling: float) -> pd.DataFrame:
    """Add ``name`` (clipped to [0, 1]) and ``name_unclipped`` = ``score / ceiling`` (NaN below ``min_ceiling``)."""
    s, c = table[score].to_numpy(np.float64), table[ceiling].to_numpy(np.float64)
    table[name] = normalized_score(s, c, min_ceiling=min_ceiling)
    table[f"{name}_unclipped"] = normalized_score(s, c, min_ceiling=min_ceiling, clip=False)
    return table


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
                     "ceiling": float(grp["ceiling"].iloc[0])})
    out = _with_normalized(pd.DataFrame(rows), "mean", "ceiling", "normalized_mean",
                           float(stats_cfg.get("min_ceiling", DEFAULT_MIN_CEILING)))
    out["p_group_fdr"] = _fdr_within(out, "p_group", ["model"])
    out["layer_order"] = out["layer"].map(lambda v: _layer_key(v)[0])
    order = list(dict.fromkeys(per_subject["roi"]))
    return _in_roi_order(out, order, ["model", "roi", "layer_order"]).drop(columns="layer_order")


def best_layer_summary(nested: pd.DataFrame, stats_cfg: dict[str, Any]) -> pd.DataFrame:
    """Per model and ROI: the nested-best-layer score over subjects with CI and FDR-corrected p."""
    rows = []
    for k, ((model, roi), grp) in enumerate(nested.groupby(["model", "roi"], sort=False)):
        v = grp["score"].to_numpy()
        # The ROI's ceiling is the same for every subject, so the mean unclipped ratio is the
        # mean score over the ceiling: normalized like the layer curves (Brain-Score's order).
        unclipped = float(grp["normalized_score_unclipped"].mean())
        rows.append({"model": model, "roi": roi, "mean": float(v.mean()),
                     "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan,
                     "n_subjects": len(v), **_group_stats(v, stats_cfg, 10_000 + k),
                     "normalized_mean": float(np.clip(unclipped, 0.0, 1.0)),
                     "normalized_mean_unclipped": unclipped,
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
        raw = grp.pivot(index="subject", columns="layer", values="normalized_score_unclipped")
        pooled = grp.pivot(index="subject", columns="layer", values="score_pooled") if "score_pooled" in grp else None
        layers = sorted(table.columns, key=_layer_key)
        table, norm, raw = table[layers], norm[layers], raw[layers]
        for subject in table.index:
            others = table.drop(index=subject)
            chosen = layers[int(np.argmax(others.mean(axis=0).to_numpy()))] if len(others) else layers[0]
            row = {"model": model, "roi": roi, "subject": subject, "chosen_layer": chosen,
                   "score": float(table.loc[subject, chosen]),
                   "normalized_score": float(norm.loc[subject, chosen]),
                   "normalized_score_unclipped": float(raw.loc[subject, chosen])}
            if pooled is not None:
                row["score_pooled"] = float(pooled.loc[subject, chosen])
            rows.append(row)
    return pd.DataFrame(rows)


#: Columns of ``comparisons.csv`` (:func:`paired_comparisons`).
COMPARISON_COLUMNS = ["roi", "model", "baseline", "n_subjects", "model_mean", "baseline_mean", "mean_difference",
                      "ci_low", "ci_high", "t", "p_ttest", "p_wilcoxon", "n_model_better", "p_ttest_fdr"]


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
    if not rows:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    out = pd.DataFrame(rows)
    out["p_ttest_fdr"] = _fdr_within(out.assign(_all=0), "p_ttest", ["_all"])
    return out


def normalization_counts(scores: pd.DataFrame) -> dict[str, int]:
    """How many subject-level scores (``fold == "mean"`` rows) exceed their ceiling or have none usable.

    Returns
    -------
    dict
        ``n_scores``, ``n_exceeding`` (unclipped ratio > 1, clipped to 1 in
        ``normalized_score``) and ``n_without_ceiling`` (ceiling below
        ``statistics.min_ceiling`` or not positive: both normalized columns
        missing).
    """
    means = scores[scores["fold"].astype(str) == "mean"]
    return {"n_scores": int(len(means)), "n_exceeding": int(means["exceeds_ceiling"].sum()),
            "n_without_ceiling": int(means["normalized_score_unclipped"].isna().sum())}


def _log_normalization(scores: pd.DataFrame, min_ceiling: float) -> None:
    import logging

    counts = normalization_counts(scores)
    log = logging.getLogger("brainalign")
    if counts["n_exceeding"]:
        log.warning("%d of %d subject-level scores exceed their ROI's ceiling (normalized score > 1 before "
                    "clipping; flagged in exceeds_ceiling, clipped to 1 in normalized_score)",
                    counts["n_exceeding"], counts["n_scores"])
    if counts["n_without_ceiling"]:
        log.warning("%d of %d subject-level scores have no normalized score: their ROI's ceiling is below "
                    "statistics.min_ceiling = %g", counts["n_without_ceiling"], counts["n_scores"], min_ceiling)


def _read_score_tables(paths: Sequence[str | os.PathLike], required: Sequence[str]) -> list[pd.DataFrame]:
    """Read the scores tables, refusing a feature set found in two of them (the same table given twice, say).

    Its rows would otherwise count twice in the tests and the FDR families.
    """
    tables, owner = [], {}
    for path in paths:
        table = read_table(path, required=required)
        for name in dict.fromkeys(table["feature_set"].astype(str)):
            if name in owner:
                raise InputFileError(path, f"column 'feature_set' holds {name!r}, whose scores are already in "
                                           f"{owner[name]}; give each feature set's scores once.")
            owner[name] = Path(path)
        tables.append(table)
    return tables


def run_aggregate(
    cfg: dict[str, Any], score_paths: Sequence[str | os.PathLike], ceiling_path: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict[str, Path]:
    """Write ``scores.csv``, ``layer_curve.csv``, ``best_layer.csv``, ``comparisons.csv`` and ``ceiling.csv`` summaries."""
    out_dir = Path(out_dir)
    derived = ("ceiling", "normalized_score", "normalized_score_unclipped", "exceeds_ceiling")
    required = [c for c in SCORE_COLUMNS if c not in derived] + ["seed", "feature_set"]
    scores = pd.concat(_read_score_tables(score_paths, required), ignore_index=True)
    scores["layer"] = scores["layer"].astype(str)
    ceiling = ceiling_per_subject(read_table(ceiling_path, required=["subject", "roi", "ceiling"]))
    roi_ceiling = ceiling.groupby("roi")["ceiling"].mean()
    stats_cfg = cfg["statistics"]
    min_ceiling = float(stats_cfg["min_ceiling"])
    scores["ceiling"] = scores["roi"].map(roi_ceiling)
    scores = _with_normalized(scores, "score", "ceiling", "normalized_score", min_ceiling)
    scores["exceeds_ceiling"] = scores["normalized_score_unclipped"] > 1
    extra = [c for c in scores.columns if c not in SCORE_COLUMNS]
    scores = scores[SCORE_COLUMNS + extra]
    _log_normalization(scores, min_ceiling)

    if "p_value" in scores.columns:
        means = scores["fold"].astype(str) == "mean"
        scores["p_fdr"] = np.nan
        scores.loc[means, "p_fdr"] = _fdr_within(scores[means], "p_value", ["subject", "feature_set"])
    per_subject = _in_roi_order(subject_scores(scores, min_ceiling), list(dict.fromkeys(scores["roi"])),
                                ["model", "roi", "subject", "layer"])
    curve = layer_curve(per_subject, stats_cfg)
    nested = nested_best_layer(per_subject)
    summary = best_layer_summary(nested, stats_cfg)
    model, baselines = comparison_sets(cfg)
    # Without a model to compare the table keeps its header, so readers see an empty table, not an empty file.
    tests = (paired_comparisons(nested, model, [b for b in baselines if b in set(nested.model)], stats_cfg)
             if model else pd.DataFrame(columns=COMPARISON_COLUMNS))
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
