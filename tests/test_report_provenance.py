"""The fMRI report states exactly what was run (issue #21).

A small results folder is written through the real aggregate stage from
hand-made score and ceiling tables (2 subjects, 2 runs scored leave-one-run-out,
a ROI with a negative ceiling, a one-layer baseline), with provenance sidecars
whose config differs from the config the report is given: the report must
state what the sidecars and tables record, not what the config says.
"""

from __future__ import annotations

import copy
import html as html_lib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.config import validate_config
from brainalign.io import provenance, write_table
from brainalign.pipeline.aggregate import run_aggregate
from brainalign.report.html import run_report

SUBJECTS = ("sub-01", "sub-02")
CEILINGS = {"ROI_A": 0.45, "CONTROL": -0.039}
CV = "leave_one_run_out_gap5"
CRITERION = "inner_cv_pearson_r"


def _config(kind: str = "simulated", **dataset) -> dict:
    """The config the report is given: defaults (5 outer and inner folds, alphas per target, min ceiling 0.1)."""
    return validate_config({
        "dataset": {"name": "prov", "kind": kind, **dataset},
        "feature_sets": {"minilm": {"kind": "transformer", "layers": [0, 1, 2]}, "word_rate": {"kind": "word_rate"}},
        "simulation": {"planted_layer": "2"},
        "statistics": {"n_bootstraps": 200},
    })


def _run_config(cfg: dict) -> dict:
    """The config the stages actually ran with (recorded in the outputs' provenance)."""
    run = copy.deepcopy(cfg)
    run["encoder"].update(inner_folds=2, alpha_per_target=False)
    run["preprocessing"].update(high_pass=0.01, detrend=False)
    run["statistics"]["min_ceiling"] = 0.2
    return run


def _scores(feature_set: str, layers: list[str], rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for s, subject in enumerate(SUBJECTS):
        for layer in layers:
            for roi in CEILINGS:
                base = 0.2 + 0.03 * int(layer) + 0.01 * s if roi == "ROI_A" else 0.001
                for fold in ("0", "1", "mean"):
                    rows.append({
                        "dataset": "prov", "subject": subject, "model": feature_set, "seed": -1,
                        "feature_set": feature_set, "layer": layer, "roi": roi, "unit": roi,
                        "metric": "pearson_r", "cv": CV, "alpha_criterion": CRITERION, "fold": fold,
                        "score": base + rng.normal(0, 0.002), "alpha": 10.0,
                        "p_value": 0.01 if fold == "mean" else np.nan,
                    })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    run = _run_config(_config())
    rng = np.random.default_rng(0)
    paths = []
    for name, layers in (("minilm", ["0", "1", "2"]), ("word_rate", ["0"])):
        paths.append(write_table(root / "scores" / f"{name}.csv", _scores(name, layers, rng),
                                 provenance(run, stage="score", feature_set=name)))
    # Two subjects: each one's leave-one-subject-out ISC is the same correlation.
    ceiling = pd.DataFrame([{"dataset": "prov", "subject": s, "roi": roi, "unit": roi, "metric": "loso_isc",
                             "ceiling": c} for s in SUBJECTS for roi, c in CEILINGS.items()])
    ceiling_path = write_table(root / "ceiling.csv", ceiling, provenance(run, stage="ceiling", excluded={}))
    run_aggregate(run, paths, ceiling_path, root)
    return root


def _text(path: Path) -> str:
    """The report's text: images and tags removed, entities decoded, white space collapsed."""
    page = re.sub(r"data:image/png;base64,[^'\"]*", "", path.read_text())
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report")
    run_report(_config(), results, out / "report.html", out / "figures")
    return _text(out / "report.html")


def _method(text: str) -> str:
    return text[text.index("Method"):]


# ----------------------------------------------------------------------------- 1. the Method is what ran
def test_method_states_the_cv_and_settings_that_ran_not_the_config(report: str):
    method = _method(report)
    assert "leave-one-run-out CV over the 2 runs" in method
    assert "5-fold" not in method and "contiguous5" not in method
    # One training run per outer fold: the inner CV is contiguous within it, with the recorded 2 folds.
    assert "inner 2-fold contiguous CV" in method and "within the one training run" in method
    assert "when the outer folds are runs" not in method  # what ran, not a rule
    assert "samples dropped at each test boundary" not in method.split("inner")[0]  # whole runs held out
    assert "alphas shared by all targets" in method and "per target" not in method
    assert CRITERION in method
    assert "high_pass=0.01" in method and "detrend=False" in method
    assert "below 0.2" in method and "below 0.1" not in method


# ----------------------------------------------------------------------------- 2. why there is no partitioning
def test_volume_report_says_why_variance_is_not_partitioned(results: Path, tmp_path: Path):
    import nibabel as nib

    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), atlas)
    cfg = _config("simulated_bids", atlas=str(atlas), atlas_labels={1: "ROI_A"})
    run_report(cfg, results, tmp_path / "report.html", tmp_path / "figures")
    text = _text(tmp_path / "report.html")
    part = text[text.index("Variance partitioning"):text.index("Excluded subjects")]
    assert "no word-rate baseline configured" not in part
    assert "word_rate" in part and "ROI datasets" in part and "voxel" in part


