"""Temporal cleaning of fMRI time courses with nilearn's signal tools.

The same cleaning (detrending, high-pass filtering, confound regression and
standardization, per run) is applied to the responses and to the design
matrices, so that the encoder never sees a drift the design cannot carry.
Without it, slow drifts dominate single-subject scores (see docs/method.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["LinearCleaner", "clean_signals"]


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


class LinearCleaner:
    """:func:`clean_signals` of one run layout as matrices, for cleaning many series fast.

    Detrending, Butterworth filtering and confound regression are linear in
    the signals, so each run's cleaning is one ``(n_run, n_run)`` matrix
    ``L`` (``clean_signals`` applied to the identity without
    standardization); calling the cleaner applies ``L`` run by run, then the
    standardization (z-score with ``ddof=1`` for ``"zscore_sample"``, none for
    ``False``). The refit shift test (:mod:`brainalign.metrics.cv_permutation`)
    cleans every circularly shifted design with it, exactly as the observed
    design was cleaned.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    settings : mapping
        The ``preprocessing`` settings given to :func:`clean_signals`;
        ``standardize`` must be ``"zscore_sample"`` or false (percent signal
        change is not linear: see :meth:`supports`).
    runs : ndarray of shape (n_samples,)
        Run label of every sample (each run contiguous); one label for a
        single run.
    confounds : ndarray of shape (n_samples, n_confounds) or None

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> settings = {"detrend": True, "high_pass": 0.01, "standardize": "zscore_sample"}
    >>> y = rng.standard_normal((100, 3)).cumsum(axis=0)
    >>> cleaner = LinearCleaner(2.0, settings, runs=np.zeros(100))
    >>> bool(np.allclose(cleaner(y), clean_signals(y, 2.0, settings)))
    True
    """

    def __init__(self, tr: float, settings: Mapping[str, Any], runs: np.ndarray, confounds: np.ndarray | None = None):
        if not self.supports(settings):
            raise ValueError(f"standardize={settings.get('standardize')!r} is not linear; use clean_signals.")
        runs = np.asarray(runs)
        n = runs.shape[0]
        self.standardize = bool(settings.get("standardize", "zscore_sample"))
        linear = {**settings, "standardize": False}
        self.blocks: list[tuple[slice, np.ndarray]] = []
        starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
        stops = np.r_[starts[1:], n]
        for start, stop in zip(starts, stops):
            conf = None if confounds is None else np.asarray(confounds, dtype=np.float64)[start:stop]
            self.blocks.append((slice(start, stop), clean_signals(np.eye(stop - start), tr, linear, None, conf)))

    @staticmethod
    def supports(settings: Mapping[str, Any]) -> bool:
        """Whether the cleaning of ``settings`` is linear up to a z-score (not percent signal change)."""
        return settings.get("standardize", "zscore_sample") in ("zscore_sample", False, None)

    def __call__(self, signals: np.ndarray) -> np.ndarray:
        """Clean ``signals`` (n_samples, n_columns), in float64."""
        signals = np.asarray(signals, dtype=np.float64)
        out = np.empty_like(signals)
        for rows, L in self.blocks:
            block = L @ signals[rows]
            if self.standardize:
                centred = block - block.mean(axis=0)
                sd = centred.std(axis=0, ddof=1)
                block = np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 0)
            out[rows] = block
        return out

    def on(self, backend: Any) -> Callable[[Any], Any]:
        """This cleaning for float64 tensors of a torch array backend (a GPU with ``torch_cuda``).

        The run matrices are moved to the backend once; the returned callable
        maps a tensor (n_samples, n_columns) to its cleaned float64 tensor,
        equal to :meth:`__call__` up to rounding.
        """
        blocks = [(rows, backend.asarray(L, dtype="float64")) for rows, L in self.blocks]
        standardize = self.standardize

        def clean(signals: Any) -> Any:
            signals = backend.asarray(signals, dtype="float64")
            out = backend.empty(tuple(signals.shape), dtype="float64")
            for rows, L in blocks:
                block = backend.matmul(L, signals[rows])
                if standardize:
                    centred = block - block.mean(dim=0)
                    sd = centred.std(dim=0, correction=1)
                    block = (centred / sd.where(sd > 0, 1.0)) * (sd > 0)
                out[rows] = block
            return out

        return clean
