"""Bad electrophysiology inputs give clear errors naming the file and the field, and write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brainalign._validation import BrainalignError, ConfigError, InputFileError
from brainalign.config import validate_config
from brainalign.datasets.simulated_meeg import (
    generate_word_trials,
    planted_sources,
    simulate_seeg_run,
    write_raw_fif,
)
from brainalign.pipeline.electro import run_epochs
from brainalign.stimuli.events import write_events

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


def _dataset(tmp_path: Path, sfreqs=(500.0, 500.0)) -> tuple[Path, Path]:
    events = generate_word_trials(VOCAB, 2, 2, seed=0)
    events_path = write_events(tmp_path / "events.tsv", events)
    Z = planted_sources(np.eye(len(events)), 2, seed=0)
    for run, sfreq in zip((1, 2), sfreqs):
        rows = (events["run"] == run).to_numpy()
        raw = simulate_seeg_run(events[rows], Z[rows], subject_index=0, run=run, sfreq=sfreq)
        write_raw_fif(tmp_path / "raw" / "sub-01" / f"run-{run}_raw.fif", raw)
    return events_path, tmp_path / "raw"


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_sampling_rate_mismatch_across_runs(tmp_path):
    events, raw_dir = _dataset(tmp_path, sfreqs=(500.0, 400.0))
    before = _listing(tmp_path)
    with pytest.raises(InputFileError, match=r"run-2_raw\.fif: field sfreq: 400\.0 Hz.*run-1_raw\.fif.*500\.0"):
        run_epochs(_config(), "sub-01", events, tmp_path / "out" / "sub-01.h5", raw_dir=raw_dir)
    assert _listing(tmp_path) == before


def test_unknown_bad_channel(tmp_path):
    events, raw_dir = _dataset(tmp_path)
    with pytest.raises(InputFileError, match=r"run-1_raw\.fif.*electrophysiology\.bad_channels.*'LZ9'"):
        run_epochs(_config(bad_channels=["LZ9"]), "sub-01", events, tmp_path / "x.h5", raw_dir=raw_dir)
    assert not (tmp_path / "x.h5").exists()


def test_words_that_differ_from_the_word_table(tmp_path):
    events, raw_dir = _dataset(tmp_path)
    table = events.read_text().replace("\thouse\t", "\tmouse\t", 1)
    events.write_text(table)
    with pytest.raises(InputFileError, match=r"run-1_raw\.fif: the words of run 1"):
        run_epochs(_config(), "sub-01", events, tmp_path / "x.h5", raw_dir=raw_dir)


def test_epochs_outside_the_recording(tmp_path):
    events, raw_dir = _dataset(tmp_path)
    with pytest.raises(InputFileError, match=r"run-1_raw\.fif"):
        run_epochs(_config(tmax=30.0), "sub-01", events, tmp_path / "x.h5", raw_dir=raw_dir)
    assert not (tmp_path / "x.h5").exists()


def test_unreadable_recording(tmp_path):
    events, raw_dir = _dataset(tmp_path)
    path = raw_dir / "sub-01" / "run-1_raw.fif"
    path.write_bytes(path.read_bytes()[:2000])  # truncated
    with pytest.raises(InputFileError, match=r"run-1_raw\.fif"):
        run_epochs(_config(), "sub-01", events, tmp_path / "x.h5", raw_dir=raw_dir)


def test_high_gamma_needs_the_sampling_rate(tmp_path):
    events, raw_dir = _dataset(tmp_path, sfreqs=(200.0, 200.0))
    with pytest.raises(InputFileError, match=r"run-1_raw\.fif.*sfreq"):
        run_epochs(_config(high_gamma=[70.0, 150.0]), "sub-01", events, tmp_path / "x.h5", raw_dir=raw_dir)


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
