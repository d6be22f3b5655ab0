"""fMRIPrep confounds through nilearn's loader, as regressors on every volume.

:func:`nilearn.interfaces.fmriprep.load_confounds` selects columns of the
confounds TSV by strategy (motion 6/12/24 parameters, white matter and CSF,
global signal, aCompCor, scrubbing). Scrubbing returns a *sample mask* (the
volumes kept); dropping volumes would break the alignment of the run with its
design, which is shared by all subjects, so each scrubbed volume becomes one
spike regressor (a column that is 1 at that volume, 0 elsewhere). Regressing
it out zeroes that volume in the responses and in the design alike, which is
the regression equivalent of censoring it.

A run that scrubbing censors too heavily (more than half of its volumes, or so
many that the kept volumes cannot carry its other regressors) is an error that
names the confounds TSV and the thresholds: see :func:`load_fmriprep_confounds`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import InputFileError

__all__ = ["load_fmriprep_confounds"]

# The largest fraction of a run's volumes that may be censored (scrubbed or
# non-steady-state); nilearn's guidance for its scrubbing strategy.
_MAX_CENSORED_FRACTION = 0.5


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

    Raises
    ------
    InputFileError
        Naming the confounds TSV when it cannot be loaded, has the wrong
        number of rows or NaN values, or when too few volumes survive
        censoring (scrubbing, and fMRIPrep's non-steady-state volumes). A run
        must keep

        * at least half of its volumes: nilearn's documentation of its
          scrubbing strategy
          (:func:`~nilearn.interfaces.fmriprep.load_confounds_strategy`)
          warns that it does not suit runs with more than 50 % of the volumes
          flagged, and asks to adapt the thresholds or exclude the subject.
          Beyond it the run's score rests on the minority of volumes that
          motion happened to spare, and the thresholds, not the data, decide
          the result;
        * more volumes than the regressors fitted to them besides the spikes:
          its other confounds, the mean and the linear trend (detrending).
          With no more kept volumes than that, the confounds fit the kept
          volumes exactly and the cleaned run is zero. This bound matters
          only for short runs with many confounds.
    """
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    bold = Path(bold)
    tsv = _confounds_tsv(bold)
    if tsv.is_file():
        _check_confounds_tsv(tsv)
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
    dropped = (np.zeros(0, dtype=int) if sample_mask is None
               else np.setdiff1d(np.arange(n_volumes), np.asarray(sample_mask)))
    # Before the NaN check: nilearn demeans over the kept volumes, so a run
    # with none left has NaN in every column.
    _check_kept_volumes(bold, settings, n_volumes, dropped.size, values.shape[1])
    if not np.isfinite(values).all():
        col = names[int(np.flatnonzero(~np.isfinite(values).all(axis=0))[0])]
        raise InputFileError(_confounds_tsv(bold), f"column {col!r} has NaN values after loading.")
    if dropped.size:
        spikes = np.zeros((n_volumes, dropped.size))
        spikes[dropped, np.arange(dropped.size)] = 1.0
        values = np.hstack([values, spikes])
        names += [f"scrub_{int(v)}" for v in dropped]
    return values, names


def _check_confounds_tsv(path: Path) -> None:
    """Raise naming the TSV, the column and the row of the first cell that is not a number.

    nilearn's loader would fail on such a file with a message about the BOLD
    image (a text cell, an empty file, a byte that is not UTF-8), or with a
    bare ``TypeError``; an infinite value would only fail later, in the
    regression, without a column. Every column is checked: fMRIPrep writes
    numbers only, and ``n/a`` where a value is undefined (the first row of
    the derivatives and of the framewise displacement).
    """
    from .._tsv import read_tsv_cells, tsv_numbers

    table = read_tsv_cells(path, "confounds TSV")
    if table.empty:
        raise InputFileError(path, f"the confounds TSV has a header ({len(table.columns)} columns) but no rows; "
                                   "one row per volume is expected.")
    for column in table.columns:
        tsv_numbers(table[column], path, str(column), missing="nan")


def _check_kept_volumes(
    bold: Path, settings: Mapping[str, Any], n_volumes: int, n_censored: int, n_confounds: int
) -> None:
    """Raise if censoring leaves too few volumes (the rule: :func:`load_fmriprep_confounds`)."""
    from inspect import signature

    from nilearn.interfaces.fmriprep import load_confounds

    kept = n_volumes - n_censored
    half = int(np.ceil((1.0 - _MAX_CENSORED_FRACTION) * n_volumes))
    minimum = max(half, n_confounds + 3)  # more than n_confounds + mean + linear trend
    if n_censored == 0 or kept >= minimum:
        return
    preset = settings.get("preset")
    if preset == "scrubbing" or (not preset and "scrub" in settings.get("strategy", ())):
        nilearn = signature(load_confounds).parameters

        def value(key: str) -> Any:
            return settings.get(key, nilearn[key].default)

        segments = (f", and the segments of fewer than scrub = {value('scrub')} volumes between them"
                    if value("scrub") else "")
        cause = (f"scrubbing (framewise displacement > preprocessing.fmriprep_confounds.fd_threshold = "
                 f"{value('fd_threshold'):g} mm or standardised DVARS > std_dvars_threshold = "
                 f"{value('std_dvars_threshold'):g}{segments}) censors")
        fix = ("raise preprocessing.fmriprep_confounds.fd_threshold or std_dvars_threshold, or leave "
               "this subject out (dataset.subjects)")
    else:
        cause = "fMRIPrep's non_steady_state_outlier columns censor"
        fix = "check the run (fMRIPrep marks only the first volumes as non-steady-state)"
    why = ("half of the run" if minimum == half else
           f"more than its {n_confounds} other confound(s) plus the mean and linear trend fitted to them")
    raise InputFileError(
        _confounds_tsv(bold), f"{cause} {n_censored} of the run's {n_volumes} volumes, leaving {kept}; "
        f"at least {minimum} must remain ({why}). To keep more, {fix}."
    )


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
