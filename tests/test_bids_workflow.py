"""The whole-brain workflow end to end on the simulated BIDS + fMRIPrep dataset.

Runs ``workflows/configs/simulated_bids_ci.yaml`` (MNI152 4 mm grid, 3 subjects x
2 runs, signal planted in four language parcels) once, then checks recovery of
the planted parcels, the NIfTI maps, the report, the effect of confound
regression, and the Narratives config on data written in Narratives' layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from brainalign.config import load_config
from brainalign.io import read_unit_scores
from brainalign.pipeline.volumes import (
    run_volume_responses,
    run_volume_score,
)

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "workflows" / "configs" / "simulated_bids_ci.yaml"
NAME = "simulated_bids_ci"


@pytest.fixture(scope="module")
def bids_run(tmp_path_factory, shared_data, snakemake) -> Path:
    workdir = tmp_path_factory.mktemp("bids run")
    snakemake(workdir, "--configfile", str(CONFIG))
    return workdir / "results" / NAME


def _planted(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(analysis mask, planted-voxel mask) on the data grid."""
    mask = nib.load(str(root / "mask.nii.gz")).get_fdata() > 0
    planted = nib.load(str(root / "bids" / "derivatives" / "simulation" / "planted_parcels.nii.gz")).get_fdata()
    return mask, planted > 0


def _auc(r_map: np.ndarray, mask: np.ndarray, planted: np.ndarray) -> float:
    return roc_auc_score(planted[mask], r_map[mask])


def test_planted_parcels_are_recovered(bids_run: Path, shared_data: Path):
    mask, planted = _planted(bids_run)
    # The truth is the atlas resampled independently onto nilearn's MNI 4 mm mask.
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_to_img

    atlas = nib.load(str(shared_data / "ivanova2020_langparcels" / "parcels" / "LangParcels_n220_LH.hdr"))
    atlas = nib.Nifti1Image(np.rint(atlas.get_fdata()).astype(np.int32), atlas.affine)
    brain = load_mni152_brain_mask(resolution=4)
    labels = np.rint(resample_to_img(atlas, brain, interpolation="nearest", force_resample=True,
                                     copy_header=True).get_fdata())
    np.testing.assert_array_equal(planted, np.isin(labels, [1, 2, 4, 5]) & (brain.get_fdata() > 0))
    np.testing.assert_array_equal(mask, brain.get_fdata() > 0)

    meta = json.loads((bids_run / "maps" / "minilm" / "maps.json").read_text())
    k = meta["layers"].index("3")
    group_r = nib.load(str(bids_run / "maps" / "minilm" / "group_stat-r.nii.gz")).get_fdata()[..., k]
    assert _auc(group_r, mask, planted) >= 0.9
    for subject in ("sub-01", "sub-02", "sub-03"):
        r = nib.load(str(bids_run / "maps" / "minilm" / f"{subject}_stat-r.nii.gz")).get_fdata()[..., k]
        assert _auc(r, mask, planted) >= 0.85, subject
    # The parcel table: planted parcels (labels 1, 2, 4, 5) score, the others (3 LAngG,
    # 6 LIFGorb, outside the atlas) do not.
    scores = pd.read_csv(bids_run / "scores.csv")
    means = scores[(scores["fold"] == "mean") & (scores["feature_set"] == "minilm") & (scores["layer"] == 3)]
    by_roi = means.groupby("roi")["score"].mean()
    assert (by_roi[["LPostTemp", "LAntTemp", "LIFG", "LMFG"]] > 0.1).all()
    assert (by_roi[["LAngG", "LIFGorb", "other"]].abs() < 0.03).all()
    assert set(scores["cv"]) == {"leave_one_run_out_gap5"}
    assert set(scores.loc[scores["fold"] != "mean", "fold"]) == {"0", "1"}  # one fold per run


