"""Small helpers of the kinds' pre-run checks (:meth:`~brainalign.datasets.registry.DatasetKind.preflight`).

Sample counts come from headers and line counts, never from the data; a
data file's problem is raised on the config field that points at it.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from pathlib import Path

from .._validation import ConfigError, InputFileError

__all__ = ["count", "on_field", "text_rows"]


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``"3 subjects"``, ``"1 story"``, ``"2 stories"``)."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


@contextlib.contextmanager
def on_field(field: str) -> Iterator[None]:
    """A data file's error (:class:`InputFileError`) in the block, as a :class:`ConfigError` on ``field``.

    The file's message is kept whole; the config file is filled in by the
    caller (``brainalign validate``).
    """
    try:
        yield
    except InputFileError as err:
        raise ConfigError(None, field, str(err)) from None


def text_rows(path: Path, header: bool) -> int:
    """Non-blank lines of a (gzipped) text table, less its header row.

    Raises
    ------
    InputFileError
        When the file cannot be read.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            n = sum(1 for line in f if line.strip())
    except OSError as err:
        raise InputFileError(path, f"cannot be read ({err}).") from None
    return max(n - 1, 0) if header else n
