"""Temporal cleaning of fMRI time courses with nilearn's signal tools.

The same cleaning (detrending, high-pass filtering, confound regression and
standardization, per run) is applied to the responses and to the design
matrices, so that the encoder never sees a drift the design cannot carry.
Without it, slow drifts dominate single-subject scores (see docs/method.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["clean_signals"]


def clean_signals(
    signals: np.ndarray,
    tr: float,
    settings: Mapping[str, Any],
    runs: np.ndarray | None = None,
    confounds: np.ndarray | None = None,
) -> np.ndarray:
    """Clean time courses with :func:`nilearn.signal.clean`.

    Parameters
    ----------
    signals : ndarray of shape (n_samples, n_columns)
        Responses or a design matrix.
    tr : float
        Repetition time in seconds.
    settings : mapping
        ``detrend`` (bool), ``high_pass`` (Hz or None), ``standardize``
        (``"zscore_sample"``, ``"zscore"``, ``"psc"`` or False) and
        ``confounds`` (``"none"``, ``"motion"`` or ``"fmriprep"``; the
        confounds themselves come in ``confounds``).
    runs : ndarray of shape (n_samples,) or None
        Run labels; each run is cleaned separately.
    confounds : ndarray of shape (n_samples, n_confounds) or None
        Regressed out when ``settings["confounds"] != "none"``.

    Returns
    -------
    cleaned : ndarray of shape (n_samples, n_columns), float64
    """
    from nilearn.signal import clean

    signals = np.asarray(signals, dtype=np.float64)
    use_confounds = settings.get("confounds", "none") != "none" and confounds is not None
    conf = np.asarray(confounds, dtype=np.float64) if use_confounds else None
    options = dict(
        detrend=bool(settings.get("detrend", True)),
        high_pass=settings.get("high_pass"),
        t_r=tr,
        standardize=settings.get("standardize", "zscore_sample") or None,
        # Filter all columns in one vectorised call: nilearn's default loops over
        # columns (~1 ms each, minutes at whole-brain scale); same numbers, bit for bit.
        butterworth__copy=True,
    )
    if runs is None or len(np.unique(runs)) < 2:
        return np.asarray(clean(signals, confounds=conf, **options), dtype=np.float64)
    # Each run separately, as nilearn.signal.clean(runs=...) does (which would not
    # pass the filter option on to the runs).
    runs = np.asarray(runs)
    cleaned = np.empty_like(signals)
    for label in np.unique(runs):
        rows = runs == label
        cleaned[rows] = clean(signals[rows], confounds=None if conf is None else conf[rows], **options)
    return cleaned
