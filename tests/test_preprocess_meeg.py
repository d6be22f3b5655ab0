"""MEG/EEG preprocessing (Défossez et al. 2023 chain) against independent references.

References are scipy.signal (Butterworth + sosfiltfilt, FFT resampling),
numpy (slicing, median, percentiles, trigonometry) and scikit-learn's
RobustScaler; MNE only builds the inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.signal

mne = pytest.importorskip("mne")

from brainalign._validation import BrainalignError, InputFileError
from brainalign.preprocess import meeg


def _raw(data: np.ndarray, sfreq: float = 200.0, ch_types="eeg", first_samp: int = 0, names=None):
    names = names or [f"EEG{i:03d}" for i in range(data.shape[0])]
    info = mne.create_info(names, sfreq, ch_types)
    return mne.io.RawArray(data, info, first_samp=first_samp, verbose="error")


@pytest.fixture
def noise_raw() -> mne.io.RawArray:
    rng = np.random.default_rng(0)
    return _raw(rng.standard_normal((3, 4000)) * 1e-5, sfreq=200.0)


# --------------------------------------------------------------------------- read_raw
def test_read_raw_path_and_copy(tmp_path, noise_raw):
    fname = tmp_path / "sub-01_task-x_raw.fif"
    noise_raw.save(fname, verbose="error")
    raw = meeg.read_raw(fname)
    assert raw.preload
    np.testing.assert_allclose(raw.get_data(), noise_raw.get_data(), rtol=1e-6)
    copy = meeg.read_raw(noise_raw)
    assert copy is not noise_raw
    copy._data[:] = 0.0
    assert np.abs(noise_raw.get_data()).max() > 0


def test_read_raw_missing_and_unreadable(tmp_path, noise_raw):
    with pytest.raises(InputFileError, match="does not exist") as err:
        meeg.read_raw(tmp_path / "nope_raw.fif")
    assert err.value.path.name == "nope_raw.fif"
    good = tmp_path / "good_raw.fif"
    noise_raw.save(good, verbose="error")
    truncated = tmp_path / "truncated_raw.fif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputFileError, match="MNE cannot read") as err:
        meeg.read_raw(truncated)
    assert "truncated_raw.fif" in str(err.value)
    with pytest.raises(BrainalignError, match="mne.io.BaseRaw"):
        meeg.read_raw(12)


# --------------------------------------------------------------------------- word events
def test_read_word_events_from_tsv(tmp_path, noise_raw):
    tsv = tmp_path / "events.tsv"
    tsv.write_text(
        "onset\tduration\tword\n"
        "2.5\t0.2\tcat\n"
        "1.0\t0.2\tthe\n"
        "1.5\t0.1\tn/a\n"
        "2.5\t0.2\tsat\n"
        "3.0\t0.2\t\n"
    )
    events = meeg.read_word_events(noise_raw, events_tsv=tsv)
    assert list(events.columns) == ["onset", "word"]
    assert events["onset"].tolist() == [1.0, 2.5, 2.5]
    assert events["word"].tolist() == ["the", "cat", "sat"]  # stable sort keeps cat before sat


def test_read_word_events_tsv_errors(tmp_path, noise_raw):
    tsv = tmp_path / "events.tsv"
    tsv.write_text("onset\tword\n1.0\tthe\n2.0\tcat\n1.0\tthe\n")
    with pytest.raises(InputFileError, match=r"'the'.*row 0 \(line 2\), row 2 \(line 4\)"):
        meeg.read_word_events(noise_raw, events_tsv=tsv)
    tsv.write_text("onset\tword\n1.0\tn/a\n2.0\t\n")
    with pytest.raises(InputFileError, match="column 'word': no words"):
        meeg.read_word_events(noise_raw, events_tsv=tsv)
    tsv.write_text("onset\ttrial_type\n1.0\tthe\n")
    with pytest.raises(InputFileError, match="column 'word' is missing"):
        meeg.read_word_events(noise_raw, events_tsv=tsv)
    tsv.write_text("onset\tword\nsoon\tthe\n")
    with pytest.raises(InputFileError, match=r"'onset' is not a number at row 0"):
        meeg.read_word_events(noise_raw, events_tsv=tsv)


@pytest.mark.parametrize("meas_date", [None, 1_000_000_000.0])
def test_read_word_events_from_annotations_account_for_first_time(meas_date):
    raw = _raw(np.zeros((2, 2000)), sfreq=100.0, first_samp=250)  # first_time = 2.5 s
    if meas_date is not None:
        raw.set_meas_date(meas_date)
    # onsets counted from the first sample: 1.0 s and 4.0 s
    raw.set_annotations(
        mne.Annotations(
            [4.0 + 2.5, 1.0 + 2.5, 3.0 + 2.5, 5.0 + 2.5, 6.0 + 2.5],
            [0.2, 0.2, 1.0, 0.5, 0.2],
            ["dog", "a", "BAD_muscle", "EDGE boundary", "badly"],
            orig_time=raw.info["meas_date"],
        )
        if meas_date is not None
        else mne.Annotations([4.0, 1.0, 3.0, 5.0, 6.0], [0.2, 0.2, 1.0, 0.5, 0.2],
                             ["dog", "a", "BAD_muscle", "EDGE boundary", "badly"])
    )
    events = meeg.read_word_events(raw, source="rec.fif")
    np.testing.assert_allclose(events["onset"], [1.0, 4.0, 6.0], atol=1e-9)
    assert events["word"].tolist() == ["a", "dog", "badly"]  # BAD…/EDGE… in capitals are not words


def test_read_word_events_no_annotation_names_file(noise_raw):
    with pytest.raises(InputFileError, match="rec.fif: annotations: no word"):
        meeg.read_word_events(noise_raw, source="rec.fif")


# --------------------------------------------------------------------------- epochs
def test_check_epochs_in_recording_names_event():
    meeg.check_epochs_in_recording([0.5, 17.0], 4000, 200.0, -0.5, 2.5, "r.fif")
    with pytest.raises(InputFileError, match=r"r.fif: event 1 \(onset 0.4 s\)"):
        meeg.check_epochs_in_recording([1.0, 0.4], 4000, 200.0, -0.5, 2.5, "r.fif")
    with pytest.raises(InputFileError, match=r"event 0 \(onset 17.6 s\).*outside"):
        meeg.check_epochs_in_recording([17.6], 4000, 200.0, -0.5, 2.5, "r.fif")
    # the shift moves the window past the end
    with pytest.raises(InputFileError, match="event 0"):
        meeg.check_epochs_in_recording([17.4], 4000, 200.0, -0.5, 2.5, "r.fif", shift=0.15)


def test_epoch_words_matches_numpy_slicing(noise_raw):
    sfreq = 200.0
    data = noise_raw.get_data()
    # 1.0 s is on a sample; 3.2031 s is nearest sample 641 (3.205 s); the shift moves +30 samples
    onsets = np.array([1.0, 3.2031, 10.0])
    tmin, tmax, shift = -0.5, 2.5, 0.15
    X, times = meeg.epoch_words(noise_raw, onsets, tmin=tmin, tmax=tmax, baseline=(-0.5, 0.0),
                                shift=shift)
    n = 600
    assert X.shape == (3, 3, n) and X.dtype == np.float32
    np.testing.assert_allclose(times, -0.5 + np.arange(n) / sfreq)
    starts = [200 + 30 - 100, 641 + 30 - 100, 2000 + 30 - 100]
    expected = np.stack([data[:, s : s + n] for s in starts])
    expected = expected - expected[:, :, :100].mean(axis=2, keepdims=True)  # [-0.5, 0) = 100 samples
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    raw_x, _ = meeg.epoch_words(noise_raw, onsets, baseline=None)
    np.testing.assert_allclose(raw_x[1], data[:, 541:1141], rtol=1e-6)


def test_epoch_words_outside_recording(noise_raw):
    with pytest.raises(InputFileError, match=r"sess.fif: event 2 \(onset 19 s\)"):
        meeg.epoch_words(noise_raw, [1.0, 2.0, 19.0], source="sess.fif")


# --------------------------------------------------------------------------- filtering
def _interior(n: int, margin: int) -> slice:
    return slice(margin, n - margin)


@pytest.mark.parametrize("l_freq,h_freq,btype,wn", [
    (1.0, 30.0, "bandpass", [1.0, 30.0]),
    (2.0, None, "highpass", 2.0),
    (0, 40.0, "lowpass", 40.0),
])
def test_band_pass_matches_scipy(l_freq, h_freq, btype, wn):
    sfreq, order, n = 200.0, 4, 8000
    x = np.random.default_rng(3).standard_normal((3, n)) * 1e-5
    stim = np.arange(float(n))[None] % 7
    raw = _raw(x, sfreq).add_channels([_raw(stim, sfreq, "stim", names=["STI"])],
                                      force_update_info=True)
    out = meeg.band_pass(raw, l_freq, h_freq, order=order)
    sos = scipy.signal.butter(order, wn, btype=btype, output="sos", fs=sfreq)
    reference = scipy.signal.sosfiltfilt(sos, x, axis=-1)
    # 10 s from each edge: the two implementations pad the edges differently
    # (MNE: reflection over the ringing length; scipy: short odd extension),
    # and the 1 Hz high-pass transient has decayed below 1e-9 by then.
    mid = _interior(n, 2000)
    got = out.get_data(picks="eeg")[:, mid]
    np.testing.assert_allclose(got, reference[:, mid], atol=1e-8 * np.abs(reference).max())
    np.testing.assert_array_equal(out.get_data(picks="STI"), stim)
    np.testing.assert_array_equal(raw.get_data(picks="eeg"), x)  # caller untouched
    np.testing.assert_allclose(meeg.band_pass_array(x, sfreq, l_freq, h_freq)[:, mid], got, atol=1e-20)


def test_band_pass_disabled_and_invalid(noise_raw):
    out = meeg.band_pass(noise_raw, None, 0)
    assert out is not noise_raw
    np.testing.assert_array_equal(out.get_data(), noise_raw.get_data())
    with pytest.raises(InputFileError, match="sfreq: h_freq=100 Hz"):
        meeg.band_pass(noise_raw, 1.0, 100.0, source="x.fif")
    with pytest.raises(BrainalignError, match="must be below"):
        meeg.band_pass(noise_raw, 30.0, 10.0)


def test_resample_against_analytic_signals_and_scipy():
    sfreq, n = 200.0, 4001  # odd length: the output still has exact sample times
    t = np.arange(n) / sfreq
    rng = np.random.default_rng(4)
    smooth = scipy.signal.sosfiltfilt(scipy.signal.butter(8, 30.0, output="sos", fs=sfreq),
                                      rng.standard_normal(n))
    x = np.vstack([3.0 + 0.5 * t, 100.0 + np.sin(2 * np.pi * 7.0 * t + 0.3), smooth]) * 1e-5
    stim = (np.arange(n) % 50 == 0)[None] * 5.0
    raw = _raw(x, sfreq, first_samp=100).add_channels(
        [_raw(stim, sfreq, "stim", names=["STI"], first_samp=100)], force_update_info=True)
    raw.set_annotations(mne.Annotations([2.0], [0.5], ["hello"]))
    out = meeg.resample(raw, 120.0)
    n_out = int(np.ceil(n * 3 / 5))
    assert out.info["sfreq"] == 120.0 and out.n_times == n_out and out.first_samp == 60
    y = out.get_data(picks="eeg")
    new_t = np.arange(n_out) / 120.0
    mid = _interior(n_out, 60)  # 0.5 s from the edges
    # sample k is at k / 120 s: a line and a 7 Hz sine (on a large offset) are
    # reproduced to ~1e-5 of their scale (analytic references)
    np.testing.assert_allclose(y[0, mid], (3.0 + 0.5 * new_t[mid]) * 1e-5, atol=1e-4 * 1e-5)
    np.testing.assert_allclose(y[1, mid], (100.0 + np.sin(2 * np.pi * 7.0 * new_t[mid] + 0.3)) * 1e-5,
                               atol=1e-4 * 1e-5)
    # band-limited noise (30 Hz, below the new Nyquist 60 Hz) against SciPy's
    # FFT resampling (on 4000 samples, so that its 2400 samples are also at
    # k / 120 s): they differ by the FIR's passband ripple and by the FFT
    # method's circular wrap-around, which the interior margin excludes
    reference = scipy.signal.resample(smooth[:4000], 2400)
    got = meeg.resample_array(smooth[:4000], sfreq, 120.0)
    np.testing.assert_allclose(got[mid], reference[mid], atol=1e-3 * np.abs(reference).max())
    stim_out = out.get_data(picks="STI")[0]
    assert set(np.unique(stim_out)) == {0.0, 5.0} and stim_out.sum() == 5.0 * int(np.ceil(n / 50))
    np.testing.assert_allclose(out.annotations.onset - out.first_time,
                               raw.annotations.onset - raw.first_time, atol=1e-9)
    assert raw.info["sfreq"] == sfreq and raw.n_times == n  # caller untouched
    np.testing.assert_array_equal(meeg.resample_array(x, sfreq, 120.0), y)
    assert meeg.resample(raw, sfreq).n_times == n


# --------------------------------------------------------------------------- scaling
def test_robust_scaler_matches_numpy_and_sklearn():
    SkRobustScaler = pytest.importorskip("sklearn.preprocessing").RobustScaler

    rng = np.random.default_rng(1)
    X = rng.standard_t(3, size=(7, 4, 50)) * np.array([1.0, 5.0, 1e-12, 3.0])[None, :, None]
    X[:, 3] = 2.0  # constant channel: IQR 0
    scaler = meeg.RobustScaler(quantile_range=(10.0, 90.0))
    assert scaler.quantile_range == (10.0, 90.0)
    Z = scaler.fit_transform(X)
    flat = X.transpose(0, 2, 1).reshape(-1, 4)  # (epochs x times, channels)
    np.testing.assert_allclose(scaler.center_, np.median(flat, axis=0))
    iqr = np.percentile(flat, 90, axis=0) - np.percentile(flat, 10, axis=0)
    np.testing.assert_allclose(scaler.scale_[:3], iqr[:3])
    assert scaler.scale_[3] == 1.0 and np.all(Z[:, 3] == 0.0)
    sk = SkRobustScaler(quantile_range=(10.0, 90.0)).fit(flat[:, :3])
    np.testing.assert_allclose(scaler.center_[:3], sk.center_)
    np.testing.assert_allclose(scaler.scale_[:3], sk.scale_)
    expected = sk.transform(flat[:, :3]).reshape(7, 50, 3).transpose(0, 2, 1)
    np.testing.assert_allclose(Z[:, :3], expected, rtol=1e-10, atol=1e-12)
    assert scaler.transform(X.astype(np.float32)).dtype == np.float32


def test_robust_scaler_errors():
    with pytest.raises(BrainalignError, match="not fitted"):
        meeg.RobustScaler().transform(np.zeros((2, 3, 4)))
    scaler = meeg.RobustScaler().fit(np.random.default_rng(0).normal(size=(2, 3, 4)))
    with pytest.raises(BrainalignError, match="fitted on 3"):
        scaler.transform(np.zeros((2, 5, 4)))
    with pytest.raises(BrainalignError, match="quantile_range"):
        meeg.RobustScaler((80.0, 20.0)).fit(np.zeros((2, 3, 4)))


def test_clamp():
    X = np.array([[-30.0, -20.0, 0.5, 19.9, 25.0]])
    np.testing.assert_array_equal(meeg.clamp(X), [[-20.0, -20.0, 0.5, 19.9, 20.0]])
    np.testing.assert_array_equal(meeg.clamp(X, 1.0), np.clip(X, -1.0, 1.0))
    assert meeg.clamp(X, None) is X
    with pytest.raises(BrainalignError):
        meeg.clamp(X, -1.0)


# --------------------------------------------------------------------------- bad channels
def test_find_bad_channels():
    rng = np.random.default_rng(2)
    data = rng.standard_normal((5, 500)) * 1e-5
    data[1, 100] = np.nan
    data[2] = 3e-3  # constant offset
    data[4] *= 1e-7  # a million times weaker than its neighbours
    raw = _raw(data, 100.0)
    assert meeg.find_bad_channels(raw) == ["EEG001", "EEG002", "EEG004"]
    assert meeg.find_bad_channels(raw, relative_threshold=0.0) == ["EEG001", "EEG002"]


def _montaged_raw(data: np.ndarray) -> mne.io.RawArray:
    """19 EEG channels on the upper half of a 9 cm sphere centred 4 cm above the origin."""
    rng = np.random.default_rng(5)
    colat = np.concatenate([[0.0], rng.uniform(0.3, 1.5, 18)])
    azim = rng.uniform(-np.pi, np.pi, 19)
    unit = np.column_stack([np.sin(colat) * np.cos(azim), np.sin(colat) * np.sin(azim), np.cos(colat)])
    names = [f"E{i}" for i in range(19)]
    positions = dict(zip(names, np.array([0.0, 0.0, 0.04]) + 0.09 * unit))
    raw = _raw(data[:19], 100.0, names=names)
    raw.set_montage(mne.channels.make_dig_montage(positions, coord_frame="head"), verbose="error")
    return raw


def test_handle_bad_channels_drop_and_interpolate():
    n_times = 300
    signal = np.sin(2 * np.pi * 3.0 * np.arange(n_times) / 100.0) * 1e-5
    data = np.tile(signal, (19, 1))
    data[0] = 1.0  # garbage on the vertex channel E0
    raw = _montaged_raw(data)
    dropped = meeg.handle_bad_channels(raw, ["E0"], method="drop")
    assert "E0" not in dropped.ch_names and len(dropped.ch_names) == 18
    assert "E0" in raw.ch_names
    fixed = meeg.handle_bad_channels(raw, ["E0"], method="interpolate", origin=(0.0, 0.0, 0.04))
    # spherical splines reproduce a field that is the same on every sensor
    np.testing.assert_allclose(fixed.get_data(picks="E0")[0], signal, atol=1e-3 * 1e-5)
    assert fixed.info["bads"] == []
    np.testing.assert_array_equal(raw.get_data(picks="E0")[0], 1.0)  # caller untouched
    with pytest.raises(InputFileError, match=r"rec.fif: bads: channel\(s\) not in the recording: 'e0', 'Q1'"):
        meeg.handle_bad_channels(raw, ["e0", "Q1"], source="rec.fif")
    with pytest.raises(BrainalignError, match="method"):
        meeg.handle_bad_channels(raw, ["E0"], method="zero")


def test_handle_bad_channels_without_positions(noise_raw):
    with pytest.raises(InputFileError, match="EEG000, EEG001, EEG002 have no 3-D position"):
        meeg.handle_bad_channels(noise_raw, ["EEG001"], method="interpolate", source="r.fif")


# --------------------------------------------------------------------------- layout
def test_sensor_positions_2d_on_a_sphere():
    centre, radius = np.array([0.01, -0.02, 0.04]), 0.09
    colat = np.array([0.0, 0.5, 0.5, 1.0, 1.2, 0.8, 1.4])
    azim = np.array([0.0, 0.0, np.pi / 2, np.pi, -np.pi / 2, 2.5, -0.7])
    unit = np.column_stack([np.sin(colat) * np.cos(azim), np.sin(colat) * np.sin(azim), np.cos(colat)])
    info = mne.create_info([f"S{i}" for i in range(7)], 100.0, "eeg")
    for ch, p in zip(info["chs"], centre + radius * unit):
        ch["loc"][:3] = p
    pos = meeg.sensor_positions_2d(info)
    flat = np.column_stack([colat * np.cos(azim), colat * np.sin(azim)])
    expected = (flat - flat.min(axis=0)) / (flat.max(axis=0) - flat.min(axis=0))
    assert pos.shape == (7, 2)
    np.testing.assert_allclose(pos, expected, atol=1e-9)
    assert pos.min() == 0.0 and pos.max() == 1.0


def test_sensor_positions_2d_missing_positions():
    info = mne.create_info(["A", "B", "C"], 100.0, "eeg")
    info["chs"][0]["loc"][:3] = [0.1, 0.0, 0.0]
    info["chs"][2]["loc"][:3] = np.nan
    with pytest.raises(InputFileError, match=r"2 channel\(s\) have no 3-D position.*B, C"):
        meeg.sensor_positions_2d(info)


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_p3_target_minus_nontarget_positive_at_pz(mne_misc_dir):
    """ERP CORE P3 (sub-015): the P3 is larger for targets, 300–600 ms at Pz."""
    fname = mne_misc_dir / "sub-015_ses-P3_task-P3_ave.fif"
    evokeds = mne.read_evokeds(fname, verbose="error")
    # comments name the averaged conditions: "0.20 × stimulus/target/11 + ...",
    # "0.06 × stimulus/non-target/12 + ...", and "(targets) - (non-targets)"
    by_kind = {("stimulus/target/" in e.comment, "stimulus/non-target/" in e.comment): e for e in evokeds}
    target, nontarget, difference = by_kind[True, False], by_kind[False, True], by_kind[True, True]
    assert difference.comment.startswith("(") and ") - (" in difference.comment
    sfreq = target.info["sfreq"]
    pz = target.ch_names.index("Pz")

    def process(evoked):
        data = meeg.band_pass_array(evoked.data, sfreq, None, 30.0)
        data = meeg.resample_array(data, sfreq, 120.0)
        times = evoked.times[0] + np.arange(data.shape[-1]) / 120.0
        return meeg.baseline_correct(data, times, 120.0, (-0.2, 0.0)), times

    tgt, times = process(target)
    non, _ = process(nontarget)
    diff, _ = process(difference)
    window = (times >= 0.3) & (times <= 0.6)
    effect = (tgt - non)[pz, window].mean()
    assert effect > 1e-6  # volts: a P3 effect of about 2 microvolts
    # and close to the effect in the stored averages (30 Hz low-pass and resampling change little)
    stored = (target.data - nontarget.data)[pz, (target.times >= 0.3) & (target.times <= 0.6)].mean()
    assert abs(effect - stored) < 0.1 * stored
    # every step is linear, so processing the stored difference gives the same result
    np.testing.assert_allclose(diff, tgt - non, atol=1e-3 * np.abs(tgt - non).max())
