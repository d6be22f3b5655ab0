"""Stages of the whole-brain path: BIDS + fMRIPrep images in, voxel-wise maps out.

``simulate_bids`` → ``mask`` → ``responses`` (per subject) → ``score`` and
``ceiling`` (voxel arrays in HDF5 plus parcel summaries in the tidy tables)
→ ``maps`` (NIfTI). The tidy score and ceiling tables hold one row per
ROI (atlas parcel, or ``brain``) with the mean over its units, so that the
aggregate, comparison and report stages of the ROI path apply unchanged;
the per-unit values live in the HDF5 files (contract ``unit_scores/1``) and
the maps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, ConfigError, InputFileError
from ..config import feature_set_instances
from ..io import (
    Responses,
    provenance,
    read_features,
    read_unit_scores,
    write_provenance,
    write_responses,
    write_table,
    write_unit_scores,
)
from ..stimuli.events import read_events
from .stages import (
    _load_subjects,
    _set_threads,
    convolve_runs,
    cv_groups,
    dataset_subjects,
    dataset_timing,
    encoder_cv_options,
    progress_bar,
    refit_pvalues,
    score_table,
    warn_fdr_resolution,
)

# read_unit_scores lives in brainalign.io (the unit_scores/1 contract); still importable from here.

__all__ = [
    "run_simulate_bids",
    "run_mask",
    "run_volume_responses",
    "run_volume_score",
    "run_volume_ceiling",
    "run_maps",
]

logger = logging.getLogger("brainalign")


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _part_dir(out: Path) -> Path:
    tmp = out.with_name(out.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


# --------------------------------------------------------------------------- simulate
def run_simulate_bids(
    cfg: dict[str, Any], events_path: str | os.PathLike, features_path: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> Path:
    """Write the simulated BIDS + fMRIPrep dataset; the folder appears only when complete."""
    from ..datasets.simulated_bids import write_simulated_bids

    sim = cfg["simulation"]
    events = read_events(events_path)
    _, frame_times = dataset_timing(cfg, events)
    feats = read_features(features_path, [sim["planted_layer"]])
    design = convolve_runs(cfg, events, feats.layers[sim["planted_layer"]], frame_times)
    out = Path(out_dir)
    tmp = _part_dir(out)
    try:
        write_simulated_bids(tmp, events, design, cfg["dataset"]["atlas"], cfg)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_dir(tmp, out)
    return out


# --------------------------------------------------------------------------- mask
def _raise_disjoint_masks(runs: list, imgs: list, threshold: float) -> None:
    """Raise naming the first run whose brain mask shares no voxel with those of the runs before it."""
    common = np.ones(imgs[0].shape, dtype=bool)
    for k, (run, img) in enumerate(zip(runs, imgs)):
        common &= np.asarray(img.dataobj) > 0
        if not common.any():
            break
    # Each mask has a voxel (checked before), so the intersection empties at a run k >= 1.
    n_voxels = int((np.asarray(img.dataobj) > 0).sum())
    raise InputFileError(run.mask, f"this brain mask of {run.subject} has {n_voxels} voxel(s), none of them in every "
                                   f"brain mask of the {k} run(s) before it (from {runs[0].mask.name}): the "
                                   f"analysis mask (the voxels in at least dataset.mask_threshold = {threshold:g} "
                                   f"of the {len(runs)} runs' masks) is empty. Are the runs in the same space and "
                                   "aligned? Leave the odd run out (dataset.subjects, dataset.runs), or lower "
                                   "dataset.mask_threshold.")


def run_mask(cfg: dict[str, Any], out: str | os.PathLike) -> Path:
    """The analysis mask shared by every subject, on the data's grid.

    ``dataset.mask: brain`` intersects the fMRIPrep brain masks of every
    analysed run (:func:`nilearn.masking.intersect_masks` with
    ``dataset.mask_threshold``); a path is checked (binary, 3-D, on the BOLD
    grid) and copied.
    """
    import nibabel as nib
    from nilearn.masking import intersect_masks

    from ..datasets.bids import find_bids_runs
    from ..preprocess.nifti import _load_img, mask_on_grid, write_nifti

    ds = cfg["dataset"]
    runs = [run for subject in dataset_subjects(cfg) for run in find_bids_runs(ds, subject)]
    ref, _ = _load_img(runs[0].bold, "BOLD image")
    if ds["mask"] == "brain":
        imgs = []
        for run in runs:
            if run.mask is None:
                raise InputFileError(run.bold, "no fMRIPrep brain mask ('*_desc-brain_mask.nii.gz') next to "
                                               "this run; set dataset.mask to a mask file.")
            mask_arr, _ = mask_on_grid(run.mask, ref, "brain mask")
            if not mask_arr.any():
                raise InputFileError(run.mask, f"this brain mask of {run.subject} is empty (no voxel set): the "
                                               "run has no brain voxel to analyse; regenerate it (fMRIPrep), or "
                                               "leave the run or subject out (dataset.runs, dataset.subjects).")
            imgs.append(nib.Nifti1Image(mask_arr.astype(np.uint8), ref.affine))
        mask = intersect_masks(imgs, threshold=ds["mask_threshold"], connected=False)
        inputs = [run.mask for run in runs]
        if not mask.get_fdata().any():
            _raise_disjoint_masks(runs, imgs, ds["mask_threshold"])
    else:
        mask_arr, path = mask_on_grid(ds["mask"], ref, "dataset.mask image")
        mask = nib.Nifti1Image(mask_arr.astype(np.uint8), ref.affine)
        inputs = [path]
    data = np.asarray(mask.get_fdata() > 0, dtype=np.uint8)
    if not data.any():
        raise InputFileError(inputs[0], "the analysis mask is empty (no voxel in every run's brain mask).")
    logger.info("analysis mask: %d voxels from %d run(s)", int(data.sum()), len(runs))
    out = Path(out)
    write_nifti(out, nib.Nifti1Image(data, ref.affine))
    write_provenance(out, provenance(cfg, inputs, stage="mask"))
    return out


# --------------------------------------------------------------------------- responses
def _atlas_labels(cfg: dict[str, Any], grid_img) -> tuple[np.ndarray | None, dict[int, str]]:
    from ..preprocess.nifti import labels_on_grid

    ds = cfg["dataset"]
    if not ds.get("atlas"):
        return None, {}
    if not Path(ds["atlas"]).exists():
        raise ConfigError(None, "dataset.atlas", f"the atlas {ds['atlas']} does not exist.")
    labels, _ = labels_on_grid(ds["atlas"], grid_img)
    names = {int(k): str(v) for k, v in ds["atlas_labels"].items()}
    return labels, {int(k): names.get(int(k), f"label_{int(k)}") for k in np.unique(labels) if k != 0}


def run_volume_responses(
    cfg: dict[str, Any], subject: str, mask_path: str | os.PathLike, out: str | os.PathLike,
) -> Path:
    """Read, check and clean one subject's runs; write the Responses with its grid.

    Every run is read inside the analysis mask (``units: voxels``) or averaged
    within the atlas parcels (``units: parcels``); its confounds come from
    fMRIPrep's TSV (``preprocessing.confounds: fmriprep``). The runs are
    cleaned separately (detrend, high-pass, confounds, z-score per run), and
    each run's confounds occupy their own columns, so that no regressor leaks
    from one run into another.
    """
    import nibabel as nib

    from ..datasets.bids import find_bids_runs, run_geometry
    from ..preprocess.confounds import load_fmriprep_confounds
    from ..preprocess.fmri import clean_signals
    from ..preprocess.nifti import _load_img, _read_data, load_bold_responses

    ds = cfg["dataset"]
    pre = cfg["preprocessing"]
    subjects = dataset_subjects(cfg)
    runs = find_bids_runs(ds, subject)
    tr, n_volumes = run_geometry(runs)
    ref_runs = find_bids_runs(ds, subjects[0])
    ref_tr, ref_volumes = run_geometry(ref_runs) if subject != subjects[0] else (tr, n_volumes)
    if len(runs) != len(ref_runs):
        raise InputFileError(runs[0].bold.parent, f"{subject} has {len(runs)} run(s) of task {ds['task']!r} but "
                                                  f"{subjects[0]} has {len(ref_runs)}; the design is shared.")
    for run, n, ref_n in zip(runs, n_volumes, ref_volumes):
        if n != ref_n:
            raise InputFileError(run.bold, f"header field dim[4] gives {n} volumes, but run {run.label} of "
                                           f"{subjects[0]} has {ref_n}; the design is shared by all subjects.")
    if not np.isclose(tr, ref_tr, rtol=1e-4):
        raise InputFileError(runs[0].bold, f"header field pixdim[4] gives TR = {tr:g} s, but {subjects[0]} "
                                           f"has TR = {ref_tr:g} s.")
    mask_img, mask_path = _load_img(mask_path, "analysis mask (--mask)")
    atlas, names = _atlas_labels(cfg, mask_img)
    mask = _read_data(mask_img, mask_path, "analysis mask (--mask)") > 0
    parcels = ds["units"] == "parcels"
    if parcels:
        if atlas is None:
            raise ConfigError(None, "dataset.atlas", "is required with dataset.units 'parcels'.")
        labels_img = nib.Nifti1Image(np.where(mask, atlas, 0).astype(np.int32), mask_img.affine)
    parts: list[Responses] = []
    confounds: list[np.ndarray] = []
    confound_names: list[str] = []
    grid = None
    inputs: list[Path] = []
    for run, n in zip(runs, n_volumes):
        inputs.append(run.bold)
        if parcels:
            resp, grid = load_bold_responses(run.bold, labels=labels_img, tr=tr, subject=subject, run=run.label)
        else:
            resp, grid = load_bold_responses(run.bold, mask=mask_img, tr=tr, subject=subject, run=run.label)
        parts.append(resp)
        if pre["confounds"] == "fmriprep":
            if run.confounds is None:
                raise InputFileError(run.bold, "no confounds TSV ('*_desc-confounds_timeseries.tsv') for this "
                                               "run, but preprocessing.confounds is 'fmriprep'.")
            values, cnames = load_fmriprep_confounds(run.bold, pre["fmriprep_confounds"], n)
            inputs.append(run.confounds)
            confounds.append(values)
            confound_names += [f"run{run.label}_{c}" for c in cnames]
    n_total = sum(n_volumes)
    data = np.concatenate([p.data for p in parts], axis=0)
    run_labels = np.concatenate([p.runs for p in parts])
    block = None
    if confounds:
        block = np.zeros((n_total, sum(c.shape[1] for c in confounds)))
        row = col = 0
        for values in confounds:
            block[row:row + values.shape[0], col:col + values.shape[1]] = values
            row += values.shape[0]
            col += values.shape[1]
    if parcels:
        rois = [names.get(int(k), f"label_{int(k)}") for k in grid.label_ids]
        unit_names = list(rois)
    else:
        voxel_labels = atlas[grid.mask] if atlas is not None else np.zeros(grid.n_units, int)
        rois = [names[int(k)] if k else ("brain" if atlas is None else "other") for k in voxel_labels]
        unit_names = parts[0].unit_names
    resp = Responses(
        data=data, sampling=tr, times=np.concatenate([p.times for p in parts]), runs=run_labels,
        unit_names=unit_names, unit_rois=rois, subject=subject, modality="fmri",
        unit_coords=parts[0].unit_coords, confounds=block, confound_names=confound_names,
        affine=grid.affine, unit_index=grid.unit_index,
    )
    constant = np.flatnonzero(np.ptp(resp.data, axis=0) == 0)
    if constant.size:
        first = unit_names[constant[0]]
        if not parcels:
            first += f" at voxel index {tuple(int(i) for i in np.argwhere(grid.mask)[constant[0]])}"
        raise InputFileError(runs[0].bold, f"{constant.size} unit(s) of the analysis mask are constant over "
                                           f"all runs (first: {first}); fix the mask.")
    resp.data = clean_signals(resp.data, tr, pre, run_labels, block).astype(np.float32)
    return write_responses(out, resp, provenance(cfg, inputs, stage="responses", subject=subject))


# --------------------------------------------------------------------------- scores
def _roi_means(values: np.ndarray, rois: Sequence[str]) -> dict[str, np.ndarray]:
    """Mean over the units of each ROI along the last axis, ROIs in first-seen order."""
    codes, uniques = pd.factorize(pd.Series(list(rois)))
    out = {}
    for k, roi in enumerate(uniques):
        out[str(roi)] = np.nanmean(values[..., codes == k], axis=-1)
    return out


def run_volume_score(
    cfg: dict[str, Any], design_path: str | os.PathLike, responses_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike, out_units: str | os.PathLike, threads: int = 1, progress: bool = True,
) -> tuple[Path, Path]:
    """Encoding scores of every unit (HDF5) and their ROI means (tidy CSV).

    Each subject is fitted on its own design (cleaned with its confounds),
    in batches of ``encoder.target_batch_size`` units so that memory does not
    grow with the number of voxels; folds are leave-one-run-out when there
    are several runs (``encoder.cv``).
    """
    from ..backend.device import resolve_device, ridge_backend
    from ..encoders.ridge_cv import nested_cv_pearson
    from ..preprocess.fmri import clean_signals

    _set_threads(threads)
    enc = cfg["encoder"]
    backend = ridge_backend(resolve_device(cfg))
    design = read_features(design_path, kind="design")
    spec = feature_set_instances(cfg).get(design.model)
    if spec is None:
        raise InputFileError(design_path, f"attribute 'model' is {design.model!r}, not a configured feature set.")
    usable, _ = _load_subjects(responses_paths)
    if not usable:
        raise BrainalignError("no usable subject to score.")
    layers = list(design.layers)
    batch = int(enc["target_batch_size"])
    rows = []
    per_subject: dict[str, dict[str, np.ndarray]] = {}
    for resp in usable:
        groups = cv_groups(cfg, resp.runs)
        n_units = resp.n_units
        designs = {}
        for layer in layers:
            raw_x = design.layers[layer]
            if raw_x.shape[0] != resp.n_samples:
                raise InputFileError(design_path, f"layer {layer!r} has {raw_x.shape[0]} volumes but subject "
                                                  f"{resp.subject} has {resp.n_samples}.")
            designs[layer] = clean_signals(raw_x, resp.sampling, cfg["preprocessing"], resp.runs, resp.confounds)
        store = None
        for start in progress_bar(range(0, n_units, batch), f"score {design.model} {resp.subject}",
                                  f"×{batch} units", progress):
            cols = slice(start, min(start + batch, n_units))
            y = resp.data[:, cols]
            fits = {layer: nested_cv_pearson(x, y, **encoder_cv_options(enc), groups=groups, backend=backend)
                    for layer, x in designs.items()}
            if store is None:
                n_folds = next(iter(fits.values()))["fold_scores"].shape[0]
                store = {"score": np.empty((len(layers), n_units), np.float32),
                         "fold_scores": np.empty((len(layers), n_folds, n_units), np.float32),
                         "alpha": np.empty((len(layers), n_units), np.float32),
                         "p_value": np.empty((len(layers), n_units), np.float32)}
            pvalues = refit_pvalues(cfg, y, {layer: (design.layers[layer], fits[layer]) for layer in layers}, resp,
                                     backend=backend)
            for li, layer in enumerate(layers):
                res = fits[layer]
                store["score"][li, cols] = res["score"]
                store["fold_scores"][li, :, cols] = res["fold_scores"]
                store["alpha"][li, cols] = np.exp(np.log(res["alphas"]).mean(axis=0))
                store["p_value"][li, cols] = pvalues[layer]
        for li, layer in enumerate(layers):
            logger.info("%s layer %s: mean r %.4f over %d units", resp.subject, layer,
                        float(store["score"][li].mean()), n_units)
        warn_fdr_resolution(cfg["statistics"], n_units, f"{resp.subject}'s voxel maps", cfg["maps"]["fdr_alpha"])
        per_subject[resp.subject] = store
        for li, layer in enumerate(layers):
            folds = _roi_means(store["fold_scores"][li], resp.unit_rois)
            means = _roi_means(store["score"][li], resp.unit_rois)
            alphas = _roi_means(np.log(store["alpha"][li]), resp.unit_rois)
            for roi in means:
                base = {"subject": resp.subject, "layer": layer, "roi": roi, "unit": roi}
                for fold, value in enumerate(folds[roi]):
                    rows.append({**base, "fold": str(fold), "score": float(value), "alpha": np.nan, "p_value": np.nan})
                rows.append({**base, "fold": "mean", "score": float(means[roi]),
                             "alpha": float(np.exp(alphas[roi])), "p_value": np.nan})
    criterion = next(iter(fits.values()))["alpha_criterion"]
    table = score_table(rows, cfg, spec, design.model, usable[0].runs, criterion)
    prov = provenance(cfg, [design_path, *responses_paths], stage="score", feature_set=design.model)
    write_unit_scores(out_units, usable, per_subject, {"layers": layers, "feature_set": design.model,
                                                       "model": spec["family"], "alpha_criterion": criterion}, prov)
    return write_table(out, table, prov), Path(out_units)


# --------------------------------------------------------------------------- ceiling
def run_volume_ceiling(
    cfg: dict[str, Any], responses_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
    out_units: str | os.PathLike,
) -> tuple[Path, Path]:
    """Leave-one-subject-out ISC per unit (HDF5, in batches) and its ROI means (tidy CSV)."""
    from ..metrics.ceilings import loso_isc

    usable, excluded = _load_subjects(responses_paths)
    if len(usable) < 2:
        raise BrainalignError(f"the ISC ceiling needs at least 2 usable subjects, got {len(usable)}.")
    n_units = usable[0].n_units
    batch = int(cfg["encoder"]["target_batch_size"])
    isc = np.empty((len(usable), n_units), np.float32)
    for start in range(0, n_units, batch):
        cols = slice(start, min(start + batch, n_units))
        isc[:, cols] = loso_isc(np.stack([r.data[:, cols].astype(np.float64) for r in usable]))
    rows = []
    for i, resp in enumerate(usable):
        for roi, value in _roi_means(isc[i], resp.unit_rois).items():
            rows.append({"dataset": cfg["dataset"]["name"], "subject": resp.subject, "roi": roi, "unit": roi,
                         "metric": "loso_isc", "ceiling": float(value)})
    prov = provenance(cfg, responses_paths, stage="ceiling", excluded={r.subject: r.excluded for r in excluded})
    write_unit_scores(out_units, usable, {r.subject: {"ceiling": isc[i]} for i, r in enumerate(usable)},
                      {"metric": "loso_isc"}, prov)
    return write_table(out, pd.DataFrame(rows), prov), Path(out_units)


# --------------------------------------------------------------------------- maps
MAP_STATS = {
    "r": "cross-validated Pearson r of the encoding model",
    "rnorm": "normalized r (Brain-Score's): r divided by the unit's leave-one-subject-out ISC ceiling, clipped to "
             "[0, 1]; NaN where the ceiling < statistics.min_ceiling",
    "rnormunclipped": "r divided by the unit's ceiling, not clipped; NaN where the ceiling < statistics.min_ceiling",
    "logq": "-log10 of the Benjamini-Hochberg q of the circular-shift p-values (subjects) or of a one-sided "
            "t-test of Fisher-z r > 0 across subjects (group)",
}


def run_maps(
    cfg: dict[str, Any], scores_path: str | os.PathLike, ceiling_path: str | os.PathLike, out_dir: str | os.PathLike,
) -> Path:
    """NIfTI maps of one feature set: per subject and group, one volume per layer.

    Writes ``<sub>_stat-<r|rnorm|rnormunclipped|logq>.nii.gz`` and ``group_stat-<...>.nii.gz``
    (4-D, volume ``k`` = layer ``layers[k]``) with a ``maps.json`` sidecar
    listing the layers, the statistics and the FDR level, into ``out_dir``,
    which appears only when every map is written.
    """
    from scipy import stats

    from ..metrics.stats import fdr_correction
    from ..preprocess.nifti import VolumeGrid, write_score_map

    scores = read_unit_scores(scores_path)
    ceiling = read_unit_scores(ceiling_path)
    if not np.array_equal(scores["unit_index"], ceiling["unit_index"]):
        raise InputFileError(ceiling_path, "its units differ from those of the scores file.")
    grid = VolumeGrid.from_unit_index(scores["affine"], scores["unit_index"])
    layers = scores["attrs"]["layers"]
    min_ceiling = float(cfg["statistics"]["min_ceiling"])
    out = Path(out_dir)
    tmp = _part_dir(out)
    try:
        r_all, c_all = [], []
        for subject, arrays in scores["subjects"].items():
            r = arrays["score"].astype(np.float64)  # (n_layers, n_units)
            c = ceiling["subjects"][subject]["ceiling"].astype(np.float64)
            r_all.append(r)
            c_all.append(c)
            q = np.vstack([fdr_correction(p) if np.isfinite(p).all() else np.full_like(p, np.nan)
                           for p in arrays["p_value"].astype(np.float64)])
            _write_stats(tmp, subject, grid, r, c, q, min_ceiling, write_score_map)
        r_mean = np.mean(r_all, axis=0)
        c_mean = np.mean(c_all, axis=0)
        z = np.arctanh(np.clip(np.stack(r_all), -0.999999, 0.999999))
        if z.shape[0] >= 2:
            t = stats.ttest_1samp(z, 0.0, axis=0, alternative="greater")
            q = np.vstack([fdr_correction(np.nan_to_num(p, nan=1.0)) for p in t.pvalue])
        else:
            q = np.full_like(r_mean, np.nan)
        _write_stats(tmp, "group", grid, r_mean, c_mean, q, min_ceiling, write_score_map)
        resolution = warn_fdr_resolution(cfg["statistics"], grid.n_units, "each subject's voxel map",
                                          cfg["maps"]["fdr_alpha"])
        meta = {"layers": layers, "volumes": {str(k): layer for k, layer in enumerate(layers)},
                "feature_set": scores["attrs"]["feature_set"], "stats": MAP_STATS,
                "fdr_alpha": cfg["maps"]["fdr_alpha"], "fdr_resolution_warning": resolution,
                "subjects": list(scores["subjects"]),
                "provenance": provenance(cfg, [scores_path, ceiling_path], stage="maps")}
        (tmp / "maps.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_dir(tmp, out)
    return out


def _write_stats(folder: Path, prefix: str, grid, r: np.ndarray, c: np.ndarray, q: np.ndarray,
                 min_ceiling: float, write_score_map) -> None:
    from ..metrics.ceilings import normalized_score

    ceiling = np.broadcast_to(c, r.shape)
    rnorm = normalized_score(r, ceiling, min_ceiling=min_ceiling)
    raw = normalized_score(r, ceiling, min_ceiling=min_ceiling, clip=False)
    with np.errstate(divide="ignore"):
        logq = -np.log10(np.clip(q, 1e-300, 1.0))
    for name, values in (("r", r), ("rnorm", rnorm), ("rnormunclipped", raw), ("logq", np.nan_to_num(logq, nan=0.0))):
        write_score_map(np.asarray(values).T, grid, folder / f"{prefix}_stat-{name}.nii.gz")
