"""The *Epochs* contract (``epochs/1``): one subject's word-locked M/EEG or sEEG epochs in HDF5."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import InputFileError
from .atomic import _json, atomic_path
from .hdf5 import _open_h5

EPOCHS_CONTRACT = "epochs/1"


class Epochs:
    """Word-locked epochs of one subject (the *Epochs* contract, ``epochs/<subject>.h5``).

    Attributes
    ----------
    X : ndarray of shape (n_epochs, n_channels, n_times), float32
        Preprocessed signals (baseline-corrected, unscaled).
    times : ndarray of shape (n_times,)
        Seconds relative to word onset.
    word_index : ndarray of shape (n_epochs,)
        Row of each epoch's word in ``stimuli/events.tsv``.
    run : ndarray of shape (n_epochs,)
    ch_names : list of str
    positions : ndarray of shape (n_channels, 2) or None
        2-D sensor positions in [0, 1] (None for sEEG contacts).
    sfreq : float
        Hz.
    subject : str
    dropped_word_index : ndarray of shape (n_dropped,)
        Rows of ``stimuli/events.tsv`` whose word has no epoch because its
        window crosses the recording's start or end
        (``electrophysiology.drop_edge_epochs``); empty when none was dropped.
    """

    def __init__(self, X, times, word_index, run, ch_names, positions, sfreq, subject, dropped_word_index=()):
        self.X, self.times, self.word_index, self.run = X, times, word_index, run
        self.ch_names, self.positions, self.sfreq, self.subject = list(ch_names), positions, float(sfreq), subject
        self.dropped_word_index = np.asarray(dropped_word_index, dtype=np.int64).reshape(-1)


def write_epochs(path: str | os.PathLike, ep: Epochs, prov: dict[str, Any]) -> Path:
    """Atomically write :class:`Epochs` to HDF5 (contract ``epochs/1``)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("X", data=np.asarray(ep.X, np.float32), track_times=False)
        f.create_dataset("times", data=ep.times, track_times=False)
        f.create_dataset("word_index", data=np.asarray(ep.word_index, np.int64), track_times=False)
        f.create_dataset("run", data=np.asarray(ep.run, np.int64), track_times=False)
        f.create_dataset("dropped_word_index", data=ep.dropped_word_index, track_times=False)
        if ep.positions is not None:
            f.create_dataset("positions", data=np.asarray(ep.positions, np.float64), track_times=False)
        f.attrs["contract"] = EPOCHS_CONTRACT
        f.attrs["ch_names"] = json.dumps(ep.ch_names)
        f.attrs["sfreq"] = ep.sfreq
        f.attrs["subject"] = ep.subject
        f.attrs["provenance"] = _json(prov)
    return Path(path)


def read_epochs(path: str | os.PathLike) -> Epochs:
    """Read and check an ``epochs/<subject>.h5`` file (:class:`Epochs`)."""
    with _open_h5(path, EPOCHS_CONTRACT) as f:
        for key in ("X", "times", "word_index", "run"):
            if key not in f:
                raise InputFileError(path, f"dataset {key!r} is missing.")
        X = f["X"][()]
        if not np.isfinite(X).all():
            raise InputFileError(path, "dataset 'X' has non-finite values.")
        # Files written before edge epochs could be dropped have no "dropped_word_index": none was dropped.
        dropped = f["dropped_word_index"][()] if "dropped_word_index" in f else ()
        return Epochs(X, f["times"][()], f["word_index"][()], f["run"][()], json.loads(f.attrs["ch_names"]),
                      f["positions"][()] if "positions" in f else None, f.attrs["sfreq"], str(f.attrs["subject"]),
                      dropped)
