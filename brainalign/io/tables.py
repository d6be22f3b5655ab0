"""Tables: CSV with a provenance sidecar, read back with their required columns, and the scores table's columns."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._validation import InputFileError, not_utf8_error
from .atomic import write_with_sidecar

#: Columns every scores table carries, in this order.
SCORE_COLUMNS = [
    "dataset",
    "subject",
    "model",
    "layer",
    "roi",
    "metric",
    "cv",
    "alpha_criterion",
    "fold",
    "score",
    "ceiling",
    "normalized_score",
    "normalized_score_unclipped",
    "exceeds_ceiling",
]


def write_table(path: str | os.PathLike, table: pd.DataFrame, prov: Mapping[str, Any] | None = None) -> Path:
    """Atomically write a CSV table, then its provenance as ``<path>.json`` (:func:`write_with_sidecar`)."""
    return write_with_sidecar(path, lambda tmp: table.to_csv(tmp, index=False, lineterminator="\n"), prov)


def read_table(path: str | os.PathLike, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or TSV table and check that ``required`` columns exist."""
    path = Path(path)
    sep = "\t" if path.suffix == ".tsv" else ","
    try:
        table = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])
    except FileNotFoundError as err:
        raise InputFileError(path, "table does not exist.") from err
    except UnicodeDecodeError:
        raise not_utf8_error(path, "table") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputFileError(path, f"cannot be parsed as a {sep!r}-separated table ({err}).") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {missing}; found {list(table.columns)}.")
    return table
