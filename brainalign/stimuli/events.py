"""The *events* contract: one row per presented word, BIDS-like TSV.

An events table has the required columns

============  ==========  ===============================================
column        type        meaning
============  ==========  ===============================================
``onset``     float       word onset in seconds on the stimulus clock
``duration``  float >= 0  word duration in seconds
``word``      str         the word as presented (non-empty)
``run``       int >= 1    run (session block) the word belongs to
============  ==========  ===============================================

and optionally ``stimulus_id`` (str), naming the stimulus the word comes from,
and ``story`` (str): words of one story split across several runs share it, and
the language model's context then continues across those runs.
Other columns are kept as they are. Onsets never decrease within a run, and
no word appears twice at the same onset of a run (a repeated row).

Row numbers in error messages count data rows from 0 (the header excluded),
as pandas does; when the table was read from a file the file's line number is
given too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._tsv import is_missing, read_tsv_cells
from .._validation import (
    InputFileError,
    check_fname,
    check_range,
    check_type,
)
from ..io import write_with_sidecar
from .textgrid import read_textgrid

__all__ = [
    "EVENT_COLUMNS",
    "OPTIONAL_EVENT_COLUMNS",
    "validate_events",
    "read_events",
    "write_events",
    "textgrid_to_events",
    "context_groups",
]

#: Required columns of an events table, in this order.
EVENT_COLUMNS = ["onset", "duration", "word", "run"]
#: Optional columns with a defined meaning.
OPTIONAL_EVENT_COLUMNS = ["stimulus_id", "story"]


def context_groups(events: pd.DataFrame) -> np.ndarray:
    """Labels whose changes end a model's context window: the story when known, else the run.

    A story split across runs (``story`` column) keeps its context across the
    run boundary; separate stories never share context.

    Returns
    -------
    groups : ndarray of shape (n_events,)
    """
    if "story" in events.columns:
        return pd.factorize(events["story"].astype(str))[0]
    return events["run"].to_numpy()



# --------------------------------------------------------------------------- helpers
class _Where:
    """Formats row references for messages, with file lines when known."""

    def __init__(self, path: str | os.PathLike | None, line_offset: int | None):
        self.path = path
        self.line_offset = line_offset

    def row(self, i: int) -> str:
        if self.line_offset is None:
            return f"row {i}"
        return f"row {i} (line {i + self.line_offset})"

    def error(self, message: str) -> InputFileError:
        return InputFileError(self.path, message)


def _to_float(column: pd.Series, name: str, where: _Where) -> np.ndarray:
    """Convert a column to finite float64, naming the first bad row."""
    values = np.empty(len(column), dtype=np.float64)
    for i, value in enumerate(column.to_list()):
        if is_missing(value):
            raise where.error(f"column {name!r} is NaN at {where.row(i)}.")
        if isinstance(value, (bool, np.bool_)):
            raise where.error(f"column {name!r} is not a number at {where.row(i)} ({value!r}).")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise where.error(
                f"column {name!r} is not a number at {where.row(i)} ({value!r})."
            ) from None
        if not np.isfinite(number):
            raise where.error(f"column {name!r} is infinite at {where.row(i)} ({value!r}).")
        values[i] = number
    return values


def _to_run(column: pd.Series, where: _Where) -> np.ndarray:
    """Convert the ``run`` column to int64 >= 1, naming the first bad row."""
    floats = _to_float(column, "run", where)
    for i, value in enumerate(floats):
        if value != np.floor(value):
            raise where.error(f"column 'run' is not a whole number at {where.row(i)} ({float(value)!r}).")
        if value < 1:
            raise where.error(f"column 'run' is {int(value)} at {where.row(i)}, expected >= 1.")
    return floats.astype(np.int64)


def _to_text(column: pd.Series, name: str, where: _Where) -> pd.Series:
    """Convert a column to non-empty Python strings (object dtype)."""
    out = []
    for i, value in enumerate(column.to_list()):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            raise where.error(f"column {name!r} is missing (NaN) at {where.row(i)}.")
        if not isinstance(value, str):
            value = str(value)
        if not value.strip():
            raise where.error(f"column {name!r} is empty at {where.row(i)}.")
        out.append(value)
    return pd.Series(out, index=column.index, dtype=object)


def _check_order(onsets: np.ndarray, runs: np.ndarray, where: _Where) -> None:
    """Raise if onsets decrease within a run (rows in table order)."""
    last: dict[int, tuple[float, int]] = {}
    for i, (onset, run) in enumerate(zip(onsets, runs)):
        previous = last.get(int(run))
        if previous is not None and onset < previous[0]:
            raise where.error(
                f"column 'onset' decreases at {where.row(i)} in run {int(run)}: {float(onset)!r} s comes "
                f"after {float(previous[0])!r} s at {where.row(previous[1])} (sort the events by run "
                "and onset)."
            )
        last[int(run)] = (onset, i)


def _check_duplicates(events: pd.DataFrame, where: _Where) -> None:
    """Raise if a word appears twice at the same onset of the same run (a repeated row)."""
    key = ["run", "onset", "word"]
    duplicated = events.duplicated(key, keep=False).to_numpy()
    if not duplicated.any():
        return
    first = int(np.flatnonzero(duplicated)[0])
    run, onset, word = (events[c].iat[first] for c in key)
    same = [where.row(int(i)) for i in np.flatnonzero(duplicated)
            if events["run"].iat[i] == run and events["onset"].iat[i] == onset and events["word"].iat[i] == word]
    raise where.error(
        f"column 'word': {word!r} at onset {float(onset)!r} s in run {int(run)} appears more than once "
        f"({', '.join(same)}); {int(duplicated.sum())} row(s) are duplicated in all (remove the repeats)."
    )


def _validate(
    df: pd.DataFrame, path: str | os.PathLike | None, line_offset: int | None
) -> pd.DataFrame:
    where = _Where(path, line_offset)
    if not isinstance(df, pd.DataFrame):
        raise where.error(f"events must be a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise where.error(
            f"events table is missing required column(s) {missing}; found {list(df.columns)} "
            f"(required: {EVENT_COLUMNS})."
        )
    if len(df) == 0:
        raise where.error("events table is empty (no rows).")
    out = df.reset_index(drop=True).copy()
    out["onset"] = _to_float(out["onset"], "onset", where)
    out["duration"] = _to_float(out["duration"], "duration", where)
    negative = np.flatnonzero(out["duration"].to_numpy() < 0)
    if negative.size:
        i = int(negative[0])
        raise where.error(
            f"column 'duration' is negative at {where.row(i)} ({float(out['duration'].iat[i])!r} s), "
            "expected >= 0."
        )
    out["word"] = _to_text(out["word"], "word", where)
    out["run"] = _to_run(out["run"], where)
    if "stimulus_id" in out.columns:
        out["stimulus_id"] = _to_text(out["stimulus_id"], "stimulus_id", where)
    _check_order(out["onset"].to_numpy(), out["run"].to_numpy(), where)
    _check_duplicates(out, where)
    extra = [c for c in out.columns if c not in EVENT_COLUMNS]
    return out[EVENT_COLUMNS + extra]


# --------------------------------------------------------------------------- public
def validate_events(df: pd.DataFrame, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Check an events table against the contract and return a normalised copy.

    Parameters
    ----------
    df : pandas.DataFrame of shape (n_events, n_columns)
        The events, with at least the columns in :data:`EVENT_COLUMNS`.
    path : str or path-like or None
        The file the table came from, used in error messages only.

    Returns
    -------
    events : pandas.DataFrame of shape (n_events, n_columns)
        A copy with a fresh 0-based index, ``onset`` and ``duration`` as
        float64 (seconds), ``word`` (and ``stimulus_id`` if present) as
        Python strings, ``run`` as int64; the required columns first, then
        the others in their original order.

    Raises
    ------
    InputFileError
        Naming the file, the column and the row, for a missing column, an
        empty table, a NaN, infinite or non-numeric ``onset``/``duration``/
        ``run``, a negative duration, a run that is not a whole number >= 1,
        an empty word, onsets that decrease within a run, or the same word twice
        at the same onset of a run.
    """
    return _validate(df, path, None)