# ----------------------------------------------------------------------------- 3. ceilings below the minimum
def test_negative_ceiling_is_explained_and_no_spread_is_invented(report: str):
    assert "± 0.000" not in report
    ceiling = report[report.index("Ceiling"):report.index("Normalized scores")]
    assert re.search(r"CONTROL: ceiling −0\.039 is negative.{0,400}no normalized score", ceiling), ceiling
    assert "2 subjects" in ceiling  # why no SEM is given
    normalized = report[report.index("Normalized scores"):report.index("Layer curves")]
    assert "ceiling −0.039 < 0.2" in normalized


# ----------------------------------------------------------------------------- 4. missing cells
def test_missing_values_are_dashes_with_a_footnote_never_nan(report: str):
    assert not re.search(r"\bnan\b", report, re.IGNORECASE), re.findall(r".{80}\bnan\b.{20}", report, re.I)
    curves = report[report.index("Layer curves"):report.index("Variance partitioning")]
    assert "—" in curves and "— : no such layer (word_rate: layer 0 only)" in curves


# ----------------------------------------------------------------------------- 5. shared y-axes
def test_roi_panels_share_their_y_axis(results: Path):
    import matplotlib.pyplot as plt

    from brainalign.io import read_table
    from brainalign.report.plots import layer_curves_figure

    fig = layer_curves_figure(read_table(results / "layer_curve.csv"), read_table(results / "ceiling_summary.csv"),
                              "minilm", ["word_rate"], list(CEILINGS))
    try:
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == len(CEILINGS)
        assert len({ax.get_ylim() for ax in panels}) == 1
        assert all(panels[0].get_shared_y_axes().joined(panels[0], ax) for ax in panels)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- 6. labelled colour bars
def _colorbar_labels(fig) -> list[str]:
    bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert bars, "the figure has no colour bar"
    return [ax.get_ylabel() or ax.get_xlabel() for ax in bars]


def test_head_map_colour_bars_name_their_quantity(tmp_path: Path):
    import matplotlib.pyplot as plt

    from brainalign.report.plots import head_maps_figure

    curve = pd.DataFrame([{"model": "gpt", "roi": roi, "layer": f"{b}.h{h}", "mean": 0.01 * (b + h)}
                          for roi in CEILINGS for b in range(2) for h in range(3)])
    stats = {str(b): np.random.default_rng(b).random((4, 3, 3)) for b in range(2)}
    fig = head_maps_figure(curve, "gpt", list(CEILINGS), stats)
    try:
        labels = _colorbar_labels(fig)
    finally:
        plt.close(fig)
    assert len(labels) == len(CEILINGS) + 3 and all(labels), labels
    assert any("Pearson r" in label for label in labels) and any("nats" in label for label in labels)


def _maps(folder: Path) -> Path:
    """A group r map and its −log10 q on a 4 mm MNI grid, two layers, a blob over the left temporal lobe."""
    import json

    import nibabel as nib

    folder.mkdir()
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (-90, -126, -72)
    r = np.zeros((46, 55, 46, 2), np.float32)
    r[8:14, 25:32, 15:21] = (0.2, 0.3)
    nib.save(nib.Nifti1Image(r, affine), folder / "group_stat-r.nii.gz")
    nib.save(nib.Nifti1Image(np.where(r > 0, 3.0, 0.0).astype(np.float32), affine),
             folder / "group_stat-logq.nii.gz")
    (folder / "maps.json").write_text(json.dumps({"feature_set": "minilm", "layers": ["0", "1"]}))
    return folder


def test_brain_map_colour_bars_name_their_quantity(tmp_path: Path):
    import matplotlib.pyplot as plt

    from brainalign.report.brain import glass_layers_figure, slices_figure

    maps = _maps(tmp_path / "minilm")
    for build in (glass_layers_figure, slices_figure):
        fig = build(maps, alpha=0.05)
        try:
            labels = _colorbar_labels(fig)
        finally:
            plt.close(fig)
        assert all("Pearson r" in label for label in labels), (build.__name__, labels)
