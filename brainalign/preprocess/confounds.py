"""fMRIPrep confounds through nilearn's loader, as regressors on every volume.

:func:`nilearn.interfaces.fmriprep.load_confounds` selects columns of the
confounds TSV by strategy (motion 6/12/24 parameters, white matter and CSF,
global signal, aCompCor, scrubbing). Scrubbing returns a *sample mask* (the
volumes kept); dropping volumes would break the alignment of the run with its
design, which is shared by all subjects, so each scrubbed volume becomes one
spike regressor (a column that is 1 at that volume, 0 elsewhere). Regressing
it out zeroes that volume in the responses and in the design alike, which is
the regression equivalent of censoring it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import InputFileError

__all__ = ["load_fmriprep_confounds"]


def load_fmriprep_confounds(
    bold: str | os.PathLike, settings: Mapping[str, Any], n_volumes: int
) -> tuple[np.ndarray, list[str]]:
    """Confound regressors of one fMRIPrep run.

    Parameters
    ----------
    bold : path-like
        The run's ``*_desc-preproc_bold.nii.gz``; the confounds TSV and its
        JSON sidecar are found next to it by nilearn.
    settings : mapping
        The ``preprocessing.fmriprep_confounds`` config section: ``preset``
        (``"simple"``, ``"scrubbing"``, ``"compcor"`` or None) or
        ``strategy`` and the per-strategy options of nilearn's loader.
    n_volumes : int
        Volumes of the run, checked against the TSV.

    Returns
    -------
    confounds : ndarray of shape (n_volumes, n_confounds), float64
        Demeaned regressors, then one spike column per scrubbed volume.
    names : list of str
        Column names (spikes are ``"scrub_<volume>"``).
    """
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    bold = Path(bold)
    options = {k: settings[k] for k in ("motion", "wm_csf", "global_signal", "compcor", "n_compcor",
                                        "fd_threshold", "std_dvars_threshold", "scrub") if k in settings}
    try:
        if settings.get("preset"):
            frame, sample_mask = load_confounds_strategy(
                str(bold), denoise_strategy=settings["preset"], **_preset_options(settings["preset"], options))
        else:
            frame, sample_mask = load_confounds(str(bold), strategy=list(settings["strategy"]), **options)
    except (ValueError, FileNotFoundError, KeyError) as err:
        text = str(err)
        if "confound" in text.lower() and ("find" in text.lower() or "exist" in text.lower()):
            raise InputFileError(
                bold, "no fMRIPrep confounds file next to this run (expected "
                "'*_desc-confounds_timeseries.tsv' with its .json; field preprocessing.confounds "
                f"is 'fmriprep'): {text}"
            ) from err
        raise InputFileError(bold, f"nilearn could not load the confounds of this run: {text}") from err
    values = np.zeros((n_volumes, 0)) if frame is None else frame.to_numpy(dtype=np.float64)
    names = [] if frame is None else [str(c) for c in frame.columns]
    if values.shape[0] != n_volumes:
        raise InputFileError(
            _confounds_tsv(bold), f"has {values.shape[0]} rows but {bold.name} has {n_volumes} volumes "
            "(header field dim[4]); one row per volume is expected."
        )
    if not np.isfinite(values).all():
        col = names[int(np.flatnonzero(~np.isfinite(values).all(axis=0))[0])]
        raise InputFileError(_confounds_tsv(bold), f"column {col!r} has NaN values after loading.")
    if sample_mask is not None:
        dropped = np.setdiff1d(np.arange(n_volumes), np.asarray(sample_mask))
        spikes = np.zeros((n_volumes, dropped.size))
        spikes[dropped, np.arange(dropped.size)] = 1.0
        values = np.hstack([values, spikes])
        names += [f"scrub_{int(v)}" for v in dropped]
    return values, names


def _confounds_tsv(bold: Path) -> Path:
    """The confounds TSV fMRIPrep writes next to ``bold`` (named in messages)."""
    keep = [part for part in bold.name.split("_")[:-1] if not part.startswith(("space-", "res-", "den-", "desc-"))]
    stem = "_".join(keep)
    for suffix in ("timeseries", "regressors"):
        candidate = bold.with_name(f"{stem}_desc-confounds_{suffix}.tsv")
        if candidate.exists():
            return candidate
    return bold.with_name(f"{stem}_desc-confounds_timeseries.tsv")


def _preset_options(preset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options a nilearn preset accepts (it rejects the others)."""
    allowed = {
        "simple": ("motion", "wm_csf", "global_signal"),
        "scrubbing": ("motion", "wm_csf", "global_signal", "scrub", "fd_threshold", "std_dvars_threshold"),
        "compcor": ("motion", "compcor", "n_compcor", "global_signal"),
    }[preset]
    return {k: v for k, v in options.items() if k in allowed and k != "global_signal"}
