"""One call from model features and brain responses to a tidy table of scores, ceilings and normalized scores."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError
from ..encoders.ridge_core import DEFAULT_ALPHAS
from ..metrics.ceilings.isc import DEFAULT_MIN_CEILING
from .features_input import as_events, as_layers, on_samples
from .responses_input import SubjectResponses, as_subjects

__all__ = ["CeilingWarning", "FEW_SUBJECTS", "score_alignment"]

#: Below this many subjects a leave-one-subject-out ceiling is flagged as unreliable: its group mean is a
#: noisy target, so even a perfect model's score exceeds it (by sqrt(1 + 1/((N - 1) snr)), see
#: :func:`brainalign.metrics.ceilings.normalized_score`), and the ceiling itself varies from subject to subject.
FEW_SUBJECTS = 5

#: The workflow's ``preprocessing.high_pass`` default in Hz (a 128 s period, SPM's).
DEFAULT_HIGH_PASS = 1 / 128

_CLEAN = {"detrend": True, "standardize": "zscore_sample"}


class CeilingWarning(UserWarning):
    """A noise ceiling, or a score normalized by it, should not be taken at face value."""


def _clean(signals: np.ndarray, subject: SubjectResponses, interval: float | None, high_pass: float | None,
           confounds: bool) -> np.ndarray:
    from ..preprocess.fmri import clean_signals

    if subject.preprocessing is not None:
        return clean_signals(signals, interval, subject.preprocessing, subject.runs, subject.confounds)
    if high_pass is not None and interval is None:
        raise BrainalignError("'high_pass' needs the sampling interval: give 'sampling_interval' (s).")
    settings = dict(_CLEAN, high_pass=high_pass, confounds="motion" if confounds else "none")
    return clean_signals(signals, interval or 1.0, settings, subject.runs, subject.confounds)


def _roi_ceilings(subjects: list[SubjectResponses], cleaned: list[np.ndarray]) -> pd.Series:
    """Leave-one-subject-out ISC averaged over each ROI's units, then over subjects (the workflow's definition)."""
    from ..metrics.ceilings import loso_isc

    first = subjects[0]
    for s, y in zip(subjects[1:], cleaned[1:]):
        if s.unit_names != first.unit_names or y.shape != cleaned[0].shape:
            raise BrainalignError(
                f"the ISC ceiling needs every subject on the same samples and units: subject {s.subject!r} has "
                f"{y.shape} (samples, units), subject {first.subject!r} {cleaned[0].shape}; give "
                "ceiling=None or a ceiling per ROI.")
    isc = loso_isc(np.stack(cleaned))  # (n_subjects, n_units)
    table = pd.DataFrame({"roi": first.unit_rois * len(subjects), "isc": isc.reshape(-1)})
    return table.groupby("roi", sort=False)["isc"].mean()


def _given_ceilings(ceiling: Any, rois: Sequence[str]) -> pd.Series:
    values = pd.Series(ceiling, dtype=np.float64) if isinstance(ceiling, (Mapping, pd.Series)) else None
    if values is None:
        arr = np.atleast_1d(np.asarray(ceiling, dtype=np.float64))
        if arr.size == 1:
            return pd.Series(float(arr[0]), index=list(rois))
        raise BrainalignError(f"'ceiling' gives {arr.size} values for {len(rois)} ROIs {list(rois)}: give one "
                              "number for all, a dict ROI -> ceiling (a list's order would be a guess), "
                              "'loso_isc' or None.")
    missing = [r for r in rois if r not in values.index]
    if missing:
        raise BrainalignError(f"'ceiling' gives no value for ROI(s) {missing}.")
    return values


def _warn_ceilings(table: pd.DataFrame, roi_ceiling: pd.Series, n_subjects: int, estimated: bool,
                   min_ceiling: float) -> None:
    if estimated and n_subjects < FEW_SUBJECTS:
        warnings.warn(
            f"the noise ceiling comes from {n_subjects} subjects (fewer than {FEW_SUBJECTS}): the leave-one-out "
            "group mean is itself noisy, so normalized scores are biased upwards and vary with the subjects chosen.",
            CeilingWarning, stacklevel=3)
    low = roi_ceiling[~(roi_ceiling >= max(min_ceiling, np.finfo(float).tiny))]
    if len(low):
        listed = ", ".join(f"{roi} ({value:.3f})" for roi, value in low.items())
        warnings.warn(
            f"ceiling below min_ceiling = {min_ceiling:g} (or not positive) for ROI(s) {listed}: no reliable "
            "stimulus-driven signal is shared across subjects there, so their normalized scores are left "
            "missing (NaN).", CeilingWarning, stacklevel=3)
    n_over = int(table["exceeds_ceiling"].sum())
    if n_over:
        worst = table.loc[table["normalized_score_unclipped"].idxmax()]
        warnings.warn(
            f"{n_over} of {len(table)} scores exceed their ROI's noise ceiling (normalized score > 1 before "
            f"clipping; largest {worst['normalized_score_unclipped']:.2f}: subject {worst['subject']}, layer "
            f"{worst['layer']}, ROI {worst['roi']}). They are clipped to 1 in 'normalized_score' and flagged in "
            "'exceeds_ceiling'; with few subjects or a noisy ceiling this is expected, not a super-human model.",
            CeilingWarning, stacklevel=3)


def _designs(layer: np.ndarray, subjects: list[SubjectResponses], events: pd.DataFrame | None,
             interval: float | None, clean: bool, high_pass: float | None, confounds: bool,
             first_sample_onset: float, hrf_model: str, joint: bool) -> list[tuple[list[int], np.ndarray]]:
    """Each subject's design for one layer, subjects with identical designs grouped (in subject order).

    With one penalty per unit, fitting a group's units together gives the
    numbers of fitting each subject alone, in one pass.
    """
    groups: list[tuple[list[int], np.ndarray]] = []
    on_grid: dict[tuple, np.ndarray] = {}  # subjects on the same samples share the convolution
    cleaned: dict[tuple, np.ndarray] = {}  # ... and the cleaning, unless their confounds differ
    for k, s in enumerate(subjects):
        grid = (s.data.shape[0], s.runs.tobytes(), None if s.times is None else s.times.tobytes(), s.epochs,
                s.modality)
        if grid not in on_grid:
            on_grid[grid] = on_samples(layer, s, events, sampling_interval=interval,
                                       first_sample_onset=first_sample_onset, hrf_model=hrf_model)
        x = on_grid[grid]
        if clean and not s.epochs:
            key = (grid, None if s.confounds is None else k, repr(s.preprocessing))
            if key not in cleaned:
                cleaned[key] = _clean(x, s, interval, high_pass, confounds)
            x = cleaned[key]
        same = [g for g in groups if joint and (g[1] is x or (g[1].shape == x.shape and np.array_equal(g[1], x)))
                and np.array_equal(subjects[g[0][0]].runs, s.runs)]
        if same:
            same[0][0].append(k)
        else:
            groups.append(([k], x))
    return groups


def score_alignment(
    features: Any,
    responses: Any,
    *,
    events: Any = None,
    subjects: Sequence[str] | None = None,
    unit_names: Sequence[str] | None = None,
    rois: Sequence[str] | Mapping[str, str] | None = None,
    atlas: Any = None,
    mask: Any = None,
    atlas_labels: Sequence[str] | None = None,
    runs: Any = None,
    sampling_interval: float | None = None,
    first_sample_onset: float = 0.0,
    hrf_model: str = "spm",
    layers: Sequence[Any] | None = None,
    context_words: int = 32,
    clean: bool = True,
    high_pass: float | str | None = "auto",
    confounds: bool = True,
    ceiling: Any = "loso_isc",
    min_ceiling: float = DEFAULT_MIN_CEILING,
    outer_folds: int = 5,
    inner_folds: int = 5,
    gap: int = 5,
    leave_one_run_out: bool = True,
    alphas: Any = DEFAULT_ALPHAS,
    alpha_per_target: bool = True,
    n_threads: int | None = 1,
    device: str = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Score every layer of a model against every subject's responses with a cross-validated ridge encoder.

    The common task of a notebook in one call: features (an array, a dict
    of layers, a features file, or a model run on the words heard) are put
    on each subject's samples, a nested cross-validated ridge encoder
    (:func:`brainalign.encoders.ridge.cross_validated_pearson`) predicts
    each unit, and each score is set against its ROI's noise ceiling.

    Parameters
    ----------
    features : array-like, dict, Features, path, model name/path or LoadedModel
        Rows are samples, or words when ``events`` is given
        (:func:`brainalign.api.features_input.as_layers`). A model is a
        local folder or a hub name found in the local Hugging Face cache.
    responses : array-like, DataFrame, Responses, path, NIfTI image, MNE object, or a list/dict of these
        One item per subject (:func:`brainalign.api.responses_input.as_subjects`):
        arrays are samples × units (a 3-D array is subjects × samples × units);
        NIfTI needs ``atlas`` or ``mask``; MNE ``Raw``/``Evoked`` are samples
        × channels, ``Epochs`` are epochs × (channel, time) units.
    events : DataFrame, TSV path or None
        Words heard (``onset`` and ``word``, in seconds on the responses'
        clock; ``duration`` and ``run`` optional), needed for word-level
        features and for a model.
    subjects, unit_names, rois : sequences or None
        Names for array inputs; ``rois`` may map unit names to ROIs.
    atlas, mask, atlas_labels
        For NIfTI inputs: a labels image (one unit per parcel) or a binary
        mask (one unit per voxel, each its own ROI unless ``rois`` maps
        them), and the parcels' names.
    runs : array-like of shape (n_samples,) or None
        Run label of each sample for inputs that do not carry them (arrays,
        tables, NIfTI), in run order; words are matched to runs by the
        events' ``run`` column. Default: one run.
    sampling_interval : float or None
        Seconds between samples (the TR), if the input does not state it.
    first_sample_onset : float
        Time of each run's first sample in seconds on the events' clock (array inputs).
    hrf_model : {"spm", "glover"}
        HRF convolving word-level features onto the samples.
    layers : sequence or None
        Only these layers.
    context_words : int
        Words of context per window when a model runs.
    clean : bool
        Detrend and z-score responses and design within each run
        (:func:`brainalign.preprocess.fmri.clean_signals`), regressing out the
        input's confounds when ``confounds``; epoched data are not cleaned, and
        the workflow's responses files (cleaned by its responses stage) only
        have their design cleaned, with the settings their provenance records
        (as the workflow's score stage does: the same numbers).
    high_pass : float, "auto" or None
        High-pass cutoff in Hz when cleaning; ``"auto"`` is the workflow's
        default, 1/128 Hz, when the sampling interval is known (given, or
        stated by the input) and none otherwise (recorded in ``scores.attrs``).
    confounds : bool
        Regress out the confounds a :class:`~brainalign.io.Responses` carries.
    ceiling : "loso_isc", None, float or dict
        The noise ceiling: the leave-one-subject-out inter-subject correlation
        averaged over each ROI's units and the subjects (needs ≥ 2 subjects on
        the same samples and units), none, one value for every ROI, or a dict
        (or Series) ROI -> ceiling.
    min_ceiling : float
        Ceilings below this leave the normalized score missing.
    outer_folds, inner_folds, gap : int
        Contiguous outer and inner folds and the gap (samples) around each test block.
    leave_one_run_out : bool
        With several runs, hold out one run per outer fold instead.
    alphas : array-like
        Candidate ridge penalties.
    alpha_per_target : bool
        One penalty per unit (else one per outer fold).
    n_threads : int or None, default=1
        BLAS/OpenMP and torch threads during the call, restored afterwards.
        One thread is the fastest choice on a shared machine for these
        many small solves (18.8 s against 0.53 s for one Alice subject on a
        busy 2-core machine); raise it for large designs on a node of your
        own, None leaves the libraries as they are.
    device : {"cpu", "cuda", "cuda:N", "auto"}, default="cpu"
        Where the ridge encoders run (the ``torch_cuda`` array backend on a
        GPU, float64; the same alphas and scores as the CPU to about 1e-12)
        and where a model given by name or path is run. A ``LoadedModel``
        runs on the device it is on. ``cuda`` without a GPU is an error
        naming ``device``; on a GPU, deterministic algorithms are turned on
        (docs/gpu.md).
    progress : bool
        Show a progress bar over layers and subjects.

    Returns
    -------
    scores : pandas.DataFrame
        One row per subject, layer and unit: ``subject``, ``layer``, ``roi``,
        ``unit``, ``metric`` (``"pearson_r"``), ``cv``, ``score`` (mean over
        outer folds of the held-out Pearson r), ``score_pooled`` (r of all
        held-out predictions), ``alpha`` (geometric mean over folds),
        ``ceiling`` (of the unit's ROI), ``normalized_score`` (score /
        ceiling clipped to [0, 1], Brain-Score's), ``normalized_score_unclipped``
        and ``exceeds_ceiling``. ``scores.attrs`` records the settings.

    Warns
    -----
    CeilingWarning
        Fewer than :data:`FEW_SUBJECTS` subjects behind an estimated ceiling;
        a ceiling below ``min_ceiling`` or negative; normalized scores above 1.
    """
    from ..backend.device import resolve_device, ridge_backend
    from ..backend.threads import limited_threads
    from ..encoders.ridge import cross_validated_pearson
    from ..metrics.ceilings.isc import normalized_score

    where = resolve_device({"device": device})
    backend = ridge_backend(where)

    subject_list, stated = as_subjects(responses, subjects=subjects, unit_names=unit_names, rois=rois,
                                       atlas=atlas, mask=mask, atlas_labels=atlas_labels, runs=runs)
    interval = sampling_interval if sampling_interval is not None else stated
    if isinstance(high_pass, str):
        if high_pass != "auto":
            raise BrainalignError(f"'high_pass' must be a frequency in Hz, 'auto' or None, got {high_pass!r}.")
        high_pass = DEFAULT_HIGH_PASS if interval is not None else None
    table_events = as_events(events)
    for s in subject_list:
        if np.any(np.diff(s.runs) < 0):
            raise BrainalignError(f"samples of subject {s.subject!r} must be in run order (run labels never "
                                  "decrease).")
    if n_threads is not None and not isinstance(features, (np.ndarray, Mapping)):
        import torch  # noqa: F401 -- imported first, so that the thread limit below reaches it
    with limited_threads(n_threads):
        layer_arrays, name = as_layers(features, table_events, layers=layers, context_words=context_words,
                                       progress=progress, device=where)
        cleaned = [_clean(s.data, s, interval, high_pass, confounds)
                   if clean and not s.epochs and s.preprocessing is None else s.data for s in subject_list]
        rows, cv_names = [], set()
        from tqdm.auto import tqdm

        for layer in tqdm(layer_arrays, desc=f"scoring {name}", unit="layer", disable=not progress):
            for group, x in _designs(layer_arrays[layer], subject_list, table_events, interval, clean, high_pass,
                                     confounds, first_sample_onset, hrf_model, alpha_per_target):
                ref = subject_list[group[0]]
                y = np.concatenate([cleaned[k] for k in group], axis=1)
                by_run = leave_one_run_out and np.unique(ref.runs).size >= 2
                res = cross_validated_pearson(x, y, outer_cv=outer_folds, inner_cv=inner_folds, gap=gap,
                                              alphas=alphas, alpha_per_target=alpha_per_target,
                                              groups=ref.runs if by_run else None, backend=backend)
                cv = f"leave_one_run_out_gap{gap}" if by_run else f"contiguous{outer_folds}_gap{gap}"
                cv_names.add(cv)
                alpha = np.exp(np.mean(np.log(res["alphas"]), axis=0))
                col = 0
                for k in group:
                    s = subject_list[k]
                    for unit, roi in zip(s.unit_names, s.unit_rois):
                        rows.append({"subject": s.subject, "layer": str(layer), "roi": roi, "unit": unit,
                                     "metric": "pearson_r", "cv": cv, "score": float(res["score"][col]),
                                     "score_pooled": float(res["pooled_score"][col]), "alpha": float(alpha[col])})
                        col += 1
        table = pd.DataFrame(rows)
        rois_in_order = list(dict.fromkeys(table["roi"]))
        estimated = isinstance(ceiling, str)
        if estimated and ceiling != "loso_isc":
            raise BrainalignError(f"'ceiling' must be 'loso_isc', None, a number or one value per ROI, got "
                                  f"{ceiling!r}.")
        if ceiling is None:
            roi_ceiling = pd.Series(np.nan, index=rois_in_order)
        elif estimated and len(subject_list) < 2:
            warnings.warn("the leave-one-subject-out ceiling needs at least 2 subjects; the ceiling and the "
                          "normalized scores are left missing (NaN).", CeilingWarning, stacklevel=2)
            roi_ceiling = pd.Series(np.nan, index=rois_in_order)
        elif estimated:
            roi_ceiling = _roi_ceilings(subject_list, cleaned)
        else:
            roi_ceiling = _given_ceilings(ceiling, rois_in_order)
    table["ceiling"] = table["roi"].map(roi_ceiling).astype(np.float64)
    table["normalized_score"] = normalized_score(table["score"], table["ceiling"], min_ceiling=min_ceiling)
    table["normalized_score_unclipped"] = normalized_score(table["score"], table["ceiling"],
                                                           min_ceiling=min_ceiling, clip=False)
    table["exceeds_ceiling"] = table["normalized_score_unclipped"] > 1
    if ceiling is not None and not (estimated and len(subject_list) < 2):
        _warn_ceilings(table, roi_ceiling, len(subject_list), estimated, min_ceiling)
    table.attrs["settings"] = {
        "feature_set": name, "cv": sorted(cv_names), "outer_folds": outer_folds, "inner_folds": inner_folds,
        "gap": gap, "alpha_per_target": alpha_per_target, "clean": clean, "high_pass": high_pass,
        "hrf_model": hrf_model, "ceiling": ceiling if isinstance(ceiling, str) or ceiling is None else "given",
        "min_ceiling": min_ceiling, "n_subjects": len(subject_list), "n_threads": n_threads,
        "device": where,
    }
    return table
