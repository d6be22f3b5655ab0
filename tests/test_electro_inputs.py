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
