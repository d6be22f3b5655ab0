"""Check a config against its data before the workflow runs (``brainalign validate``).

:func:`preflight` does what can be checked without running the heavy stages,
with the rules the stages themselves apply. The config's dataset kind checks
its own data (:meth:`~brainalign.datasets.registry.DatasetKind.preflight`):

* **data present**: the files and folders the config points at exist, found
  with the kind's own functions, and at least one subject is found;
* **samples**: read from headers and shapes (NIfTI headers, ``.npy`` headers,
  HDF5 shapes, TSV line counts), never from the data; simulated kinds are
  checked through the parameters that generate their data;
* **atlas and masks**: readable, and on (or resampled onto) the data's grid.

This module then applies the rules of the kind's modality to what the kind
found:

* **enough samples** (fMRI): every subject has, per run, the samples the
  workflow's nested cross-validation needs (``encoder.outer_folds``,
  ``inner_folds``, ``gap``, ``cv``), generated from the same splitter the
  encoders use, and at least the samples below which the ``responses`` stage
  excludes a subject (:func:`brainalign.datasets.alice.check_usable`); the
  word table's words fall inside their runs;
* **the test split** of MEG/EEG/sEEG leaves data to train and to test on;
* **language inputs** of reading-time datasets exist.

Nothing is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import BrainalignError, ConfigError, InputFileError
from ..datasets._preflight import count
from ..datasets.alice import MIN_USABLE_SAMPLES
from ..datasets.registry import DatasetKind, Preflight, Sampling, get_kind
from ..encoders.cv import ContiguousKFold
from .stages import convolve_runs, cv_groups, cv_label, partition_pair

__all__ = ["MIN_SAMPLES", "fold_problem", "preflight"]


#: Fewest samples of a subject the ``responses`` stage keeps (the default of ``check_usable``).
MIN_SAMPLES = MIN_USABLE_SAMPLES


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


def _kind_checks(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> Preflight:
    """The kind's own checks; a data file's error is reported on the kind's :attr:`~DatasetKind.data_field`."""
    with _about(config, getattr(kind, "data_field", "dataset")):
        return kind.preflight(cfg)


# --------------------------------------------------------------------------- fMRI
def _fmri(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    checked = _kind_checks(cfg, kind, config)
    sampling, events = checked.sampling, checked.events
    if sampling is None or events is None:
        raise BrainalignError(f"dataset.kind {kind.name!r} ({kind.modality} modality): its preflight gave no "
                              "samples per run or no word table.")
    subjects = list(sampling.lengths)
    if len(subjects) < 2:
        field_ = "simulation.n_subjects" if sampling.generated else "dataset.subjects"
        raise ConfigError(config, field_, f"{count(len(subjects), 'subject')} to analyse ({', '.join(subjects)}); the "
                                          "noise ceiling (leave-one-subject-out ISC) and the nested best layer need "
                                          "at least 2.")
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
    with _about(config, sampling.events_field or sampling.field):
        convolve_runs(cfg, events, np.zeros(len(events)), sampling.frame_times, source=sampling.events_path)
    runs = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    per_run = f"{min(lengths)}" if min(lengths) == max(lengths) else f"{min(lengths)} to {max(lengths)}"
    return [f"{count(len(subjects), 'subject')}, {count(len(lengths), 'run')} each, {per_run} {sampling.unit} "
            f"per run", f"{len(events)} words", *checked.facts,
            f"cv {cv_label(cfg, runs)} with {cfg['encoder']['inner_folds']} inner folds"]


# --------------------------------------------------------------------------- fMRI: samples
def _check_shared_design(sampling: Sampling, first: str) -> None:
    """Every subject has the first one's runs and samples per run: the design is shared."""
    ref = sampling.lengths[first]
    for subject, lengths in sampling.lengths.items():
        if len(lengths) != len(ref):
            raise InputFileError(sampling.files[subject][0], f"{subject} has {count(len(lengths), 'run')} but "
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
        source = sampling.files[subject][0] or sampling.source
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
    source = str(first.parent) if first else sampling.source
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

    checked = _kind_checks(cfg, kind, config)
    with _about(config, "electrophysiology.test_runs"):
        _, _, split = _word_split(cfg, checked.events)
    return [*checked.facts, f"test split {split}"]


# --------------------------------------------------------------------------- images
def _images(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    return _kind_checks(cfg, kind, config).facts


# --------------------------------------------------------------------------- reading times
def _reading(cfg: dict[str, Any], kind: DatasetKind, config: str | os.PathLike | None) -> list[str]:
    checked = _kind_checks(cfg, kind, config)
    lang = cfg.get("language", {})
    paths = [("language.corpus", lang.get("corpus"))]
    paths += [(f"language.hf_models.{n}.model_path", s["model_path"]) for n, s in lang.get("hf_models", {}).items()]
    paths += [(f"language.predictor_files.{n}.path", s["path"]) for n, s in lang.get("predictor_files", {}).items()]
    for key, path in paths:
        if path and not Path(path).exists():
            raise ConfigError(config, key, f"{path} does not exist.")
    return checked.facts


# --------------------------------------------------------------------------- small helpers
def _describe(lengths: Sequence[int]) -> str:
    if len(lengths) == 1:
        return f"1 run of {lengths[0]} samples"
    return f"{len(lengths)} runs of {', '.join(str(n) for n in lengths)} samples"
