"""Cutting one window per word onset (:func:`epoch_words`), with its baseline correction.

Also which events' windows lie wholly inside the recording, so that the words
whose window crosses its start or end can be dropped (or refused, naming the
event) before cutting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import mne
import numpy as np

from ..._validation import BrainalignError, InputFileError
from .reading import _as_raw, _source_of


def _window_starts(onsets: np.ndarray, sfreq: float, tmin: float) -> np.ndarray:
    """Index of the sample nearest ``onset + tmin`` (ties go to the later sample)."""
    return np.floor((onsets + tmin) * sfreq + 0.5).astype(np.int64)


def _window_length(sfreq: float, tmin: float, tmax: float) -> int:
    return int(np.floor((tmax - tmin) * sfreq + 0.5))


def windows_inside_recording(
    onsets: Sequence[float] | np.ndarray,
    n_times: int,
    sfreq: float,
    tmin: float,
    tmax: float,
    *,
    shift: float = 0.0,
) -> np.ndarray:
    """Which events' windows lie wholly inside the recording.

    The window of an event is cut exactly as by :func:`epoch_words`: it
    starts at the sample nearest ``onset + shift + tmin`` and has
    ``round((tmax - tmin) * sfreq)`` samples. Use the mask to drop the words
    whose window crosses the recording's start or end (as :class:`mne.Epochs`
    does) before calling :func:`epoch_words`, which refuses them.

    Parameters
    ----------
    onsets : array-like of shape (n_events,)
        Event onsets in seconds from the first sample (finite).
    n_times : int
        Samples in the recording.
    sfreq : float
        Sampling rate in Hz.
    tmin, tmax : float
        Window bounds in seconds relative to the (shifted) onset.
    shift : float
        Delay in seconds added to every onset.

    Returns
    -------
    inside : ndarray of shape (n_events,), bool
        True where the whole window is inside ``[0, n_times)``; False for a
        non-finite onset.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    finite = np.isfinite(onsets)
    starts = _window_starts(np.where(finite, onsets, 0.0) + shift, sfreq, tmin)
    return finite & (starts >= 0) & (starts + _window_length(sfreq, tmin, tmax) <= n_times)


