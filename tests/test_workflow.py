"""The Snakemake workflow end to end on the CI-sized simulated config, run by the README's quick start.

The quick start's blocks run as written in a clean copy of the repository
(issue #21); its run is the one examined here. Checks the outputs and report, bit-identical reruns from scratch, a SIGKILL in
the middle of a run followed by the documented resume command, Snakemake's own
HTML report, and a bad config that must fail before anything is written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import pandas as pd
import pytest

from brainalign.io import SCORE_COLUMNS

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
CI_CONFIG = REPO / "workflows" / "configs" / "simulated_ci.yaml"
RESULTS = Path("results") / "simulated_ci"
QUICKSTART_MARKER = "<!-- quickstart -->"


@dataclass
class QuickStart:
    """The README's quick start, run as written in a clean copy: its folder and each block's output."""

    root: Path
    outputs: list[str]


def quickstart_blocks(readme: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block right after a ``<!-- quickstart -->`` marker, in order."""
    blocks = []
    for part in readme.split(QUICKSTART_MARKER)[1:]:
        match = re.match(r"\s*```(\w+)\n(.*?)\n```", part, flags=re.S)
        assert match, f"a {QUICKSTART_MARKER} marker is not followed by a fenced code block"
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


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> QuickStart:
    """Every block after a quick-start marker of the README, in order (``bash -euo pipefail``, or this Python),
    in a folder holding only the repository's tracked files and the current environment (``.ci/run`` covers the
    install). Its ``brainalign run`` of the CI-sized config is the run the other tests here examine."""
    root = tmp_path_factory.mktemp("ci run with space ' and é") / "brainalign"
    _clean_copy(root)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = []
    for lang, code in quickstart_blocks((REPO / "README.md").read_text(encoding="utf-8")):
        command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"{lang} block failed:\n{code}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout + proc.stderr)
    return QuickStart(root, outputs)


@pytest.fixture(scope="module")
def ci_run(quickstart: QuickStart) -> Path:
    return quickstart.root


def test_the_readme_has_a_quick_start_with_commands_and_python():
    blocks = quickstart_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert [lang for lang, _ in blocks] == ["bash", "python"]
    commands = [line.split("#")[0].strip() for line in blocks[0][1].splitlines() if line.strip()]
    assert any(c == f"brainalign run {CI_CONFIG.relative_to(REPO)} --cores 2" for c in commands)
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


def test_quick_start_runs_as_written(quickstart: QuickStart):
    shell, python = quickstart.outputs
    assert "brainalign: done." in shell and f"report: {RESULTS / 'report.html'}" in shell
    assert "best model per ROI" in shell
    assert "dataset:" in (quickstart.root / "my_study.yaml").read_text()
    assert "CeilingWarning" in python and "ROI_A" in python


def test_the_notebook_call_gives_the_workflows_numbers(ci_run: Path):
    """score_alignment on the workflow's files, with its folds, gives the workflow's scores and ceilings."""
    import warnings

    import numpy as np

    from brainalign import CeilingWarning, score_alignment

    results = ci_run / RESULTS
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


def test_outputs_and_report(ci_run: Path):
    root = ci_run / RESULTS
    scores = pd.read_csv(root / "scores.csv")
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == SCORE_COLUMNS
    assert set(scores["model"]) == {"minilm", "random", "word_rate"}
    assert set(scores["subject"]) == {"sub-01", "sub-02"}
    assert set(scores.loc[scores.model == "minilm", "layer"].astype(str)) == {"0", "3"}
    means = scores[scores.fold == "mean"]
    planted = means[(means.model == "minilm") & (means.roi == "ROI_A")]
    control = means[(means.model == "minilm") & (means.roi == "CONTROL")]
    assert planted["score"].mean() > 0.2 > abs(control["score"].mean())
    html = (root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "ceiling" in html  # 3 figures + partitioning
    assert "Variance partitioning" in html and "95 % bootstrap CI" in html
    partition = pd.read_csv(root / "variance_partition.csv")
    assert set(partition["subject"]) == {"sub-01", "sub-02"}
    assert (partition["unique_model"] + partition["unique_baseline"] + partition["shared"]
            - partition["r2_joint"]).abs().max() < 1e-9
    summary = pd.read_csv(root / "best_layer_summary.csv")
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    assert scores.loc[scores.fold == "mean", "p_value"].between(0, 1).all()
    for name in ("layer_curves.png", "subject_scores.png", "ceilings.png"):
        assert (root / "figures" / name).stat().st_size > 5000
    assert not list(root.rglob("*.part"))


def _assert_half_written(part: Path, final: Path) -> None:
    """The kill left the temporary HDF5 file and no final file (nothing a reader could take)."""
    assert part.exists() and part.name.endswith(".part"), part
    assert not final.exists(), final


def test_second_run_killed_twice_and_resumed_is_bit_identical(ci_run: Path, tmp_path: Path, snakemake,
                                                              results_digest):
    """A second run from scratch, SIGKILLed mid-HDF5 write and again mid-scoring, resumed with the
    documented command: its outputs equal the first run's bit for bit (determinism and resume)."""
    config = ("--configfile", str(CI_CONFIG))
    results = tmp_path / RESULTS

    def resume_beside_the_live_run() -> None:
        """A resume started while the run lives is refused: its lock and its temporary file stay."""
        proc = snakemake(tmp_path, *config, "--rerun-incomplete", check=False)
        assert proc.returncode != 0, proc.stderr[-2000:]
        assert list((tmp_path / ".snakemake" / "locks").glob("*.lock")), "the live run's lock was removed"
        assert list(results.rglob(".minilm.h5.*.part")), "the live writer's temporary file was removed"

    # 1. SIGKILL in the middle of the HDF5 write of the first model's features.
    part = snakemake.kill(tmp_path, *config, stall="minilm.h5", during=resume_beside_the_live_run)
    _assert_half_written(part, part.parent / "minilm.h5")
    # 2. The documented resume, one command (the killed run's lock is removed by the workflow
    #    itself), killed again once scoring has begun.
    snakemake.kill(tmp_path, *config, "--rerun-incomplete", when=results / "scores" / "minilm.csv")
    assert not (results / "scores.csv").exists()
    # 3. Resume to the end, the same one command.
    snakemake(tmp_path, *config, "--rerun-incomplete")
    assert results_digest(results) == results_digest(ci_run / RESULTS)
    assert not list(results.rglob("*.part")) and not part.exists()
    for h5 in results.rglob("*.h5"):
        with h5py.File(h5, "r") as f:  # every HDF5 output opens and names its contract
            assert "contract" in f.attrs, h5


def test_every_output_records_its_seeds(ci_run: Path, unrecorded_seeds):
    assert unrecorded_seeds(ci_run / RESULTS) == []


def test_snakemake_report(ci_run: Path, snakemake):
    report = ci_run / "snakemake-report.html"
    snakemake(ci_run, "--configfile", str(CI_CONFIG), "--report", str(report))
    text = report.read_text(errors="replace")
    assert "layer_curves.png" in text and "subject_scores.png" in text


def test_bad_config_fails_before_writing_anything(tmp_path: Path, snakemake):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CI_CONFIG.read_text().replace("encoder:\n", "encoder:\n  n_folds: 3\n"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = snakemake(workdir, "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "bad.yaml" in proc.stderr and "encoder.n_folds" in proc.stderr
    assert not (workdir / "results").exists()
