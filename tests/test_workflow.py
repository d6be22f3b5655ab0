"""The Snakemake workflow end to end on the CI-sized simulated config.

Checks the outputs and report, bit-identical reruns from scratch, a SIGKILL in
the middle of a run followed by the documented resume command, Snakemake's own
HTML report, and a bad config that must fail before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pandas as pd
import pytest

from brainalign.io import SCORE_COLUMNS

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
CI_CONFIG = REPO / "workflows" / "configs" / "simulated_ci.yaml"
RESULTS = Path("results") / "simulated_ci"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, snakemake) -> Path:
    workdir = tmp_path_factory.mktemp("ci run with space ' and é")
    snakemake(workdir, "--configfile", str(CI_CONFIG))
    return workdir


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
