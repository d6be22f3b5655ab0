"""Bad electrophysiology configs give clear errors naming the field; any format MNE reads is read.

Malformed recordings (truncated FIF/EDF, sampling-rate mismatches, NaN or flat
channels, words that differ from the word table, ...) are in the error
catalogue, tests/test_error_catalogue.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainalign._validation import BrainalignError, ConfigError
from brainalign.config import validate_config

VOCAB = ["house", "water", "music"]


def _config(**electro) -> dict:
    return validate_config({
        "dataset": {"name": "bad", "kind": "simulated_seeg"},
        "simulation": {"n_subjects": 2, "planted_feature_set": "m", "planted_layer": "0",
                       "seeg": {"vocabulary": VOCAB, "trials_per_word": 2, "n_runs": 2, "sfreq": 500.0}},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}},
        "electrophysiology": {"reference": "bipolar", "sfreq": 100.0, "tmin": 0.0, "tmax": 1.0,
                              "baseline": None, **electro},
    })


def test_config_errors():
    with pytest.raises(ConfigError, match=r"electrophysiology\.scaling"):
        _config(scaling="minmax")
    with pytest.raises(ConfigError, match=r"electrophysiology\.sfreq"):
        _config(sfreq=-1.0)
    with pytest.raises(BrainalignError, match=r"electrophysiology\.reference"):
        _config(reference="average")


def test_reads_edf_with_word_annotations(tmp_path):
    """Any format MNE reads: the simulated EEG exported to EDF+ gives back the same words, onsets and samples."""
    import mne
    import pandas as pd

    from brainalign.datasets.simulated_meeg import simulate_meeg_run
    from brainalign.preprocess.meeg import read_raw, read_word_events

    words = pd.DataFrame({"onset": [2.0, 2.4, 3.1], "word": ["the", "old", "house"]})
    raw = simulate_meeg_run(words, np.ones((3, 2)), subject_index=0, run=1, sfreq=256.0)
    path = tmp_path / "rec ä.edf"
    mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    back = read_raw(path)
    assert back.ch_names == raw.ch_names
    got = read_word_events(back, source=path)
    assert list(got["word"]) == ["the", "old", "house"]
    np.testing.assert_allclose(got["onset"], words["onset"], atol=1 / 256)
    # EDF stores 16-bit integers scaled to the physical range (agreement to a few LSB) and
    # pads the recording to whole 1 s data records.
    data = raw.get_data()
    span = data.max() - data.min()
    np.testing.assert_allclose(back.get_data()[:, : data.shape[1]], data, atol=span / 2**15 * 2)


def _exported_edf(path):
    """The simulated EEG of three words exported to EDF+ (4 EEG channels)."""
    import mne
    import pandas as pd

    from brainalign.datasets.simulated_meeg import simulate_meeg_run

    words = pd.DataFrame({"onset": [2.0, 2.4, 3.1], "word": ["the", "old", "house"]})
    raw = simulate_meeg_run(words, np.ones((3, 2)), subject_index=0, run=1, sfreq=256.0)
    mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    return raw


@pytest.mark.parametrize("offset, text, message", [
    (112, None, r"'physical minimum' and 'physical maximum' of signal 1 \(channel '{ch}'\) are both"),
    (128, None, r"'digital minimum' \(-?\d+\) and 'digital maximum' \(-?\d+\) of signal 1 \(channel '{ch}'\)"),
    (104, "1,5e-4", r"'physical minimum' of signal 1 \(channel '{ch}'\) is '1,5e-4', not a number"),
])
def test_edf_channel_without_a_scale_is_refused(tmp_path, offset, text, message):
    """A zero physical or digital range used to be read scaled by an arbitrary factor (MNE warns, unheard)."""
    from brainalign._validation import InputFileError
    from brainalign.preprocess.meeg import read_raw

    path = tmp_path / "rec.edf"
    raw = _exported_edf(path)
    data = bytearray(path.read_bytes())
    n_signals = int(data[252:256])
    field = 256 + offset * n_signals + 8  # signal 1's field
    if text is None:  # the maximum set to the minimum, 8 bytes before it
        data[field:field + 8] = data[field - 8 * n_signals:field - 8 * n_signals + 8]
    else:
        data[field:field + 8] = text.encode().ljust(8)
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=message.format(ch=raw.ch_names[1])) as err:
        read_raw(path)
    assert err.value.path == path


def test_bids_sidecar_sampling_frequency_must_be_a_number(tmp_path):
    import json

    import mne_bids

    from brainalign._validation import InputFileError
    from brainalign.datasets.meeg_bids import find_recordings, read_bids_raw

    raw = _exported_edf(tmp_path / "rec.edf")
    bids_path = mne_bids.BIDSPath(subject="01", task="words", run=1, datatype="eeg", root=tmp_path / "bids")
    mne_bids.write_raw_bids(raw, bids_path, format="EDF", allow_preload=True, verbose="error")
    ds = {"bids_dir": str(tmp_path / "bids"), "datatype": "eeg", "task": "words", "extension": ".edf",
          "sessions": "all", "runs": "all"}
    (recording,) = find_recordings(ds, "sub-01")
    assert read_bids_raw(recording).info["sfreq"] == 256.0  # header and sidecar agree
    sidecar = recording.path.with_name("sub-01_task-words_run-1_eeg.json")
    meta = json.loads(sidecar.read_text())
    meta["SamplingFrequency"] = "256 Hz"
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match=r"field 'SamplingFrequency' is '256 Hz', not a positive number") as err:
        read_bids_raw(recording)
    assert err.value.path == sidecar
