"""Brennan et al. (2016) "Alice": fMRI ROI time courses during a story, as distributed.

The authors share, for each of 28 listeners hearing chapter 1 of *Alice's
Adventures in Wonderland* (about 12 min), the BOLD time course of six left- and
right-hemisphere regions of interest, the SPM motion parameters, and the
word-level forced alignment of the audio. The expected layout of ``data_dir``
is the authors' own::

    data_dir/
        alice_data_shared/
            6mm/sNN-timecourses.txt      362 rows x 6 ROIs (6 mm radius ROIs)
            10mm/sNN-timecourses.txt     362 rows x 6 ROIs (10 mm radius ROIs)
            sNN-rp_*.txt                 372 rows x 6 SPM motion parameters
            sNN-rate.txt                 362 rows: the authors' word-rate regressor
        alice_stim_shared/
            DownTheRabbitHoleFinal_exp120_pad_1.TextGrid

Timing. The first ten acquired volumes were discarded before the time courses
were written; the audio (and so the TextGrid's clock) starts with 20 s of
added silence, so volume ``k`` of the time courses is at ``20 + 2 k`` seconds
on the TextGrid's clock (:data:`ALICE_FIRST_VOLUME_ONSET`, :data:`ALICE_TR`).
The motion files still hold the ten discarded volumes; they are dropped here.

Subject ``s33`` is distributed with all-zero time courses:
:func:`check_usable` reports it (and any other unusable subject) with a reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, ConfigError, InputFileError, check_fname, not_utf8_error
from ..io import Responses
from ..stimuli.events import textgrid_to_events
from ._preflight import text_rows
from .registry import DatasetKind, Preflight, Sampling, selected_subjects

__all__ = [
    "ALICE_ROIS",
    "ALICE_TR",
    "ALICE_FIRST_VOLUME_ONSET",
    "ALICE_N_VOLUMES",
    "ALICE_N_DISCARDED",
    "ALICE_MOTION_NAMES",
    "ALICE_TEXTGRID",
    "ALICE_CITATION",
    "list_alice_subjects",
    "load_alice_responses",
    "load_alice_events",
    "load_alice_word_rate",
    "check_usable",
    "MIN_USABLE_SAMPLES",
    "AliceKind",
]

#: The six ROIs, in the column order of the ``*-timecourses.txt`` files.
ALICE_ROIS = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
#: Repetition time in seconds.
ALICE_TR = 2.0
#: Time (s, TextGrid clock) of the first distributed volume: volume k is at 20 + 2 k.
ALICE_FIRST_VOLUME_ONSET = 20.0
#: Number of volumes in each distributed time course.
ALICE_N_VOLUMES = 362
#: Volumes acquired before the first distributed one (still in the motion files).
ALICE_N_DISCARDED = 10
#: Names of the six SPM realignment parameters (translations in mm, rotations in rad).
ALICE_MOTION_NAMES = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
#: The word alignment, relative to ``data_dir``.
ALICE_TEXTGRID = Path("alice_stim_shared") / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"

#: How to cite the data, and under which licence they are used.
ALICE_CITATION = {
    "authors": [
        "Jonathan R. Brennan",
        "Edward P. Stabler",
        "Sarah E. Van Wagenen",
        "Wen-Ming Luh",
        "John T. Hale",
    ],
    "title": "Abstract linguistic structure correlates with temporal activity during "
    "naturalistic comprehension",
    "journal": "Brain and Language",
    "volume": "157-158",
    "year": 2016,
    "pages": "81-94",
    "doi": "10.1016/j.bandl.2016.04.008",
    "licence": "CC BY 4.0",
    "source": "ROI time courses, motion parameters and regressors (alice_data_shared/) and "
    "the Praat word alignment (alice_stim_shared/) as distributed by Jonathan Brennan; "
    "audio from LibriVox (public domain).",
}

_DATA = "alice_data_shared"
_SUBJECT_RE = re.compile(r"^(s\d+)-timecourses\.txt$")


# --------------------------------------------------------------------------- paths
def _data_folder(data_dir: str | os.PathLike) -> Path:
    """Return ``data_dir/alice_data_shared``, checking that it exists."""
    root = check_fname(data_dir, "directory", "Alice dataset")
    folder = root / _DATA
    if not folder.is_dir():
        raise InputFileError(
            root,
            f"folder '{_DATA}/' not found: data_dir must be the folder holding the authors' "
            f"'{_DATA}/' and 'alice_stim_shared/'.",
        )
    return folder


def _roi_folder(data_dir: str | os.PathLike, roi_size: str) -> Path:
    """Return the folder of time courses for ``roi_size``, listing the choices if absent."""
    folder = _data_folder(data_dir)
    sizes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if roi_size not in sizes:
        raise InputFileError(
            folder, f"roi_size {roi_size!r} has no folder here; available: {sizes}."
        )
    return folder / roi_size


def _subject_name(subject: str | int) -> str:
    """Accept ``"s18"``, ``"18"`` or ``18``; return ``"s18"``."""
    text = str(subject).strip()
    if re.fullmatch(r"\d+", text):
        text = f"s{int(text)}"
    if not re.fullmatch(r"s\d+", text):
        raise BrainalignError(f"Alice subject must look like 's18', got {subject!r}.")
    return text


# --------------------------------------------------------------------------- text matrices
def _read_matrix(
    path: Path, columns: list[str], n_rows: int | None, what: str
) -> np.ndarray:
    """Read a whitespace-separated numeric text matrix, naming the bad row and column.

    Parameters
    ----------
    path : Path
        The file (must exist).
    columns : list of str
        Expected column names, used for the column count and messages.
    n_rows : int or None
        Expected number of rows, or None to accept any (>= 1).
    what : str
        Description of the file for messages, e.g. ``"ROI time courses"``.

    Returns
    -------
    matrix : ndarray of shape (n_rows, len(columns)), float64
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise not_utf8_error(path, f"{what} file") from None
    rows: list[list[float]] = []
    lines: list[int] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        row = len(rows)
        if len(fields) != len(columns):
            raise InputFileError(
                path,
                f"row {row} (line {line_no}) has {len(fields)} column(s), expected "
                f"{len(columns)} ({' '.join(columns)}).",
            )
        rows.append(
            [_parse_float(path, value, row, line_no, name) for value, name in zip(fields, columns)]
        )
        lines.append(line_no)
    if not rows:
        raise InputFileError(path, f"{what} file is empty.")
    matrix = np.asarray(rows, dtype=np.float64)
    if n_rows is not None and matrix.shape[0] != n_rows:
        raise InputFileError(
            path, f"{what} file has {matrix.shape[0]} rows, expected {n_rows}."
        )
    _check_finite(matrix, path, columns, lines)
    return matrix


