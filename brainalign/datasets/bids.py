"""BIDS + fMRIPrep datasets: find each subject's runs, read their word timings.

Files are found with plain glob rules on the BIDS naming scheme, not with
pybids: a run needs four files (preprocessed BOLD, brain mask, confounds TSV,
events) whose names are fixed by BIDS and fMRIPrep, so a filename parser of
a few lines does the job in milliseconds, where indexing a large dataset with
pybids takes minutes and adds a heavy dependency (SQLAlchemy) to every job.

Layout read (``[]`` = optional entity)::

    <bids_dir>/sub-<s>/[ses-<x>/]func/sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_events.tsv
    <bids_dir>/task-<t>[_run-<r>]_events.tsv                    (BIDS inheritance)
    <fmriprep_dir>/sub-<s>/[ses-<x>/]func/
        sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_space-<space>[_res-<res>]_desc-preproc_bold.nii.gz
        sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_space-<space>[_res-<res>]_desc-brain_mask.nii.gz
        sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_desc-confounds_timeseries.tsv  (or _regressors.tsv)

Runs are ordered by session, then run index; the analysis labels them
1, 2, ... in that order (``BidsRun.label``), and the *same* labels must
describe the same stimulus in every subject: the design is shared.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._tsv import is_missing, read_tsv_cells, tsv_numbers
from .._validation import ConfigError, InputFileError
from ._preflight import count, on_field
from .registry import Preflight, Sampling, VolumeKind, selected_subjects

__all__ = [
    "BidsRun",
    "parse_entities",
    "fmriprep_dir",
    "list_bids_subjects",
    "find_bids_runs",
    "run_geometry",
    "read_run_words",
    "bids_word_events",
    "BidsKind",
]

logger = logging.getLogger("brainalign")

_ENTITY = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9]+)$")


@dataclass(frozen=True)
class BidsRun:
    """One functional run of one subject, as fMRIPrep wrote it.

    Attributes
    ----------
    subject : str
        ``"sub-<label>"``.
    session : str or None
        Session label (without ``ses-``).
    run : int or None
        BIDS run index, None when the files carry no ``run-`` entity.
    label : int
        Position of the run in the subject's ordered runs, from 1.
    bold : Path
        Preprocessed 4-D BOLD image.
    mask : Path or None
        fMRIPrep's brain mask of the run, when present.
    confounds : Path or None
        fMRIPrep's confounds TSV of the run, when present.
    """

    subject: str
    session: str | None
    run: int | None
    label: int
    bold: Path
    mask: Path | None
    confounds: Path | None


def parse_entities(name: str) -> tuple[dict[str, str], str, str]:
    """Split a BIDS file name into ``(entities, suffix, extension)``.

    ``"sub-01_task-x_run-2_bold.nii.gz"`` gives
    ``({"sub": "01", "task": "x", "run": "2"}, "bold", ".nii.gz")``. Parts that
    are not ``key-value`` make the name unparseable (empty entities).
    """
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    if len(parts) < 2:
        return {}, "", ""
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        match = _ENTITY.match(part)
        if not match:
            return {}, "", ""
        entities[match.group(1)] = match.group(2)
    return entities, parts[-1], dot + ext


def fmriprep_dir(ds: dict[str, Any]) -> Path:
    """The fMRIPrep derivatives folder of a ``dataset`` config section."""
    if ds.get("fmriprep_dir"):
        return Path(ds["fmriprep_dir"])
    return Path(ds["bids_dir"]) / "derivatives" / "fmriprep"


def _preproc_bolds(root: Path, subject: str, ds: dict[str, Any]) -> list[tuple[dict[str, str], Path]]:
    found = []
    for path in sorted((root / subject).glob("**/func/*_bold.nii*")):
        ent, suffix, ext = parse_entities(path.name)
        if suffix != "bold" or ext not in (".nii", ".nii.gz") or ent.get("desc") != "preproc":
            continue
        if ent.get("task") != ds["task"] or ent.get("space") != ds["space"]:
            continue
        if ds.get("res") is not None and ent.get("res") != ds["res"]:
            continue
        if ds["sessions"] != "all" and ent.get("ses") not in ds["sessions"]:
            continue
        if ds["runs"] != "all" and (ent.get("run") is None or int(ent["run"]) not in ds["runs"]):
            continue
        found.append((ent, path))
    return found


def list_bids_subjects(ds: dict[str, Any], config_path: str | os.PathLike | None = None) -> list[str]:
    """Subjects (``sub-<label>``) with at least one preprocessed run of the task in the space."""
    root = fmriprep_dir(ds)
    if not Path(ds["bids_dir"]).is_dir():
        raise ConfigError(config_path, "dataset.bids_dir", f"the BIDS folder {ds['bids_dir']} does not exist.")
    if not root.is_dir():
        field = "dataset.fmriprep_dir" if ds.get("fmriprep_dir") else "dataset.bids_dir"
        raise ConfigError(config_path, field, f"the fMRIPrep folder {root} does not exist.")
    subjects = [p.name for p in sorted(root.glob("sub-*")) if p.is_dir() and _preproc_bolds(root, p.name, ds)]
    if not subjects:
        raise ConfigError(
            config_path, "dataset.task",
            f"no '*_task-{ds['task']}*_space-{ds['space']}*_desc-preproc_bold.nii[.gz]' file under "
            f"{root}/sub-*/; check dataset.task, dataset.space and dataset.res."
        )
    return subjects


def _sibling(bold: Path, ent: dict[str, str], replace: dict[str, str | None], suffix: str,
             exts: tuple[str, ...]) -> Path | None:
    """The file next to ``bold`` with some entities replaced (None drops one)."""
    new = dict(ent)
    for key, value in replace.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    order = ["sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "space", "res", "den", "desc"]
    keys = [k for k in order if k in new] + [k for k in new if k not in order]
    stem = "_".join(f"{k}-{new[k]}" for k in keys) + f"_{suffix}"
    for ext in exts:
        candidate = bold.with_name(stem + ext)
        if candidate.exists():
            return candidate
    return None


def find_bids_runs(ds: dict[str, Any], subject: str) -> list[BidsRun]:
    """Every analysed run of ``subject``, ordered by session then run index.

    Raises
    ------
    InputFileError
        When two files claim the same session and run (e.g. several ``res-``
        without ``dataset.res``), naming both.
    """
    root = fmriprep_dir(ds)
    found = _preproc_bolds(root, subject, ds)
    if not found:
        raise InputFileError(root / subject, f"no preprocessed BOLD run of task {ds['task']!r} in "
                                             f"space {ds['space']!r}.")
    seen: dict[tuple[str, int], Path] = {}
    runs = []
    for ent, path in sorted(found, key=lambda e: (e[0].get("ses", ""), int(e[0].get("run", 0)))):
        key = (ent.get("ses", ""), int(ent.get("run", 0)))
        if key in seen:
            raise InputFileError(
                path, f"same session and run as {seen[key].name}; set dataset.res (or dataset.runs) "
                "so that one file per run matches."
            )
        seen[key] = path
        mask = _sibling(path, ent, {"desc": "brain"}, "mask", (".nii.gz", ".nii"))
        conf = None
        for name in ("timeseries", "regressors"):
            conf = conf or _sibling(path, ent, {"space": None, "res": None, "desc": "confounds"}, name, (".tsv",))
        runs.append(BidsRun(subject=subject, session=ent.get("ses"),
                            run=int(ent["run"]) if "run" in ent else None, label=len(runs) + 1,
                            bold=path, mask=mask, confounds=conf))
    return runs


def run_geometry(runs: list[BidsRun]) -> tuple[float, list[int]]:
    """TR (s) and volumes per run from the BOLD headers; every run must share the TR.

    Raises
    ------
    InputFileError
        Naming the run whose header field ``pixdim[4]`` differs from the first run's.
    """
    import nibabel as nib

    from ..preprocess.nifti import _header_tr

    tr0 = None
    n_volumes = []
    for run in runs:
        try:
            img = nib.load(str(run.bold))
        except Exception as err:
            raise InputFileError(run.bold, f"not a readable NIfTI image: its header cannot be read ({err}).") from err
        if len(img.shape) != 4:
            raise InputFileError(run.bold, f"header field 'dim' gives shape {tuple(img.shape)}, expected 4-D.")
        tr = _header_tr(img, run.bold)
        if tr is None:
            raise InputFileError(run.bold, "header field pixdim[4] (TR) is missing or zero.")
        if tr0 is None:
            tr0 = tr
        elif not np.isclose(tr, tr0, rtol=1e-4):
            raise InputFileError(
                run.bold, f"header field pixdim[4] gives TR = {tr:g} s, but {runs[0].bold.name} has "
                f"TR = {tr0:g} s; all runs must share one TR."
            )
        n_volumes.append(int(img.shape[3]))
    return float(tr0), n_volumes


def _events_path(ds: dict[str, Any], run: BidsRun) -> Path:
    bids = Path(ds["bids_dir"])
    pattern = (ds.get("word_events") or {}).get("pattern")
    if pattern:
        return bids / pattern.format(task=ds["task"], run=run.run if run.run is not None else "",
                                     session=run.session or "", subject=run.subject)
    ses = f"_ses-{run.session}" if run.session else ""
    rn = f"_run-{run.run}" if run.run is not None else ""
    folder = bids / run.subject / (f"ses-{run.session}" if run.session else "") / "func"
    candidates = [folder / f"{run.subject}{ses}_task-{ds['task']}{rn}_events.tsv",
                  bids / f"task-{ds['task']}{rn}_events.tsv", bids / f"task-{ds['task']}_events.tsv"]
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def read_run_words(ds: dict[str, Any], run: BidsRun, n_volumes: int, tr: float) -> pd.DataFrame:
    """The words of one run: ``onset`` (s from the run's first volume), ``duration``, ``word``.

    Read from the run's BIDS events TSV (rows with a non-empty ``word``), or
    from ``dataset.word_events`` (e.g. Narratives' Gentle alignments). Words
    without a timing (unaligned) are dropped and counted in the log.

    Raises
    ------
    InputFileError
        Missing file or column, or a word starting after the run's last volume.
    """
    path = _events_path(ds, run)
    spec = ds.get("word_events") or {}
    if not path.exists():
        raise InputFileError(path, f"events file of {run.bold.name} does not exist.")
    table = read_tsv_cells(path, "events file", sep=spec.get("sep", "\t"), names=spec.get("columns"))
    word_col = spec.get("word_column", "word")
    onset_col = spec.get("onset_column", "onset")
    offset_col = spec.get("offset_column")
    dur_col = spec.get("duration_column", "duration") if spec else "duration"
    needed = [word_col, onset_col] + ([offset_col] if offset_col else [dur_col] if dur_col else [])
    for col in needed:
        if col not in table.columns:
            raise InputFileError(path, f"has no column {col!r} (columns: {list(table.columns)}).")
    words = table[word_col].str.strip()
    rows = np.flatnonzero(~words.map(is_missing).to_numpy(dtype=bool))
    # Only a missing cell (brainalign._tsv.MISSING_CELLS) means "no value"; text that is not a number (2,5) is
    # an error.
    numbers = {"path": path, "missing": "nan", "rows": rows, "line_offset": 1 if spec.get("columns") else 2}
    onset = tsv_numbers(table[onset_col].iloc[rows], column=onset_col, **numbers)
    if offset_col:
        duration = tsv_numbers(table[offset_col].iloc[rows], column=offset_col, **numbers) - onset
    elif dur_col:
        duration = tsv_numbers(table[dur_col].iloc[rows], column=dur_col, **numbers)
    else:
        duration = np.zeros(len(rows))
    timed = np.isfinite(onset)
    if not timed.all():
        logger.info("%s: %d word(s) without an onset are skipped.", path, int((~timed).sum()))
    out = pd.DataFrame({
        "onset": onset[timed] + float(spec.get("onset_shift", 0.0)),
        "duration": np.clip(np.nan_to_num(duration[timed], nan=0.0), 0.0, None),
        "word": words.iloc[rows].to_numpy(str)[timed],
    })
    if out.empty:
        raise InputFileError(path, f"column {word_col!r} has no timed word.")
    end = n_volumes * tr
    late = np.flatnonzero(out["onset"].to_numpy() >= end)
    if late.size:
        k = int(late[0])
        raise InputFileError(
            path, f"column {onset_col!r}: word {out['word'].iloc[k]!r} starts at "
            f"{out['onset'].iloc[k]:.3f} s, after the end of the run ({n_volumes} volumes x TR "
            f"{tr:g} s = {end:.3f} s in {run.bold.name}); {late.size} word(s) in all."
        )
    return out.sort_values("onset", kind="stable").reset_index(drop=True)


def bids_word_events(ds: dict[str, Any], subject: str) -> tuple[pd.DataFrame, list[Path]]:
    """Words of every run of ``subject`` (labelled 1, 2, ...; the design is shared by all subjects).

    Returns the word table (with ``run`` and ``stimulus_id``, the events
    file's name) and the events files it was read from.
    """
    runs = find_bids_runs(ds, subject)
    tr, n_volumes = run_geometry(runs)
    parts = []
    for run, n in zip(runs, n_volumes):
        words = read_run_words(ds, run, n, tr)
        words["run"] = run.label
        words["stimulus_id"] = _events_path(ds, run).name
        parts.append(words)
    events = pd.concat(parts, ignore_index=True)
    return events, sorted({_events_path(ds, run) for run in runs})


class BidsKind(VolumeKind):
    """``bids``: a BIDS dataset with fMRIPrep derivatives (``dataset.bids_dir``, ``dataset.task``)."""

    name = "bids"
    required = ("bids_dir", "task")
    data_field = "dataset.bids_dir"

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return list_bids_subjects(cfg["dataset"])

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        return bids_word_events(cfg["dataset"], selected_subjects(cfg)[0])

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        from ..features.design import frame_times_for_run

        runs = find_bids_runs(cfg["dataset"], selected_subjects(cfg)[0])
        tr, n_volumes = run_geometry(runs)
        return tr, {run.label: frame_times_for_run(n, tr, 0.0) for run, n in zip(runs, n_volumes)}

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """fMRIPrep BOLD runs of every subject (volumes and TR from the NIfTI headers; with ``confounds:
        fmriprep`` their confounds TSVs), the events, the brain masks or ``dataset.mask``, and the atlas, each
        on the BOLD grid."""
        from ..features.design import frame_times_for_run
        from ..preprocess.nifti import _load_img

        ds = cfg["dataset"]
        lengths, files, all_runs = {}, {}, []
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
        events, inputs = self.events(cfg)
        ref, _ = _load_img(files[subjects[0]][0], "BOLD image")
        facts = [_mask_on_grid(ds, all_runs, ref)] + ([_atlas_on_grid(ds["atlas"], ref)] if ds.get("atlas") else [])
        frame_times = {k + 1: frame_times_for_run(n, tr0, 0.0) for k, n in enumerate(lengths[subjects[0]])}
        return Preflight(facts, events, Sampling(lengths, files, self.data_field, frame_times,
                                                 inputs[0] if inputs else None))

    def credit(self, cfg: dict[str, Any]) -> str:
        ds = cfg["dataset"]
        return (f"BIDS dataset {Path(ds['bids_dir']).name}, task {ds['task']}, fMRIPrep space {ds['space']} "
                "(cite the dataset's authors as its dataset_description.json asks).")


# --------------------------------------------------------------------------- checks before a run
def _mask_on_grid(ds: dict[str, Any], runs: list[BidsRun], ref: Any) -> str:
    """The analysis mask's inputs, as ``brainalign mask`` reads them (:func:`~brainalign.pipeline.volumes.run_mask`)."""
    from ..preprocess.nifti import mask_on_grid

    if ds["mask"] != "brain":
        with on_field("dataset.mask"):
            mask, _ = mask_on_grid(ds["mask"], ref, "dataset.mask image")
        if not mask.any():
            raise ConfigError(None, "dataset.mask", f"the mask {ds['mask']} is empty (no voxel set).")
        return f"mask {Path(ds['mask']).name} ({int(mask.sum())} voxels on the BOLD grid)"
    with on_field("dataset.mask"):
        for run in runs:
            if run.mask is None:
                raise InputFileError(run.bold, "no fMRIPrep brain mask ('*_desc-brain_mask.nii.gz') next to "
                                               "this run; set dataset.mask to a mask file.")
            if not mask_on_grid(run.mask, ref, "brain mask")[0].any():
                raise InputFileError(run.mask, f"this brain mask of {run.subject} is empty (no voxel set).")
    return f"brain masks of {count(len(runs), 'run')} on the BOLD grid"


def _atlas_on_grid(atlas: str, ref: Any) -> str:
    """The atlas, resampled onto the data's grid, keeps at least one label."""
    from ..preprocess.nifti import labels_on_grid

    with on_field("dataset.atlas"):
        labels, _ = labels_on_grid(atlas, ref)
    found = np.unique(labels[labels != 0])
    if not found.size:
        raise ConfigError(None, "dataset.atlas", f"no label of {atlas} falls on the data's grid "
                                                 f"(shape {tuple(ref.shape[:3])}): is it in the data's space?")
    return f"atlas {Path(atlas).name} ({count(found.size, 'label')} on the data's grid)"
