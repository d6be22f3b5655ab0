"""Design matrices: word-level features → the fMRI sampling grid.

Two temporal models are offered:

* **HRF convolution** (default): every event contributes its feature vector
  as a boxcar (or an impulse when its duration is 0) on a high-resolution
  grid, which is convolved with one of nilearn's haemodynamic response
  functions and sampled at the frame times. The grid, the onset rounding and
  the linear resampling replicate :func:`nilearn.glm.first_level.compute_regressor`
  exactly, vectorised over feature columns (tested against it).
* **FIR delays**: the features are summed per volume (events binned by the
  volume during which they start) and stacked with copies shifted by each
  lag, so the encoder learns its own response shape (``n_features × n_lags``
  columns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import BrainalignError, check_option

__all__ = ["hrf_convolve", "fir_design", "frame_times_for_run", "events_after_last_volume", "HRF_MODELS"]

HRF_MODELS = ("spm", "glover")


def frame_times_for_run(n_volumes: int, tr: float, first_volume_onset: float = 0.0) -> np.ndarray:
    """Return the acquisition time of each volume in seconds.

    Parameters
    ----------
    n_volumes : int
        Number of volumes in the run.
    tr : float
        Repetition time in seconds.
    first_volume_onset : float
        Time of the first volume in seconds, on the events' clock.

    Returns
    -------
    frame_times : ndarray of shape (n_volumes,)
    """
    return first_volume_onset + tr * np.arange(n_volumes, dtype=np.float64)


def events_after_last_volume(onsets: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """Which events start after the run's last volume was acquired.

    The last volume covers ``[frame_times[-1], frame_times[-1] + TR)``; an
    event starting at or after its end falls on no volume, and both
    :func:`hrf_convolve` and :func:`fir_design` would leave it out without a
    word (as nilearn does), so callers reading events from a file refuse it.

    Parameters
    ----------
    onsets : ndarray of shape (n_events,)
        Event onsets in seconds, on the clock of ``frame_times``.
    frame_times : ndarray of shape (n_volumes,)
        Volume acquisition times in seconds, evenly spaced (at least 2).

    Returns
    -------
    late : ndarray of bool, shape (n_events,)
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    if frame_times.size < 2:
        raise BrainalignError(f"frame_times must hold at least 2 volumes, got {frame_times.size}.")
    end = frame_times[-1] + float(np.min(np.diff(frame_times)))
    return np.asarray(onsets, dtype=np.float64) >= end


def _hrf_kernel(hrf_model: str, tr: float, oversampling: int) -> np.ndarray:
    from nilearn.glm.first_level.hemodynamic_models import glover_hrf, spm_hrf

    check_option("hrf_model", hrf_model, HRF_MODELS)
    make = spm_hrf if hrf_model == "spm" else glover_hrf
    return np.asarray(make(tr, oversampling), dtype=np.float64)


