"""Checked numbers from the cells of the TSV files brainalign reads (BIDS events, fMRIPrep confounds).

``pandas.to_numeric(..., errors="coerce")`` turns a cell it cannot read (an
onset written ``2,5`` with a decimal comma, a stray word) into NaN, which the
readers then take for a missing value, so the row is silently dropped or
filled. Here every cell is either a number, a missing value (empty or BIDS's
``n/a``) or an error naming the file, the column and the row.

Rows count data rows from 0 (the header excluded), with the file line given
too, as in :mod:`brainalign.stimuli.events`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ._validation import InputFileError, not_utf8_error

__all__ = ["MISSING_CELLS", "is_missing", "read_tsv_cells", "tsv_numbers"]

#: The one definition of a missing cell in every TSV brainalign reads (compared stripped and lower-cased):
#: empty, BIDS's ``n/a``, and ``nan`` (as pandas writes a missing float). Number columns: a missing cell is
#: an error or NaN, as the reader says (:func:`tsv_numbers`). Word columns of BIDS events: the row has no word
#: and is skipped. brainalign's own events table (``stimuli/events.tsv``) keeps its words literally: there
#: a word *is* the stimulus ("n/a" or "null" may be spoken).
MISSING_CELLS = frozenset({"", "n/a", "nan"})
_MISSING = MISSING_CELLS


def is_missing(value: Any) -> bool:
    """Whether a cell is missing: None, ``pd.NA``, a float NaN, or text in :data:`MISSING_CELLS`."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_CELLS
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")


def read_tsv_cells(path: str | os.PathLike, what: str, *, header: bool = True, sep: str = "\t",
                   names: list[str] | None = None) -> pd.DataFrame:
    """Every cell of a UTF-8 (optionally BOM-prefixed) tab-separated file, as text.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file is, in error messages (e.g. ``"events file"``).
    header : bool, default=True
        The first line names the columns. False: it is row 0 of the table
        (pandas would rename a repeated name, e.g. ``"IFG.1"``, instead of
        letting the caller refuse it).
    sep : str, default="\t"
        The separator (a BIDS dataset config may name another).
    names : list of str, optional
        Column names of a file without a header line (then ``header`` is ignored).

    Returns
    -------
    table : pandas.DataFrame of str
        Nothing is read as missing: ``n/a``, ``NA`` or an empty cell stay text
        (see :func:`tsv_numbers` for numbers).

    Raises
    ------
    InputFileError
        Naming the file: empty, not UTF-8, or not a parsable table.
    """
    try:
        return pd.read_csv(path, sep=sep, dtype=str, header=0 if header and names is None else None, names=names,
                           keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputFileError(path, f"{what} is empty (no header, no rows).") from None
    except UnicodeDecodeError:
        raise not_utf8_error(path, what) from None
    except pd.errors.ParserError as err:
        raise InputFileError(path, f"cannot be parsed as a tab-separated table ({err}).") from None


def tsv_numbers(
    values: Iterable[Any],
    path: str | os.PathLike,
    column: str,
    *,
    missing: str = "error",
    rows: Iterable[int] | None = None,
    line_offset: int = 2,
) -> np.ndarray:
    """Read the cells of one TSV column as finite numbers.

    Parameters
    ----------
    values : iterable
        The cells, as read with ``dtype=str`` (NaN or None count as missing).
    path : str or path-like
        The file, named in errors.
    column : str
        The column, named in errors.
    missing : {"error", "nan"}
        What a missing cell (empty, ``n/a``, ``nan``) gives: an error, or NaN
        in the result.
    rows : iterable of int or None
        The data row (from 0, header excluded) of each value, when ``values``
        is a selection of the column's cells; None: 0, 1, 2, ...
    line_offset : int
        File line of data row 0 (2: one header line).

    Returns
    -------
    numbers : ndarray of shape (n_values,), float64
        Finite, except NaN for missing cells with ``missing="nan"``.

    Raises
    ------
    InputFileError
        Naming the file, the column, the row and line, and the text of the
        first cell that is not a number (a decimal comma is pointed out), is
        infinite, or is missing when ``missing="error"``.
    """
    if missing not in ("error", "nan"):
        raise ValueError(f"missing must be 'error' or 'nan', got {missing!r}.")
    cells = pd.Series(list(values), dtype=object)
    index = np.arange(len(cells)) if rows is None else np.asarray(list(rows), dtype=np.int64)
    text = cells.astype(str).str.strip()
    absent = cells.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
    out = pd.to_numeric(text.where(~absent, "nan"), errors="coerce").to_numpy(dtype=np.float64, copy=True)
    # Cells pandas could not read (or read as infinite), and missing ones where none may be, one by one in row
    # order: the first gives the error.
    for k in np.flatnonzero((~absent & ~np.isfinite(out)) | (absent & (missing == "error"))):
        where = _where(index[k], line_offset)
        if absent[k]:
            raise InputFileError(path, f"column {column!r} has no value at {where} ({cells.iat[k]!r}).")
        out[k] = _number(text.iat[k], path, column, where)
    return out


def _where(row: int, line_offset: int) -> str:
    return f"row {int(row)} (line {int(row) + line_offset})"


def _number(text: str, path: str | os.PathLike, column: str, where: str) -> float:
    try:
        number = float(text)
    except ValueError:
        hint = f"; a decimal comma? write {text.replace(',', '.')!r}" if _DECIMAL_COMMA.match(text) else ""
        raise InputFileError(path, f"column {column!r} is not a number at {where}: {text!r}{hint}.") from None
    if not np.isfinite(number):
        raise InputFileError(path, f"column {column!r} is infinite at {where}: {text!r}.")
    return number
