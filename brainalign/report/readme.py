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

__all__ = ["render_section", "update_readme"]


def _curve_table(results_dir: Path):
    import pandas as pd

    curve = read_table(results_dir / "layer_curve.csv", required=["model", "layer", "roi", "mean", "sem"])
    multi = [m for m in dict.fromkeys(curve["model"]) if curve[curve.model == m]["layer"].nunique() > 1]
    rows = []
    for model in multi:
        sub = curve[curve.model == model]
        for roi in dict.fromkeys(sub["roi"]):
            r = sub[sub.roi == roi]
            rows.append({"model": model, "ROI": roi,
                         **{f"L{l}": f"{m:.3f}" for l, m in zip(r["layer"].astype(str), r["mean"])}})
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