def hrf_convolve(
    onsets: np.ndarray,
    durations: np.ndarray,
    amplitudes: np.ndarray,
    frame_times: np.ndarray,
    hrf_model: str = "spm",
    oversampling: int = 50,
    min_onset: float = -24.0,
) -> np.ndarray:
    """Convolve event-locked feature vectors with an HRF, sampled at ``frame_times``.

    Column ``j`` of the result equals ``nilearn.glm.first_level.compute_regressor(
    (onsets, durations, amplitudes[:, j]), hrf_model, frame_times,
    oversampling=oversampling, min_onset=min_onset)`` (to rounding).

    Parameters
    ----------
    onsets : ndarray of shape (n_events,)
        Event onsets in seconds, on the clock of ``frame_times``.
    durations : ndarray of shape (n_events,)
        Event durations in seconds (0 gives an impulse).
    amplitudes : ndarray of shape (n_events, n_features)
        The feature vector of each event.
    frame_times : ndarray of shape (n_volumes,)
        Volume acquisition times in seconds, evenly spaced.
    hrf_model : {"spm", "glover"}
        Which of nilearn's canonical HRFs.
    oversampling : int
        Temporal oversampling of the high-resolution grid.
    min_onset : float
        Events starting earlier than ``frame_times[0] + min_onset`` (s) are ignored,
        as in nilearn.

    Returns
    -------
    regressors : ndarray of shape (n_volumes, n_features), float64
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    durations = np.asarray(durations, dtype=np.float64)
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    frame_times = np.asarray(frame_times, dtype=np.float64)
    if amplitudes.ndim == 1:
        amplitudes = amplitudes[:, None]
    if not (len(onsets) == len(durations) == len(amplitudes)):
        raise BrainalignError(
            f"onsets ({len(onsets)}), durations ({len(durations)}) and amplitudes "
            f"({len(amplitudes)}) must have the same number of events."
        )
    n_frames = frame_times.size
    if n_frames < 2:
        raise BrainalignError(f"frame_times must hold at least 2 volumes, got {n_frames}.")
    tr = float(np.min(np.diff(frame_times)))

    # The high-resolution grid, built exactly as nilearn builds it.
    lo, hi = frame_times.min(), frame_times.max()
    n_hr = (n_frames - 1) / (hi - lo) * (hi * (1 + 1 / (n_frames - 1)) - lo - min_onset) * oversampling + 1
    grid = np.linspace(lo + min_onset, hi * (1 + 1 / (n_frames - 1)), int(np.rint(n_hr)))
    n_grid = grid.size

    keep = onsets >= frame_times[0] + min_onset
    onsets, durations, amplitudes = onsets[keep], durations[keep], amplitudes[keep]
    start = np.minimum(np.searchsorted(grid, onsets), n_grid - 1)
    stop = np.minimum(np.searchsorted(grid, onsets + durations), n_grid - 1)
    stop = np.where((stop < n_grid - 1) & (stop == start), stop + 1, stop)

    boxcar = np.zeros((n_grid, amplitudes.shape[1]), dtype=np.float64)
    np.add.at(boxcar, start, amplitudes)
    np.add.at(boxcar, stop, -amplitudes)
    boxcar = np.cumsum(boxcar, axis=0)

    from scipy.signal import fftconvolve

    kernel = _hrf_kernel(hrf_model, tr, oversampling)
    convolved = fftconvolve(boxcar, kernel[:, None], mode="full", axes=0)[:n_grid]
    # Linear interpolation at the frame times (nilearn uses interp1d(kind="linear")).
    idx = np.clip(np.searchsorted(grid, frame_times, side="right") - 1, 0, n_grid - 2)
    weight = ((frame_times - grid[idx]) / (grid[idx + 1] - grid[idx]))[:, None]
    return (1 - weight) * convolved[idx] + weight * convolved[idx + 1]


def fir_design(
    onsets: np.ndarray,
    amplitudes: np.ndarray,
    frame_times: np.ndarray,
    lags: Sequence[int] = (1, 2, 3, 4, 5, 6),
) -> np.ndarray:
    """Finite-impulse-response design: features summed per volume, then lagged.

    Parameters
    ----------
    onsets : ndarray of shape (n_events,)
        Event onsets in seconds.
    amplitudes : ndarray of shape (n_events, n_features)
        The feature vector of each event.
    frame_times : ndarray of shape (n_volumes,)
        Volume acquisition times in seconds, evenly spaced.
    lags : sequence of int
        Delays in volumes (a lag of 2 at TR = 2 s models the response 4 s
        after the words).

    Returns
    -------
    design : ndarray of shape (n_volumes, n_features * len(lags)), float64
        Lag-major: columns ``[k * n_features:(k + 1) * n_features]`` hold lag ``lags[k]``.
    """
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    if amplitudes.ndim == 1:
        amplitudes = amplitudes[:, None]
    frame_times = np.asarray(frame_times, dtype=np.float64)
    tr = float(np.min(np.diff(frame_times)))
    n_frames = frame_times.size
    # Event e belongs to the volume whose interval [t_k, t_k + TR) contains its onset.
    bins = np.floor((np.asarray(onsets, dtype=np.float64) - frame_times[0]) / tr).astype(int)
    inside = (bins >= 0) & (bins < n_frames)
    binned = np.zeros((n_frames, amplitudes.shape[1]))
    np.add.at(binned, bins[inside], amplitudes[inside])
    blocks = []
    for lag in lags:
        if lag < 0:
            raise BrainalignError(f"FIR 'lags' must be non-negative, got {lag}.")
        shifted = np.zeros_like(binned)
        shifted[lag:] = binned[: n_frames - lag] if lag < n_frames else 0.0
        blocks.append(shifted)
    return np.concatenate(blocks, axis=1)