def check_epochs_in_recording(
    onsets: Sequence[float] | np.ndarray,
    n_times: int,
    sfreq: float,
    tmin: float,
    tmax: float,
    source: str | os.PathLike | None,
    *,
    shift: float = 0.0,
) -> None:
    """Raise if the window of any event falls outside the recording.

    The window of an event of onset ``t`` (seconds from the first sample)
    starts at the sample nearest ``t + shift + tmin`` and has
    ``round((tmax - tmin) * sfreq)`` samples, exactly as cut by
    :func:`epoch_words`.

    Parameters
    ----------
    onsets : array-like of shape (n_events,)
        Event onsets in seconds from the first sample.
    n_times : int
        Samples in the recording.
    sfreq : float
        Sampling rate in Hz.
    tmin, tmax : float
        Window bounds in seconds relative to the (shifted) onset.
    source : str, path-like or None
        File named in the message.
    shift : float
        Delay in seconds added to every onset.

    Raises
    ------
    InputFileError
        Naming the first event outside, its index, onset and window, and
        the number of such events.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    if not np.isfinite(onsets).all():
        i = int(np.flatnonzero(~np.isfinite(onsets))[0])
        raise InputFileError(source, f"event {i}: onset is not a finite number ({onsets[i]!r}).")
    outside = ~windows_inside_recording(onsets, n_times, sfreq, tmin, tmax, shift=shift)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        duration = n_times / sfreq
        lo, hi = onsets[i] + shift + tmin, onsets[i] + shift + tmax
        raise InputFileError(
            source,
            f"event {i} (onset {onsets[i]:.6g} s): its window [{lo:.6g}, {hi:.6g}] s "
            f"(tmin={tmin:g}, tmax={tmax:g}, shift={shift:g}) falls outside the recording "
            f"(0 to {duration:.6g} s, {n_times} samples at {sfreq:g} Hz); "
            f"{int(outside.sum())} of {onsets.size} event(s) are outside.",
        )


def _baseline_slice(
    times: np.ndarray, sfreq: float, baseline: tuple[float | None, float | None]
) -> slice:
    """Samples of ``times`` in ``[baseline[0], baseline[1])`` (None: the window's edge)."""
    if len(baseline) != 2:
        raise BrainalignError(f"'baseline' must be a (start, stop) pair or None, got {baseline!r}.")
    start, stop = baseline
    tmin = float(times[0])
    # Tolerance of a millionth of a sample so that a bound on a sample is included.
    lo = 0 if start is None else int(np.ceil((start - tmin) * sfreq - 1e-6))
    hi = len(times) if stop is None else int(np.ceil((stop - tmin) * sfreq - 1e-6))
    lo, hi = max(lo, 0), min(hi, len(times))
    if hi <= lo:
        raise BrainalignError(
            f"'baseline' {baseline!r} contains no sample of the window "
            f"[{times[0]:g}, {times[-1]:g}] s at {sfreq:g} Hz."
        )
    return slice(lo, hi)


def baseline_correct(
    X: np.ndarray, times: np.ndarray, sfreq: float, baseline: tuple[float | None, float | None] | None
) -> np.ndarray:
    """Subtract the per-channel mean over ``[baseline[0], baseline[1])``.

    Parameters
    ----------
    X : ndarray of shape (..., n_channels, n_times)
        Epochs or one evoked response.
    times : ndarray of shape (n_times,)
        Time of each sample in seconds.
    sfreq : float
        Sampling rate in Hz.
    baseline : (start, stop) or None
        Interval in seconds, start included, stop excluded; None in either
        place means the window's first/last sample. None disables.

    Returns
    -------
    X : ndarray of the same shape
        A new array (float64 unless ``X`` is float32).
    """
    X = np.array(X, dtype=np.result_type(np.asarray(X).dtype, np.float32), copy=True)
    if baseline is None:
        return X
    span = _baseline_slice(np.asarray(times), sfreq, baseline)
    X -= X[..., span].mean(axis=-1, keepdims=True)
    return X


def epoch_words(
    raw: str | os.PathLike | mne.io.BaseRaw,
    onsets: Sequence[float] | np.ndarray,
    *,
    tmin: float = -0.5,
    tmax: float = 2.5,
    baseline: tuple[float | None, float | None] | None = (-0.5, 0.0),
    shift: float = 0.0,
    source: str | os.PathLike | None = None,
    picks: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one window per word onset.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (read, never modified).
    onsets : array-like of shape (n_events,)
        Word onsets in seconds from the first sample of ``raw`` (as returned
        by :func:`read_word_events`).
    tmin, tmax : float
        Window bounds in seconds relative to the shifted onset. The window
        starts at the sample nearest ``onset + shift + tmin`` (ties go to the
        later sample) and has exactly ``round((tmax - tmin) * sfreq)``
        samples.
    baseline : (start, stop) or None
        Per epoch and channel, the mean over the samples whose time (in
        ``times``) is in ``[start, stop)`` is subtracted; None disables.
    shift : float
        Delay in seconds of the brain response: every window is moved later
        by ``shift`` (Défossez et al. use 0.15 for MEG). ``times`` and
        ``baseline`` are relative to the shifted onset.
    source : str, path-like or None
        File named in messages (default: the Raw's file).
    picks : str, list or None
        Channels to keep, as MNE's ``picks`` (None: all channels, in order).

    Returns
    -------
    X : ndarray of shape (n_events, n_channels, n_times), float32
        The windows.
    times : ndarray of shape (n_times,), float64
        ``tmin + k / sfreq`` in seconds, relative to the shifted onset.

    Raises
    ------
    InputFileError
        A window falls outside the recording (the event is named).
    """
    raw = _as_raw(raw, preload=False)
    where = _source_of(raw, source)
    if not tmax > tmin:
        raise BrainalignError(f"'tmax' ({tmax!r}) must be greater than 'tmin' ({tmin!r}).")
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    sfreq = float(raw.info["sfreq"])
    length = _window_length(sfreq, tmin, tmax)
    if length < 1:
        raise BrainalignError(f"the window [{tmin}, {tmax}] s holds no sample at {sfreq:g} Hz.")
    check_epochs_in_recording(onsets, raw.n_times, sfreq, tmin, tmax, where, shift=shift)
    times = tmin + np.arange(length) / sfreq
    data = raw.get_data(picks=picks)
    starts = _window_starts(onsets + shift, sfreq, tmin)
    X = data[:, starts[:, None] + np.arange(length)[None, :]]  # (n_channels, n_events, n_times)
    X = np.ascontiguousarray(X.transpose(1, 0, 2))
    X = baseline_correct(X, times, sfreq, baseline)
    return X.astype(np.float32, copy=False), times
