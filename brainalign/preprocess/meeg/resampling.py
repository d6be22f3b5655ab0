"""Resampling of arrays and recordings with a polyphase anti-aliasing filter.

Data channels are resampled by :func:`resample_array`; stimulus channels take
the nearest input sample, so trigger codes are not smeared; annotations keep
their times relative to the first sample.
"""

from __future__ import annotations

import os
from fractions import Fraction

import mne
import numpy as np
import scipy.signal

from ..._validation import BrainalignError
from .reading import read_raw


# Anti-aliasing filter of the polyphase resampling (see resample_array).
_RESAMPLE_BETA = 8.6
_RESAMPLE_HALF_LEN = 20


def _rational_ratio(sfreq: float, new_sfreq: float) -> tuple[int, int]:
    """``new_sfreq / sfreq`` as ``up / down`` in lowest terms (denominator ≤ 10 000)."""
    for name, value in (("sfreq", sfreq), ("new_sfreq", new_sfreq)):
        if not (np.isfinite(value) and value > 0):
            raise BrainalignError(f"'{name}' must be a positive number of Hz, got {value!r}.")
    ratio = (Fraction(float(new_sfreq)) / Fraction(float(sfreq))).limit_denominator(10_000)
    return ratio.numerator, ratio.denominator


def _resampling_filter(up: int, down: int) -> np.ndarray:
    """Anti-aliasing FIR of :func:`resample_array` (before SciPy's gain of ``up``)."""
    max_rate = max(up, down)
    half_len = _RESAMPLE_HALF_LEN * max_rate
    return scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", _RESAMPLE_BETA))


def resample_array(data: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Resample an array along its last axis (polyphase anti-aliasing filter).

    :func:`scipy.signal.resample_poly` with ``up / down = new_sfreq / sfreq``
    in lowest terms, on the signal minus its mean (the mean is added back,
    so a DC offset cannot leak through the small gain differences between
    the polyphase branches), with ``padtype="line"`` (edges extended by a
    line, no step) and a longer, steeper FIR than SciPy's default: windowed
    sinc with cut-off at the lower Nyquist frequency (−6 dB there),
    Kaiser β = 8.6, ``2 × 20 × max(up, down) + 1`` taps. Away from the edges
    a sine well below the new Nyquist frequency is reproduced to about 1e-5
    of its amplitude (SciPy's default filter: about 1e-3).

    Output sample ``k`` lies at time ``k / new_sfreq`` exactly, for any
    length. MNE's resampling is not used: its FFT method (``npad="auto"``)
    rounds the padded length, which misplaces samples by up to half an
    output sample, and its polyphase method derives the ratio from the
    signal lengths, which is slow and inexact for most lengths.

    Parameters
    ----------
    data : ndarray of shape (..., n_times)
    sfreq, new_sfreq : float
        Current and target sampling rates in Hz (the ratio is taken as a
        fraction with a denominator of at most 10 000).

    Returns
    -------
    resampled : ndarray of shape (..., ceil(n_times * new_sfreq / sfreq)), float64
    """
    up, down = _rational_ratio(sfreq, new_sfreq)
    data = np.asarray(data, dtype=np.float64)
    if up == down:
        return data.copy()
    mean = data.mean(axis=-1, keepdims=True)
    out = scipy.signal.resample_poly(
        data - mean, up, down, axis=-1, window=_resampling_filter(up, down), padtype="line"
    )
    return out + mean


def _nearest_samples(n_times: int, up: int, down: int) -> np.ndarray:
    """Index of the input sample nearest each output sample (same length as resample_poly)."""
    n_out = -(-n_times * up // down)
    return np.minimum((np.arange(n_out) * down + up // 2) // up, n_times - 1)


def resample(raw: str | os.PathLike | mne.io.BaseRaw, sfreq: float = 120.0) -> mne.io.BaseRaw:
    """Resample a recording (a copy) to ``sfreq`` Hz.

    Data channels (and every other channel except stimulus channels) are
    resampled by :func:`resample_array`. Stimulus channels take the value of
    the input sample nearest each new sample, so trigger codes are not
    smeared (a trigger shorter than the new sampling period may be lost).

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording.
    sfreq : float
        Target sampling rate in Hz (Défossez et al.: 120).

    Returns
    -------
    raw : mne.io.RawArray
        A resampled copy in memory (it has no file: pass ``source`` to later
        functions so that their messages name the recording; an unchanged
        copy when the rate is already ``sfreq``) with the same channels, measurement info (``sfreq``
        updated, ``lowpass`` capped at the new Nyquist frequency) and
        annotations (same times relative to the first sample). The first
        sample index becomes ``round(first_samp * sfreq / old_sfreq)``, as in
        MNE.
    """
    raw = read_raw(raw)
    old = float(raw.info["sfreq"])
    up, down = _rational_ratio(old, sfreq)
    if up == down:
        return raw
    data = raw.get_data()
    stim = np.zeros(len(raw.ch_names), bool)
    stim[mne.pick_types(raw.info, meg=False, stim=True, exclude=())] = True
    out = np.empty(data.shape[:-1] + (-(-data.shape[-1] * up // down),))
    if (~stim).any():
        out[~stim] = resample_array(data[~stim], old, sfreq)
    if stim.any():
        out[stim] = data[stim][:, _nearest_samples(data.shape[-1], up, down)]
    info = raw.info.copy()
    with info._unlock():  # sfreq is read-only in MNE's public API
        info["sfreq"] = float(sfreq)
        info["lowpass"] = min(float(info["lowpass"]), float(sfreq) / 2.0)
    first_samp = int(np.round(raw.first_samp * up / down))
    new = mne.io.RawArray(out, info, first_samp=first_samp, verbose="error")
    new.set_annotations(_annotations_for_copy(raw))
    return new


def _annotations_for_copy(raw: mne.io.BaseRaw) -> mne.Annotations:
    """Annotations of ``raw`` to set on a new Raw built from it (times from the first sample kept)."""
    annotations = raw.annotations.copy()
    if annotations.orig_time is None:
        # Without a measurement date, raw.annotations onsets include first_time
        # and set_annotations adds the new Raw's first_time again.
        annotations.onset = annotations.onset - raw.first_time
    return annotations