def _parse_float(path: Path, value: str, row: int, line_no: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputFileError(
            path,
            f"non-numeric entry {value[:30]!r} at row {row} (line {line_no}), column {column!r}.",
        ) from None


def _check_finite(matrix: np.ndarray, path: Path, columns: list[str], lines: list[int]) -> None:
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(matrix[row, col]) else "infinite"
        raise InputFileError(
            path,
            f"column {columns[col]!r} is {kind} at row {row} (line {lines[row]}); "
            f"{int(bad.sum())} non-finite value(s) in all.",
        )


def _motion_file(folder: Path, subject: str) -> Path:
    """Return the one ``<subject>-rp_*.txt`` in ``folder``."""
    pattern = f"{subject}-rp_*.txt"
    matches = sorted(folder.glob(pattern))
    if not matches:
        raise InputFileError(
            folder, f"no motion-parameter file {pattern!r} for subject {subject!r}."
        )
    if len(matches) > 1:
        names = [p.name for p in matches]
        raise InputFileError(
            folder, f"{len(matches)} motion-parameter files match {pattern!r}: {names}; keep one."
        )
    return matches[0]


# --------------------------------------------------------------------------- public
def list_alice_subjects(data_dir: str | os.PathLike, roi_size: str = "6mm") -> list[str]:
    """List the subjects with a time-course file, sorted by number.

    Parameters
    ----------
    data_dir : str or path-like
        The dataset folder (holding ``alice_data_shared/``).
    roi_size : str
        Which ROI radius: a sub-folder of ``alice_data_shared/`` (``"6mm"`` or
        ``"10mm"`` as distributed).

    Returns
    -------
    subjects : list of str
        E.g. ``["s18", "s22", ..., "s53"]`` (28 as distributed), unusable
        subjects included (see :func:`check_usable`).
    """
    folder = _roi_folder(data_dir, roi_size)
    names = [m.group(1) for p in folder.iterdir() if (m := _SUBJECT_RE.match(p.name))]
    if not names:
        raise InputFileError(folder, "no 'sNN-timecourses.txt' files found.")
    return sorted(names, key=lambda s: int(s[1:]))


def load_alice_responses(
    data_dir: str | os.PathLike, subject: str, roi_size: str = "6mm"
) -> Responses:
    """Load one subject's ROI time courses with their motion confounds.

    Parameters
    ----------
    data_dir : str or path-like
        The dataset folder (holding ``alice_data_shared/``).
    subject : str
        Subject identifier, e.g. ``"s18"``.
    roi_size : str
        ROI radius folder, ``"6mm"`` or ``"10mm"``.

    Returns
    -------
    responses : Responses
        ``data`` of shape (362, 6), float32, raw BOLD units, columns
        :data:`ALICE_ROIS`; ``times`` of shape (362,) = 20 + 2 k seconds on
        the TextGrid's clock; ``runs`` all 1; ``sampling`` = TR = 2.0 s;
        ``confounds`` of shape (362, 6): the SPM motion parameters
        (:data:`ALICE_MOTION_NAMES`; mm and radians) with the ten discarded
        volumes dropped. Unusable data (s33) are returned as they are: check
        them with :func:`check_usable`.

    Raises
    ------
    InputFileError
        Naming the file, for a missing file, an unknown ``roi_size`` (listing
        the folders), a wrong column or row count, a non-numeric entry (its
        row), a NaN or infinite value (its row and column), or no or several
        motion files.
    """
    subject = _subject_name(subject)
    path = check_fname(_roi_folder(data_dir, roi_size) / f"{subject}-timecourses.txt",
                       "file", "Alice time-course")
    data = _read_matrix(path, ALICE_ROIS, ALICE_N_VOLUMES, "ROI time courses")
    n = data.shape[0]
    motion_path = _motion_file(_data_folder(data_dir), subject)
    motion = _read_matrix(motion_path, ALICE_MOTION_NAMES, None, "motion parameters")
    if motion.shape[0] != n + ALICE_N_DISCARDED:
        raise InputFileError(
            motion_path,
            f"motion parameters have {motion.shape[0]} rows, expected {n + ALICE_N_DISCARDED} "
            f"(the {n} volumes of {path.name} plus the {ALICE_N_DISCARDED} discarded ones).",
        )
    return Responses(
        data=data.astype(np.float32),
        sampling=ALICE_TR,
        times=ALICE_FIRST_VOLUME_ONSET + ALICE_TR * np.arange(n),
        runs=np.ones(n, dtype=np.int64),
        unit_names=list(ALICE_ROIS),
        unit_rois=list(ALICE_ROIS),
        subject=subject,
        modality="fmri",
        confounds=motion[ALICE_N_DISCARDED:],
        confound_names=list(ALICE_MOTION_NAMES),
    )


#: Fewest samples a subject needs to be scored (:func:`check_usable`'s default; ``brainalign validate`` applies it).
MIN_USABLE_SAMPLES = 50


def check_usable(responses: Responses, min_samples: int = MIN_USABLE_SAMPLES) -> tuple[bool, str]:
    """Say whether a subject's responses can be modelled, and if not why.

    Parameters
    ----------
    responses : Responses
        As returned by :func:`load_alice_responses`.
    min_samples : int
        Fewest samples (volumes) accepted.

    Returns
    -------
    usable : bool
        False for too few samples, non-finite values, all-zero data (as
        distributed for s33) or a constant unit column.
    reason : str
        Why not, naming the subject and the unit; ``""`` when usable.
    """
    data = np.asarray(responses.data)
    who = f"subject {responses.subject!r}"
    if data.shape[0] < min_samples:
        return False, f"{who} has {data.shape[0]} samples, fewer than the {min_samples} required."
    if not np.isfinite(data).all():
        return False, f"{who} has NaN or infinite values."
    if not data.any():
        return False, f"{who} has all-zero data (all values are zeros: no signal was distributed)."
    constant = [name for name, col in zip(responses.unit_names, data.T) if np.ptp(col) == 0]
    if constant:
        return False, f"{who} has constant unit column(s) {constant} (no variance)."
    return True, ""


def load_alice_events(data_dir: str | os.PathLike) -> pd.DataFrame:
    """Load the word events from the authors' TextGrid.

    Parameters
    ----------
    data_dir : str or path-like
        The dataset folder (holding ``alice_stim_shared/``).

    Returns
    -------
    events : pandas.DataFrame of shape (2127, 4)
        Columns ``onset`` (s, TextGrid clock: the first word, "Alice", is at
        20.0589 s), ``duration`` (s), ``word`` and ``run`` (all 1); silences
        (``sp``) and empty intervals dropped.
    """
    root = check_fname(data_dir, "directory", "Alice dataset")
    path = check_fname(root / ALICE_TEXTGRID, "file", "Alice TextGrid")
    return textgrid_to_events(path, tier="word", drop=("sp", ""), run=1)


def load_alice_word_rate(data_dir: str | os.PathLike, subject: str) -> np.ndarray:
    """Load the authors' word-rate regressor for one subject.

    Parameters
    ----------
    data_dir : str or path-like
        The dataset folder (holding ``alice_data_shared/``).
    subject : str
        Subject identifier, e.g. ``"s18"``.

    Returns
    -------
    rate : ndarray of shape (362,), float64
        The authors' ``<subject>-rate.txt``, one value per volume of the time
        courses: a check that words and volumes are aligned.
    """
    subject = _subject_name(subject)
    path = check_fname(_data_folder(data_dir) / f"{subject}-rate.txt", "file", "Alice word-rate")
    return _read_matrix(path, ["rate"], ALICE_N_VOLUMES, "word-rate")[:, 0]


def alice_input_files(data_dir: str | os.PathLike, subject: str, roi_size: str = "6mm") -> list[Path]:
    """The raw files one subject's responses are read from (for provenance checksums)."""
    subject = _subject_name(subject)
    folder = _data_folder(data_dir)
    return [_roi_folder(data_dir, roi_size) / f"{subject}-timecourses.txt", _motion_file(folder, subject)]


class AliceKind(DatasetKind):
    """``alice``: Brennan et al. (2016) as distributed (``dataset.data_dir``, ``dataset.roi_size``)."""

    name = "alice"
    modality = "roi"
    required = ("data_dir",)
    data_field = "dataset.data_dir"

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        ds = cfg["dataset"]
        if not Path(ds["data_dir"]).is_dir():
            raise ConfigError(None, "dataset.data_dir", f"the folder {ds['data_dir']} does not exist.")
        return list_alice_subjects(ds["data_dir"], ds["roi_size"])

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        data_dir = cfg["dataset"]["data_dir"]
        return load_alice_events(data_dir), [Path(data_dir) / ALICE_TEXTGRID]

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        from ..features.design import frame_times_for_run

        return ALICE_TR, {1: frame_times_for_run(ALICE_N_VOLUMES, ALICE_TR, ALICE_FIRST_VOLUME_ONSET)}

    def responses(self, cfg: dict[str, Any], subject: str, raw: str | os.PathLike | None = None,
                  ) -> tuple[Responses, list[Path]]:
        ds = cfg["dataset"]
        return (load_alice_responses(ds["data_dir"], subject, ds["roi_size"]),
                alice_input_files(ds["data_dir"], subject, ds["roi_size"]))

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The TextGrid, and every subject's time-course file with its :data:`ALICE_N_VOLUMES` rows (a line count)."""
        ds = cfg["dataset"]
        subjects = selected_subjects(cfg)
        events, (events_path,) = self.events(cfg)
        lengths, files = {}, {}
        for subject in subjects:
            path = check_fname(alice_input_files(ds["data_dir"], subject, ds["roi_size"])[0], "file",
                               "Alice time-course")
            n = text_rows(path, header=False)
            if n != ALICE_N_VOLUMES:
                raise InputFileError(path, f"ROI time courses file has {n} rows, expected {ALICE_N_VOLUMES}.")
            lengths[subject], files[subject] = [n], [path]
        _, frame_times = self.timing(cfg, events)
        return Preflight([f"ROI size {ds['roi_size']}"], events, Sampling(
            lengths, files, self.data_field, frame_times, events_path))

    def credit(self, cfg: dict[str, Any]) -> str:
        c = ALICE_CITATION
        authors = ", ".join(c["authors"]) if isinstance(c.get("authors"), list) else c.get("authors", "")
        fields = " ".join(str(c[k]) for k in ("title", "journal", "year", "pages") if k in c)
        return (f"{authors}. {fields}. doi:{c.get('doi', '')}. Licence: {c.get('licence', '')}. "
                f"{c.get('source', '')}")
