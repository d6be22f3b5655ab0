"""The README's quick start, run as written in a clean copy of the repository (issue #21).

Every fenced block after a ``<!-- quickstart -->`` marker is run in order:
``bash`` blocks with ``bash -euo pipefail``, ``python`` blocks with this
interpreter, in a folder holding only the repository's tracked files (what a
clone holds) and the current environment (``.ci/run`` covers the install).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARKER = "<!-- quickstart -->"


def quickstart_blocks(readme: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block right after a quick-start marker, in order."""
    blocks = []
    for part in readme.split(MARKER)[1:]:
        match = re.match(r"\s*```(\w+)\n(.*?)\n```", part, flags=re.S)
        assert match, f"a {MARKER} marker is not followed by a fenced code block"
        blocks.append((match.group(1), match.group(2)))
    return blocks


def _clean_copy(dest: Path) -> None:
    """The tracked files of the working tree (a clone's content, with today's edits)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True).stdout
    for name in filter(None, listing.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def test_the_readme_has_a_quick_start_with_commands_and_python():
    blocks = quickstart_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert [lang for lang, _ in blocks] == ["bash", "python"]
    commands = [line.split("#")[0].strip() for line in blocks[0][1].splitlines() if line.strip()]
    assert any(c.startswith("brainalign run ") for c in commands)
    assert any(c.startswith("brainalign validate ") for c in commands)
    assert any(c.startswith("brainalign init ") for c in commands)


def test_the_readme_is_ordered_for_users():
    """After the two commands: what it does, the quick start, your data, a cluster, the API; CI details last."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in readme.splitlines() if line.startswith("## ")]
    wanted = ["What it does", "Quick start", "Running on your data", "Running on a cluster", "Python API"]
    assert headings[:len(wanted)] == wanted, headings
    before_tests = readme[: readme.index("\n## Tests")]
    for ci_detail in (".ci/", "MinJobAge", "sacct", "BRAINALIGN_STRICT"):
        assert ci_detail not in before_tests, ci_detail


def test_quick_start_runs_as_written_in_a_clean_copy(tmp_path):
    clone = tmp_path / "brainalign"
    _clean_copy(clone)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = []
    for lang, code in quickstart_blocks((REPO / "README.md").read_text(encoding="utf-8")):
        command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"{lang} block failed:\n{code}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout + proc.stderr)
    shell, python = outputs
    assert "brainalign: done." in shell and "report: results/simulated_ci/report.html" in shell
    assert "best model per ROI" in shell
    assert (clone / "results" / "simulated_ci" / "report.html").is_file()
    assert "dataset:" in (clone / "my_study.yaml").read_text()
    assert "CeilingWarning" in python and "ROI_A" in python
    _notebook_equals_workflow(clone / "results" / "simulated_ci")


def _notebook_equals_workflow(results: Path) -> None:
    """score_alignment on the workflow's files, with its folds, gives the workflow's scores and ceilings."""
    import warnings

    import numpy as np
    import pandas as pd

    from brainalign import CeilingWarning, score_alignment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        api = score_alignment(results / "design" / "minilm.h5", sorted((results / "responses").glob("*.h5")),
                              outer_folds=4, inner_folds=3, progress=False)
    workflow = pd.read_csv(results / "scores.csv")
    workflow = workflow[(workflow["fold"] == "mean") & (workflow["feature_set"] == "minilm")]
    merged = api.merge(workflow.astype({"layer": str}), on=["subject", "layer", "unit"], suffixes=("", "_workflow"))
    assert len(merged) == len(api) == len(workflow) > 0
    for column in ("score", "ceiling", "alpha"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_workflow"], rtol=1e-9, atol=1e-12)
