"""MEG/EEG and sEEG end to end: simulated recordings → epochs → decoders → report.

The CI configs run once through Snakemake (seed 0 at the default SNR); further
seeds, and SNR 0, rerun the simulation, epoching and decoding stages in
Python on the same word table and features. At the default SNR top-10
identification (MEG/EEG) and word accuracy (sEEG) must reach 5x chance; at
SNR 0 they must stay inside the 99 % binomial interval of chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.config import load_config
from brainalign.pipeline.electro import (
    read_epochs,
    run_contrastive,
    run_epochs,
    run_simulate_electro,
    run_word_decoding,
)

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "workflows" / "configs"


@pytest.fixture(scope="module")
def meg_run(tmp_path_factory, snakemake) -> Path:
    workdir = tmp_path_factory.mktemp("meg run")
    snakemake(workdir, "--configfile", str(CONFIGS / "simulated_meg_ci.yaml"))
    return workdir / "results" / "simulated_meg_ci"


@pytest.fixture(scope="module")
def seeg_run(tmp_path_factory, snakemake) -> Path:
    workdir = tmp_path_factory.mktemp("seeg run")
    snakemake(workdir, "--configfile", str(CONFIGS / "simulated_seeg_ci.yaml"))
    return workdir / "results" / "simulated_seeg_ci"


def _pooled(scores: pd.DataFrame, metric: str) -> pd.Series:
    row = scores[(scores["subject"] == "pooled") & (scores["metric"] == metric)]
    assert len(row) == 1
    return row.iloc[0]


def _rerun(results: Path, config: str, tmp: Path, seed: int, snr: float) -> pd.DataFrame:
    """Simulate again (new planted map and noise) on the run's words and features; decode."""
    cfg = load_config(CONFIGS / config)
    cfg["simulation"]["seed"] = seed
    key = "meeg" if cfg["dataset"]["kind"] == "simulated_meeg" else "seeg"
    cfg["simulation"][key]["snr"] = snr
    events = results / "stimuli" / "events.tsv"
    features = results / "features" / "minilm.h5"
    run_simulate_electro(cfg, events, features, tmp / "raw")
    subjects = [f"sub-{k + 1:02d}" for k in range(cfg["simulation"]["n_subjects"])]
    epochs = [run_epochs(cfg, s, events, tmp / "epochs" / f"{s}.h5", raw_dir=tmp / "raw") for s in subjects]
    if key == "meeg":
        run_contrastive(cfg, epochs, events, features, tmp / "decoding", progress=False)
    else:
        run_word_decoding(cfg, epochs, events, tmp / "decoding", progress=False)
    return pd.read_csv(tmp / "decoding" / "scores.csv")


# --------------------------------------------------------------------------- MEG/EEG
def test_meg_workflow_identifies_segments(meg_run: Path):
    scores = pd.read_csv(meg_run / "decoding" / "scores.csv")
    top10 = _pooled(scores, "top10")
    # 800 words in 4 runs: the held-out run has 200 unique segments.
    assert top10["n_candidates"] == 200
    assert top10["chance"] == pytest.approx(10 / 200)
    assert top10["value"] >= 5 * top10["chance"]
    for subject in ("sub-01", "sub-02"):
        row = scores[(scores["subject"] == subject) & (scores["metric"] == "top10")].iloc[0]
        assert row["value"] > row["chance_high"]
    curve = pd.read_csv(meg_run / "decoding" / "topk.csv")
    pooled = curve[curve["subject"] == "pooled"]
    assert (np.diff(pooled["accuracy"]) >= 0).all()  # top-k accuracy cannot fall with k
    assert pooled.set_index("k").loc[10, "accuracy"] == pytest.approx(top10["value"])
    report = (meg_run / "report.html").read_text()
    assert "Segment identification" in report and "data:image/png;base64," in report
    assert (meg_run / "decoding" / "contrastive.safetensors").stat().st_size > 0


