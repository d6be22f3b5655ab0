"""sEEG/ECoG preprocessing (Du-IN-style chain) against hand-built references.

References are numpy differences and means built by hand, and
scipy.signal (Butterworth + sosfiltfilt, hilbert); MNE only builds inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

mne = pytest.importorskip("mne")

from brainalign._validation import BrainalignError, InputFileError
from brainalign.preprocess import seeg
from brainalign.preprocess.meeg import read_raw


def _raw(names, data, sfreq=1000.0, types="seeg", first_samp=0):
    info = mne.create_info(list(names), sfreq, types)
    return mne.io.RawArray(data, info, first_samp=first_samp, verbose="error")


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("name,expected", [
    ("LA1", ("LA", 1)),
    ("LA 12", ("LA", 12)),
    ("A'3", ("A'", 3)),
    ("LA01", ("LA", 1)),
    ("OFMG64", ("OFMG", 64)),
    ("EEG RAH10-Ref", ("RAH", 10)),
    ("POL B'2", ("B'", 2)),
    ("H2a3", ("H2a", 3)),
    ("ECG", None),
    ("12", None),
    ("LA1-LA2", None),
    ("", None),
])
def test_parse_contact(name, expected):
    assert seeg.parse_contact(name) == expected


def test_bipolar_pairs_order_and_gaps():
    names = ["RB2", "LA3", "LA1", "LA2", "RB1", "LA5", "LA6", "X'1", "X'2", "RB4"]
    pairs = seeg.bipolar_pairs(names)
    # shafts in order of first appearance (RB, LA, X'), numbers ascending, no pair across a gap
    assert pairs == [("RB1", "RB2"), ("LA1", "LA2"), ("LA2", "LA3"), ("LA5", "LA6"), ("X'1", "X'2")]


def test_bipolar_pairs_errors():
    names = ["LA1", "LA2", "ECG", "STI"] + [f"trig{c}" for c in "abcdefghij"]
    with pytest.raises(InputFileError, match=r"rec.edf: ch_names: 12 channel name\(s\).*'ECG', 'STI'.* and 2 more"):
        seeg.bipolar_pairs(names, source="rec.edf")
    with pytest.raises(InputFileError, match="'LA1' and 'EEG LA1-Ref' are the same contact"):
        seeg.bipolar_pairs(["LA1", "EEG LA1-Ref"])


# --------------------------------------------------------------------------- references
@pytest.fixture
def shafts_raw():
    rng = np.random.default_rng(0)
    names = ["LA1", "LA2", "LA3", "LA5", "B'1", "B'2"]
    raw = _raw(names + ["ECG"], rng.standard_normal((7, 300)), types=["seeg"] * 6 + ["ecg"],
               first_samp=50)
    raw.set_annotations(mne.Annotations([0.1], [0.05], ["word"]))
    raw.info["bads"] = ["LA3"]
    return raw


def test_bipolar_reference_by_hand(shafts_raw):
    x = shafts_raw.get_data()
    out = seeg.bipolar_reference(shafts_raw)
    assert out.ch_names == ["LA1-LA2", "LA2-LA3", "B'1-B'2"]
    expected = np.vstack([x[0] - x[1], x[1] - x[2], x[4] - x[5]])
    np.testing.assert_allclose(out.get_data(), expected, rtol=1e-12, atol=1e-15)
    assert out.get_channel_types() == ["seeg"] * 3
    assert out.info["sfreq"] == 1000.0 and out.first_samp == 50
    assert out.info["bads"] == ["LA2-LA3"]
    np.testing.assert_allclose(out.annotations.onset - out.first_time,
                               shafts_raw.annotations.onset - shafts_raw.first_time)
    explicit = seeg.bipolar_reference(shafts_raw, [("LA5", "LA1"), ("ECG", "B'2")])
    np.testing.assert_allclose(explicit.get_data(), np.vstack([x[3] - x[0], x[6] - x[5]]))
    assert explicit.get_channel_types() == ["seeg", "ecg"]


def test_bipolar_reference_unknown_channels(shafts_raw):
    with pytest.raises(InputFileError, match=r"rec.fif: pairs: channel\(s\) not in the recording: 'LA4', 'LA9'"):
        seeg.bipolar_reference(shafts_raw, [("LA1", "LA2"), ("LA4", "LA9")], source="rec.fif")
    with pytest.raises(InputFileError, match="paired with itself"):
        seeg.bipolar_reference(shafts_raw, [("LA1", "LA1")])
    with pytest.raises(InputFileError, match="no pair"):
        seeg.bipolar_reference(shafts_raw, [])


def test_bipolar_reference_midpoint_positions():
    raw = _raw(["A1", "A2"], np.zeros((2, 10)))
    raw.set_montage(mne.channels.make_dig_montage(
        {"A1": [0.01, 0.02, 0.03], "A2": [0.03, 0.02, 0.01]}, coord_frame="head"), verbose="error")
    out = seeg.bipolar_reference(raw)
    np.testing.assert_allclose(out.info["chs"][0]["loc"][:3], [0.02, 0.02, 0.02])


def test_laplacian_reference_by_hand(shafts_raw):
    x = shafts_raw.get_data()
    out = seeg.laplacian_reference(shafts_raw)
    # LA5 has no neighbour (LA4 and LA6 absent): dropped; ECG is not a contact
    assert out.ch_names == ["LA1", "LA2", "LA3", "B'1", "B'2"]
    expected = np.vstack([
        x[0] - x[1],                      # LA1: only LA2
        x[1] - (x[0] + x[2]) / 2,         # LA2: LA1 and LA3
        x[2] - x[1],                      # LA3: only LA2 (LA4 missing)
        x[4] - x[5],
        x[5] - x[4],
    ])
    np.testing.assert_allclose(out.get_data(), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(shafts_raw.get_data(), x)  # caller untouched
    with pytest.raises(InputFileError, match="no neighbour on their shaft: LA5"):
        seeg.laplacian_reference(shafts_raw, isolated="raise")


# --------------------------------------------------------------------------- high gamma
def test_high_gamma_envelope_matches_scipy():
    sfreq, n = 1000.0, 6000
    t = np.arange(n) / sfreq
    rng = np.random.default_rng(1)
    am = 1.0 + 0.5 * np.sin(2 * np.pi * 2.0 * t)
    data = np.vstack([am * np.sin(2 * np.pi * 100.0 * t), rng.standard_normal(n)]) * 1e-4
    raw = _raw(["LA1", "LA2"], data, sfreq)
    raw.add_channels([_raw(["STI"], np.ones((1, n)), sfreq, "stim")], force_update_info=True)
    out = seeg.high_gamma_envelope(raw, (70.0, 150.0), order=4)
    sos = scipy.signal.butter(4, [70.0, 150.0], btype="bandpass", output="sos", fs=sfreq)
    reference = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, data, axis=-1), axis=-1))
    mid = slice(1000, n - 1000)  # 1 s from the edges (filter padding and Hilbert wrap-around differ)
    np.testing.assert_allclose(out.get_data(picks="seeg")[:, mid], reference[:, mid],
                               atol=1e-3 * np.abs(reference).max())
    # the 100 Hz carrier's envelope is the modulation
    np.testing.assert_allclose(out.get_data(picks="LA1")[0, mid], am[mid] * 1e-4, rtol=1e-2)
    np.testing.assert_array_equal(out.get_data(picks="STI"), 1.0)
    assert (out.info["highpass"], out.info["lowpass"]) == (70.0, 150.0)
    np.testing.assert_array_equal(raw.get_data(picks="seeg"), data)


def test_high_gamma_envelope_refuses_low_sampling_rate():
    raw = _raw(["LA1", "LA2"], np.zeros((2, 500)), 300.0)
    with pytest.raises(InputFileError, match=r"x.edf: sfreq: .*300 Hz.*70–150 Hz.*135 Hz"):
        seeg.high_gamma_envelope(raw, source="x.edf")
    with pytest.raises(InputFileError, match="sfreq"):
        seeg.high_gamma_envelope(_raw(["LA1"], np.zeros((1, 500)), 1000.0), (150.0, 70.0))


# --------------------------------------------------------------------------- scaling
def test_downsample():
    raw = _raw(["LA1"], np.ones((1, 1000)), 1000.0)
    out = seeg.downsample(raw, 200.0)
    assert out.info["sfreq"] == 200.0 and out.n_times == 200
    np.testing.assert_allclose(out.get_data(), 1.0)


def test_zscore_channels_2d_and_3d():
    rng = np.random.default_rng(2)
    X2 = rng.normal(3.0, 2.0, size=(4, 100))
    Z2 = seeg.zscore_channels(X2)
    np.testing.assert_allclose(Z2, (X2 - X2.mean(1, keepdims=True)) / X2.std(1, keepdims=True))
    X3 = rng.normal(3.0, 2.0, size=(5, 4, 100)).astype(np.float32)
    Z3 = seeg.zscore_channels(X3)
    assert Z3.dtype == np.float32
    X64 = X3.astype(np.float64)
    mean, std = X64.mean((0, 2), keepdims=True), X64.std((0, 2), keepdims=True)
    np.testing.assert_allclose(Z3, (X64 - mean) / std, rtol=1e-5, atol=1e-5)
    per_epoch = seeg.zscore_channels(X64, axis=(-1,))
    np.testing.assert_allclose(per_epoch.std(-1), 1.0)
    X2[2] = 7.0
    with pytest.raises(BrainalignError, match=r"1 channel\(s\) are constant.*: LA3"):
        seeg.zscore_channels(X2, ch_names=["LA1", "LA2", "LA3", "LA4"])


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_sample_ecog_ieeg_bipolar_and_high_gamma_refusal(mne_misc_dir):
    """MNE's sample ECoG/sEEG file: 320 ECoG + 74 sEEG contacts at 160 Hz."""
    fname = mne_misc_dir / "sample_ecog_ieeg.fif"
    raw = read_raw(fname)
    assert len(raw.ch_names) == 394
    # 11 shafts/grids, all numbered without gaps: G1-256, OFMG1-64, FP1-6,
    # LT1-6, TP1-4, MST1-4, PST1-4, AD1-10, HD1-10, DC1-20, ID1-10
    sizes = {"G": 256, "OFMG": 64, "FP": 6, "LT": 6, "TP": 4, "MST": 4, "PST": 4, "AD": 10,
             "HD": 10, "DC": 20, "ID": 10}
    pairs = seeg.bipolar_pairs(raw.ch_names)
    assert len(pairs) == sum(n - 1 for n in sizes.values()) == 383
    assert pairs[0] == ("G1", "G2") and pairs[254] == ("G255", "G256")
    assert pairs[255] == ("OFMG1", "OFMG2") and pairs[-1] == ("ID9", "ID10")
    assert ("DC19", "DC20") in pairs and ("MST3", "MST4") in pairs
    assert ("G256", "OFMG1") not in pairs and ("FP6", "LT1") not in pairs
    bipolar = seeg.bipolar_reference(raw)
    assert len(bipolar.ch_names) == 383 and bipolar.ch_names[255] == "OFMG1-OFMG2"
    x = raw.get_data()
    index = {name: i for i, name in enumerate(raw.ch_names)}
    expected = np.vstack([x[index[a]] - x[index[c]] for a, c in pairs])
    np.testing.assert_allclose(bipolar.get_data(), expected, rtol=1e-12, atol=0)
    assert bipolar.get_channel_types()[0] == "ecog" and bipolar.get_channel_types()[-1] == "seeg"
    with pytest.raises(InputFileError, match=r"sample_ecog_ieeg.fif: sfreq: .*160 Hz.*70–150 Hz") as err:
        seeg.high_gamma_envelope(bipolar, source=fname)
    assert err.value.path.name == "sample_ecog_ieeg.fif"
