"""The Alice dataset (Brennan et al. 2016) end to end: timing, ceilings, the workflow, the README.

Needs ../shared/data/brennan2016_alice (skipped without it, failed under BRAINALIGN_STRICT=1).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.datasets.alice import (
    ALICE_FIRST_VOLUME_ONSET,
    ALICE_N_VOLUMES,
    ALICE_ROIS,
    ALICE_TR,
    check_usable,
    list_alice_subjects,
    load_alice_events,
    load_alice_responses,
    load_alice_word_rate,
)
from brainalign.features.design import frame_times_for_run, hrf_convolve
from brainalign.metrics.ceilings import isc_ceiling
from brainalign.preprocess.fmri import clean_signals

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "workflows" / "configs" / "brennan2016.yaml"
# Leave-one-subject-out ISC of the 27 usable subjects, 6 mm ROIs (issue #2).
CEILING_ZSCORED = [0.31, 0.20, 0.38, 0.28, 0.22, 0.14]
CEILING_CLEANED = [0.31, 0.25, 0.47, 0.29, 0.28, 0.23]
DEFAULT_CLEANING = {"detrend": True, "high_pass": 1 / 128, "standardize": "zscore_sample", "confounds": "none"}


@pytest.fixture(scope="module")
def usable(alice_dir):
    subjects = [load_alice_responses(alice_dir, s) for s in list_alice_subjects(alice_dir)]
    return [r for r in subjects if check_usable(r)[0]]


def test_27_usable_subjects(alice_dir, usable):
    assert len(usable) == 27 and "s33" not in {r.subject for r in usable}


def test_word_rate_regressor_matches_authors_rate_for_every_subject(alice_dir, usable):
    events = load_alice_events(alice_dir)
    assert len(events) == 2127
    frame_times = frame_times_for_run(ALICE_N_VOLUMES, ALICE_TR, ALICE_FIRST_VOLUME_ONSET)
    regressor = hrf_convolve(events["onset"], np.zeros(len(events)), np.ones(len(events)), frame_times)[:, 0]
    for resp in usable:
        r = np.corrcoef(regressor, load_alice_word_rate(alice_dir, resp.subject))[0, 1]
        assert r >= 0.9, (resp.subject, r)


@pytest.mark.parametrize("cleaning, expected", [
    ({"detrend": False, "high_pass": None, "standardize": "zscore_sample", "confounds": "none"}, CEILING_ZSCORED),
    (DEFAULT_CLEANING, CEILING_CLEANED),
], ids=["zscored-raw", "default-cleaning"])
def test_ceilings(usable, cleaning, expected):
    data = np.stack([clean_signals(r.data, ALICE_TR, cleaning) for r in usable])
    assert np.allclose(isc_ceiling(data), expected, atol=0.01), isc_ceiling(data).round(3)


@pytest.fixture(scope="module")
def alice_run(alice_dir, tmp_path_factory, snakemake) -> Path:
    """The whole Alice workflow (every MiniLM layer, 5 random seeds, word rate)."""
    workdir = tmp_path_factory.mktemp("alice")
    snakemake(workdir, "--configfile", str(CONFIG))
    return workdir / "results" / "brennan2016"


def test_workflow_ceilings_exclusion_and_minilm_beats_random(alice_run: Path):
    ceiling = pd.read_csv(alice_run / "ceiling_summary.csv").set_index("roi").loc[ALICE_ROIS, "ceiling"]
    assert np.allclose(ceiling, CEILING_CLEANED, atol=0.01)
    prov = json.loads((alice_run / "ceiling.csv.json").read_text())
    assert "zero" in prov["settings"]["excluded"]["s33"]
    nested = pd.read_csv(alice_run / "best_layer.csv")
    assert nested["subject"].nunique() == 27
    means = nested.groupby(["model", "roi"])["score"].mean().unstack()
    assert (means.loc["minilm", ALICE_ROIS] > means.loc["random", ALICE_ROIS]).all(), means


def test_readme_matches_results(alice_run: Path):
    proc = subprocess.run([sys.executable, "-m", "brainalign.cli", "readme", "--readme", str(REPO / "README.md"),
                           "--results-dir", str(alice_run), "--section", "brennan2016", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_without_cleaning_pooled_word_rate_correlates_negatively(alice_dir, usable):
    """Slow drifts dominate uncleaned single-subject scores (pooled held-out predictions)."""
    from brainalign.encoders.ridge import cross_validated_pearson

    events = load_alice_events(alice_dir)
    frame_times = frame_times_for_run(ALICE_N_VOLUMES, ALICE_TR, ALICE_FIRST_VOLUME_ONSET)
    rate = hrf_convolve(events["onset"], np.zeros(len(events)), np.ones(len(events)), frame_times)
    scores = {}
    for name, cleaning in [("raw", {"detrend": False, "high_pass": None, "standardize": "zscore_sample"}),
                           ("clean", DEFAULT_CLEANING)]:
        x = clean_signals(rate, ALICE_TR, cleaning)
        y = np.concatenate([clean_signals(r.data, ALICE_TR, cleaning) for r in usable], axis=1)
        res = cross_validated_pearson(x, y, pooled=True)["score"].reshape(len(usable), len(ALICE_ROIS))
        scores[name] = res.mean(axis=0)
    assert np.all(scores["raw"] < -0.15) and np.all(scores["raw"] > -0.45), scores["raw"]
    assert np.all(scores["clean"] > 0.05), scores["clean"]


def test_motion_confounds_are_regressed_from_responses_and_designs(alice_dir, tmp_path):
    """confounds: motion — the cleaned responses are orthogonal to the filtered motion, and scoring runs."""
    from brainalign.config import validate_config
    from brainalign.io import read_responses
    from brainalign.pipeline.stages import run_design, run_features, run_responses, run_score, run_stimuli

    def config(confounds: str) -> dict:
        return validate_config({
            "dataset": {"name": "alice3", "kind": "alice", "data_dir": str(alice_dir),
                        "subjects": ["s18", "s22", "s23"]},
            "feature_sets": {"word_rate": {"kind": "word_rate"}},
            "preprocessing": {"confounds": confounds},
        }, tmp_path / "config.yaml")

    tables = {}
    for confounds in ("none", "motion"):
        cfg, out = config(confounds), tmp_path / confounds
        run_stimuli(cfg, out / "events.tsv")
        run_features(cfg, out / "events.tsv", "word_rate", out / "features.h5", progress=False)
        run_design(cfg, out / "events.tsv", out / "features.h5", out / "design.h5")
        paths = [run_responses(cfg, s, out / f"{s}.h5") for s in ["s18", "s22", "s23"]]
        tables[confounds] = pd.read_csv(run_score(cfg, out / "design.h5", paths, out / "scores.csv"))
        if confounds == "motion":
            resp = read_responses(paths[0])
            motion = clean_signals(resp.confounds, ALICE_TR, {**DEFAULT_CLEANING, "standardize": False})
            residual_fit = np.linalg.lstsq(motion, resp.data.astype(float), rcond=None)[0]
            assert np.abs(motion @ residual_fit).max() < 1e-3  # nothing of the motion left
    means = {k: t[t.fold == "mean"].sort_values(["subject", "roi"])["score"].to_numpy() for k, t in tables.items()}
    assert means["motion"].shape == (18,) and np.isfinite(means["motion"]).all()
    assert not np.allclose(means["motion"], means["none"])


def test_timeseries_kind_reproduces_alice_scores(alice_dir, tmp_path: Path, snakemake):
    """The user's-own-data kind (``timeseries``) through the workflow, on the Alice ROI time series exported
    to TSV with the alice kind's word table, gives the alice kind's score tables bit for bit (the alice kind
    scored through the same stages in this process, for the same subjects and feature sets)."""
    import yaml

    from brainalign.config import validate_config
    from brainalign.io import read_responses
    from brainalign.pipeline.stages import run_design, run_features, run_responses, run_score, run_stimuli

    subjects = ["s18", "s22", "s33", "s40"]  # s33: all zeros, excluded by both kinds
    feature_sets = {"random": {"kind": "random_embedding", "seeds": [0], "dim": 384},
                    "word_rate": {"kind": "word_rate"}}
    alice = yaml.safe_load(CONFIG.read_text())
    alice["dataset"].update(data_dir=str(alice_dir), subjects=subjects)
    alice["feature_sets"] = feature_sets
    ref, ref_dir = validate_config(alice, tmp_path / "alice.yaml"), tmp_path / "alice kind"
    events = run_stimuli(ref, ref_dir / "events.tsv")
    paths = [run_responses(ref, s, ref_dir / f"{s}.h5") for s in subjects]
    for name in ("random_seed0", "word_rate"):
        run_features(ref, events, name, ref_dir / f"{name}_features.h5", progress=False)
        run_design(ref, events, ref_dir / f"{name}_features.h5", ref_dir / f"{name}_design.h5")
        run_score(ref, ref_dir / f"{name}_design.h5", paths, ref_dir / f"{name}.csv", threads=1)

    export = tmp_path / "my data"
    export.mkdir()
    for subject in subjects:
        resp = load_alice_responses(alice_dir, subject)
        # float32 values written with 9 significant digits read back as the same float32.
        pd.DataFrame(resp.data.astype(np.float64), columns=resp.unit_names).to_csv(
            export / f"{subject}_run-1.tsv", sep="\t", index=False, float_format="%.9g")
    (export / "words.tsv").write_bytes(events.read_bytes())
    mine = yaml.safe_load(CONFIG.read_text())
    mine["dataset"] = {"name": "brennan2016", "kind": "timeseries", "responses": "my data/{subject}_run-{run}.tsv",
                       "events": "my data/words.tsv", "sampling_interval": ALICE_TR,
                       "first_sample_onset": ALICE_FIRST_VOLUME_ONSET, "subjects": subjects}
    mine["feature_sets"] = feature_sets
    (tmp_path / "timeseries.yaml").write_text(yaml.safe_dump(mine))
    snakemake(tmp_path, "--config", f"config_path={tmp_path / 'timeseries.yaml'}")
    results = tmp_path / "results" / "brennan2016"
    for name in ("random_seed0", "word_rate"):
        ours = pd.read_csv(results / "scores" / f"{name}.csv")
        assert set(ours["subject"]) >= {"s18", "s22", "s40"} and "s33" not in set(ours["subject"])
        pd.testing.assert_frame_equal(ours, pd.read_csv(ref_dir / f"{name}.csv"), check_exact=True)
    assert read_responses(results / "responses" / "s33.h5").excluded == read_responses(paths[2]).excluded != ""
