"""Zero-phase Butterworth band-pass filtering of arrays and of a recording's data channels."""

from __future__ import annotations

import os
from typing import Any

import mne
import numpy as np

from ..._validation import BrainalignError, InputFileError
from .reading import _source_of, read_raw


def _data_picks(info: mne.Info) -> np.ndarray:
    """Indices of the data channels (MEG, EEG, sEEG, ECoG, DBS, fNIRS), bad ones included."""
    return mne.pick_types(info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, fnirs=True,
                          exclude=())


def _check_band(
    sfreq: float, l_freq: float | None, h_freq: float | None, where: str | os.PathLike | None
) -> tuple[float | None, float | None]:
    """Normalize ``None``/0 to None and check ``0 < l_freq < h_freq < sfreq / 2``."""
    l_freq = None if l_freq is None or l_freq == 0 else float(l_freq)
    h_freq = None if h_freq is None or h_freq == 0 else float(h_freq)
    nyquist = sfreq / 2.0
    for name, value in (("l_freq", l_freq), ("h_freq", h_freq)):
        if value is not None and not 0 < value < nyquist:
            raise InputFileError(
                where,
                f"sfreq: {name}={value:g} Hz is not between 0 and the Nyquist frequency "
                f"{nyquist:g} Hz of the recording (sampled at {sfreq:g} Hz).",
            )
    if l_freq is not None and h_freq is not None and not l_freq < h_freq:
        raise BrainalignError(
            f"'l_freq' ({l_freq:g} Hz) must be below 'h_freq' ({h_freq:g} Hz) for a band-pass."
        )
    return l_freq, h_freq


def _iir_params(order: int) -> dict[str, Any]:
    if int(order) != order or order < 1:
        raise BrainalignError(f"'order' must be a positive integer, got {order!r}.")
    return {"order": int(order), "ftype": "butter", "output": "sos"}


def band_pass_array(
    data: np.ndarray,
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    *,
    order: int = 4,
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass of an array along its last axis.

    A Butterworth filter of order ``order`` (as designed by
    :func:`scipy.signal.butter`, second-order sections) is applied forward
    and backward (:func:`scipy.signal.sosfiltfilt` through
    :func:`mne.filter.filter_data`, which pads the edges by reflection over
    the filter's ringing length), so the result has no phase shift and an
    attenuation of twice the filter's in dB.

    Parameters
    ----------
    data : ndarray of shape (..., n_times)
        Signals.
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float or None
        Low and high cut-off in Hz (−3 dB of one pass); None or 0 disables
        that edge (high-pass only, low-pass only); both disabled returns a
        copy.
    order : int
        Filter order (one pass).
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    filtered : ndarray of the same shape, float64
    """
    data = np.array(data, dtype=np.float64, copy=True)
    l_freq, h_freq = _check_band(float(sfreq), l_freq, h_freq, source)
    if l_freq is None and h_freq is None:
        return data
    return mne.filter.filter_data(
        data, float(sfreq), l_freq, h_freq, method="iir", iir_params=_iir_params(order),
        phase="zero", copy=False, verbose="error",
    )


def band_pass(
    raw: str | os.PathLike | mne.io.BaseRaw,
    l_freq: float | None,
    h_freq: float | None,
    *,
    order: int = 4,
    source: str | os.PathLike | None = None,
) -> mne.io.BaseRaw:
    """Zero-phase Butterworth band-pass of the data channels of a recording.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (a copy is filtered).
    l_freq, h_freq : float or None
        Cut-offs in Hz; None or 0 disables each edge; both disabled returns
        an unchanged copy.
    order : int
        Butterworth order of one pass (see :func:`band_pass_array`).
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    raw : mne.io.BaseRaw
        A filtered copy; ``info["highpass"]`` and ``info["lowpass"]`` are
        updated. Non-data channels (stimulus, misc, ...) are left as they
        are.
    """
    raw = read_raw(raw)
    where = _source_of(raw, source)
    l_freq, h_freq = _check_band(float(raw.info["sfreq"]), l_freq, h_freq, where)
    if l_freq is None and h_freq is None:
        return raw
    picks = _data_picks(raw.info)
    if len(picks) == 0:
        return raw
    return raw.filter(
        l_freq, h_freq, picks=picks, method="iir", iir_params=_iir_params(order), phase="zero",
        verbose="error",
    )
