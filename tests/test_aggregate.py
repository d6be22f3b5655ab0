"""Tests of brainalign.pipeline.aggregate on a small hand-made score table.

Four subjects, three layers, two ROIs; a transformer ("minilm"), a word-rate
baseline and a random-embedding family with two seeds. Expected layers,
means and SEMs are computed by hand below; the paired tests are checked
against scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.config import validate_config
from brainalign.io import SCORE_COLUMNS, read_table
from brainalign.pipeline.aggregate import (
    ceiling_per_subject,
    layer_curve,
    nested_best_layer,
    paired_comparisons,
    run_aggregate,
    subject_scores,
)

SUBJECTS = ["s1", "s2", "s3", "s4"]

# minilm, per ROI: subject -> scores at layers 0, 1, 2 (the fold == "mean" rows).
MINILM = {
    "A": {"s1": [0.10, 0.20, 0.90],
          "s2": [0.10, 0.50, 0.20],
          "s3": [0.20, 0.60, 0.10],
          "s4": [0.00, 0.40, 0.30]},
    "B": {"s1": [0.30, 0.10, 0.05],
          "s2": [0.25, 0.15, 0.00],
          "s3": [0.35, 0.05, 0.10],
          "s4": [0.20, 0.10, 0.15]},
}
# Nested choice (mean over the OTHER three subjects), computed by hand for ROI A:
#   s1: others' means L0 0.100, L1 0.500, L2 0.200 -> layer 1 (its own best is layer 2)
#   s2: L0 0.100, L1 0.400, L2 0.4333 -> layer 2 (its own best is layer 1)
#   s3: L0 0.0667, L1 0.3667, L2 0.4667 -> layer 2 (its own best is layer 1)
#   s4: L0 0.1333, L1 0.4333, L2 0.400 -> layer 1
EXPECTED_A = {"s1": ("1", 0.20), "s2": ("2", 0.20), "s3": ("2", 0.10), "s4": ("1", 0.40)}
EXPECTED_B = {"s1": ("0", 0.30), "s2": ("0", 0.25), "s3": ("0", 0.35), "s4": ("0", 0.20)}

WORD_RATE = {"A": {"s1": 0.15, "s2": 0.12, "s3": 0.05, "s4": 0.30},
             "B": {"s1": 0.10, "s2": 0.20, "s3": 0.05, "s4": 0.22}}
RANDOM = {  # seed -> ROI -> subject -> score (layer 0 only)
    0: {"A": {"s1": 0.01, "s2": 0.03, "s3": -0.02, "s4": 0.04},
        "B": {"s1": 0.00, "s2": 0.02, "s3": 0.04, "s4": -0.02}},
    1: {"A": {"s1": 0.03, "s2": 0.01, "s3": 0.00, "s4": 0.02},
        "B": {"s1": 0.02, "s2": 0.02, "s3": 0.00, "s4": 0.00}},
}
# Seed means, by hand.
RANDOM_MEAN = {"A": {"s1": 0.02, "s2": 0.02, "s3": -0.01, "s4": 0.03},
               "B": {"s1": 0.01, "s2": 0.02, "s3": 0.02, "s4": -0.01}}
CEILING = {"A": 0.5, "B": 0.25}


def _rows(model, feature_set, seed, layer, roi, subject, score):
    base = {"dataset": "toy", "subject": subject, "model": model, "seed": seed,
            "feature_set": feature_set, "layer": layer, "roi": roi, "unit": roi,
            "metric": "pearson_r", "cv": "contiguous5_gap5",
            "alpha_criterion": "inner_cv_pearson_r"}
    # Per-fold rows carry junk that must never enter the summaries.
    return ([{**base, "fold": str(k), "score": 5.0 + k, "alpha": 1.0} for k in range(2)]
            + [{**base, "fold": "mean", "score": score, "alpha": 1.0}])


def _instances() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"minilm": [], "word_rate": [], "random_seed0": [], "random_seed1": []}
    for roi, table in MINILM.items():
        for subject, values in table.items():
            for layer, value in enumerate(values):
                out["minilm"] += _rows("minilm", "minilm", -1, str(layer), roi, subject, value)
    for roi, table in WORD_RATE.items():
        for subject, value in table.items():
            out["word_rate"] += _rows("word_rate", "word_rate", -1, "0", roi, subject, value)
    for seed, rois in RANDOM.items():
        for roi, table in rois.items():
            for subject, value in table.items():
                out[f"random_seed{seed}"] += _rows("random", f"random_seed{seed}", seed, "0", roi,
                                                   subject, value)
    return out


@pytest.fixture
def scores() -> pd.DataFrame:
    table = pd.DataFrame([r for rows in _instances().values() for r in rows])
    table["ceiling"] = table["roi"].map(CEILING)
    return table


@pytest.fixture
def per_subject(scores) -> pd.DataFrame:
    return subject_scores(scores)


# --------------------------------------------------------------------------- subject_scores
def test_subject_scores_averages_seeds_and_ignores_folds(per_subject):
    assert len(per_subject) == 2 * 4 * 3 + 2 * 4 + 2 * 4
    rnd = per_subject[per_subject.model == "random"].set_index(["roi", "subject"])
    for roi, table in RANDOM_MEAN.items():
        for subject, value in table.items():
            assert rnd.loc[(roi, subject), "score"] == pytest.approx(value, abs=1e-12)
            # Brain-Score's normalization: clipped to [0, 1], the ratio kept beside it.
            assert rnd.loc[(roi, subject), "normalized_score"] == pytest.approx(
                min(max(value / CEILING[roi], 0.0), 1.0), abs=1e-12)
            assert rnd.loc[(roi, subject), "normalized_score_unclipped"] == pytest.approx(
                value / CEILING[roi], abs=1e-12)
            assert rnd.loc[(roi, subject), "n_seeds"] == 2
    mini = per_subject[per_subject.model == "minilm"].set_index(["roi", "subject", "layer"])
    assert mini.loc[("A", "s1", "2"), "score"] == 0.90
    assert mini.loc[("B", "s3", "0"), "ceiling"] == CEILING["B"]
    assert (mini["n_seeds"] == 1).all()
    assert per_subject["score"].max() < 1.0  # no fold row leaked in


# --------------------------------------------------------------------------- nested best layer
def test_nested_best_layer_uses_other_subjects(per_subject):
    nested = nested_best_layer(per_subject)
    mini = nested[nested.model == "minilm"]
    for roi, expected in (("A", EXPECTED_A), ("B", EXPECTED_B)):
        got = mini[mini.roi == roi].set_index("subject")
        assert sorted(got.index) == SUBJECTS
        for subject, (layer, score) in expected.items():
            assert got.loc[subject, "chosen_layer"] == layer, (roi, subject)
            assert got.loc[subject, "score"] == pytest.approx(score, abs=1e-12)
            assert got.loc[subject, "normalized_score"] == pytest.approx(min(score / CEILING[roi], 1.0))
            assert got.loc[subject, "normalized_score_unclipped"] == pytest.approx(score / CEILING[roi])
    # ROI B: 0.30 / 0.25 = 1.2 is clipped to 1 and kept unclipped.
    b1 = nested[(nested.model == "minilm") & (nested.roi == "B")].set_index("subject").loc["s1"]
    assert b1["normalized_score"] == 1.0 and b1["normalized_score_unclipped"] == pytest.approx(1.2)
    # The subject's own best layer differs from the chosen one for s1, s2 and s3 in ROI A.
    for subject in ("s1", "s2", "s3"):
        own_best = str(int(np.argmax(MINILM["A"][subject])))
        assert own_best != EXPECTED_A[subject][0]
    # Single-layer families choose their only layer.
    assert set(nested[nested.model != "minilm"]["chosen_layer"]) == {"0"}


def test_nested_best_layer_sorts_layers_numerically():
    # Equal means for layers "10" and "2": ties go to the first layer in numeric order ("2").
    rows = []
    for subject in SUBJECTS:
        for layer, score in (("2", 0.5), ("10", 0.5), ("1", 0.1)):
            rows.append({"model": "m", "subject": subject, "layer": layer, "roi": "A",
                         "score": score, "normalized_score": score, "normalized_score_unclipped": score})
    nested = nested_best_layer(pd.DataFrame(rows))
    assert set(nested["chosen_layer"]) == {"2"}


# --------------------------------------------------------------------------- paired tests
def test_paired_comparisons_match_scipy(per_subject):
    nested = nested_best_layer(per_subject)
    tests = paired_comparisons(nested, "minilm", ["word_rate", "random"])
    assert list(zip(tests.baseline, tests.roi)) == [("word_rate", "A"), ("word_rate", "B"),
                                                     ("random", "A"), ("random", "B")]
    model_scores = {"A": [EXPECTED_A[s][1] for s in SUBJECTS], "B": [EXPECTED_B[s][1] for s in SUBJECTS]}
    baseline_scores = {"word_rate": WORD_RATE, "random": RANDOM_MEAN}
    for _, row in tests.iterrows():
        a = np.array(model_scores[row.roi])
        b = np.array([baseline_scores[row.baseline][row.roi][s] for s in SUBJECTS])
        ref_t = stats.ttest_rel(a, b)
        ref_w = stats.wilcoxon(a, b)
        assert row.n_subjects == 4
        assert row.t == pytest.approx(ref_t.statistic, rel=1e-9)
        assert row.p_ttest == pytest.approx(ref_t.pvalue, rel=1e-9)
        assert row.p_wilcoxon == pytest.approx(ref_w.pvalue, rel=1e-9)
        assert row.model_mean == pytest.approx(a.mean())
        assert row.baseline_mean == pytest.approx(b.mean())
        assert row.mean_difference == pytest.approx((a - b).mean())
        assert row.n_model_better == int(np.sum(a > b))
    # Hand check of one t: minilm vs word rate in ROI A, differences .05 .08 .05 .10.
    d = np.array([0.05, 0.08, 0.05, 0.10])
    t_hand = d.mean() / (math.sqrt(((d - d.mean()) ** 2).sum() / 3) / 2)
    assert tests.iloc[0].t == pytest.approx(t_hand, rel=1e-9)


def test_paired_comparisons_identical_scores_and_too_few_subjects():
    nested = pd.DataFrame({
        "model": ["m"] * 3 + ["b"] * 3 + ["c"],
        "roi": ["A"] * 7,
        "subject": ["s1", "s2", "s3", "s1", "s2", "s3", "s1"],
        "score": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.5],
    })
    tests = paired_comparisons(nested, "m", ["b", "c"])
    assert len(tests) == 1  # "c" has a single common subject: skipped
    assert tests.iloc[0].p_wilcoxon == 1.0 and tests.iloc[0].n_model_better == 0


# --------------------------------------------------------------------------- layer curve
def test_layer_curve_mean_and_sem(per_subject):
    curve = layer_curve(per_subject)
    mini_a = curve[(curve.model == "minilm") & (curve.roi == "A")]
    assert mini_a["layer"].tolist() == ["0", "1", "2"]
    row = mini_a.set_index("layer").loc["1"]
    # Layer 1, ROI A: 0.2, 0.5, 0.6, 0.4 -> mean 0.425; squared deviations sum to 0.0875.
    assert row["mean"] == pytest.approx(0.425)
    assert row["sem"] == pytest.approx(math.sqrt(0.0875 / 3) / 2)
    assert row["n_subjects"] == 4
    assert row["normalized_mean"] == pytest.approx(0.425 / CEILING["A"])
    rnd = curve[(curve.model == "random") & (curve.roi == "A")].iloc[0]
    # Seed means 0.02, 0.02, -0.01, 0.03 -> mean 0.015; squared deviations sum to 9e-4.
    assert rnd["mean"] == pytest.approx(0.015)
    assert rnd["sem"] == pytest.approx(math.sqrt(9e-4 / 3) / 2)
    single = layer_curve(per_subject[per_subject.subject == "s1"])
    assert single["sem"].isna().all()


def test_layer_curve_orders_layers_numerically():
    rows = [{"model": "m", "subject": s, "layer": layer, "roi": "A", "score": 0.1,
             "normalized_score": 0.2, "ceiling": 0.5}
            for s in SUBJECTS for layer in ("10", "2", "0")]
    assert layer_curve(pd.DataFrame(rows))["layer"].tolist() == ["0", "2", "10"]


# --------------------------------------------------------------------------- ceilings
CEILING_UNITS = {  # subject -> ROI -> unit values
    "s1": {"A": [0.4, 0.6], "B": [-0.10]},
    "s2": {"A": [0.5, 0.7], "B": [0.05]},
    "s3": {"A": [0.3, 0.5], "B": [-0.05]},
    "s4": {"A": [0.4, 0.4], "B": [0.00]},
}
# Per-subject ROI A ceilings 0.5, 0.6, 0.4, 0.4 -> ROI ceiling 0.475; ROI B: -0.025 (<= 0).
ROI_A_CEILING = 0.475


def _ceiling_table() -> pd.DataFrame:
    rows = []
    for subject, rois in CEILING_UNITS.items():
        for roi, values in rois.items():
            for k, value in enumerate(values):
                rows.append({"dataset": "toy", "subject": subject, "roi": roi,
                             "unit": f"{roi}{k}", "metric": "loso_isc", "ceiling": value})
    return pd.DataFrame(rows)


def test_ceiling_per_subject_averages_units():
    out = ceiling_per_subject(_ceiling_table()).set_index(["roi", "subject"])["ceiling"]
    assert out[("A", "s1")] == pytest.approx(0.5)
    assert out[("A", "s2")] == pytest.approx(0.6)
    assert out[("B", "s3")] == pytest.approx(-0.05)


# --------------------------------------------------------------------------- run_aggregate
@pytest.fixture
def config() -> dict:
    return validate_config({
        "dataset": {"name": "toy", "kind": "simulated"},
        "feature_sets": {"minilm": {"kind": "transformer"},
                         "random": {"kind": "random_embedding", "seeds": [0, 1]},
                         "word_rate": {"kind": "word_rate"}},
    })


def test_run_aggregate_end_to_end(tmp_path, config):
    inputs = tmp_path / "in"
    inputs.mkdir()
    score_paths = []
    for name, rows in _instances().items():
        path = inputs / f"{name}.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        score_paths.append(path)
    ceiling_path = inputs / "ceiling.csv"
    _ceiling_table().to_csv(ceiling_path, index=False)
    out = run_aggregate(config, score_paths, ceiling_path, tmp_path / "out")
    assert set(out) == {"scores", "layer_curve", "best_layer", "best_layer_summary", "comparisons", "ceiling"}

    scores = read_table(out["scores"])
    assert scores.columns.tolist()[:len(SCORE_COLUMNS)] == SCORE_COLUMNS
    a = scores[scores.roi == "A"]
    np.testing.assert_allclose(a["ceiling"], ROI_A_CEILING)
    np.testing.assert_allclose(a["normalized_score_unclipped"], a["score"] / ROI_A_CEILING, rtol=1e-12)
    np.testing.assert_allclose(a["normalized_score"], np.clip(a["score"] / ROI_A_CEILING, 0, 1), rtol=1e-12)
    assert a["exceeds_ceiling"].tolist() == (a["score"] / ROI_A_CEILING > 1).tolist()
    # minilm s1 layer 2 (0.9), s2 and s3 layer 1 (0.5, 0.6) exceed the ceiling 0.475.
    assert (a[a.fold == "mean"]["exceeds_ceiling"]).sum() == 3
    b = scores[scores.roi == "B"]
    assert b["ceiling"].to_numpy() == pytest.approx(-0.025)
    assert b["normalized_score"].isna().all()  # no normalisation by a non-positive ceiling
    assert b["normalized_score_unclipped"].isna().all() and not b["exceeds_ceiling"].any()
    from brainalign.pipeline.aggregate import normalization_counts

    n_mean_rows = int((scores.fold == "mean").sum())
    assert normalization_counts(scores) == {"n_scores": n_mean_rows, "n_exceeding": 3,
                                            "n_without_ceiling": n_mean_rows // 2}

    best = read_table(out["best_layer"])
    best["chosen_layer"] = best["chosen_layer"].astype(str)
    mini = best[(best.model == "minilm") & (best.roi == "A")].set_index("subject")
    for subject, (layer, score) in EXPECTED_A.items():
        assert mini.loc[subject, "chosen_layer"] == layer
        assert mini.loc[subject, "score"] == pytest.approx(score)
        assert mini.loc[subject, "normalized_score"] == pytest.approx(min(score / ROI_A_CEILING, 1.0))

    comps = read_table(out["comparisons"])
    assert sorted(set(comps.baseline)) == ["random", "word_rate"]
    row = comps[(comps.baseline == "word_rate") & (comps.roi == "A")].iloc[0]
    model_a = np.array([EXPECTED_A[s][1] for s in SUBJECTS])
    wr_a = np.array([WORD_RATE["A"][s] for s in SUBJECTS])
    assert row.p_ttest == pytest.approx(stats.ttest_rel(model_a, wr_a).pvalue, rel=1e-9)
    assert row.p_wilcoxon == pytest.approx(stats.wilcoxon(model_a, wr_a).pvalue, rel=1e-9)

    curve = read_table(out["layer_curve"])
    curve["layer"] = curve["layer"].astype(str)
    c = curve[(curve.model == "minilm") & (curve.roi == "A")].set_index("layer").loc["1"]
    assert c["mean"] == pytest.approx(0.425)
    assert c["normalized_mean"] == pytest.approx(0.425 / ROI_A_CEILING)
    # Layer 2 of ROI A: mean 0.375 over subjects; one subject alone (0.9) exceeds the ceiling.
    c2 = curve[(curve.model == "minilm") & (curve.roi == "A")].set_index("layer").loc["2"]
    assert c2["normalized_mean_unclipped"] == pytest.approx(0.375 / ROI_A_CEILING)

    ceil = read_table(out["ceiling"])
    assert ceil["roi"].tolist() == ["A", "B"]
    ca = ceil.iloc[0]
    per_subject_a = np.array([0.5, 0.6, 0.4, 0.4])
    assert ca["ceiling"] == pytest.approx(ROI_A_CEILING)
    # Squared deviations from 0.475: 0.000625 + 0.015625 + 0.005625 + 0.005625 = 0.0275.
    assert ca["sem"] == pytest.approx(math.sqrt(0.0275 / 3) / 2)
    assert ca["sem"] == pytest.approx(per_subject_a.std(ddof=1) / 2)
    assert ca["n_subjects"] == 4
    # Every summary has its provenance sidecar, and nothing else is left in the folder.
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    tables = ("scores", "layer_curve", "best_layer", "best_layer_summary", "comparisons", "ceiling_summary")
    assert names == sorted([f"{n}.csv" for n in tables] + [f"{n}.csv.json" for n in tables])


def test_best_layer_summary_ci_and_group_test(tmp_path):
    """CIs are subject-level bootstrap intervals; p_group is the one-sided one-sample t-test, BH-corrected."""
    from brainalign.metrics.stats import bootstrap_ci, fdr_correction
    from brainalign.pipeline.aggregate import best_layer_summary

    nested = pd.DataFrame({"model": "m", "roi": np.repeat(["A", "B"], 5), "subject": list("abcde") * 2,
                           "chosen_layer": "1", "score": [0.2, 0.3, 0.1, 0.25, 0.15, 0.0, 0.05, -0.05, 0.02, -0.01],
                           "normalized_score": np.nan, "normalized_score_unclipped": np.nan})
    cfg = {"n_bootstraps": 2000, "ci_level": 0.9, "seed": 3}
    out = best_layer_summary(nested, cfg).set_index("roi")
    for k, roi in enumerate(["A", "B"]):
        v = nested[nested.roi == roi]["score"].to_numpy()
        ci = bootstrap_ci(v, n_bootstraps=2000, level=0.9, random_state=np.random.default_rng([3, 10_000 + k]))
        assert out.loc[roi, "ci_low"] == pytest.approx(ci["low"]) and out.loc[roi, "ci_high"] == pytest.approx(ci["high"])
        assert out.loc[roi, "p_group"] == pytest.approx(stats.ttest_1samp(v, 0, alternative="greater").pvalue)
    np.testing.assert_allclose(out["p_group_fdr"], fdr_correction(out["p_group"].to_numpy()))


def test_run_aggregate_names_a_missing_score_column(tmp_path):
    from brainalign._validation import InputFileError
    from brainalign.config import validate_config

    cfg = validate_config({"dataset": {"name": "x", "kind": "simulated"},
                           "feature_sets": {"minilm": {"kind": "transformer"}}}, tmp_path / "c.yaml")
    bad = tmp_path / "minilm.csv"
    pd.DataFrame({"subject": ["s1"], "layer": ["0"], "roi": ["A"], "fold": ["mean"], "score": [0.1]}).to_csv(bad)
    ceiling = tmp_path / "ceiling.csv"
    pd.DataFrame({"subject": ["s1"], "roi": ["A"], "ceiling": [0.3]}).to_csv(ceiling, index=False)
    with pytest.raises(InputFileError, match=r"minilm\.csv.*missing column.*'dataset'"):
        run_aggregate(cfg, [bad], ceiling, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_minimum_ceiling_applies_to_every_table(tmp_path, config):
    """Below statistics.min_ceiling the normalized scores are missing in scores, curves and summaries."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = []
    for name, rows in _instances().items():
        pd.DataFrame(rows).to_csv(inputs / f"{name}.csv", index=False)
        paths.append(inputs / f"{name}.csv")
    _ceiling_table().to_csv(inputs / "ceiling.csv", index=False)
    cfg = dict(config, statistics=dict(config["statistics"], min_ceiling=0.5))  # ROI A's 0.475 is below
    out = run_aggregate(cfg, paths, inputs / "ceiling.csv", tmp_path / "out")
    for key, column in (("scores", "normalized_score"), ("scores", "normalized_score_unclipped"),
                        ("layer_curve", "normalized_mean"), ("best_layer", "normalized_score"),
                        ("best_layer_summary", "normalized_mean")):
        assert read_table(out[key])[column].isna().all(), (key, column)
