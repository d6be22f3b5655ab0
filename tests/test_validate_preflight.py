"""``brainalign validate`` checks a config against its data before anything runs (issue #21).

A config with too few volumes for the folds used to validate, then fail inside
a job with only a WARNING in ``logs/responses/*.log``; missing data files,
masks and atlases surfaced at their stage. Now each is refused at validate
with exit status 2, naming the config file, the field and the numbers, and
nothing written; the shipped configs still validate.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign.cli import main

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "workflows" / "configs"
#: The shipped configs that must validate here, and whether they read ../shared/data.
SHIPPED = {"default.yaml": False, "simulated_ci.yaml": False, "simulated_meg_ci.yaml": False,
           "simulated_seeg_ci.yaml": False, "simulated_images_ci.yaml": False, "simulated_bids_ci.yaml": True,
           "naturalstories_ci.yaml": True, "brennan2016.yaml": True}


def _validate(config: Path, capsys) -> tuple[int, str, str]:
    folder = sorted(p.name for p in config.parent.rglob("*"))
    status = main(["validate", "--config", str(config)])
    out = capsys.readouterr()
    assert sorted(p.name for p in config.parent.rglob("*")) == folder  # nothing written
    return status, out.out, " ".join(out.err.split())


def _write_config(folder: Path, cfg: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------- simulated
def _simulated(tmp_path: Path, simulation: dict | None = None, encoder: dict | None = None) -> Path:
    ci = yaml.safe_load((CONFIGS / "simulated_ci.yaml").read_text())
    ci["simulation"].update(simulation or {})
    ci["encoder"].update(encoder or {})
    return _write_config(tmp_path, ci)


def test_too_few_volumes_for_the_responses_stage_are_refused(tmp_path, capsys):
    """The WARNING 'subject ... has N samples, fewer than the 50 required' of the responses stage, up front."""
    status, out, err = _validate(_simulated(tmp_path, {"n_words": 60}), capsys)
    assert status == 2 and out == ""
    assert str(tmp_path / "config.yaml") in err and "field 'simulation.n_words'" in err
    assert "60 words gives 28 volumes" in err and "fewer than the 50" in err and "simulation.tr = 2 s" in err


@pytest.mark.parametrize("encoder,field,numbers", [
    ({"outer_folds": 40}, "encoder.outer_folds", ("40 contiguous outer folds", "1 test sample", "now 40")),
    ({"outer_folds": 2, "inner_folds": 40}, "encoder.inner_folds", ("40 contiguous inner folds", "now 40")),
    ({"outer_folds": 2, "gap": 60}, "encoder.gap", ("now 60", "training set of fold 0 is empty")),
])
def test_too_few_volumes_for_the_folds_are_refused(tmp_path, capsys, encoder, field, numbers):
    status, _, err = _validate(_simulated(tmp_path, {"n_words": 250}, encoder), capsys)
    assert status == 2
    assert f"field '{field}'" in err and "1 run of 71 samples" in err, err
    assert all(n in err for n in numbers), err


def test_a_simulated_config_says_what_it_checked(tmp_path, capsys):
    status, out, _ = _validate(_simulated(tmp_path), capsys)
    assert status == 0
    assert "valid (dataset 'simulated_ci'; 2 subjects, 1 run each, 169 volumes per run; 700 words" in out
    assert "cv contiguous4_gap5 with 3 inner folds; device cpu)" in out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_configs_validate(name, request, capsys):
    if SHIPPED[name]:
        request.getfixturevalue("shared_data")  # skips without ../shared/data
    status, out, err = _validate(CONFIGS / name, capsys)
    assert status == 0, err
    assert out.startswith(f"{CONFIGS / name}: valid (dataset ")


# --------------------------------------------------------------------------- timeseries
def _timeseries(folder: Path, lengths=(80, 80), subjects=("sub-01", "sub-02"), encoder=None, **dataset) -> Path:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for subject in subjects:
        for run, n in enumerate(lengths, 1):
            pd.DataFrame(rng.standard_normal((n, 3)), columns=["a", "b", "c"]).to_csv(
                data / f"{subject}_run-{run}.tsv", sep="\t", index=False)
    words = [(run, 5.0 + 0.8 * i, f"w{i}") for run in range(1, len(lengths) + 1) for i in range(40)]
    pd.DataFrame({"onset": [w[1] for w in words], "duration": 0.3, "word": [w[2] for w in words],
                  "run": [w[0] for w in words]}).to_csv(data / "words.tsv", sep="\t", index=False)
    return _write_config(folder, {
        "dataset": {"name": "mine", "kind": "timeseries", "responses": "data/{subject}_run-{run}.tsv",
                    "events": "data/words.tsv", "sampling_interval": 2.0, **dataset},
        "feature_sets": {"word_rate": {"kind": "word_rate"}}, "encoder": encoder or {}})


def test_timeseries_sample_counts_come_from_the_files(tmp_path, capsys):
    status, out, _ = _validate(_timeseries(tmp_path), capsys)
    assert status == 0
    assert "2 subjects, 2 runs each, 80 samples per run; 80 words; cv leave_one_run_out_gap5 with 5 inner" in out


def test_a_missing_response_file_is_named(tmp_path, capsys):
    config = _timeseries(tmp_path)
    (tmp_path / "data" / "sub-02_run-2.tsv").unlink()
    status, _, err = _validate(config, capsys)
    assert status == 2
    assert "field 'dataset.responses'" in err and str(tmp_path / "data" / "sub-02_run-2.tsv") in err


def test_one_subject_is_refused_before_the_ceiling_stage_fails(tmp_path, capsys):
    status, _, err = _validate(_timeseries(tmp_path, subjects=("sub-01",)), capsys)
    assert status == 2
    assert "field 'dataset.subjects'" in err and "1 subject to analyse (sub-01)" in err and "at least 2" in err


def test_a_subject_with_other_run_lengths_is_named(tmp_path, capsys):
    config = _timeseries(tmp_path)
    _timeseries(tmp_path, lengths=(80, 70), subjects=("sub-03",))
    status, _, err = _validate(config, capsys)
    assert status == 2
    assert "sub-03_run-2.tsv" in err and "has 70 samples" in err and "sub-01's has 80" in err


def test_runs_too_short_for_leave_one_run_out_inner_folds(tmp_path, capsys):
    status, _, err = _validate(_timeseries(tmp_path, lengths=(30, 30), encoder={"inner_folds": 20}), capsys)
    assert status == 2
    assert "field 'encoder.inner_folds'" in err and "leave-one-run-out over 2 runs" in err
    assert "2 runs of 30, 30 samples" in err and "20 contiguous inner folds" in err and "1 test sample" in err



def test_a_word_after_the_end_of_its_run_is_named(tmp_path, capsys):
    config = _timeseries(tmp_path)
    with (tmp_path / "data" / "words.tsv").open("a") as f:
        f.write("500.0\t0.3\tlate\t1\n")
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.events'" in err and "'late'" in err and "80 volumes" in err

# --------------------------------------------------------------------------- BIDS: data, mask, atlas
SHAPE, AFFINE, TASK, SPACE = (5, 6, 4), np.diag([3.0, 3.0, 3.0, 1.0]), "story", "MNI152NLin2009cAsym"


def _nifti(path: Path, data: np.ndarray, affine=AFFINE, tr: float | None = None) -> None:
    img = nib.Nifti1Image(data, affine)
    if tr is not None:
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = tr
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _bids(root: Path, n_vol: int = 70, **dataset) -> Path:
    prep = root / "bids" / "derivatives" / "fmriprep"
    (root / "bids").mkdir(parents=True, exist_ok=True)
    (root / "bids" / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:4, 1:5, 1:3] = 1
    for subject in ("sub-01", "sub-02"):
        for run in (1, 2):
            stem = f"{subject}_task-{TASK}_run-{run}"
            data = np.random.default_rng(run).standard_normal(SHAPE + (n_vol,)).astype(np.float32)
            _nifti(prep / subject / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz", data, tr=2.0)
            _nifti(prep / subject / "func" / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz", mask)
            events = root / "bids" / subject / "func" / f"{stem}_events.tsv"
            events.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"onset": np.arange(4.0, 100.0, 2.0), "duration": 0.3,
                          "word": [f"w{k}" for k in range(48)]}).to_csv(events, sep="\t", index=False)
    atlas = np.zeros(SHAPE, np.int16)
    atlas[1:3, 1:5, 1:3], atlas[3, 1:5, 1:3] = 1, 2
    _nifti(root / "atlas.nii.gz", atlas)
    return _write_config(root, {
        "dataset": {"name": "tiny", "kind": "bids", "bids_dir": "bids", "task": TASK, **dataset},
        "feature_sets": {"word_rate": {"kind": "word_rate"}}, "preprocessing": {"confounds": "none"}})


def test_a_bids_dataset_with_atlas_and_masks(tmp_path, capsys):
    status, out, _ = _validate(_bids(tmp_path, atlas="atlas.nii.gz"), capsys)
    assert status == 0
    assert "2 subjects, 2 runs each, 70 volumes per run; 96 words; brain masks of 4 runs on the BOLD grid" in out
    assert "atlas atlas.nii.gz (2 labels on the data's grid)" in out


def test_a_missing_atlas_is_named(tmp_path, capsys):
    status, _, err = _validate(_bids(tmp_path, atlas="no_atlas.nii.gz"), capsys)
    assert status == 2 and "field 'dataset.atlas'" in err and str(tmp_path / "no_atlas.nii.gz") in err


def test_an_unreadable_atlas_is_named(tmp_path, capsys):
    config = _bids(tmp_path, atlas="atlas.nii.gz")
    (tmp_path / "atlas.nii.gz").write_text("not an image")
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.atlas'" in err and str(tmp_path / "atlas.nii.gz") in err
    assert "not a readable NIfTI image" in err


def test_an_atlas_off_the_data_grid_is_refused(tmp_path, capsys):
    config = _bids(tmp_path, atlas="far.nii.gz")
    far = AFFINE.copy()
    far[0, 3] = 500.0  # 50 cm away: resampled onto the data's grid, no label is left
    _nifti(tmp_path / "far.nii.gz", np.ones(SHAPE, np.int16), affine=far)
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.atlas'" in err and "no label of" in err


@pytest.mark.parametrize("mask,message", [("no_mask.nii.gz", "does not exist"), ("atlas.nii.gz", "binary")])
def test_a_bad_mask_file_is_named(tmp_path, capsys, mask, message):
    status, _, err = _validate(_bids(tmp_path, mask=mask), capsys)
    assert status == 2 and "field 'dataset.mask'" in err and str(tmp_path / mask) in err and message in err


def test_missing_bids_data_is_named(tmp_path, capsys):
    config = _bids(tmp_path)
    for path in (tmp_path / "bids" / "derivatives" / "fmriprep" / "sub-02" / "func").glob("*run-2*"):
        path.unlink()
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.bids_dir'" in err and "sub-02 has 1 run but sub-01 has 2" in err


def test_fmriprep_confounds_must_be_there(tmp_path, capsys):
    config = _bids(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["preprocessing"]["confounds"] = "fmriprep"
    config.write_text(yaml.safe_dump(cfg))
    status, _, err = _validate(config, capsys)
    assert status == 2 and "no confounds TSV" in err and "preproc_bold.nii.gz" in err


# --------------------------------------------------------------------------- other kinds
def test_a_missing_data_dir_is_named(tmp_path, capsys):
    config = _write_config(tmp_path, {"dataset": {"name": "a", "kind": "alice", "data_dir": "nowhere"},
                                      "feature_sets": {"word_rate": {"kind": "word_rate"}}})
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.data_dir'" in err and str(tmp_path / "nowhere") in err


def test_a_test_split_leaving_no_training_run_is_refused(tmp_path, capsys):
    cfg = yaml.safe_load((CONFIGS / "simulated_meg_ci.yaml").read_text())
    cfg["simulation"]["meeg"]["n_runs"] = 2
    cfg["electrophysiology"]["test_runs"] = [1, 2]
    status, _, err = _validate(_write_config(tmp_path, cfg), capsys)
    assert status == 2 and "field 'electrophysiology.test_runs'" in err and "leaves no run for training" in err


def test_too_few_training_images_are_refused(tmp_path, capsys):
    cfg = yaml.safe_load((CONFIGS / "simulated_images_ci.yaml").read_text())
    cfg["simulation"]["images"].update(n_images=20, n_test=19)
    status, _, err = _validate(_write_config(tmp_path, cfg), capsys)
    assert status == 2 and "field 'simulation.images.n_test'" in err and "19 test and 1 training" in err


def _recordings(folder: Path) -> Path:
    for subject in ("sub-01", "sub-02"):
        for run in (1, 2):
            (folder / subject).mkdir(parents=True, exist_ok=True)
            (folder / subject / f"run-{run}_raw.fif").write_bytes(b"")  # never read by validate
            (folder / subject / f"run-{run}_events.tsv").write_text("onset\tword\n1.0\tgo\n2.5\tstop\n")
    return _write_config(folder, {
        "dataset": {"name": "meg", "kind": "recordings", "datatype": "meg",
                    "recordings": "{subject}/run-{run}_raw.fif", "recording_events": "{subject}/run-{run}_events.tsv"},
        "feature_sets": {"minilm": {"kind": "transformer", "layers": [3]}},
        "electrophysiology": {"target_feature_set": "minilm", "target_layer": "3"}})


def test_a_missing_recording_is_named(tmp_path, capsys):
    config = _recordings(tmp_path)
    status, out, _ = _validate(config, capsys)
    assert status == 0 and "2 subjects, 2 runs, 4 words; test split whole run(s) [2] of [1, 2]" in out
    (tmp_path / "sub-02" / "run-2_raw.fif").unlink()
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.recordings'" in err and str(tmp_path / "sub-02" / "run-2_raw.fif") in err


def _mini_nsd(root: Path, n_images: int = 12, n_shared: int = 4) -> Path:
    """NSD's files at a toy size: expdesign, stimuli brick, captions, one subject's ROI and betas."""
    import h5py
    from scipy.io import savemat

    design = root / "nsddata" / "experiments" / "nsd"
    design.mkdir(parents=True)
    order = np.arange(n_images)
    savemat(design / "nsd_expdesign.mat", {"masterordering": order[None] + 1, "subjectim": order[None] + 1,
                                           "sharedix": np.arange(n_shared)[None] + 1})
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True)
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=np.zeros((n_images, 4, 4, 3), np.uint8))
    roi = root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi" / "nsdgeneral.nii.gz"
    _nifti(roi, np.ones((3, 3, 2), np.int16), affine=np.eye(4))
    betas = root / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    betas.mkdir(parents=True)
    with h5py.File(betas / "betas_session01.hdf5", "w") as f:
        f.create_dataset("betas", data=np.zeros((n_images, 3, 3, 2), np.int16))
    (root / "captions.csv").write_text("nsd_id,caption\n0,a cat\n")
    (root / "embeddings.h5").write_bytes(b"")
    return _write_config(root, {"dataset": {"name": "nsd", "kind": "nsd", "data_dir": ".", "nsd": {
        "subjects": [1], "captions": "captions.csv", "embeddings": "embeddings.h5"}}})


def test_nsd_files_are_checked_from_their_headers(tmp_path, capsys):
    config = _mini_nsd(tmp_path)
    status, out, _ = _validate(config, capsys)
    assert status == 0 and "1 subject, 12 images each, ROI nsdgeneral" in out
    (tmp_path / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi" / "nsdgeneral.nii.gz").unlink()
    status, _, err = _validate(config, capsys)
    assert status == 2 and "field 'dataset.data_dir'" in err and "nsdgeneral.nii.gz" in err and "ROI" in err
