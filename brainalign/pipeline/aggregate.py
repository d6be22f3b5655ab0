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
  signed-rank test (two-sided).
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

__all__ = ["run_aggregate", "ceiling_per_subject", "subject_scores", "layer_curve", "nested_best_layer", "paired_comparisons"]


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


def layer_curve(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Mean, SEM and n over subjects for each model, layer and ROI."""
    def sem(x: pd.Series) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    out = (per_subject.groupby(["model", "layer", "roi"], as_index=False, sort=True)
           .agg(mean=("score", "mean"), sem=("score", sem), n_subjects=("score", "size"),
                normalized_mean=("normalized_score", "mean"), ceiling=("ceiling", "first")))
    out["layer_order"] = out["layer"].map(lambda v: _layer_key(v)[0])
    order = list(dict.fromkeys(per_subject["roi"]))
    return _in_roi_order(out, order, ["model", "roi", "layer_order"]).drop(columns="layer_order")


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


def paired_comparisons(nested: pd.DataFrame, model: str, baselines: Sequence[str]) -> pd.DataFrame:
    """Paired tests of ``model`` against each baseline, per ROI, over subjects."""
    rows = []
    for baseline in baselines:
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
            rows.append({"roi": roi, "model": model, "baseline": baseline, "n_subjects": len(common),
                         "model_mean": float(a.mean()), "baseline_mean": float(b.mean()),
                         "mean_difference": float(diff.mean()), "t": float(t.statistic),
                         "p_ttest": float(t.pvalue), "p_wilcoxon": w_p,
                         "n_model_better": int((diff > 0).sum())})
    return pd.DataFrame(rows)


def run_aggregate(
    cfg: dict[str, Any], score_paths: Sequence[str | os.PathLike], ceiling_path: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict[str, Path]:
    """Write ``scores.csv``, ``layer_curve.csv``, ``best_layer.csv``, ``comparisons.csv`` and ``ceiling.csv`` summaries."""
    out_dir = Path(out_dir)
    scores = pd.concat([read_table(p, required=["subject", "layer", "roi", "fold", "score"])
                        for p in score_paths], ignore_index=True)
    scores["layer"] = scores["layer"].astype(str)
    ceiling = ceiling_per_subject(read_table(ceiling_path, required=["subject", "roi", "ceiling"]))
    roi_ceiling = ceiling.groupby("roi")["ceiling"].mean()
    scores["ceiling"] = scores["roi"].map(roi_ceiling)
    scores["normalized_score"] = np.where(scores["ceiling"] > 0, scores["score"] / scores["ceiling"], np.nan)
    extra = [c for c in scores.columns if c not in SCORE_COLUMNS]
    scores = scores[SCORE_COLUMNS + extra]

    per_subject = _in_roi_order(subject_scores(scores), list(dict.fromkeys(scores["roi"])),
                                ["model", "roi", "subject", "layer"])
    curve = layer_curve(per_subject)
    nested = nested_best_layer(per_subject)
    model, baselines = comparison_sets(cfg)
    tests = paired_comparisons(nested, model, [b for b in baselines if b in set(nested.model)]) if model else pd.DataFrame()
    ceiling_summary = (ceiling.groupby("roi", sort=False)["ceiling"]
                       .agg(ceiling="mean", sem=lambda x: x.std(ddof=1) / np.sqrt(len(x)), n_subjects="size")
                       .reset_index())
    prov = provenance(cfg, [*score_paths, ceiling_path], stage="aggregate")
    outputs = {
        "scores": write_table(out_dir / "scores.csv", scores, prov),
        "layer_curve": write_table(out_dir / "layer_curve.csv", curve, prov),
        "best_layer": write_table(out_dir / "best_layer.csv", nested, prov),
        "comparisons": write_table(out_dir / "comparisons.csv", tests, prov),
        "ceiling": write_table(out_dir / "ceiling_summary.csv", ceiling_summary, prov),
    }
    return outputs
