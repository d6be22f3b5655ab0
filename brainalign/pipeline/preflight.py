"""Check a config against its data before the workflow runs (``brainalign validate``).

:func:`preflight` does, for the config's dataset kind, what can be checked
without running the heavy stages, with the rules the stages themselves apply:

* **data present**: the files and folders the config points at exist, found
  with the kind's own functions, and at least one subject is found;
* **enough samples**: every subject has, per run, the samples the workflow's
  nested cross-validation needs (``encoder.outer_folds``, ``inner_folds``,
  ``gap``, ``cv``), generated from the same splitter the encoders use, and at
  least the samples below which the ``responses`` stage excludes a subject
  (:func:`brainalign.datasets.alice.check_usable`); the word table's words
  fall inside their runs; the test split of MEG/EEG/sEEG and image datasets
  leaves data to train and to test on;
* **atlas and masks**: readable, and on (or resampled onto) the data's grid.

Sample counts come from headers and shapes (NIfTI headers, ``.npy`` headers,
HDF5 shapes, TSV line counts), never from the data; simulated kinds are
checked through the parameters that generate their data. Nothing is written.
"""

from __future__ import annotations

import contextlib
import gzip
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, ConfigError, InputFileError, check_fname
from ..datasets.registry import DatasetKind, get_kind, selected_subjects
from ..encoders.cv import ContiguousKFold
from .stages import convolve_runs, cv_groups, cv_label, partition_pair

__all__ = ["MIN_SAMPLES", "Sampling", "fold_problem", "preflight"]


def _min_samples() -> int:
    from ..datasets.alice import check_usable

    return int(inspect.signature(check_usable).parameters["min_samples"].default)


#: Fewest samples of a subject the ``responses`` stage keeps (the default of ``check_usable``).
MIN_SAMPLES = _min_samples()


@dataclass
class Sampling:
    """Samples per run of every analysed subject of an fMRI dataset, and where they come from.

    Attributes
    ----------
    lengths : dict of str to list of int
        Subject -> samples (volumes) of each run, runs in label order.
    files : dict of str to list of (Path or None)
        Subject -> the file each run is read from (None: not read from a file).
    field : str
        The config field that sets the samples (named in errors).
    frame_times : dict of int to ndarray
        Run label -> frame times (s) on the events' clock.
    events : DataFrame
        The word table.
    events_path : Path or None
        The file the word table is read from (None: generated).
    facts : list of str
        Further checks passed (atlas, mask), for the summary.
    generated : bool
        The samples are generated from the ``simulation`` section.
    """

    lengths: dict[str, list[int]]
    files: dict[str, list[Path | None]]
    field: str
    frame_times: dict[int, np.ndarray]
    events: pd.DataFrame
    events_path: Path | None = None
    facts: list[str] = field(default_factory=list)
    generated: bool = False


# --------------------------------------------------------------------------- entry point
def preflight(cfg: dict[str, Any], config: str | os.PathLike | None = None) -> list[str]:
    """Check a validated config against its data; return what was checked, one phrase per fact.

    Parameters
    ----------
    cfg : dict
        The config as :func:`brainalign.config.load_config` returns it.
    config : str, path-like or None
        The config file, named in every error.

    Returns
    -------
    list of str
        E.g. ``["3 subjects, 2 runs each, 125 volumes per run", "cv leave_one_run_out_gap5, ..."]``.

    Raises
    ------
    ConfigError
        Naming the config file and the field, for the first problem found (a
        data file's own problem is quoted with the file's path).
    """
    kind = get_kind(cfg)
    checks = {"roi": _fmri, "volume": _fmri, "electro": _electro, "images": _images, "reading": _reading}
    with _about(config, "dataset"):
        return checks[kind.modality](cfg, kind, config)


@contextlib.contextmanager
def _about(config: str | os.PathLike | None, field_: str) -> Iterator[None]:
    """Errors of the block as :class:`ConfigError` on ``field_`` of ``config`` (a file's message kept whole)."""
    try:
        yield
    except ConfigError as err:
        if err.path is None and config is not None:
            raise ConfigError(config, err.field, err.detail) from None
        raise
    except InputFileError as err:
        raise ConfigError(config, field_, str(err)) from None


