"""Regenerate the README's results sections from ``results/<dataset>/``.

A section is delimited by ``<!-- results:NAME:start -->`` and
``<!-- results:NAME:end -->``; everything in between is generated, so the
README's numbers are always the ones the workflow produced.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._validation import InputFileError
from ..io import read_table, write_text
from .tables import comparison_table, partition_table, summary_table, to_markdown

__all__ = ["pooled_table", "render_section", "update_readme"]


_HEAD = r"^\d+\.h\d+$"


def _kinds(results_dir: Path) -> dict[str, str]:
    """Feature-set family -> kind, from the resolved config of the run (empty when absent)."""
    import yaml

    path = results_dir / "config.yaml"
    if not path.exists():
        return {}
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: spec["kind"] for name, spec in cfg.get("feature_sets", {}).items()}


def _curve_table(results_dir: Path):
    import pandas as pd

    curve = read_table(results_dir / "layer_curve.csv", required=["model", "layer", "roi", "mean", "sem"])
    curve = curve[~curve["layer"].astype(str).str.match(_HEAD)]
    kinds = _kinds(results_dir)
    curve = curve[~curve["model"].map(kinds).isin(["suma", "rnn"])]
    multi = [m for m in dict.fromkeys(curve["model"]) if curve[curve.model == m]["layer"].nunique() > 1]
    rows = []
    for model in multi:
        sub = curve[curve.model == model]
        for roi in dict.fromkeys(sub["roi"]):
            r = sub[sub.roi == roi]
            rows.append({"model": model, "ROI": roi,
                         **{f"L{l}": f"{m:.3f}" for l, m in zip(r["layer"].astype(str), r["mean"])}})
    return pd.DataFrame(rows)


def _seeded_table(results_dir: Path):
    """Untrained models (SUMA, RNNs): per unit set and ROI, the group-mean r, mean ± sd over seeds."""
    import pandas as pd

    kinds = _kinds(results_dir)
    families = [m for m, k in kinds.items() if k in ("suma", "rnn")]
    if not families:
        return pd.DataFrame()
    scores = read_table(results_dir / "scores.csv", required=["model", "seed", "layer", "roi", "fold", "score"])
    scores = scores[(scores["fold"].astype(str) == "mean") & scores["model"].isin(families)]
    per_seed = scores.groupby(["model", "layer", "roi", "seed"], sort=False)["score"].mean().reset_index()
    rows = []
    for (model, layer), grp in per_seed.groupby(["model", "layer"], sort=False):
        row = {"model": model, "units": str(layer), "seeds": grp["seed"].nunique()}
        for roi, g in grp.groupby("roi", sort=False):
            sd = g["score"].std(ddof=1) if len(g) > 1 else float("nan")
            row[roi] = f"{g['score'].mean():.3f}" + (f" ± {sd:.3f}" if len(g) > 1 else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _heads_table(results_dir: Path):
    """Per transformer scored by head: for each ROI the best head (block.head) and the mean over heads."""
    import pandas as pd

    curve = read_table(results_dir / "layer_curve.csv", required=["model", "layer", "roi", "mean"])
    heads = curve[curve["layer"].astype(str).str.match(_HEAD)]
    rows = []
    for (model, roi), grp in heads.groupby(["model", "roi"], sort=False):
        best = grp.loc[grp["mean"].idxmax()]
        rows.append({"model": model, "ROI": roi, "best head (layer.head)": str(best["layer"]).replace(".h", ".")
                     , "best head r": f"{best['mean']:.3f}", "mean over heads": f"{grp['mean'].mean():.3f}",
                     "heads with r > 0": f"{int((grp['mean'] > 0).sum())}/{len(grp)}"})
    return pd.DataFrame(rows)


def pooled_table(results_dir: Path):
    """Per ROI and model: mean over subjects of the per-fold and of the pooled r, at the nested best layer.

    Empty when the scores carry no ``score_pooled`` (volume datasets).
    """
    import pandas as pd

    nested = read_table(results_dir / "best_layer.csv", required=["model", "roi", "score"])
    if "score_pooled" not in nested:
        return pd.DataFrame()
    means = nested.groupby(["roi", "model"], sort=False)[["score", "score_pooled"]].mean()
    rows = []
    for roi in dict.fromkeys(nested["roi"]):
        row = {"ROI": roi}
        for model in dict.fromkeys(nested["model"]):
            if (roi, model) in means.index:
                m = means.loc[(roi, model)]
                row[f"{model} per-fold / pooled"] = f"{m['score']:.3f} / {m['score_pooled']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def render_section(results_dir: str | os.PathLike) -> str:
    """Markdown for one dataset: summary per ROI, layer curves, paired tests."""
    results_dir = Path(results_dir)
    parts = [
        "Held-out Pearson r, mean over subjects [95 % subject-level bootstrap CI]; q = one-sided "
        "group t-test of r > 0, FDR-corrected across layers and ROIs; the model's layer is chosen "
        "on the other subjects (nested; `layer` = most frequent choice); ceiling = "
        "leave-one-subject-out ISC (mean ± SEM).",
        "",
        to_markdown(summary_table(results_dir)),
        "",
        "Layer curves (mean r over subjects):",
        "",
        to_markdown(_curve_table(results_dir)),
    ]
    seeded = _seeded_table(results_dir)
    if not seeded.empty:
        parts += ["", "Untrained models, every unit set (group-mean r per seed, then mean ± sd over seeds):", "",
                  to_markdown(seeded)]
    heads = _heads_table(results_dir)
    if not heads.empty:
        parts += ["", "Attention heads scored one by one (group-mean r; the report has the full heads × layers "
                  "maps):", "", to_markdown(heads)]
    pooled = pooled_table(results_dir)
    if not pooled.empty:
        parts += ["", "Per-fold vs pooled held-out r (mean over subjects at the nested best layer): the mean of "
                  "the five contiguous folds' r, and the r of the five folds' predictions concatenated:", "",
                  to_markdown(pooled)]
    tests = comparison_table(results_dir)
    if not tests.empty:
        parts += ["", "Paired comparisons over subjects (nested best layers):", "", to_markdown(tests)]
    partition = partition_table(results_dir)
    if not partition.empty:
        parts += ["", "Variance partitioning (held-out R², mean over subjects; model at its nested best "
                  "layer, banded ridge for the joint model):", "", to_markdown(partition)]
    return "\n".join(parts)


def update_readme(readme: str | os.PathLike, results_dir: str | os.PathLike, section: str,
                  check: bool = False) -> bool:
    """Replace a section of ``readme`` with :func:`render_section`; return whether it changed.

    With ``check=True`` the file is not written.
    """
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- results:{section}:start -->", f"<!-- results:{section}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise InputFileError(readme, f"markers {start} … {end} not found.")
    new = pattern.sub(lambda _: f"{start}\n{render_section(results_dir)}\n{end}", text)
    changed = new != text
    if changed and not check:
        write_text(readme, new)
    return changed