def test_meg_epochs_follow_the_config(meg_run: Path):
    ep = read_epochs(meg_run / "epochs" / "sub-01.h5")
    events = pd.read_csv(meg_run / "stimuli" / "events.tsv", sep="\t")
    assert ep.sfreq == 40.0
    assert ep.X.shape == (800, 32, 120)  # every word; 32 BioSemi electrodes; 3 s at 40 Hz
    np.testing.assert_allclose(ep.times[[0, -1]], [-0.5, 2.5 - 1 / 40])
    np.testing.assert_array_equal(ep.word_index, np.arange(800))
    np.testing.assert_array_equal(ep.run, events["run"].to_numpy())
    # Baseline: the mean over the 0.5 s before onset is zero in every epoch and channel.
    base = ep.X[:, :, ep.times < 0].mean(axis=2)
    assert np.abs(base).max() < 1e-3 * np.abs(ep.X).max()
    assert ep.positions.shape == (32, 2) and ep.positions.min() >= 0 and ep.positions.max() <= 1


def test_meg_second_seed_and_snr_zero(meg_run: Path, tmp_path: Path):
    planted = _pooled(_rerun(meg_run, "simulated_meg_ci.yaml", tmp_path / "s1", seed=1, snr=2.0), "top10")
    assert planted["value"] >= 5 * planted["chance"]
    for seed in (0, 1):
        null = _pooled(_rerun(meg_run, "simulated_meg_ci.yaml", tmp_path / f"null{seed}", seed=seed, snr=0.0),
                       "top10")
        assert null["chance_low"] <= null["value"] <= null["chance_high"], null.to_dict()


def test_meg_sigkill_twice_then_resume_matches_a_run_from_scratch(meg_run: Path, tmp_path: Path, snakemake,
                                                                  results_digest):
    """Killed mid-HDF5 write of an epochs file, then mid-training; resumed: identical to ``meg_run``."""
    workdir = tmp_path / "meg ' ö"
    config = ("--configfile", str(CONFIGS / "simulated_meg_ci.yaml"))
    results = workdir / "results" / "simulated_meg_ci"
    part = snakemake.kill(workdir, *config, stall="sub-01.h5")
    assert part.name.endswith(".part") and part.exists() and not (part.parent / "sub-01.h5").exists()
    snakemake(workdir, *config, "--unlock")
    snakemake.kill(workdir, *config, "--rerun-incomplete", when=results / "logs" / "contrastive.log")
    assert not (results / "decoding" / "scores.csv").exists()
    snakemake(workdir, *config, "--unlock")
    snakemake(workdir, *config, "--rerun-incomplete")
    assert not list(results.rglob("*.part"))
    assert results_digest(results) == results_digest(meg_run)


def test_meg_outputs_record_their_seeds(meg_run: Path, unrecorded_seeds):
    assert unrecorded_seeds(meg_run) == []


# --------------------------------------------------------------------------- sEEG
def test_seeg_workflow_decodes_words(seeg_run: Path):
    scores = pd.read_csv(seeg_run / "decoding" / "scores.csv")
    acc = _pooled(scores, "accuracy")
    assert acc["chance"] == pytest.approx(1 / 8)
    assert acc["value"] >= 5 * acc["chance"]
    confusion = pd.read_csv(seeg_run / "decoding" / "confusion.csv").set_index("true")
    assert confusion.to_numpy().sum() == acc["n_windows"]
    assert np.trace(confusion.to_numpy()) == pytest.approx(acc["value"] * acc["n_windows"])
    ep = read_epochs(seeg_run / "epochs" / "sub-01.h5")
    # Bipolar pairs of two 5-contact shafts: LA1-LA2 ... LB4-LB5.
    assert ep.ch_names == [f"L{s}{c}-L{s}{c + 1}" for s in "AB" for c in range(1, 5)]
    assert ep.positions is None
    assert ep.X.shape[2] == 100  # 1 s of envelope at 100 Hz
    report = (seeg_run / "report.html").read_text()
    assert "Confusion matrix" in report


def test_seeg_second_seed_and_snr_zero(seeg_run: Path, tmp_path: Path):
    planted = _pooled(_rerun(seeg_run, "simulated_seeg_ci.yaml", tmp_path / "s1", seed=1, snr=1.5), "accuracy")
    assert planted["value"] >= 5 * planted["chance"]
    for seed in (0, 1):
        null = _pooled(_rerun(seeg_run, "simulated_seeg_ci.yaml", tmp_path / f"null{seed}", seed=seed, snr=0.0),
                       "accuracy")
        assert null["chance_low"] <= null["value"] <= null["chance_high"], null.to_dict()
