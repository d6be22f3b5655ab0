"""Word events of a recording: onsets and words from a BIDS events TSV or the annotations.

Onsets are in seconds from the first sample; MNE hierarchical event tags
(``word/Alice``) are understood (:func:`tagged_word`); a word twice at the same
onset is refused, naming both rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd

from ..._tsv import is_missing, read_tsv_cells
from ..._validation import InputFileError, check_fname
from .reading import _as_raw, _source_of


# Annotation prefixes that mark artefacts or recording edges, not words. Case
# matters: MNE and its readers write them in capitals ("BAD_muscle", "EDGE
# boundary"), while "bad", "badly" or "edge" are words of a transcript.
_IGNORED_ANNOTATIONS = ("BAD", "EDGE")


def tagged_word(value: Any, category: str) -> str | None:
    """The word of an MNE hierarchical event tag ``<category>/<word>``, or None.

    mne-bids writes annotation descriptions such as ``word/Alice`` into the
    ``trial_type`` column of ``*_events.tsv``; MNE reads the ``/`` as a tag
    separator (``epochs["word"]`` selects them). The category comes first; the
    word is everything after ``<category>/`` (so ``word/and/or`` is ``and/or``).

    Parameters
    ----------
    value : object
        A description or ``trial_type`` value.
    category : str
        The category of word events (e.g. ``"word"``; may itself hold a ``/``,
        e.g. ``"stim/word"``). Matched case-sensitively, as MNE matches tags.

    Returns
    -------
    word : str or None
        None for a value of another category, a non-string, or an empty word.
    """
    if not isinstance(value, str):
        return None
    prefix = f"{category}/"
    value = value.strip()
    if not value.startswith(prefix):
        return None
    word = value[len(prefix):].strip()
    return None if is_missing(word) else word


def read_word_events(
    raw: str | os.PathLike | mne.io.BaseRaw,
    *,
    events_tsv: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    word_column: str = "word",
    event_category: str | None = None,
) -> pd.DataFrame:
    """Word onsets of a recording, from a BIDS events TSV or the annotations.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (only its annotations and ``first_time`` are used, and
        only when ``events_tsv`` is None).
    events_tsv : str, path-like or None
        A BIDS ``*_events.tsv``: tab-separated with the columns ``onset``
        (seconds from the first sample of the recording, as BIDS defines it)
        and ``word_column``. Rows whose word is empty or ``n/a`` are skipped
        (other events of the file). When None the annotations of ``raw`` are
        read: each annotation's description is a word, except those starting
        with ``BAD`` or ``EDGE`` in capitals (so the words "bad" or "edge"
        are kept); onsets are converted to seconds
        from the first sample (``annotation.onset - raw.first_time``).
    source : str, path-like or None
        File named in messages about the annotations (default: the Raw's
        file).
    word_column : str
        Column of the TSV holding the words.
    event_category : str or None
        The words are tagged ``<event_category>/<word>`` (MNE hierarchical
        event tags, e.g. ``word/Alice``), in the TSV column or the
        annotations: only events of that category are read, and the prefix
        is removed (:func:`tagged_word`). None: every value is a word.

    Returns
    -------
    events : pandas.DataFrame of shape (n_words, 2)
        Columns ``onset`` (float64, seconds from the first sample) and
        ``word`` (str), sorted by onset (stable: words sharing an onset keep
        their order in the file), index 0 … n_words − 1.

    Raises
    ------
    InputFileError
        Missing column, an onset that is not a finite number, no words at
        all, or the same word twice at the same onset (both rows named; rows
        of a TSV count data rows from 0, the header excluded, with the file
        line given too).
    """
    if events_tsv is not None:
        onsets, words, rows, where = _words_from_tsv(events_tsv, word_column, event_category)
    else:
        raw = _as_raw(raw, preload=False)
        where = _source_of(raw, source)
        onsets, words, rows = _words_from_annotations(raw, event_category)
        if not words:
            wanted = (f"descriptions '{event_category}/<word>'" if event_category is not None
                      else "descriptions other than BAD…/EDGE…")
            raise InputFileError(where, f"annotations: no word annotations ({wanted}) found.")
    order = np.argsort(np.asarray(onsets, dtype=np.float64), kind="stable")
    frame = pd.DataFrame(
        {
            "onset": np.asarray(onsets, dtype=np.float64)[order],
            "word": [words[i] for i in order],
        }
    )
    sorted_rows = [rows[i] for i in order]
    _check_duplicated_words(frame, sorted_rows, where)
    return frame


def _words_from_tsv(
    path: str | os.PathLike, word_column: str, event_category: str | None = None
) -> tuple[list[float], list[str], list[str], Path]:
    path = check_fname(path, "file", "events")
    table = read_tsv_cells(path, "events file")
    for column in ("onset", word_column):
        if column not in table.columns:
            raise InputFileError(
                path, f"column {column!r} is missing (columns: {', '.join(map(repr, table.columns))})."
            )
    onsets: list[float] = []
    words: list[str] = []
    rows: list[str] = []
    for i, (onset_text, word) in enumerate(zip(table["onset"], table[word_column])):
        word = str(word).strip() if event_category is None else tagged_word(word, event_category) or ""
        if is_missing(word):
            continue
        row = f"row {i} (line {i + 2})"
        try:
            onset = float(onset_text)
        except ValueError:
            raise InputFileError(
                path, f"column 'onset' is not a number at {row} ({onset_text!r}, word {word!r})."
            ) from None
        if not np.isfinite(onset):
            raise InputFileError(
                path, f"column 'onset' is not a finite number at {row} ({onset_text!r}, word {word!r})."
            )
        onsets.append(onset)
        words.append(word)
        rows.append(row)
    if not words:
        what = "are empty or n/a" if event_category is None else f"are not tagged '{event_category}/<word>'"
        raise InputFileError(path, f"column {word_column!r}: no words (all {len(table)} row(s) {what}).")
    return onsets, words, rows, path


def _words_from_annotations(
    raw: mne.io.BaseRaw, event_category: str | None = None
) -> tuple[list[float], list[str], list[str]]:
    annotations = raw.annotations
    # raw.annotations onsets count from the measurement start (meas_date, or
    # sample 0 when there is none); the first sample of raw is at first_time.
    first_time = float(raw.first_time)
    onsets: list[float] = []
    words: list[str] = []
    rows: list[str] = []
    for i, (onset, description) in enumerate(zip(annotations.onset, annotations.description)):
        word = str(description).strip()
        if word.startswith(_IGNORED_ANNOTATIONS):
            continue
        if event_category is not None:
            word = tagged_word(word, event_category) or ""
        if not word:
            continue
        onsets.append(float(onset) - first_time)
        words.append(word)
        rows.append(f"annotation {i}")
    return onsets, words, rows


def _check_duplicated_words(
    frame: pd.DataFrame, rows: Sequence[str], where: str | os.PathLike | None
) -> None:
    duplicated = frame.duplicated(["onset", "word"], keep=False).to_numpy()
    if not duplicated.any():
        return
    first = int(np.flatnonzero(duplicated)[0])
    onset, word = frame["onset"].iat[first], frame["word"].iat[first]
    same = [
        rows[j]
        for j in np.flatnonzero(duplicated)
        if frame["onset"].iat[j] == onset and frame["word"].iat[j] == word
    ]
    raise InputFileError(
        where,
        f"word {word!r} at onset {onset!r} s appears more than once ({', '.join(same)}); "
        f"{int(duplicated.sum())} row(s) are duplicated in all.",
    )