# --------------------------------------------------------------------------- fMRI
def _fmri(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    layouts = {"alice": _alice, "timeseries": _timeseries, "bids": _bids}
    layout = _simulated if kind.simulated else layouts.get(kind.name, _generic)
    sampling = layout(cfg, kind, config)
    subjects = list(sampling.lengths)
    first = subjects[0]
    with _about(config, sampling.field):
        _check_shared_design(sampling, first)
    if kind.modality == "roi":
        _check_min_samples(cfg, sampling)
    lengths = sampling.lengths[first]
    _check_folds(cfg, sampling, first, lengths, grouped=True)
    if kind.modality == "roi" and partition_pair(cfg) is not None and len(lengths) > 1:
        _check_folds(cfg, sampling, first, [sum(lengths)], grouped=False,
                     what="variance partitioning (contiguous folds over the runs joined)")
    with _about(config, "dataset.events" if kind.name == "timeseries" else sampling.field):
        convolve_runs(cfg, sampling.events, np.zeros(len(sampling.events)), sampling.frame_times,
                      source=sampling.events_path)
    runs = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    per_run = f"{min(lengths)}" if min(lengths) == max(lengths) else f"{min(lengths)} to {max(lengths)}"
    unit = "samples" if kind.name == "timeseries" else "volumes"
    return [f"{_count(len(subjects), 'subject')}, {_count(len(lengths), 'run')} each, {per_run} {unit} per run",
            f"{len(sampling.events)} words", *sampling.facts,
            f"cv {cv_label(cfg, runs)} with {cfg['encoder']['inner_folds']} inner folds"]


def _simulated(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Sampling:
    events, _ = kind.events(cfg)
    _, frame_times = kind.timing(cfg, events)
    lengths = [int(frame_times[r].size) for r in sorted(frame_times)]
    subjects = selected_subjects(cfg)
    facts = _planted_parcels(cfg, config) if kind.modality == "volume" else []
    return Sampling({s: list(lengths) for s in subjects}, {s: [None] * len(lengths) for s in subjects},
                    "simulation.n_words", frame_times, events, facts=facts, generated=True)


def _alice(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Sampling:
    from ..datasets.alice import ALICE_N_VOLUMES, alice_input_files

    ds = cfg["dataset"]
    with _about(config, "dataset.data_dir"):
        subjects = selected_subjects(cfg)
        events, (events_path,) = kind.events(cfg)
        lengths, files = {}, {}
        for subject in subjects:
            path = check_fname(alice_input_files(ds["data_dir"], subject, ds["roi_size"])[0], "file",
                               "Alice time-course")
            n = _text_rows(path, header=False)
            if n != ALICE_N_VOLUMES:
                raise InputFileError(path, f"ROI time courses file has {n} rows, expected {ALICE_N_VOLUMES}.")
            lengths[subject], files[subject] = [n], [path]
    _, frame_times = kind.timing(cfg, events)
    return Sampling(lengths, files, "dataset.data_dir", frame_times, events, events_path,
                    facts=[f"ROI size {ds['roi_size']}"])


def _timeseries(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Sampling:
    from ..datasets._patterns import fill
    from ..features.design import frame_times_for_run

    ds = cfg["dataset"]
    with _about(config, "dataset.events"):
        events, (events_path,) = kind.events(cfg)
    runs = sorted(int(r) for r in events["run"].unique())
    lengths, files = {}, {}
    with _about(config, "dataset.responses"):
        subjects = selected_subjects(cfg)
        for subject in subjects:
            paths = [fill(ds["responses"], subject, run) for run in runs]
            lengths[subject], files[subject] = [_timeseries_rows(p, ds["h5_key"]) for p in paths], paths
    if ds.get("confounds_file"):
        with _about(config, "dataset.confounds_file"):
            for subject in subjects:
                for run, n, path in zip(runs, lengths[subject], files[subject]):
                    conf = fill(ds["confounds_file"], subject, run)
                    if not conf.is_file():
                        raise InputFileError(conf, "this confounds file does not exist.")
                    if _text_rows(conf, header=True) != n:
                        raise InputFileError(conf, f"has {_text_rows(conf, header=True)} rows but {path.name} "
                                                   f"has {n} samples.")
    tr, onset = float(ds["sampling_interval"]), float(ds["first_sample_onset"])
    frame_times = {run: frame_times_for_run(n, tr, onset) for run, n in zip(runs, lengths[subjects[0]])}
    return Sampling(lengths, files, "dataset.responses", frame_times, events, Path(events_path))


def _bids(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Sampling:
    from ..datasets.bids import find_bids_runs, run_geometry
    from ..features.design import frame_times_for_run
    from ..preprocess.nifti import _load_img

    ds = cfg["dataset"]
    lengths, files, all_runs = {}, {}, []
    with _about(config, "dataset.bids_dir"):
        subjects = selected_subjects(cfg)
        tr0 = None
        for subject in subjects:
            runs = find_bids_runs(ds, subject)
            tr, n_volumes = run_geometry(runs)
            if tr0 is not None and not np.isclose(tr, tr0, rtol=1e-4):
                raise InputFileError(runs[0].bold, f"header field pixdim[4] gives TR = {tr:g} s, but {subjects[0]} "
                                                   f"has TR = {tr0:g} s.")
            tr0 = tr0 or tr
            lengths[subject], files[subject] = n_volumes, [run.bold for run in runs]
            all_runs += runs
        if cfg["preprocessing"]["confounds"] == "fmriprep":
            lacking = next((run for run in all_runs if run.confounds is None), None)
            if lacking is not None:
                raise InputFileError(lacking.bold, "no confounds TSV ('*_desc-confounds_timeseries.tsv') for this "
                                                   "run, but preprocessing.confounds is 'fmriprep'.")
        events, inputs = kind.events(cfg)
    ref, _ = _load_img(files[subjects[0]][0], "BOLD image")
    facts = [_bids_mask(cfg, all_runs, ref, config)]
    if ds.get("atlas"):
        facts.append(_atlas_on_grid(cfg, ref, config))
    frame_times = {k + 1: frame_times_for_run(n, tr0, 0.0) for k, n in enumerate(lengths[subjects[0]])}
    return Sampling(lengths, files, "dataset.bids_dir", frame_times, events, inputs[0] if inputs else None,
                    facts=facts)


def _generic(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Sampling:
    """A kind from another package: the samples of its clock (the design's volumes) for every subject."""
    events, inputs = kind.events(cfg)
    _, frame_times = kind.timing(cfg, events)
    lengths = [int(frame_times[r].size) for r in sorted(frame_times)]
    subjects = selected_subjects(cfg)
    return Sampling({s: list(lengths) for s in subjects}, {s: [None] * len(lengths) for s in subjects},
                    "dataset", frame_times, events, inputs[0] if inputs else None)


# --------------------------------------------------------------------------- fMRI: masks and atlases
def _bids_mask(cfg: dict[str, Any], runs: list[Any], ref: Any, config: str | os.PathLike | None) -> str:
    """The analysis mask's inputs, as ``brainalign mask`` reads them (:func:`~brainalign.pipeline.volumes.run_mask`)."""
    from ..preprocess.nifti import mask_on_grid

    ds = cfg["dataset"]
    if ds["mask"] != "brain":
        with _about(config, "dataset.mask"):
            mask, _ = mask_on_grid(ds["mask"], ref, "dataset.mask image")
        if not mask.any():
            raise ConfigError(config, "dataset.mask", f"the mask {ds['mask']} is empty (no voxel set).")
        return f"mask {Path(ds['mask']).name} ({int(mask.sum())} voxels on the BOLD grid)"
    with _about(config, "dataset.mask"):
        for run in runs:
            if run.mask is None:
                raise InputFileError(run.bold, "no fMRIPrep brain mask ('*_desc-brain_mask.nii.gz') next to "
                                               "this run; set dataset.mask to a mask file.")
            if not mask_on_grid(run.mask, ref, "brain mask")[0].any():
                raise InputFileError(run.mask, f"this brain mask of {run.subject} is empty (no voxel set).")
    return f"brain masks of {_count(len(runs), 'run')} on the BOLD grid"


def _atlas_on_grid(cfg: dict[str, Any], ref: Any, config: str | os.PathLike | None) -> str:
    from ..preprocess.nifti import labels_on_grid

    atlas = cfg["dataset"]["atlas"]
    with _about(config, "dataset.atlas"):
        labels, _ = labels_on_grid(atlas, ref)
    found = np.unique(labels[labels != 0])
    if not found.size:
        raise ConfigError(config, "dataset.atlas", f"no label of {atlas} falls on the data's grid "
                                                   f"(shape {tuple(ref.shape[:3])}): is it in the data's space?")
    return f"atlas {Path(atlas).name} ({_count(found.size, 'label')} on the data's grid)"


def _planted_parcels(cfg: dict[str, Any], config: str | os.PathLike | None) -> list[str]:
    """The atlas on the simulated MNI grid holds every planted parcel (the rule of ``write_simulated_bids``)."""
    from ..datasets.simulated_bids import mni_grid
    from ..preprocess.nifti import labels_on_grid

    atlas, opts = cfg["dataset"]["atlas"], cfg["simulation"]["bids"]
    grid = mni_grid(opts["voxel_size"])
    with _about(config, "dataset.atlas"):
        labels = labels_on_grid(atlas, grid)[0] * (grid.get_fdata() > 0)
    planted = sorted(int(k) for k in opts["planted_parcels"])
    missing = [k for k in planted if not (labels == k).any()]
    if missing:
        raise ConfigError(config, "simulation.bids.planted_parcels",
                          f"label(s) {missing} have no voxel of {atlas} inside the brain mask.")
    return [f"atlas {Path(atlas).name} (planted labels {planted} in the MNI {opts['voxel_size']} mm brain)"]


# --------------------------------------------------------------------------- fMRI: samples
def _check_shared_design(sampling: Sampling, first: str) -> None:
    """Every subject has the first one's runs and samples per run: the design is shared."""
    ref = sampling.lengths[first]
    for subject, lengths in sampling.lengths.items():
        if len(lengths) != len(ref):
            raise InputFileError(sampling.files[subject][0], f"{subject} has {_count(len(lengths), 'run')} but "
                                                             f"{first} has {len(ref)}; the design is shared.")
        for k, (n, n_ref) in enumerate(zip(lengths, ref)):
            if n != n_ref:
                raise InputFileError(sampling.files[subject][k], f"run {k + 1} of {subject} has {n} samples, but "
                                     f"{first}'s has {n_ref}; the design is shared by all subjects.")


def _check_min_samples(cfg: dict[str, Any], sampling: Sampling) -> None:
    """The ``responses`` stage excludes a subject with fewer than :data:`MIN_SAMPLES` samples."""
    for subject, lengths in sampling.lengths.items():
        n = sum(lengths)
        if n >= MIN_SAMPLES:
            continue
        rule = (f"fewer than the {MIN_SAMPLES} a subject needs: the responses stage would exclude it "
                f"(\"subject {subject!r} has {n} samples, fewer than the {MIN_SAMPLES} required\") and the "
                "score stage would have no subject to score")
        if sampling.generated:
            sim = cfg["simulation"]
            raise ConfigError(None, sampling.field,
                              f"the simulated story of {sim['n_words']} words gives {n} volumes per subject at "
                              f"simulation.tr = {float(sim['tr']):g} s, {rule}; give more words or a shorter TR.")
        source = sampling.files[subject][0] or f"the clock of dataset.kind {cfg['dataset']['kind']!r}"
        raise ConfigError(None, sampling.field, f"subject {subject!r} has {n} samples ({_describe(lengths)}, "
                                                f"{source}), {rule}; leave it out of dataset.subjects, or give it "
                                                "more samples.")


def _check_folds(cfg: dict[str, Any], sampling: Sampling, subject: str, lengths: list[int], grouped: bool,
                 what: str = "the encoding scores") -> None:
    problem = fold_problem(cfg, lengths, grouped=grouped)
    if problem is None:
        return
    key, message = problem
    enc = cfg["encoder"]
    if enc["gap"] and fold_problem({**cfg, "encoder": {**enc, "gap": 0}}, lengths, grouped=grouped) is None:
        advice = f"Lower encoder.gap (now {enc['gap']}; the folds work without it)"
        key = "encoder.gap"
    else:
        advice = f"Lower {key} (now {enc[key.split('.')[1]]}) or encoder.gap (now {enc['gap']})"
    first = sampling.files[subject][0]
    source = ("simulation.n_words and simulation.tr" if sampling.generated else str(first.parent) if first
              else f"the clock of dataset.kind {cfg['dataset']['kind']!r}")
    raise ConfigError(None, key, f"{what}: every subject has {_describe(lengths)} (from {source}); {message}. "
                                 f"{advice}, or give the data more samples.")


def fold_problem(cfg: dict[str, Any], lengths: Sequence[int], grouped: bool = True) -> tuple[str, str] | None:
    """The first fold of the workflow's nested cross-validation that cannot be fitted, or None.

    The folds are those of the score stage: the outer split of
    :func:`~brainalign.pipeline.stages.cv_groups` (leave-one-run-out, or
    ``encoder.outer_folds`` contiguous folds) with ``encoder.gap``, and in
    each outer training set ``encoder.inner_folds`` contiguous inner folds
    (leave-one-run-out when it holds two runs or more), all made by
    :class:`~brainalign.encoders.cv.ContiguousKFold`. A fold needs at least one
    training sample and two test samples (a Pearson r needs 2 points).

    Parameters
    ----------
    cfg : dict
        The validated config (its ``encoder`` section).
    lengths : sequence of int
        Samples of each run, in order.
    grouped : bool
        False: contiguous folds over all samples, runs ignored (variance partitioning).

    Returns
    -------
    (field, message) or None
        The ``encoder`` field to change and what goes wrong, with the numbers.
    """
    enc = cfg["encoder"]
    runs = np.repeat(np.arange(1, len(lengths) + 1), np.asarray(lengths, dtype=int))
    groups = cv_groups(cfg, runs) if grouped else None
    outer = _folds(enc["outer_folds"], enc["gap"], runs.size, groups)
    scheme = (f"leave-one-run-out over {len(lengths)} runs" if groups is not None
              else f"{enc['outer_folds']} contiguous outer folds of {runs.size} samples")
    if isinstance(outer, str):
        return "encoder.outer_folds", f"{scheme}: {outer}"
    bad = _bad_fold(outer)
    if bad is not None:
        return "encoder.outer_folds", f"{scheme}: outer fold {bad}"
    for k, (train, _) in enumerate(outer):
        inner_groups = groups[train] if groups is not None and np.unique(groups[train]).size >= 2 else None
        inner = _folds(enc["inner_folds"], enc["gap"], train.size, inner_groups)
        kind = "leave-one-run-out" if inner_groups is not None else f"{enc['inner_folds']} contiguous"
        where = f"{scheme}, the {train.size} training samples of outer fold {k + 1} in {kind} inner folds"
        if isinstance(inner, str):
            return "encoder.inner_folds", f"{where}: {inner}"
        bad = _bad_fold(inner)
        if bad is not None:
            return "encoder.inner_folds", f"{where}: inner fold {bad}"
    return None


def _folds(n_splits: int, gap: int, n: int, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """The splitter's folds of ``n`` samples, or its refusal in words."""
    try:
        return list(ContiguousKFold(n_splits, gap).split(np.empty(n), groups=groups))
    except BrainalignError as err:
        return str(err).rstrip(".")


def _bad_fold(folds: list[tuple[np.ndarray, np.ndarray]]) -> str | None:
    for k, (train, test) in enumerate(folds):
        if train.size == 0 or test.size < 2:
            return (f"{k + 1} of {len(folds)} would have {train.size} training and {test.size} test sample(s); "
                    "a fold needs at least 1 training sample and 2 test samples (a Pearson r needs 2 points)")
    return None


# --------------------------------------------------------------------------- MEG/EEG/sEEG
def _electro(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    from .electro import _word_split

    source = {"meeg_bids": "dataset.bids_dir", "recordings": "dataset.recordings"}.get(kind.name, "dataset")
    with _about(config, source):
        subjects = selected_subjects(cfg)
        events, inputs = kind.events(cfg)
    with _about(config, "electrophysiology.test_runs"):
        _, _, split = _word_split(cfg, events)
    runs = sorted(int(r) for r in events["run"].unique())
    if not kind.simulated:
        with _about(config, source):
            for subject in subjects:
                recordings = kind.recordings(cfg, subject, None)
                for _, path, _, _ in recordings:
                    if not Path(path).is_file():
                        raise InputFileError(path, "this recording does not exist.")
                kind.check_recordings(cfg, subject, [r for r, *_ in recordings], events,
                                      inputs[0] if inputs else "the word table", None)
    return [f"{_count(len(subjects), 'subject')}, {_count(len(runs), 'run')}, {len(events)} words",
            f"test split {split}"]


# --------------------------------------------------------------------------- images
def _images(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    if kind.name == "simulated_images":
        spec = cfg["simulation"]["images"]
        n_test, n_train = spec["n_test"], spec["n_images"] - spec["n_test"]
        if n_test < 2 or n_train < 2:
            raise ConfigError(config, "simulation.images.n_test",
                              f"{n_test} test and {n_train} training images of simulation.images.n_images = "
                              f"{spec['n_images']}; decoding needs at least 2 of each.")
        return [f"{_count(len(selected_subjects(cfg)), 'subject')}, {spec['n_images']} images ({n_test} held out)"]
    if kind.name == "nsd":
        return _nsd(cfg, config)
    return [_count(len(selected_subjects(cfg)), "subject")]


def _nsd(cfg: dict[str, Any], config: str | os.PathLike | None) -> list[str]:
    """NSD's design, each subject's ROI and betas (HDF5 shapes only), the stimuli and the captions."""
    import h5py

    from ..datasets.nsd import load_nsd_design, load_nsd_geometry

    ds, nsd = cfg["dataset"], cfg["dataset"]["nsd"]
    root = Path(ds["data_dir"])
    counts = []
    with _about(config, "dataset.data_dir"):
        check_fname(root, "directory", "NSD folder")
        design = load_nsd_design(root)
        seen = []
        for number in nsd["subjects"]:
            mask = load_nsd_geometry(root, number, space=nsd["space"], roi=nsd["roi"]).mask
            ids = _nsd_trial_images(root, number, nsd, mask.shape, design)
            seen.append(ids)
            counts.append(ids.size)
        brick = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
        check_fname(brick, "file", "the NSD stimuli")
        with h5py.File(brick, "r") as h5:
            if "imgBrick" not in h5:
                raise InputFileError(brick, "dataset 'imgBrick' is missing.")
            top = int(max(np.max(s) for s in seen))
            if top >= h5["imgBrick"].shape[0]:
                raise InputFileError(brick, f"image id {top} is beyond imgBrick's {h5['imgBrick'].shape[0]} images.")
    for key in ("captions", "embeddings"):
        if key == "captions" and nsd[key] is None:
            raise ConfigError(config, "dataset.nsd.captions", "is required for NSD (a CSV of nsd_id, caption).")
        if nsd[key] is not None and not Path(nsd[key]).is_file():
            raise ConfigError(config, f"dataset.nsd.{key}", f"the file {nsd[key]} does not exist.")
    spread = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)} to {max(counts)}"
    return [f"{_count(len(counts), 'subject')}, {spread} images each, ROI {nsd['roi']}"]


def _nsd_trial_images(root: Path, number: int, nsd: dict[str, Any], shape: tuple[int, ...],
                      design: dict[str, np.ndarray]) -> np.ndarray:
    """The distinct images of one subject's trials, with at least 2 shared (test) and 2 other images."""
    import h5py

    folder = root / "nsddata_betas" / "ppdata" / f"subj{number:02d}" / nsd["space"] / nsd["betas"]
    files = sorted(folder.glob("betas_session*.hdf5"))
    if nsd["sessions"] is not None:
        files = [f for f in files if int(f.stem.removeprefix("betas_session")) in nsd["sessions"]]
    if not files:
        raise InputFileError(folder, "no betas_sessionNN.hdf5 files (field dataset.nsd.sessions).")
    n_trials = 0
    for f in files:
        with h5py.File(f, "r") as h5:
            if "betas" not in h5:
                raise InputFileError(f, "dataset 'betas' is missing.")
            if h5["betas"].shape[1:] != shape:
                raise InputFileError(f, f"dataset 'betas' has volumes of shape {h5['betas'].shape[1:]}, but the "
                                        f"ROI {nsd['roi']} has {shape}.")
            n_trials += h5["betas"].shape[0]
    order = design["masterordering"]
    if n_trials > len(order):
        raise InputFileError(folder, f"{n_trials} trials, but masterordering has {len(order)}.")
    ids = np.unique(design["subjectim"][number - 1, order[:n_trials]])
    test = np.isin(ids, design["sharedix"])
    if test.sum() < 2 or (~test).sum() < 2:
        raise InputFileError(folder, f"{int(test.sum())} test and {int((~test).sum())} training images; need at "
                                     "least 2 of each.")
    return ids


# --------------------------------------------------------------------------- reading times
def _reading(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    with _about(config, "dataset.data_dir"):
        words = kind.reading_words(cfg)
        for name in cfg.get("reading", {}).get("builtin_predictors", []):
            kind.builtin_predictor(cfg, words, name)
    lang = cfg.get("language", {})
    paths = [("language.corpus", lang.get("corpus"))]
    paths += [(f"language.hf_models.{n}.model_path", s["model_path"]) for n, s in lang.get("hf_models", {}).items()]
    paths += [(f"language.predictor_files.{n}.path", s["path"]) for n, s in lang.get("predictor_files", {}).items()]
    for key, path in paths:
        if path and not Path(path).exists():
            raise ConfigError(config, key, f"{path} does not exist.")
    stories = words["story"].nunique() if "story" in words else 1
    return [f"{len(words)} words in {_count(stories, 'story')}"]


# --------------------------------------------------------------------------- small helpers
def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _describe(lengths: Sequence[int]) -> str:
    if len(lengths) == 1:
        return f"1 run of {lengths[0]} samples"
    return f"{len(lengths)} runs of {', '.join(str(n) for n in lengths)} samples"


def _text_rows(path: Path, header: bool) -> int:
    """Non-blank lines of a (gzipped) text table, less its header row."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            n = sum(1 for line in f if line.strip())
    except OSError as err:
        raise InputFileError(path, f"cannot be read ({err}).") from None
    return max(n - 1, 0) if header else n


def _timeseries_rows(path: Path, h5_key: str) -> int:
    """Samples of one response file of the ``timeseries`` kind, from its header or line count."""
    from ..datasets.timeseries import _EXTENSIONS

    if not path.is_file():
        raise InputFileError(path, "this response file does not exist.")
    name = path.name.lower()
    if name.endswith((".tsv", ".tsv.gz")):
        return _text_rows(path, header=True)
    if name.endswith(".npy"):
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (ValueError, OSError) as err:
            raise InputFileError(path, f"cannot be read as a NumPy .npy array ({err}).") from None
    elif name.endswith((".h5", ".hdf5")):
        shape = _h5_shape(path, h5_key)
    else:
        raise InputFileError(path, f"unknown extension; response files are {', '.join(_EXTENSIONS)}.")
    if len(shape) != 2 or 0 in shape:
        raise InputFileError(path, f"holds an array of shape {shape}; responses are 2-D (n_samples, n_units) with "
                                   "at least one of each.")
    return int(shape[0])


def _h5_shape(path: Path, key: str) -> tuple[int, ...]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise InputFileError(path, f"has no dataset {key!r} (field dataset.h5_key); found: {sorted(f.keys())}.")
            return tuple(f[key].shape)
    except OSError as err:
        raise InputFileError(path, f"cannot be read as HDF5 ({err}).") from None
