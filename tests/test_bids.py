"""BIDS + fMRIPrep input: file discovery, word timings, confounds, bad inputs, per-run cleaning.

A tiny fMRIPrep-style dataset is written by hand for each test (a 6 x 7 x 5
grid), so that every failure mode can be planted in one file.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign._validation import ConfigError, InputFileError
from brainalign.config import validate_config
from brainalign.datasets.bids import (
    find_bids_runs,
    list_bids_subjects,
    parse_entities,
    read_run_words,
    run_geometry,
)
from brainalign.datasets.simulated_bids import _confounds_table
from brainalign.io import read_responses
from brainalign.pipeline.stages import dataset_timing, run_stimuli
from brainalign.pipeline.volumes import run_mask, run_volume_responses
from brainalign.preprocess.confounds import load_fmriprep_confounds
from brainalign.preprocess.fmri import clean_signals

SHAPE = (6, 7, 5)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
TASK = "story"
SPACE = "MNI152NLin2009cAsym"


def _nifti(path: Path, data: np.ndarray, affine=AFFINE, tr: float | None = None) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header["pixdim"][4] = tr
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def write_tiny_bids(root: Path, subjects=("sub-01", "sub-02"), runs=(1, 2), n_vol=60, tr=2.0,
                    seed=0, motion_scale=0.0) -> Path:
    """Raw events + fMRIPrep derivatives; voxel (2, 3, 2) carries the word-rate response."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:5, 1:6, 1:4] = 1
    prep = root / "derivatives" / "fmriprep"
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    for subject in subjects:
        for run in runs:
            stem = f"{subject}_task-{TASK}_run-{run}"
            data = np.zeros(SHAPE + (n_vol,), np.float32)
            inside = rng.standard_normal((int(mask.sum()), n_vol)).astype(np.float32)
            motion = np.cumsum(rng.standard_normal((n_vol, 6)) * 0.05, axis=0)
            data[mask > 0] = 100 + inside + motion_scale * (motion @ rng.standard_normal((6, int(mask.sum())))).T
            _nifti(prep / subject / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz", data, tr=tr)
            _nifti(prep / subject / "func" / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz", mask)
            conf = _confounds_table(motion, data[mask > 0].mean(axis=0).astype(float), rng)
            (prep / subject / "func" / f"{stem}_desc-confounds_timeseries.tsv").write_text(
                conf.to_csv(sep="\t", index=False, na_rep="n/a"))
            (prep / subject / "func" / f"{stem}_desc-confounds_timeseries.json").write_text("{}")
            words = pd.DataFrame({"onset": np.arange(4.0, n_vol * tr - 10, 0.9), "duration": 0.3})
            words["trial_type"] = "word"
            words["word"] = [f"w{k}" for k in range(len(words))]
            events = root / subject / "func" / f"{stem}_events.tsv"
            events.parent.mkdir(parents=True, exist_ok=True)
            events.write_text(words.to_csv(sep="\t", index=False))
    return root


def _cfg(root: Path, **dataset) -> dict:
    raw = {"dataset": {"name": "tiny", "kind": "bids", "bids_dir": str(root), "task": TASK, **dataset},
           "feature_sets": {"word_rate": {"kind": "word_rate"}},
           "preprocessing": {"confounds": "fmriprep", "fmriprep_confounds": {"strategy": ["motion"],
                                                                            "motion": "basic"}}}
    return validate_config(raw, root / "config.yaml")


# --------------------------------------------------------------------------- discovery
def test_parse_entities():
    assert parse_entities("sub-01_ses-a_task-x_run-2_space-MNI_res-2_desc-preproc_bold.nii.gz") == (
        {"sub": "01", "ses": "a", "task": "x", "run": "2", "space": "MNI", "res": "2", "desc": "preproc"},
        "bold", ".nii.gz")
    assert parse_entities("not a bids name.txt") == ({}, "", "")


def test_find_runs_mask_confounds_and_geometry(tmp_path):
    root = write_tiny_bids(tmp_path / "ds")
    cfg = _cfg(root)
    assert list_bids_subjects(cfg["dataset"]) == ["sub-01", "sub-02"]
    runs = find_bids_runs(cfg["dataset"], "sub-02")
    assert [(r.run, r.label) for r in runs] == [(1, 1), (2, 2)]
    assert runs[0].mask.name.endswith("desc-brain_mask.nii.gz")
    assert runs[1].confounds.name == "sub-02_task-story_run-2_desc-confounds_timeseries.tsv"
    assert run_geometry(runs) == (2.0, [60, 60])
    tr, frames = dataset_timing(cfg)
    assert tr == 2.0 and list(frames) == [1, 2] and np.allclose(frames[2], np.arange(60) * 2.0)
    one = _cfg(root, runs=[2])
    assert [r.run for r in find_bids_runs(one["dataset"], "sub-01")] == [2]


def test_stimuli_from_bids_events(tmp_path):
    root = write_tiny_bids(tmp_path / "ds")
    cfg = _cfg(root)
    run_stimuli(cfg, tmp_path / "events.tsv")
    events = pd.read_csv(tmp_path / "events.tsv", sep="\t")
    per_run = events.groupby("run").size()
    assert list(per_run.index) == [1, 2] and per_run.iloc[0] == per_run.iloc[1] == len(np.arange(4.0, 110, 0.9))
    assert events["onset"].iloc[0] == 4.0 and events["word"].iloc[1] == "w1"


def test_confounds_through_nilearn_and_scrub_spikes(tmp_path):
    root = write_tiny_bids(tmp_path / "ds")
    bold = find_bids_runs(_cfg(root)["dataset"], "sub-01")[0].bold
    tsv = pd.read_csv(str(bold).replace("_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                                        "_desc-confounds_timeseries.tsv"), sep="\t")
    values, names = load_fmriprep_confounds(bold, {"strategy": ["motion"], "motion": "basic"}, 60)
    assert sorted(names) == sorted(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    expected = tsv[names].to_numpy() - tsv[names].to_numpy().mean(axis=0)  # nilearn demeans
    np.testing.assert_allclose(values, expected, atol=1e-10)
    values24, names24 = load_fmriprep_confounds(bold, {"strategy": ["motion"], "motion": "full"}, 60)
    assert len(names24) == 24 and np.isfinite(values24).all()
    # Scrubbing: volumes with FD above the threshold become one spike column each.
    fd = tsv["framewise_displacement"].to_numpy()
    threshold = float(np.nanquantile(fd, 0.9))
    values_s, names_s = load_fmriprep_confounds(
        bold, {"strategy": ["motion", "scrub"], "motion": "basic", "fd_threshold": threshold,
               "std_dvars_threshold": 100.0, "scrub": 0}, 60)
    spikes = [n for n in names_s if n.startswith("scrub_")]
    flagged = sorted(int(i) for i in np.flatnonzero(fd > threshold))
    assert [int(n.split("_")[1]) for n in spikes] == flagged
    spike_cols = values_s[:, [names_s.index(n) for n in spikes]]
    assert np.array_equal(spike_cols.sum(axis=0), np.ones(len(spikes)))


@pytest.mark.parametrize("n_vol, motion, n_confounds, minimum", [
    (60, "basic", 8, 30),   # 6 motion + WM + CSF: half of the run (30) binds
    (40, "full", 26, 29),   # 24 motion + WM + CSF: more than 26 + mean + trend (29) binds
])
def test_scrubbing_must_leave_enough_volumes(tmp_path, n_vol, motion, n_confounds, minimum):
    root = write_tiny_bids(tmp_path / "ds", runs=(1,), n_vol=n_vol)
    bold = find_bids_runs(_cfg(root)["dataset"], "sub-01")[0].bold
    tsv = bold.with_name("sub-01_task-story_run-1_desc-confounds_timeseries.tsv")
    fd = pd.read_csv(tsv, sep="\t")["framewise_displacement"].to_numpy()
    ranked = np.sort(fd[1:])[::-1]  # volume 0 has no FD (n/a) and is never flagged

    def settings(n_flagged):
        threshold = float(ranked[n_flagged - 1] + ranked[n_flagged]) / 2  # flags the n_flagged largest
        return {"strategy": ["motion", "wm_csf", "scrub"], "motion": motion, "wm_csf": "basic",
                "fd_threshold": threshold, "std_dvars_threshold": 100.0, "scrub": 0}

    # At the limit: the spikes are added; one volume more is an error naming the TSV and the fields.
    values, names = load_fmriprep_confounds(bold, settings(n_vol - minimum), n_vol)
    assert values.shape == (n_vol, n_confounds + n_vol - minimum)
    assert sum(n.startswith("scrub_") for n in names) == n_vol - minimum
    too_many = settings(n_vol - minimum + 1)
    with pytest.raises(InputFileError) as info:
        load_fmriprep_confounds(bold, too_many, n_vol)
    message = str(info.value)
    assert info.value.path == tsv
    for text in (f"preprocessing.fmriprep_confounds.fd_threshold = {too_many['fd_threshold']:g} mm",
                 "std_dvars_threshold = 100",
                 f"censors {n_vol - minimum + 1} of the run's {n_vol} volumes, leaving {minimum - 1}",
                 f"at least {minimum} must remain", "dataset.subjects"):
        assert text in message, (text, message)
    assert ("half of the run" in message) == (minimum == n_vol // 2)
    assert (f"its {n_confounds} other confound(s)" in message) == (minimum != n_vol // 2)


def test_scrubbing_every_volume_is_not_blamed_on_a_nan_column(tmp_path):
    # Nilearn demeans the confounds over the kept volumes: with none kept, every
    # column is NaN. The error says what happened instead.
    root = write_tiny_bids(tmp_path / "ds", runs=(1,))
    bold = find_bids_runs(_cfg(root)["dataset"], "sub-01")[0].bold
    fd = pd.read_csv(bold.with_name("sub-01_task-story_run-1_desc-confounds_timeseries.tsv"),
                     sep="\t")["framewise_displacement"]
    settings = {"strategy": ["motion", "wm_csf", "scrub"], "motion": "full", "wm_csf": "basic",
                "fd_threshold": float(fd.quantile(0.005)), "std_dvars_threshold": 1.5, "scrub": 5}
    with pytest.raises(InputFileError, match="censors 60 of the run's 60 volumes, leaving 0") as info:
        load_fmriprep_confounds(bold, settings, 60)
    assert "NaN" not in str(info.value)


def test_non_steady_state_volumes_count_as_censored(tmp_path):
    root = write_tiny_bids(tmp_path / "ds", runs=(1,))
    bold = find_bids_runs(_cfg(root)["dataset"], "sub-01")[0].bold
    tsv = bold.with_name("sub-01_task-story_run-1_desc-confounds_timeseries.tsv")
    table = pd.read_csv(tsv, sep="\t")
    for k in range(31):  # fMRIPrep's one-hot columns, here for the first 31 of 60 volumes
        table[f"non_steady_state_outlier{k:02d}"] = (np.arange(60) == k).astype(float)
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputFileError, match="non_steady_state_outlier columns censor 31 of the run's 60 volumes, "
                                             "leaving 29; at least 30 must remain"):
        load_fmriprep_confounds(bold, {"strategy": ["motion"], "motion": "basic"}, 60)


def test_report_states_the_confounds_regressed(tmp_path):
    from brainalign.report.html import _fmriprep_confounds_text

    raw = {"dataset": {"name": "x", "kind": "bids", "bids_dir": str(tmp_path), "task": TASK},
           "feature_sets": {"w": {"kind": "word_rate"}}}
    pre = validate_config(raw, tmp_path / "c.yaml")["preprocessing"]  # the default
    assert _fmriprep_confounds_text(pre) == ", fMRIPrep confounds: motion (full), wm_csf (basic)"
    pre["fmriprep_confounds"].update(strategy=["motion", "scrub"], motion="basic", fd_threshold=0.3)
    assert _fmriprep_confounds_text(pre) == (
        ", fMRIPrep confounds: motion (basic), scrub (FD > 0.3 mm or std DVARS > 1.5, segments < 5 volumes)")
    pre["fmriprep_confounds"]["preset"] = "compcor"
    assert _fmriprep_confounds_text(pre) == ", fMRIPrep confounds: nilearn preset 'compcor'"
    assert _fmriprep_confounds_text(dict(pre, confounds="none")) == ""


def test_responses_clean_each_run_with_its_own_confounds(tmp_path):
    root = write_tiny_bids(tmp_path / "ds", motion_scale=3.0)
    cfg = _cfg(root)
    run_mask(cfg, tmp_path / "mask.nii.gz")
    mask = nib.load(str(tmp_path / "mask.nii.gz")).get_fdata() > 0
    assert mask.sum() == 4 * 5 * 3
    out = run_volume_responses(cfg, "sub-01", tmp_path / "mask.nii.gz", tmp_path / "sub-01.h5")
    resp = read_responses(out)
    assert resp.n_samples == 120 and resp.n_units == 60 and list(np.unique(resp.runs)) == [1, 2]
    assert resp.confounds.shape == (120, 12)  # 6 motion columns per run, block-diagonal
    assert not resp.confounds[:60, 6:].any() and not resp.confounds[60:, :6].any()
    # Independent reference: per run, nilearn.signal.clean on the voxels in C order.
    from nilearn.signal import clean

    runs = find_bids_runs(cfg["dataset"], "sub-01")
    for k, run in enumerate(runs):
        raw = nib.load(str(run.bold)).get_fdata()[mask].T
        conf, _ = load_fmriprep_confounds(run.bold, cfg["preprocessing"]["fmriprep_confounds"], 60)
        ref = clean(raw, detrend=True, high_pass=1 / 128, t_r=2.0, standardize="zscore_sample", confounds=conf)
        np.testing.assert_allclose(resp.data[60 * k:60 * (k + 1)], ref, atol=1e-4)
    # The grid maps units back to voxels.
    assert resp.unit_index.shape == SHAPE and (resp.unit_index >= 0).sum() == 60
    np.testing.assert_array_equal(resp.affine, AFFINE)


def test_clean_signals_per_run_matches_nilearn_runs():
    from nilearn.signal import clean

    rng = np.random.default_rng(3)
    x = rng.standard_normal((90, 7))
    runs = np.repeat([1, 2, 3], 30)
    conf = rng.standard_normal((90, 2))
    settings = {"detrend": True, "high_pass": 0.01, "standardize": "zscore_sample", "confounds": "motion"}
    ours = clean_signals(x, 2.0, settings, runs, conf)
    ref = clean(x, runs=runs, detrend=True, high_pass=0.01, t_r=2.0, standardize="zscore_sample", confounds=conf)
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------- bad configs
# (malformed images, masks, confounds and events: tests/test_error_catalogue.py)
def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="dataset.task"):
        validate_config({"dataset": {"name": "x", "kind": "bids", "bids_dir": str(tmp_path)},
                         "feature_sets": {"w": {"kind": "word_rate"}}}, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="dataset.atlas"):
        validate_config({"dataset": {"name": "x", "kind": "simulated_bids"},
                         "feature_sets": {"m": {"kind": "transformer"}}}, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="preprocessing.confounds"):
        validate_config({"dataset": {"name": "x", "kind": "simulated"},
                         "feature_sets": {"m": {"kind": "transformer"}},
                         "preprocessing": {"confounds": "fmriprep"}}, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="fmriprep_confounds.motion"):
        validate_config({"dataset": {"name": "x", "kind": "bids", "bids_dir": ".", "task": "t"},
                         "feature_sets": {"w": {"kind": "word_rate"}},
                         "preprocessing": {"fmriprep_confounds": {"motion": "36p"}}}, tmp_path / "c.yaml")


def test_words_from_a_headerless_alignment_file(tmp_path):
    root = write_tiny_bids(tmp_path / "ds", runs=(1,))
    align = root / "stimuli" / "gentle" / "story" / "align.csv"
    align.parent.mkdir(parents=True)
    align.write_text("Once,once,1.00,1.30\nupon,upon,1.30,1.52\nglorp,<unk>,,\na,a,1.60,1.70\n")
    cfg = _cfg(root, word_events={"pattern": "stimuli/gentle/{task}/align.csv",
                                  "columns": ["word", "aligned", "onset", "offset"], "sep": ",",
                                  "offset_column": "offset", "duration_column": None, "onset_shift": 2.0})
    run = find_bids_runs(cfg["dataset"], "sub-01")[0]
    words = read_run_words(cfg["dataset"], run, 60, 2.0)
    assert words["word"].tolist() == ["Once", "upon", "a"]  # the unaligned word is skipped
    np.testing.assert_allclose(words["onset"], [3.0, 3.3, 3.6])
    np.testing.assert_allclose(words["duration"], [0.3, 0.22, 0.1])


@pytest.mark.parametrize("line, message", [
    ('a,a,"1,60",1.70', r"column 'onset' is not a number at row 3 \(line 4\): '1,60'; a decimal comma"),
    ("a,a,inf,1.70", r"column 'onset' is infinite at row 3 \(line 4\): 'inf'"),
    ("a,a,1.60,soon", r"column 'offset' is not a number at row 3 \(line 4\): 'soon'"),
])
def test_word_timings_that_are_not_numbers_are_errors(tmp_path, line, message):
    """Only an empty cell or n/a means an unaligned word; other text used to be skipped the same way."""
    root = write_tiny_bids(tmp_path / "ds", runs=(1,))
    align = root / "align.csv"  # headerless: data row 3 is line 4
    align.write_text(f"Once,once,1.00,1.30\nupon,upon,1.30,1.52\nglorp,<unk>,n/a,\n{line}\n")
    cfg = _cfg(root, word_events={"pattern": "align.csv", "columns": ["word", "aligned", "onset", "offset"],
                                  "sep": ",", "offset_column": "offset", "duration_column": None})
    run = find_bids_runs(cfg["dataset"], "sub-01")[0]
    with pytest.raises(InputFileError, match=message) as err:
        read_run_words(cfg["dataset"], run, 60, 2.0)
    assert err.value.path == align


def test_bids_events_durations_that_are_not_numbers_are_errors(tmp_path):
    root = write_tiny_bids(tmp_path / "ds", runs=(1,))
    events = root / "sub-01" / "func" / f"sub-01_task-{TASK}_run-1_events.tsv"
    table = pd.read_csv(events, sep="\t", dtype=str)
    table.loc[2, "duration"] = "0,3"  # used to become a duration of 0 s without a word
    table.to_csv(events, sep="\t", index=False)
    run = find_bids_runs(_cfg(root)["dataset"], "sub-01")[0]
    with pytest.raises(InputFileError, match=r"column 'duration' is not a number at row 2 \(line 4\): '0,3'"):
        read_run_words(_cfg(root)["dataset"], run, 60, 2.0)


def test_parcel_units_and_sessions(tmp_path):
    """units: parcels gives one mean time course per atlas label; ses- folders are found and ordered."""
    root = write_tiny_bids(tmp_path / "ds", subjects=("sub-01", "sub-02"), runs=(1,))
    # Move every subject's run into two sessions (a and b), as a multi-session study would have it.
    for path in sorted(root.rglob("*run-1*")):
        for ses in ("b", "a"):
            new_name = path.name.replace("_task-", f"_ses-{ses}_task-")
            dest = path.parent.parent / f"ses-{ses}" / "func" / new_name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
        path.unlink()
    atlas = np.zeros(SHAPE, np.int16)
    atlas[1:3, 1:6, 1:4] = 2
    atlas[3:5, 1:6, 1:4] = 7
    _nifti(tmp_path / "atlas.nii.gz", atlas)
    cfg = _cfg(root, units="parcels", atlas=str(tmp_path / "atlas.nii.gz"), atlas_labels={"7": "seven"})
    runs = find_bids_runs(cfg["dataset"], "sub-01")
    assert [(r.session, r.label) for r in runs] == [("a", 1), ("b", 2)]
    run_mask(cfg, tmp_path / "mask.nii.gz")
    resp = read_responses(run_volume_responses(cfg, "sub-01", tmp_path / "mask.nii.gz", tmp_path / "p.h5"))
    assert resp.unit_names == ["label_2", "seven"] and resp.n_samples == 120
    # Reference: the mean of the label's voxels, then the same cleaning per session.
    from nilearn.signal import clean

    conf_settings = cfg["preprocessing"]["fmriprep_confounds"]
    for k, run in enumerate(runs):
        data = nib.load(str(run.bold)).get_fdata()
        raw = np.stack([data[atlas == 2].mean(0), data[atlas == 7].mean(0)], axis=1)
        conf, _ = load_fmriprep_confounds(run.bold, conf_settings, 60)
        ref = clean(raw, detrend=True, high_pass=1 / 128, t_r=2.0, standardize="zscore_sample", confounds=conf)
        np.testing.assert_allclose(resp.data[60 * k:60 * (k + 1)], ref, atol=1e-4)
    assert (resp.unit_index == 0).sum() == (atlas == 2).sum() and (resp.unit_index == 1).sum() == (atlas == 7).sum()
    # Parcel values written back fill every voxel of their parcel.
    from brainalign.preprocess.nifti import VolumeGrid, read_score_map, write_score_map

    grid = VolumeGrid.from_unit_index(resp.affine, resp.unit_index)
    data, affine = read_score_map(write_score_map([0.25, -0.5], grid, tmp_path / "parcels.nii.gz"))
    np.testing.assert_array_equal(data, np.select([atlas == 2, atlas == 7], [0.25, -0.5], 0.0))
    np.testing.assert_array_equal(affine, AFFINE)


def test_nested_cv_pearson_matches_himalaya_with_the_same_folds():
    """The volume path's nested CV against himalaya's RidgeCV on the same leave-one-run-out folds."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV

    from brainalign.encoders.ridge_cv import nested_cv_pearson
    from brainalign.pipeline.stages import encoder_cv_options

    set_backend("numpy")
    rng = np.random.default_rng(0)
    runs = np.repeat([1, 2, 3], 80)
    x = rng.standard_normal((240, 30))
    y = (x @ rng.standard_normal((30, 40)) * 0.3 + rng.standard_normal((240, 40))).astype(np.float32)
    alphas = np.logspace(-1, 4, 6)
    enc = {"outer_folds": 5, "inner_folds": 5, "gap": 0, "alphas": alphas.tolist(), "alpha_per_target": True,
           "pooled": False}
    ours = nested_cv_pearson(x, y, **encoder_cv_options(enc), groups=runs)
    assert ours["fold_scores"].shape == (3, 40) and np.isfinite(ours["predictions"]).all()
    for k, held in enumerate((1, 2, 3)):
        train, test = runs != held, runs == held
        inner = [(np.flatnonzero(runs[train] != r), np.flatnonzero(runs[train] == r)) for r in np.unique(runs[train])]
        ref = HimalayaRidgeCV(alphas=alphas, cv=inner, fit_intercept=True).fit(x[train].astype(np.float32), y[train])
        # himalaya averages R^2 over inner folds, we average squared error: the same
        # choice unless two alphas are nearly tied for a target.
        same = np.isclose(ours["alphas"][k], np.asarray(ref.best_alphas_), rtol=1e-6)
        assert same.mean() >= 0.9
        np.testing.assert_allclose(ours["predictions"][test][:, same],
                                   np.asarray(ref.predict(x[test].astype(np.float32)))[:, same],
                                   rtol=1e-3, atol=1e-4)


def test_story_split_across_runs_keeps_its_context():
    from brainalign.datasets.simulated_bids import LEAD_IN, split_story
    from brainalign.stimuli.events import context_groups

    events = split_story(300, 3, seed=1)
    assert list(events.groupby("run").size()) == [100, 100, 100]
    assert (events.groupby("run")["onset"].min() == LEAD_IN).all()
    assert set(context_groups(events)) == {0}  # one story: context never resets
    assert list(np.unique(context_groups(events.drop(columns="story")))) == [1, 2, 3]