def read_events(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an events TSV.

    Parameters
    ----------
    path : str or path-like
        A tab-separated file (UTF-8, optionally with BOM) with a header row.
        Missing numbers may be written ``n/a``; they are rejected by the
        validation. Words such as ``"null"`` or ``"NA"`` are read as words.

    Returns
    -------
    events : pandas.DataFrame of shape (n_events, n_columns)
        As returned by :func:`validate_events`.
    """
    path = check_fname(path, "file", "events")
    table = read_tsv_cells(path, "events file")
    # Data row i is on line i + 2 (line 1 is the header).
    return _validate(table, path, 2)


def write_events(
    path: str | os.PathLike, df: pd.DataFrame, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Validate and atomically write an events table as TSV.

    Parameters
    ----------
    path : str or path-like
        Destination, conventionally ``*_events.tsv``. Written to a temporary
        file and renamed, so a reader never sees a partial table.
    df : pandas.DataFrame
        The events; validated with :func:`validate_events` first.
    provenance : mapping or None
        If given, written as JSON (sorted keys) to ``<path>.json``.

    Returns
    -------
    path : pathlib.Path
        The written file. Floats are written by pandas in their shortest
        round-trip form, so the same table always gives the same bytes.
    """
    path = Path(path)
    events = validate_events(df, path)
    return write_with_sidecar(
        path, lambda tmp: events.to_csv(tmp, sep="\t", index=False, lineterminator="\n", encoding="utf-8"),
        provenance)


def textgrid_to_events(
    path: str | os.PathLike,
    tier: str = "word",
    drop: Iterable[str] = ("sp", ""),
    run: int = 1,
) -> pd.DataFrame:
    """Turn one interval tier of a Praat TextGrid into an events table.

    Parameters
    ----------
    path : str or path-like
        The TextGrid (see :func:`~brainalign.stimuli.textgrid.read_textgrid`).
    tier : str
        The interval tier holding the words.
    drop : iterable of str
        Interval labels to drop, compared after stripping whitespace and
        case-sensitively (``"sp"`` drops ``"sp"`` but not ``"SP"``). ``""``
        drops empty and whitespace-only intervals.
    run : int
        The run label (>= 1) given to every event.

    Returns
    -------
    events : pandas.DataFrame of shape (n_words, 4)
        Columns ``onset`` (s), ``duration`` (s), ``word`` (the stripped
        label) and ``run``, in file order, validated.
    """
    check_type("run", run, (int, np.integer))
    check_range("run", int(run), low=1)
    intervals = read_textgrid(path, tier=tier)
    words = intervals["text"].astype(object).map(str.strip)
    keep = ~words.isin(set(drop)).to_numpy()
    if not keep.any():
        raise InputFileError(
            path,
            f"tier {tier!r} has no intervals left after dropping labels {sorted(set(drop))!r} "
            f"({len(intervals)} interval(s) in the tier).",
        )
    events = pd.DataFrame(
        {
            "onset": intervals["onset"].to_numpy()[keep],
            "duration": intervals["duration"].to_numpy()[keep],
            "word": words.to_numpy()[keep],
            "run": np.full(int(keep.sum()), int(run), dtype=np.int64),
        }
    )
    return validate_events(events, path)
