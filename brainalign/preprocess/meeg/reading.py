"""Reading a continuous recording: a file in any format MNE reads, or a Raw in memory.

:func:`read_raw` reads a file (EDF/BDF headers are checked first, see
:mod:`.edf`) or copies a Raw already in memory, so the caller's object is never
modified; the private helpers give a Raw for read-only use without a copy and
the file to name in messages.
"""

from __future__ import annotations

import os

import mne

from ..._validation import BrainalignError, InputFileError, check_fname
from .edf import _check_edf_header


def _source_of(raw: mne.io.BaseRaw, source: str | os.PathLike | None) -> str | os.PathLike | None:
    """The file to name in messages: ``source`` if given, else the Raw's first file."""
    if source is not None:
        return source
    filenames = getattr(raw, "filenames", None) or ()
    first = filenames[0] if len(filenames) else None
    return first if first else None


def read_raw(source: str | os.PathLike | mne.io.BaseRaw, *, preload: bool = True) -> mne.io.BaseRaw:
    """Read a continuous recording, or copy one already in memory.

    Parameters
    ----------
    source : str, path-like or mne.io.BaseRaw
        A file in any format :func:`mne.io.read_raw` reads (FIF, EDF,
        BrainVision, EEGLAB, ...), or a Raw object (a copy is returned, so
        the caller's object is never modified).
    preload : bool
        Load the data into memory (needed by every function that changes
        the data).

    Returns
    -------
    raw : mne.io.BaseRaw
        A new Raw object.

    Raises
    ------
    InputFileError
        The file is missing, MNE cannot read it (MNE's message is
        included), or an EDF/BDF file is truncated or has a header field
        that is not a number (the field is named).
    """
    if isinstance(source, mne.io.BaseRaw):
        raw = source.copy()
        if preload and not raw.preload:
            raw.load_data(verbose="error")
        return raw
    if not isinstance(source, (str, os.PathLike)):
        raise BrainalignError(
            f"'source' must be a file path or an mne.io.BaseRaw, got {type(source).__name__}."
        )
    path = check_fname(source, "file", "recording")
    if path.suffix.lower() in (".edf", ".bdf"):
        _check_edf_header(path)
    try:
        return mne.io.read_raw(path, preload=preload, verbose="error")
    except Exception as err:  # MNE raises many types (ValueError, OSError, KeyError, ...)
        raise InputFileError(
            path, f"MNE cannot read this file as a raw recording ({type(err).__name__}: {err}); it is "
            "truncated, corrupt or not a recording."
        ) from err


def _as_raw(source: str | os.PathLike | mne.io.BaseRaw, *, preload: bool = True) -> mne.io.BaseRaw:
    """A Raw to read data from without copying the caller's object (read-only use)."""
    if isinstance(source, mne.io.BaseRaw):
        return source
    return read_raw(source, preload=preload)