def test_maps_round_trip_on_the_template_grid(bids_run: Path):
    from nilearn.datasets import load_mni152_brain_mask

    brain = load_mni152_brain_mask(resolution=4)
    units = read_unit_scores(bids_run / "scores" / "minilm_units.h5")
    index = units["unit_index"]
    for name in ("sub-02_stat-r", "group_stat-rnorm", "group_stat-logq"):
        img = nib.load(str(bids_run / "maps" / "minilm" / f"{name}.nii.gz"))
        assert img.shape == brain.shape + (2,)
        np.testing.assert_allclose(img.affine, brain.affine)
        assert img.header.get_xyzt_units() == ("mm", "sec")
    r = nib.load(str(bids_run / "maps" / "minilm" / "sub-02_stat-r.nii.gz")).get_fdata(dtype=np.float32)
    inside = index >= 0
    np.testing.assert_array_equal(r[inside][:, 1], units["subjects"]["sub-02"]["score"][1][index[inside]])
    assert not r[~inside].any()
    # Normalized r = r / ceiling clipped to [0, 1] (unclipped map beside it), NaN where the ceiling
    # is below statistics.min_ceiling.
    ceiling = read_unit_scores(bids_run / "ceiling_units.h5")
    c = ceiling["subjects"]["sub-02"]["ceiling"].astype(np.float64)
    s = units["subjects"]["sub-02"]["score"][1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(c >= 0.1, s / c, np.nan)
    for stat, expected in (("rnorm", np.clip(ratio, 0, 1)), ("rnormunclipped", ratio)):
        got = nib.load(str(bids_run / "maps" / "minilm" / f"sub-02_stat-{stat}.nii.gz")).get_fdata(dtype=np.float32)
        np.testing.assert_allclose(got[inside][:, 1], expected[index[inside]].astype(np.float32), rtol=1e-6)


def test_report_shows_brain_maps(bids_run: Path):
    html = (bids_run / "report.html").read_text()
    assert "<h2>Brain maps</h2>" in html
    assert html.count("data:image/png;base64") >= 3 + 2 * 2  # standard figures + 2 per feature set
    assert "LPostTemp" in html  # the parcel table


def test_confound_regression_removes_the_motion_artefact(bids_run: Path, tmp_path: Path):
    cfg = load_config(bids_run / "config.yaml")
    _, planted = _planted(bids_run)
    index = read_unit_scores(bids_run / "scores" / "minilm_units.h5")["unit_index"]
    unit_planted = np.zeros(int(index.max()) + 1, bool)
    unit_planted[index[index >= 0]] = planted[index >= 0]

    def planted_scores(subjects):
        r = np.stack([subjects[s]["score"][1] for s in ("sub-01", "sub-02")])  # layer 3
        return r[:, unit_planted].mean(), r[:, ~unit_planted]

    # With the confounds: the workflow's own scores (each subject is fitted on its own, and the
    # permutation count does not change r). Without: sub-01 and sub-02 again, confounds off.
    with_conf, null_with = planted_scores(read_unit_scores(bids_run / "scores" / "minilm_units.h5")["subjects"])
    without = dict(cfg, preprocessing=dict(cfg["preprocessing"], confounds="none"))
    without["statistics"] = dict(cfg["statistics"], n_permutations=0)
    paths = [run_volume_responses(without, s, bids_run / "mask.nii.gz", tmp_path / f"{s}.h5")
             for s in ("sub-01", "sub-02")]
    run_volume_score(without, bids_run / "design" / "minilm.h5", paths, tmp_path / "s.csv", tmp_path / "s.h5")
    no_conf, null_without = planted_scores(read_unit_scores(tmp_path / "s.h5")["subjects"])
    assert with_conf > 0.3
    # The artefact really hurts: about 0.09 of r at this size with the default 26 confounds
    # per run (24 motion parameters, WM, CSF), just over 0.1 with the 6 motion parameters and
    # scrubbing this config used before: more confounds spend more degrees of freedom.
    assert with_conf - no_conf > 0.05, (with_conf, no_conf)
    # Unplanted voxels: centred on 0 with the confounds regressed; without, the
    # shared artefact makes their scores spread wider (chance fits of motion).
    print("planted r", with_conf, no_conf, "null mean/std", null_with.mean(), null_with.std(),
          null_without.mean(), null_without.std())
    assert abs(null_with.mean()) < 0.01
    assert null_without.std() > null_with.std()


def _narratives_layout(src: Path, dst: Path, task: str, subjects: tuple[str, ...], run: str) -> pd.DataFrame:
    """Copy one run of ``subjects`` of a simulated BIDS dataset into Narratives' naming (fMRIPrep 20.0.5).

    Returns that run's word events (the story's words in the copy).
    """
    prep_src = src / "derivatives" / "fmriprep"
    for subject in subjects:
        bold = next(prep_src.glob(f"{subject}/func/{subject}_*_run-{run}_*desc-preproc_bold.nii.gz"))
        new_sub = f"sub-{int(subject[4:]):03d}"
        out = dst / "derivatives" / "fmriprep" / new_sub / "func"
        out.mkdir(parents=True)
        stem = f"{new_sub}_task-{task}_space-MNI152NLin2009cAsym_res-native"
        shutil.copy(bold, out / f"{stem}_desc-preproc_bold.nii.gz")
        shutil.copy(str(bold).replace("desc-preproc_bold", "desc-brain_mask"), out / f"{stem}_desc-brain_mask.nii.gz")
        conf = bold.with_name(f"{subject}_task-listening_run-{run}_desc-confounds_timeseries.tsv")
        shutil.copy(conf, out / f"{new_sub}_task-{task}_desc-confounds_regressors.tsv")
        shutil.copy(conf.with_suffix(".json"), out / f"{new_sub}_task-{task}_desc-confounds_regressors.json")
        raw = dst / new_sub / "func"
        raw.mkdir(parents=True)
        (raw / f"{new_sub}_task-{task}_events.tsv").write_text(
            "onset\tduration\ttrial_type\tstim_file\n0.0\t8.0\tmusic\tpieman_audio.wav\n"
            f"10.0\t400.0\tstory\t{task}_audio.wav\n")
    events = pd.read_csv(src / subjects[0] / "func" / f"{subjects[0]}_task-listening_run-{run}_events.tsv", sep="\t")
    align = dst / "stimuli" / "gentle" / task / "align.csv"
    align.parent.mkdir(parents=True)
    rows = [f"{w},{w.lower()},{o:.2f},{o + d:.2f}" for w, o, d in
            zip(events["word"], events["onset"], events["duration"])]
    rows.insert(5, "mumbled,<unk>,,")  # Gentle leaves words it could not align without times
    align.write_text("\n".join(rows) + "\n")
    return events


def test_narratives_config_on_data_in_narratives_layout(bids_run: Path, tmp_path: Path, snakemake):
    """The documented Narratives config, pointed at the module's simulated data (run 1 of two
    subjects; planted in MiniLM layer 3) copied into Narratives' layout."""
    work = tmp_path
    words = _narratives_layout(bids_run / "bids", work / "narratives", "pieman", ("sub-01", "sub-02"), "1")

    cfg = yaml.safe_load((REPO / "workflows" / "configs" / "narratives_pieman.yaml").read_text())
    cfg["dataset"]["bids_dir"] = str(work / "narratives")
    cfg["feature_sets"] = {"minilm": {"kind": "transformer", "layers": [3], "context_words": 10},
                           "word_rate": {"kind": "word_rate"}}
    cfg["preprocessing"]["fmriprep_confounds"]["strategy"] = ["motion", "scrub"]
    cfg["statistics"]["n_permutations"] = 0
    cfg["encoder"].update(inner_folds=2, alphas=[1.0, 100.0, 10000.0], outer_folds=3)
    cfg["threads"] = 1
    (work / "narratives.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work, "--configfile", str(work / "narratives.yaml"))
    root = work / "results" / "narratives_pieman"
    events = pd.read_csv(root / "stimuli" / "events.tsv", sep="\t")
    assert len(events) == len(words) > 400 and "mumbled" not in set(events["word"])
    scores = pd.read_csv(root / "scores.csv")
    assert set(scores["cv"]) == {"contiguous3_gap10"}  # one run: contiguous K-fold
    means = scores[(scores["fold"] == "mean") & (scores["feature_set"] == "minilm")].groupby("roi")["score"].mean()
    assert means["brain"] > 0.02  # no atlas: one ROI, the whole brain, planted voxels included
    mask = nib.load(str(root / "mask.nii.gz")).get_fdata() > 0
    planted = nib.load(str(bids_run / "bids" / "derivatives" / "simulation" / "planted_parcels.nii.gz")).get_fdata() > 0
    r = nib.load(str(root / "maps" / "minilm" / "group_stat-r.nii.gz")).get_fdata()[..., 0]
    assert _auc(r, mask, planted) >= 0.9
