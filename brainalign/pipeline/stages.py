"""Stage functions: one per workflow rule, each reading and writing the contracts.

Every stage validates its inputs, computes, and writes its outputs atomically
with provenance. A stage that fails leaves no output behind. The command line
(:mod:`brainalign.cli`) is a thin layer over these functions, and the
Snakemake rules call the command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, ConfigError, InputFileError
from ..backend.device import resolve_device
from ..config import feature_set_instances
from ..datasets.registry import get_kind, selected_subjects
from ..features.design import events_after_last_volume, fir_design, hrf_convolve
from ..io import (
    Features,
    Responses,
    provenance,
    read_features,
    read_responses,
    read_table,
    write_features,
    write_responses,
    write_table,
)
from ..stimuli.events import context_groups, read_events, write_events

__all__ = [
    "progress_bar",
    "dataset_subjects",
    "dataset_timing",
    "run_stimuli",
    "run_features",
    "run_simulate",
    "run_responses",
    "run_design",
    "run_score",
    "cv_groups",
    "cv_label",
    "encoder_cv_options",
    "convolve_runs",
    "is_volume_dataset",
    "null_shift",
    "refit_pvalues",
    "warn_fdr_resolution",
    "run_ceiling",
    "partition_pair",
    "run_partition",
]

logger = logging.getLogger("brainalign")


def progress_bar(iterable: Any, desc: str, unit: str, progress: bool, total: int | None = None) -> Any:
    """A tqdm bar on stderr (a job's log in the workflow), updated at most every 2 s; the iterable itself when off."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, mininterval=2)


def _set_threads(n_threads: int) -> None:
    """Pin BLAS (loaded now or later) and torch thread counts so results are bit-identical across runs."""
    from brainalign.backend.threads import pin_threads

    pin_threads(n_threads)


# --------------------------------------------------------------------------- dataset facts
def is_volume_dataset(cfg: dict[str, Any]) -> bool:
    """True for datasets read from NIfTI images (the ``"volume"`` modality: BIDS + fMRIPrep, real or simulated)."""
    return get_kind(cfg).modality == "volume"


def dataset_subjects(cfg: dict[str, Any]) -> list[str]:
    """The subjects a config analyses (excluded ones are still listed, and flagged later)."""
    return selected_subjects(cfg)


def dataset_timing(cfg: dict[str, Any], events: pd.DataFrame | None = None) -> tuple[float, dict[int, np.ndarray]]:
    """Repetition time (s) and, per run label, the frame times (s) on the events' clock.

    Onsets in the events table are relative to their run's first volume for
    multi-run datasets, so each run's frame times start at 0.
    """
    return get_kind(cfg).timing(cfg, events)


# --------------------------------------------------------------------------- stimuli
def run_stimuli(cfg: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write the dataset's word events table (TSV)."""
    kind = get_kind(cfg)
    if kind.modality == "electro":
        from .electro import electro_events

        events, inputs = electro_events(cfg)  # the kind's words, with the test split checked
    else:
        events, inputs = kind.events(cfg)
    return write_events(out, events, provenance(cfg, inputs, stage="stimuli"))


# --------------------------------------------------------------------------- features
def run_features(
    cfg: dict[str, Any], events_path: str | os.PathLike, instance: str, out: str | os.PathLike,
    threads: int = 1, progress: bool = True,
) -> Path:
    """Extract one feature-set instance at the word level and write its HDF5."""
    from ..features.baselines import random_embedding_features, word_rate_features

    instances = feature_set_instances(cfg)
    if instance not in instances:
        raise ConfigError(None, "feature_sets", f"no feature set instance {instance!r}; have {list(instances)}.")
    spec = instances[instance]
    events = read_events(events_path)
    words = events["word"].astype(str).tolist()
    _set_threads(threads)
    device = resolve_device(cfg)
    settings: dict[str, Any] = {"kind": spec["kind"], "family": spec["family"], "seed": spec["seed"]}
    unit_sets = spec["kind"] in ("suma", "rnn") or (
        spec["kind"] == "transformer"
        and (spec["units"] != ["layers"] or spec["attention_stats"] or spec["pooling"] != "last"))
    if unit_sets:
        # Chunked, resumable extraction (docs/activations.md); its chunk cache lives
        # beside the results, outside the declared outputs.
        from ..features import model_sets

        out = Path(out)
        cache = out.resolve().parents[1] / ".cache"
        prov = provenance(cfg, [events_path], stage="features", instance=instance, device=device)
        groups = context_groups(events)
        times = events["onset"].to_numpy()
        if spec["kind"] == "transformer":
            return model_sets.transformer_units(spec, words, groups, out, cache, instance, times, prov, threads,
                                                progress, device=device)
        build = model_sets.suma_features if spec["kind"] == "suma" else model_sets.rnn_features
        return build(spec, spec["seed"], words, groups, out, cache, instance, times, prov, progress, device=device)
    if spec["kind"] == "transformer":
        from ..features.words import extract_word_features
        from ..models.hf import load_model

        loaded = load_model(spec["model_path"])
        loaded.model.to(device)
        _set_threads(threads)
        layers = None if spec["layers"] == "all" else spec["layers"]
        arrays = extract_word_features(
            loaded.model, loaded.tokenizer, words, context_groups(events),
            context_words=spec["context_words"], max_length=loaded.identity["max_length"],
            layers=layers, batch_size=spec["batch_size"], progress=progress,
        )
        settings.update(model=loaded.identity, context_words=spec["context_words"],
                        pooling="last sub-token of each word", truncation="left")
    elif spec["kind"] == "surprisal":
        from ..features.surprisal import surprisal_regressor

        values, identity = surprisal_regressor(spec, words, context_groups(events), progress)
        arrays = {"0": values}
        settings.update(model=identity)
    elif spec["kind"] == "random_embedding":
        dim = spec["dim"] or _transformer_dim(cfg)
        arrays = {"0": random_embedding_features(words, dim, spec["seed"])}
        settings.update(dim=dim, lowercase=True)
    else:
        arrays = {"0": word_rate_features(len(words))}
    feats = Features(arrays, instance, settings, times=events["onset"].to_numpy())
    return write_features(out, feats, provenance(cfg, [events_path], stage="features", instance=instance,
                                                 device=device))


def _transformer_dim(cfg: dict[str, Any]) -> int:
    import json

    from ..models.hf import default_model_path

    spec = next(s for s in cfg["feature_sets"].values() if s["kind"] == "transformer")
    path = Path(spec["model_path"]) if spec["model_path"] else default_model_path()
    return int(json.loads((path / "config.json").read_text())["hidden_size"])


# --------------------------------------------------------------------------- responses
def run_simulate(
    cfg: dict[str, Any], events_path: str | os.PathLike, features_path: str | os.PathLike,
    outs: Sequence[str | os.PathLike],
) -> list[Path]:
    """Simulate every subject's raw responses from the planted layer (one file each)."""
    from ..datasets.simulated import simulate_responses

    sim = cfg["simulation"]
    events = read_events(events_path)
    tr, frame_times = dataset_timing(cfg, events)
    feats = read_features(features_path, [sim["planted_layer"]])
    design = convolve_runs(cfg, events, feats.layers[sim["planted_layer"]], frame_times)
    subjects = simulate_responses(
        design, sim["rois"], sim["n_subjects"], tr, sim["seed"],
        drift_amplitude=sim["drift_amplitude"], noise_ar1=sim["noise_ar1"],
        voxels_per_roi=sim["voxels_per_roi"],
    )
    if len(outs) != len(subjects):
        raise BrainalignError(f"{len(outs)} output paths for {len(subjects)} simulated subjects.")
    prov = provenance(cfg, [events_path, features_path], stage="simulate")
    return [write_responses(out, resp, prov) for out, resp in zip(outs, subjects)]


def run_responses(
    cfg: dict[str, Any], subject: str, out: str | os.PathLike, raw: str | os.PathLike | None = None,
) -> Path:
    """Load one subject's raw responses, check them, clean them and write the contract.

    An unusable subject (all zeros, a constant ROI, too few samples) is
    written with ``excluded`` set to the reason, which is also logged, and no
    cleaning; later stages skip it.
    """
    from ..datasets.alice import check_usable
    from ..preprocess.fmri import clean_signals

    resp, inputs = get_kind(cfg).responses(cfg, subject, raw)
    usable, reason = check_usable(resp)
    if not usable:
        logger.warning("excluding subject %s: %s", subject, reason)
        resp.excluded = reason
    else:
        resp.data = clean_signals(
            resp.data, resp.sampling, cfg["preprocessing"], resp.runs, resp.confounds
        ).astype(np.float32)
    return write_responses(out, resp, provenance(cfg, inputs, stage="responses", subject=subject))


# --------------------------------------------------------------------------- design
def _convolve(cfg: dict[str, Any], events: pd.DataFrame, amplitudes: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    design = cfg["design"]
    onsets = events["onset"].to_numpy(float)
    if design["model"] == "fir":
        return fir_design(onsets, amplitudes, frame_times, design["fir_lags"])
    durations = events["duration"].to_numpy(float) if design["event_duration"] == "word" else np.zeros(len(onsets))
    return hrf_convolve(onsets, durations, amplitudes, frame_times, design["hrf_model"])


def convolve_runs(
    cfg: dict[str, Any], events: pd.DataFrame, amplitudes: np.ndarray, frame_times: dict[int, np.ndarray],
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Each run's words on that run's volumes, runs stacked in label order.

    Parameters
    ----------
    source : str, path-like or None
        The events file, named in errors (rows of ``events`` are its data rows).

    Returns
    -------
    design : ndarray of shape (sum of the runs' volumes, n_features)

    Raises
    ------
    InputFileError
        A word of a run the dataset does not have, or starting after its
        run's last volume (:func:`~brainalign.features.design.events_after_last_volume`):
        the convolution would leave it out silently.
    """
    runs = events["run"].to_numpy()
    unknown = sorted(set(np.unique(runs).tolist()) - set(frame_times))
    if unknown:
        raise InputFileError(source, f"column 'run': word(s) of run(s) {unknown}, which the dataset does not have "
                                     f"(runs: {sorted(frame_times)}).")
    onsets = events["onset"].to_numpy(float)
    for label in sorted(frame_times):
        late = np.flatnonzero((runs == label) & events_after_last_volume(onsets, frame_times[label]))
        if late.size:
            ft, i = frame_times[label], int(late[0])
            end = ft[-1] + float(np.min(np.diff(ft)))
            row = f"row {i}" + (f" (line {i + 2})" if source is not None else "")
            raise InputFileError(source, f"column 'onset': word {events['word'].iat[i]!r} at {row} starts at "
                                         f"{onsets[i]:.3f} s, after the last volume of run {label} ({ft.size} "
                                         f"volumes from {ft[0]:g} s, the run ends at {end:.3f} s); {late.size} "
                                         "word(s) of the run in all. A word outside its run falls on no volume: "
                                         "check the onsets (seconds on the volumes' clock) and runs of the events "
                                         "file against the dataset.")
    amplitudes = np.asarray(amplitudes)
    blocks = []
    for label in sorted(frame_times):
        sel = runs == label
        blocks.append(_convolve(cfg, events[sel], amplitudes[sel], frame_times[label]))
    return np.concatenate(blocks, axis=0)


def run_design(
    cfg: dict[str, Any], events_path: str | os.PathLike, features_path: str | os.PathLike,
    out: str | os.PathLike,
) -> Path:
    """Bring word-level features onto the volume grid (HRF or FIR), per layer.

    The design is stored before cleaning: the score stage cleans it exactly
    as the responses were cleaned (same filter, same subject's confounds).
    """
    events = read_events(events_path)
    feats = read_features(features_path)
    for name, arr in feats.layers.items():
        if len(arr) != len(events):
            raise InputFileError(features_path, f"dataset 'layers/{name}' has {len(arr)} rows but the "
                                 f"events table {Path(events_path).name} has {len(events)} words.")
    _, frame_times = dataset_timing(cfg, events)
    layers = {name: convolve_runs(cfg, events, arr, frame_times, source=events_path).astype(np.float32)
              for name, arr in feats.layers.items()}
    settings = {**feats.settings, "design": cfg["design"]}
    design = Features(layers, feats.model, settings, times=np.concatenate(list(frame_times.values())))
    return write_features(out, design, provenance(cfg, [events_path, features_path], stage="design"), kind="design")


# --------------------------------------------------------------------------- scoring
def _load_subjects(paths: Sequence[str | os.PathLike]) -> tuple[list[Responses], list[Responses]]:
    """Read several subjects' responses; return the usable and the excluded ones.

    Subjects are pooled position by position: sample ``k`` of every subject
    is the same volume of the stimulus and column ``j`` the same unit. So a
    subject given twice (the same file, or two files of one subject label,
    whose inter-subject correlation with itself is 1) is refused, and every
    usable subject must have the first one's samples, runs, sampling, unit
    names and ROIs in the same order (and its grid, for volume data). Units
    listed in another order are refused, not reordered: in the workflow every
    subject's units come from the same atlas or mask in the same order, so
    another order means a file made elsewhere (another atlas, mask or
    version), which should be looked at rather than silently realigned.
    """
    loaded: list[tuple[Path, Responses]] = []
    for p in paths:
        path, resp = Path(p), read_responses(p)
        for earlier_path, earlier in loaded:
            if os.path.samefile(path, earlier_path):
                raise InputFileError(path, f"this file is given twice (also as {earlier_path}); every subject's "
                                           "responses must be given once.")
            if resp.subject == earlier.subject:
                raise InputFileError(path, f"attribute 'subject' is {resp.subject!r}, as in {earlier_path}: a "
                                           "subject given twice would be compared with itself; give each "
                                           "subject's responses once.")
        loaded.append((path, resp))
    usable = [(p, r) for p, r in loaded if not r.excluded]
    for path, resp in usable[1:]:
        _check_same_units(path, resp, *usable[0])
    return [r for _, r in usable], [r for _, r in loaded if r.excluded]


def _check_same_units(path: Path, resp: Responses, first_path: Path, first: Responses) -> None:
    """Raise unless ``resp`` (read from ``path``) lines up sample by sample and unit by unit with ``first``."""
    other = f"{first_path.name} (subject {first.subject})"
    if resp.n_samples != first.n_samples:
        raise InputFileError(path, f"dataset 'data' has {resp.n_samples} samples (subject {resp.subject}) but "
                                   f"{first_path.name} has {first.n_samples} (subject {first.subject}); "
                                   "every subject must have the same samples.")
    for attr in ("unit_names", "unit_rois"):
        mine, theirs = list(getattr(resp, attr)), list(getattr(first, attr))
        if mine == theirs:
            continue
        if len(mine) != len(theirs):
            where = f"names {len(mine)} units, but that of {other} names {len(theirs)}"
        else:
            j = next(k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b)
            order = " (the same names in another order)" if sorted(mine) == sorted(theirs) else ""
            where = f"differs from that of {other}{order}: unit {j} is {mine[j]!r} here, {theirs[j]!r} there"
        raise InputFileError(path, f"attribute {attr!r} of subject {resp.subject} ({_few(mine)}) {where}. Subjects "
                                   "are pooled unit by unit, so every subject must list the same units in the same "
                                   "order: recompute its responses with the same atlas or mask.")
    if not np.array_equal(resp.runs, first.runs):
        raise InputFileError(path, f"dataset 'runs' (subject {resp.subject}) differs from that of {other}; every "
                                   "subject must have the same runs, in the same order.")
    if not np.isclose(resp.sampling, first.sampling, rtol=1e-6):
        raise InputFileError(path, f"attribute 'sampling' is {resp.sampling:g} (subject {resp.subject}) but "
                                   f"{first.sampling:g} in {other}.")
    if not (_same_array(resp.unit_index, first.unit_index) and _same_array(resp.affine, first.affine)):
        raise InputFileError(path, f"datasets 'grid_unit_index' and 'grid_affine' (subject {resp.subject}) differ "
                                   f"from those of {other}; volume datasets share one analysis mask and grid.")


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Both None, or equal shapes and values."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.allclose(a, b)


def _few(names: Sequence[str], n: int = 5) -> str:
    """The first ``n`` names, for a message."""
    return "[" + ", ".join(map(repr, names[:n])) + (", ...]" if len(names) > n else "]")


def refit_pvalues(
    cfg: dict[str, Any], y: np.ndarray, fits: dict[str, tuple[np.ndarray, dict[str, Any]]], ref: Responses,
    progress: bool = False, backend: str = "numpy",
) -> dict[str, np.ndarray]:
    """Per-target p-values of each layer's cross-validated score (refit circular-shift test).

    Each run of the raw design is shifted circularly, cleaned exactly as the
    fitted design was (the subject's cleaning and confounds), and each
    layer's cross-validated score is recomputed with the penalties its folds
    chose (:func:`brainalign.metrics.cv_permutation.refit_shift_tests`;
    docs/method.md, "Per-unit significance"); without confound regressors
    the cleaned responses are shifted and cleaned again instead
    (:func:`null_shift`). Permutations stop early for a
    target once ``statistics.stop_after`` null scores reached its observed
    score (Besag–Clifford). The shifts are seeded by ``statistics.seed`` only,
    so every layer and subject sees the same shifts and reruns are identical.

    Parameters
    ----------
    cfg : dict
        The validated config.
    y : ndarray of shape (n_samples, n_targets)
        Cleaned responses of the targets (one subject, or several subjects
        sharing ``ref``'s runs and cleaning).
    fits : dict of layer -> (raw design, result of the nested CV)
        The design before cleaning; the result holds the outer ``folds`` and
        the ``alphas`` per fold and target.
    ref : Responses
        The subject whose runs, TR and confounds define the cleaning.
    progress : bool
        Show the permutations' progress bar.
    backend : {"numpy", "torch", "torch_cuda"}
        Array backend of the permutations (``torch_cuda`` with ``device: cuda``).

    Returns
    -------
    dict of layer -> ndarray of shape (n_targets,)
        NaN everywhere when ``statistics.n_permutations`` is 0.
    """
    from ..metrics.cv_permutation import refit_shift_tests
    from ..preprocess.fmri import LinearCleaner, clean_signals

    stats_cfg = cfg["statistics"]
    n_perm = int(stats_cfg["n_permutations"])
    if n_perm == 0:
        return {layer: np.full(y.shape[1], np.nan) for layer in fits}
    pre = cfg["preprocessing"]
    folds = next(iter(fits.values()))[1]["folds"]
    if LinearCleaner.supports(pre):
        clean = LinearCleaner(ref.sampling, pre, ref.runs, ref.confounds)
    else:
        def clean(x: np.ndarray) -> np.ndarray:
            return clean_signals(x, ref.sampling, pre, ref.runs, ref.confounds)
    stop = int(stats_cfg["stop_after"])
    tests = refit_shift_tests(
        y, {layer: (raw_x, res["alphas"]) for layer, (raw_x, res) in fits.items()}, folds, runs=ref.runs,
        clean=clean, shift=null_shift(cfg, ref), pooled=bool(cfg["encoder"]["pooled"]), n_permutations=n_perm,
        min_shift=int(stats_cfg["min_shift"]), stop_after=stop or None,
        random_state=np.random.default_rng([int(stats_cfg["seed"]), 1]), progress=progress, backend=backend,
    )
    return {layer: t.pvalues for layer, t in tests.items()}


def null_shift(cfg: dict[str, Any], ref: Responses) -> str:
    """What the per-unit test shifts (``statistics.null``; ``auto``: see below).

    ``"design"`` (refit every fold on a shifted, re-cleaned design) whenever
    confound regressors are regressed out of the responses, where shifting
    the responses is liberal (docs/method.md); ``"responses"`` otherwise
    (detrending and filtering only), where both are calibrated and shifting
    the responses costs no decomposition per permutation.
    """
    choice = cfg["statistics"]["null"]
    if choice != "auto":
        return choice
    regressed = cfg["preprocessing"]["confounds"] != "none" and ref.confounds is not None and ref.confounds.size
    return "design" if regressed else "responses"


def warn_fdr_resolution(stats_cfg: dict[str, Any], n_tests: int, family: str, q: float = 0.05) -> str | None:
    """Warn (and return the message) when Monte-Carlo p-values are too coarse for the FDR.

    With ``B`` permutations no p-value is below ``1 / (B + 1)``, and the
    Benjamini–Hochberg procedure at level ``q`` over ``m`` tests rejects the
    ``k`` smallest p-values only if ``p_(k) <= q k / m``; so nothing can be
    rejected unless at least ``m / (q (B + 1))`` tests reach that floor.
    Returns None (no warning) when a single test at the floor would pass.
    """
    import math

    n_perm = int(stats_cfg["n_permutations"])
    if n_perm == 0 or n_tests == 0:
        return None
    floor = 1.0 / (n_perm + 1)
    if floor <= q / n_tests * (1 + 1e-12):
        return None
    need = min(n_tests, math.ceil(n_tests * floor / q - 1e-9))
    message = (f"statistics.n_permutations = {n_perm}: no p-value can be below 1/{n_perm + 1} = {floor:.2g}, so "
               f"Benjamini-Hochberg at q = {q:g} over the {n_tests} tests of {family} rejects nothing unless at "
               f"least {need} of them ({need / n_tests:.1%}) reach that floor; a single test needs "
               f"n_permutations >= {math.ceil(n_tests / q) - 1}.")
    logger.warning(message)
    return message


def cv_groups(cfg: dict[str, Any], runs: np.ndarray) -> np.ndarray | None:
    """Run labels for leave-one-run-out CV, or None for contiguous K-fold (``encoder.cv``)."""
    choice = cfg["encoder"]["cv"]
    n_runs = np.unique(runs).size
    if choice == "leave_one_run_out":
        if n_runs < 2:
            raise ConfigError(None, "encoder.cv", "'leave_one_run_out' needs at least 2 runs; the data have 1.")
        return np.asarray(runs)
    if choice == "auto" and n_runs > 1:
        return np.asarray(runs)
    return None


def encoder_cv_options(enc: dict[str, Any]) -> dict[str, Any]:
    """The ``encoder`` config section as keyword arguments of the nested-CV functions.

    For :func:`~brainalign.encoders.ridge.cross_validated_pearson` (the ROI path)
    and :func:`~brainalign.encoders.ridge_cv.nested_cv_pearson` (the volume path).
    """
    return {"outer_cv": enc["outer_folds"], "gap": enc["gap"], "inner_cv": enc["inner_folds"],
            "alphas": np.asarray(enc["alphas"]), "alpha_per_target": enc["alpha_per_target"],
            "pooled": enc["pooled"]}


def cv_label(cfg: dict[str, Any], runs: np.ndarray | None = None) -> str:
    """A short name of the cross-validation scheme, stored in the scores table."""
    enc = cfg["encoder"]
    pooled = "_pooled" if enc["pooled"] else ""
    if runs is not None and cv_groups(cfg, runs) is not None:
        return f"leave_one_run_out_gap{enc['gap']}{pooled}"
    return f"contiguous{enc['outer_folds']}_gap{enc['gap']}{pooled}"


def run_score(
    cfg: dict[str, Any], design_path: str | os.PathLike, responses_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike, threads: int = 1, progress: bool = True,
) -> Path:
    """Cross-validated ridge encoding scores of one feature-set instance, every subject and layer.

    Writes a tidy table with one row per subject, layer, ROI and outer fold,
    plus a ``fold == "mean"`` row holding the reported score (the mean of the
    per-fold Pearson r, or the pooled r when ``encoder.pooled``), its
    p-value, and in ``score_pooled`` the r of all held-out predictions
    concatenated (whatever ``encoder.pooled`` says, so both can be compared).
    """
    from ..backend.device import resolve_device, ridge_backend
    from ..encoders.ridge import cross_validated_pearson
    from ..preprocess.fmri import clean_signals

    _set_threads(threads)
    enc = cfg["encoder"]
    backend = ridge_backend(resolve_device(cfg))
    instance = feature_set_instances(cfg)
    design = read_features(design_path, kind="design")
    spec = instance.get(design.model)
    if spec is None:
        raise InputFileError(design_path, f"attribute 'model' is {design.model!r}, not a configured feature set.")
    usable, _ = _load_subjects(responses_paths)
    if not usable:
        raise BrainalignError("no usable subject to score.")
    n = usable[0].n_samples
    for name, arr in design.layers.items():
        if arr.shape[0] != n:
            raise InputFileError(design_path, f"layer {name!r} has {arr.shape[0]} volumes but the "
                                 f"responses have {n} (subject {usable[0].subject}).")
    shared_design = cfg["preprocessing"]["confounds"] == "none"
    rows = []
    for layer, raw_x in progress_bar(design.layers.items(), f"score {design.model}", "layer", progress,
                                     total=len(design.layers)):
        # Without confounds every subject's design is cleaned identically: fit all
        # subjects' targets at once (per-target alphas make this exact).
        groups = [usable] if shared_design and enc["alpha_per_target"] else [[r] for r in usable]
        for group in groups:
            ref = group[0]
            x = clean_signals(raw_x, ref.sampling, cfg["preprocessing"], ref.runs, ref.confounds)
            y = np.concatenate([r.data for r in group], axis=1)
            res = cross_validated_pearson(x, y, **encoder_cv_options(enc), groups=cv_groups(cfg, ref.runs),
                                          backend=backend)
            pvalues = refit_pvalues(cfg, y, {layer: (raw_x, res)}, ref, backend=backend)[layer]
            col = 0
            for r in group:
                for unit, roi in zip(r.unit_names, r.unit_rois):
                    base = {"subject": r.subject, "layer": layer, "roi": roi, "unit": unit}
                    for fold, value in enumerate(res["fold_scores"][:, col]):
                        rows.append({**base, "fold": str(fold), "score": float(value),
                                     "alpha": float(res["alphas"][fold, col]), "p_value": np.nan,
                                     "score_pooled": np.nan})
                    rows.append({**base, "fold": "mean", "score": float(res["score"][col]),
                                 "alpha": float(np.exp(np.mean(np.log(res["alphas"][:, col])))),
                                 "p_value": float(pvalues[col]), "score_pooled": float(res["pooled_score"][col])})
                    col += 1
    warn_fdr_resolution(cfg["statistics"], len(design.layers) * usable[0].n_units,
                        f"one subject's layers and units of {design.model}")
    table = score_table(rows, cfg, spec, design.model, usable[0].runs, res["alpha_criterion"])
    prov = provenance(cfg, [design_path, *responses_paths], stage="score", feature_set=design.model)
    return write_table(out, table, prov)


def score_table(rows: list[dict[str, Any]], cfg: dict[str, Any], spec: dict[str, Any], feature_set: str,
                runs: np.ndarray, alpha_criterion: str) -> pd.DataFrame:
    """Rows (subject, layer, roi, unit, fold, score, alpha, p_value) as the tidy scores table's columns.

    ``alpha_criterion`` names how the encoder chose its penalties
    (:data:`brainalign.encoders.ridge_core.ALPHA_CRITERIA`).
    """
    table = pd.DataFrame(rows)
    table.insert(0, "dataset", cfg["dataset"]["name"])
    table.insert(2, "model", spec["family"])
    table.insert(3, "seed", -1 if spec["seed"] is None else spec["seed"])
    table.insert(4, "feature_set", feature_set)
    table.insert(7, "metric", "pearson_r")
    table.insert(8, "cv", cv_label(cfg, runs))
    table.insert(9, "alpha_criterion", alpha_criterion)
    return table


def run_ceiling(
    cfg: dict[str, Any], responses_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
) -> Path:
    """Leave-one-subject-out inter-subject correlation per subject and ROI."""
    from ..metrics.ceilings import loso_isc

    usable, excluded = _load_subjects(responses_paths)
    if len(usable) < 2:
        raise BrainalignError(f"the ISC ceiling needs at least 2 usable subjects, got {len(usable)}.")
    isc = loso_isc(np.stack([r.data.astype(np.float64) for r in usable]))
    rows = [{"dataset": cfg["dataset"]["name"], "subject": r.subject, "roi": roi, "unit": unit,
             "metric": "loso_isc", "ceiling": float(isc[i, j])}
            for i, r in enumerate(usable) for j, (unit, roi) in enumerate(zip(r.unit_names, r.unit_rois))]
    prov = provenance(cfg, responses_paths, stage="ceiling",
                      excluded={r.subject: r.excluded for r in excluded})
    return write_table(out, pd.DataFrame(rows), prov)


def partition_pair(cfg: dict[str, Any]) -> tuple[str, str] | None:
    """The (model, low-level baseline) feature sets whose variance is partitioned, if both exist.

    The model is ``comparison.model`` (default: the first transformer) and the
    baseline the first word-rate feature set; None when either is missing.
    """
    from ..config import comparison_sets

    model, _ = comparison_sets(cfg)
    rate = next((n for n, s in cfg["feature_sets"].items() if s["kind"] == "word_rate"), None)
    return (model, rate) if model and rate else None


def run_partition(
    cfg: dict[str, Any], best_layer_path: str | os.PathLike, model_design: str | os.PathLike,
    baseline_design: str | os.PathLike, responses_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike, threads: int = 1,
) -> Path:
    """Variance partitioning between the model (at each subject's nested best layer) and word rate.

    For every usable subject and unit, three ridge models are cross-validated
    with the workflow's outer and inner CV (see
    :func:`brainalign.encoders.banded.partition_variance`): the model layer
    alone, the baseline alone and both (banded ridge). The table gives the
    held-out R² of each and the variance unique to each and shared.
    """
    from ..encoders.banded import partition_variance
    from ..preprocess.fmri import clean_signals

    _set_threads(threads)
    enc = cfg["encoder"]
    pair = partition_pair(cfg)
    if pair is None:
        raise ConfigError(None, "feature_sets", "variance partitioning needs a transformer and a word_rate set.")
    family, _ = pair
    best = read_table(best_layer_path, required=["model", "roi", "subject", "chosen_layer"])
    best = best[best["model"] == family]
    model = read_features(model_design, kind="design")
    rate = read_features(baseline_design, kind="design")
    x_rate_raw = next(iter(rate.layers.values()))
    usable, _ = _load_subjects(responses_paths)
    shared_design = cfg["preprocessing"]["confounds"] == "none"
    # Targets grouped by the design they need: (layer[, subject]).
    groups: dict[tuple[str, str], list[tuple[Responses, int]]] = {}
    for resp in usable:
        chosen = best[best["subject"] == resp.subject].set_index("roi")["chosen_layer"].astype(str)
        for j, roi in enumerate(resp.unit_rois):
            if roi not in chosen.index:
                raise InputFileError(best_layer_path, f"no chosen layer for subject {resp.subject!r}, ROI {roi!r}.")
            key = (chosen[roi], "" if shared_design else resp.subject)
            groups.setdefault(key, []).append((resp, j))
    rows = []
    for (layer, _), members in sorted(groups.items()):
        ref = members[0][0]
        x_model = clean_signals(model.layers[layer], ref.sampling, cfg["preprocessing"], ref.runs, ref.confounds)
        x_rate = clean_signals(x_rate_raw, ref.sampling, cfg["preprocessing"], ref.runs, ref.confounds)
        y = np.stack([r.data[:, j] for r, j in members], axis=1)
        res = partition_variance(x_model, x_rate, y, outer_cv=enc["outer_folds"], gap=enc["gap"],
                                 inner_cv=enc["inner_folds"], alphas=np.asarray(enc["alphas"]))
        for k, (r, j) in enumerate(members):
            rows.append({"subject": r.subject, "roi": r.unit_rois[j], "unit": r.unit_names[j], "layer": layer,
                         "r2_joint": res["r2_joint"][k], "r2_model": res["r2_a"][k],
                         "r2_baseline": res["r2_b"][k], "unique_model": res["unique_a"][k],
                         "unique_baseline": res["unique_b"][k], "shared": res["shared"][k]})
    unit_order = {u: k for k, u in enumerate(usable[0].unit_names)}
    table = pd.DataFrame(rows)
    table = (table.assign(_k=table["unit"].map(unit_order)).sort_values(["subject", "_k"], kind="stable")
             .drop(columns="_k").reset_index(drop=True))
    table.insert(0, "dataset", cfg["dataset"]["name"])
    table.insert(2, "model", family)
    table.insert(3, "baseline", pair[1])
    prov = provenance(cfg, [best_layer_path, model_design, baseline_design, *responses_paths], stage="partition")
    return write_table(out, table, prov)
