"""The one-call scoring API (`brainalign.score_alignment`), against independent computations.

Scores are checked against scikit-learn's Ridge and scipy's pearsonr on the
same contiguous folds; ceilings against a hand-written leave-one-subject-out
ISC; inputs (tables, Responses, NIfTI + atlas, MNE objects, a model with its
words) against the arrays they hold.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from brainalign import CeilingWarning, score_alignment
from brainalign._validation import BrainalignError
from brainalign.io.responses import Responses


def _planted(n_subjects=4, n=240, n_features=8, noise=1.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features))
    signal = x @ rng.standard_normal((n_features, 4))
    ys = [signal + noise * rng.standard_normal(signal.shape) for _ in range(n_subjects)]
    return x, ys


def _sklearn_score(x, y, alpha, n_folds=5, gap=5):
    """Mean over contiguous folds (gap samples dropped around each test block) of the held-out Pearson r."""
    n = x.shape[0]
    per_fold = []
    for _, test in KFold(n_folds).split(x):
        keep = np.ones(n, dtype=bool)
        keep[max(test[0] - gap, 0): test[-1] + gap + 1] = False
        pred = Ridge(alpha=alpha).fit(x[keep], y[keep]).predict(x[test])
        per_fold.append([pearsonr(y[test, j], pred[:, j])[0] for j in range(y.shape[1])])
    return np.mean(per_fold, axis=0)


def _loso_isc(ys):
    ys = np.stack(ys)
    return np.array([[pearsonr(ys[i][:, j], np.delete(ys, i, axis=0).mean(axis=0)[:, j])[0]
                      for j in range(ys.shape[2])] for i in range(len(ys))])


def test_scores_match_sklearn_ridge_and_scipy():
    x, ys = _planted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        table = score_alignment(x, ys, clean=False, alphas=[10.0], progress=False)
    assert list(table["subject"].unique()) == ["sub-01", "sub-02", "sub-03", "sub-04"]
    for k, y in enumerate(ys):
        got = table[table["subject"] == f"sub-{k + 1:02d}"]["score"].to_numpy()
        np.testing.assert_allclose(got, _sklearn_score(x, y, 10.0), atol=1e-10)
    assert set(table["cv"]) == {"contiguous5_gap5"}


def test_ceiling_and_normalized_score_by_hand():
    x, ys = _planted(n_subjects=5, noise=3.0)
    rois = ["a", "a", "b", "b"]
    table = score_alignment(x, ys, rois=rois, clean=False, progress=False)
    isc = _loso_isc(ys)
    expected = {"a": isc[:, :2].mean(), "b": isc[:, 2:].mean()}
    for roi, value in expected.items():
        np.testing.assert_allclose(table.loc[table["roi"] == roi, "ceiling"], value, rtol=1e-12)
    ratio = table["score"] / table["ceiling"]
    np.testing.assert_allclose(table["normalized_score_unclipped"], ratio, rtol=1e-12)
    np.testing.assert_allclose(table["normalized_score"], ratio.clip(0, 1), rtol=1e-12)
    assert (table["exceeds_ceiling"] == (ratio > 1)).all()


def test_joint_fit_equals_one_subject_at_a_time():
    x, ys = _planted(n_subjects=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        together = score_alignment(x, ys, progress=False)
        alone = pd.concat([score_alignment(x, [y], subjects=[f"sub-{k + 1:02d}"], ceiling=None, progress=False)
                           for k, y in enumerate(ys)], ignore_index=True)
    np.testing.assert_allclose(together["score"], alone["score"], atol=1e-10)
    np.testing.assert_allclose(together["alpha"], alone["alpha"], rtol=1e-12)


def test_deterministic_bit_for_bit():
    x, ys = _planted(n_subjects=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        a = score_alignment({"l0": x, "l1": x[:, ::-1] ** 2}, ys, progress=False)
        b = score_alignment({"l0": x, "l1": x[:, ::-1] ** 2}, ys, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_warns_few_subjects_and_scores_above_ceiling():
    x, ys = _planted(n_subjects=3, noise=2.0)
    with pytest.warns(CeilingWarning) as record:
        table = score_alignment(x, ys, progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "from 3 subjects" in messages
    assert table["exceeds_ceiling"].any()
    assert f"{int(table['exceeds_ceiling'].sum())} of {len(table)} scores exceed" in messages


def test_warns_and_leaves_missing_a_negative_ceiling():
    rng = np.random.default_rng(1)
    x, ys = _planted(n_subjects=6)
    noise_units = [np.column_stack([y, rng.standard_normal((len(y), 1))]) for y in ys]
    with pytest.warns(CeilingWarning, match="ROI\\(s\\) noise"):
        table = score_alignment(x, noise_units, rois=["lang"] * 4 + ["noise"], progress=False)
    noise = table[table["roi"] == "noise"]
    assert noise["normalized_score"].isna().all()
    assert not table.loc[table["roi"] == "lang", "normalized_score"].isna().any()


def test_one_subject_has_no_ceiling_and_says_so():
    x, ys = _planted(n_subjects=1)
    with pytest.warns(CeilingWarning, match="at least 2 subjects"):
        table = score_alignment(x, ys[0], progress=False)
    assert table["ceiling"].isna().all() and table["normalized_score"].isna().all()


def test_threads_limited_during_the_call_and_restored(monkeypatch):
    from threadpoolctl import threadpool_info

    import brainalign.encoders.ridge as ridge

    seen = []
    original = ridge.cross_validated_pearson

    def spy(*args, **kwargs):
        seen.append({lib["num_threads"] for lib in threadpool_info()})
        return original(*args, **kwargs)

    before = [lib["num_threads"] for lib in threadpool_info()]
    monkeypatch.setattr(ridge, "cross_validated_pearson", spy)
    x, ys = _planted(n_subjects=1)
    score_alignment(x, ys, ceiling=None, n_threads=1, progress=False)
    assert seen and all(s == {1} for s in seen)
    assert [lib["num_threads"] for lib in threadpool_info()] == before


def test_dataframe_responses_name_their_units():
    x, ys = _planted(n_subjects=2)
    frames = {"s1": pd.DataFrame(ys[0], columns=list("ABCD")), "s2": pd.DataFrame(ys[1], columns=list("ABCD"))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        table = score_alignment(x, frames, progress=False)
    assert list(table["subject"].unique()) == ["s1", "s2"]
    assert list(table["unit"][:4]) == list("ABCD") and list(table["roi"][:4]) == list("ABCD")


def test_word_features_are_convolved_on_the_responses_times():
    from brainalign.features.design import hrf_convolve

    rng = np.random.default_rng(2)
    n, tr = 200, 2.0
    events = pd.DataFrame({"onset": np.sort(rng.uniform(0, n * tr - 20, 300)), "word": ["w"] * 300})
    words = rng.standard_normal((300, 3))
    times = 10.0 + tr * np.arange(n)
    expected = hrf_convolve(events["onset"].to_numpy(), np.zeros(300), words, times)
    y = expected @ rng.standard_normal((3, 2))
    y = y + 0.1 * y.std() * rng.standard_normal((n, 2))
    resp = Responses(y, tr, times, np.ones(n), ["u0", "u1"], ["roi", "roi"], "s18")
    table = score_alignment(words, resp, events=events, clean=False, ceiling=None, progress=False)
    assert list(table["subject"]) == ["s18", "s18"]
    assert (table["score"] > 0.95).all()
    # The same numbers from the design computed by hand, as samples-level features.
    by_hand = score_alignment(expected, resp, clean=False, ceiling=None, progress=False)
    np.testing.assert_allclose(table["score"], by_hand["score"], atol=1e-10)


def test_nifti_with_atlas_averages_each_parcel(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(3)
    labels = np.zeros((4, 4, 4), dtype=np.int16)
    labels[:2] = 1
    labels[2:] = 2
    data = rng.standard_normal((4, 4, 4, 120)).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((3.0, 3.0, 3.0, 2.0))
    nib.save(img, tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "atlas.nii.gz")
    means = np.column_stack([data[labels == v].mean(axis=0) for v in (1, 2)])
    x = rng.standard_normal((120, 4))
    table = score_alignment(x, tmp_path / "bold.nii.gz", atlas=tmp_path / "atlas.nii.gz",
                            atlas_labels=["left", "right"], ceiling=None, clean=False, progress=False)
    direct = score_alignment(x, means, unit_names=["left", "right"], ceiling=None, clean=False, progress=False)
    assert list(table["unit"]) == ["left", "right"]
    np.testing.assert_allclose(table["score"], direct["score"], atol=1e-6)
    with pytest.raises(BrainalignError, match="'atlas'.*'mask'"):
        score_alignment(x, tmp_path / "bold.nii.gz", progress=False)


def test_mne_raw_and_epochs():
    import mne

    rng = np.random.default_rng(4)
    info = mne.create_info(["C3", "C4"], sfreq=100.0, ch_types="eeg")
    x = rng.standard_normal((300, 3))
    data = (x @ rng.standard_normal((3, 2))).T + 0.5 * rng.standard_normal((2, 300))
    raw = mne.io.RawArray(data, info, verbose=False)
    table = score_alignment(x, raw, ceiling=None, clean=False, progress=False)
    assert list(table["unit"]) == ["C3", "C4"] and (table["score"] > 0.5).all()
    events = pd.DataFrame({"onset": np.linspace(0.1, 2.5, 20), "word": ["w"] * 20})
    with pytest.raises(BrainalignError, match="HRF convolution, which is for fMRI only"):
        score_alignment(rng.standard_normal((20, 3)), raw, events=events, ceiling=None, progress=False)
    epochs = mne.EpochsArray(rng.standard_normal((80, 2, 3)), info, verbose=False)
    table = score_alignment(rng.standard_normal((80, 2)), epochs, ceiling=None, progress=False, outer_folds=4,
                            gap=0)
    assert list(table["unit"]) == ["C3@0ms", "C3@10ms", "C3@20ms", "C4@0ms", "C4@10ms", "C4@20ms"]
    assert list(table["roi"]) == ["C3"] * 3 + ["C4"] * 3


def test_a_model_runs_on_the_words_heard():
    from brainalign.models.hf import default_model_path

    rng = np.random.default_rng(5)
    n, tr = 90, 2.0
    words = "the cat sat on the mat and then it ran far away from the dog".split() * 6
    events = pd.DataFrame({"onset": np.linspace(4, n * tr - 16, len(words)), "word": words})
    table = score_alignment(default_model_path(), rng.standard_normal((n, 2)), events=events, sampling_interval=tr,
                            layers=[0, 6], ceiling=None, progress=False)
    assert list(table["layer"].unique()) == ["0", "6"]
    assert table.attrs["settings"]["feature_set"]
    assert np.isfinite(table["score"]).all()


def test_mismatched_rows_name_both_counts():
    x, ys = _planted(n_subjects=1)
    with pytest.raises(BrainalignError, match="features have 100 rows, but subject 'sub-01' has 240 samples"):
        score_alignment(x[:100], ys[0], ceiling=None, progress=False)


def test_high_pass_auto_follows_the_known_sampling_interval():
    x, ys = _planted(n_subjects=1)
    arrays = score_alignment(x, ys, ceiling=None, progress=False)
    timed = score_alignment(x, ys, ceiling=None, sampling_interval=2.0, progress=False)
    assert arrays.attrs["settings"]["high_pass"] is None
    assert timed.attrs["settings"]["high_pass"] == 1 / 128
    assert not np.allclose(arrays["score"], timed["score"])


def test_runs_of_array_inputs_and_words_outside_them():
    """Words are convolved on their own run's samples; words of a run the data lack, or after a run's last
    sample, are refused (they would be left out silently)."""
    from brainalign.features.design import hrf_convolve

    rng = np.random.default_rng(6)
    n, tr = 100, 2.0
    onsets = np.tile(np.linspace(2, 180, 60), 2)
    events = pd.DataFrame({"onset": onsets, "word": ["w"] * 120, "run": np.repeat([1, 2], 60)})
    words = rng.standard_normal((120, 2))
    times = tr * np.arange(n)
    design = np.concatenate([hrf_convolve(onsets[:60], np.zeros(60), words[:60], times),
                             hrf_convolve(onsets[60:], np.zeros(60), words[60:], times)])
    y = design @ rng.standard_normal((2, 3)) + 0.05 * rng.standard_normal((2 * n, 3))
    runs = np.repeat([1, 2], n)
    table = score_alignment(words, y, events=events, runs=runs, sampling_interval=tr, clean=False, ceiling=None,
                            progress=False)
    by_hand = score_alignment(design, y, runs=runs, clean=False, ceiling=None, progress=False)
    np.testing.assert_allclose(table["score"], by_hand["score"], atol=1e-10)
    assert set(table["cv"]) == {"leave_one_run_out_gap5"}
    with pytest.raises(BrainalignError, match=r"words in run\(s\) \[2\], which subject 'sub-01' does not have"):
        score_alignment(words, y, events=events, sampling_interval=tr, ceiling=None, progress=False)
    late = events.assign(onset=onsets * 1.5)
    with pytest.raises(BrainalignError, match="after the last sample of run 1"):
        score_alignment(words, y, events=late, runs=runs, sampling_interval=tr, ceiling=None, progress=False)


def test_as_many_words_as_samples_are_still_words():
    from brainalign.features.design import hrf_convolve

    rng = np.random.default_rng(7)
    n, tr = 120, 2.0
    events = pd.DataFrame({"onset": np.sort(rng.uniform(0, n * tr - 10, n)), "word": ["w"] * n})
    words = rng.standard_normal((n, 2))
    design = hrf_convolve(events["onset"].to_numpy(), np.zeros(n), words, tr * np.arange(n))
    y = design @ rng.standard_normal((2, 2)) + 0.05 * rng.standard_normal((n, 2))
    table = score_alignment(words, y, events=events, sampling_interval=tr, clean=False, ceiling=None, progress=False)
    by_hand = score_alignment(design, y, clean=False, ceiling=None, progress=False)
    np.testing.assert_allclose(table["score"], by_hand["score"], atol=1e-10)


def test_mask_voxels_get_their_own_ceiling(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(8)
    shared = rng.standard_normal(80)
    mask = np.zeros((3, 3, 3), dtype=np.uint8)
    mask[1, 1, :] = 1
    for k in range(3):
        data = rng.standard_normal((3, 3, 3, 80))
        data[1, 1, 0] += 3 * shared  # one voxel shares a signal across subjects, the others do not
        nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / f"s{k}.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        table = score_alignment(shared[:, None], [tmp_path / f"s{k}.nii.gz" for k in range(3)],
                                mask=tmp_path / "mask.nii.gz", clean=False, gap=0, progress=False)
    ceilings = table.groupby("unit")["ceiling"].first()
    assert list(table["roi"][:3]) == list(table["unit"][:3])
    assert ceilings["voxel_1_1_0"] > 0.8 and (ceilings.drop("voxel_1_1_0").abs() < 0.3).all()


def test_mne_bad_and_stimulus_channels_are_left_out():
    import mne

    rng = np.random.default_rng(9)
    info = mne.create_info(["C3", "C4", "Cz", "STI"], sfreq=100.0, ch_types=["eeg", "eeg", "eeg", "stim"])
    raw = mne.io.RawArray(rng.standard_normal((4, 200)), info, verbose=False)
    raw.info["bads"] = ["C4"]
    table = score_alignment(rng.standard_normal((200, 2)), raw, ceiling=None, clean=False, progress=False)
    assert list(table["unit"]) == ["C3", "Cz"]


def test_a_ceiling_per_roi_is_given_by_name():
    x, ys = _planted(n_subjects=1)
    rois = ["a", "a", "b", "b"]
    table = score_alignment(x, ys, rois=rois, ceiling={"b": 0.5, "a": 0.8}, progress=False)
    assert table.groupby("roi")["ceiling"].first().to_dict() == {"a": 0.8, "b": 0.5}
    with pytest.raises(BrainalignError, match="a dict ROI -> ceiling"):
        score_alignment(x, ys, rois=rois, ceiling=[0.8, 0.5], progress=False)
