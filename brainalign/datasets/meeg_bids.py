"""BIDS MEG/EEG/iEEG datasets (mne-bids): recordings, subjects and word tables.

A *recording* is one ``(session, task, run)`` of a subject; recordings are
numbered 1, 2, ... in sorted entity order and play the part of runs (the test
split holds out whole recordings, i.e. whole stories). Words come from each
recording's ``*_events.tsv``: the column ``dataset.word_column``, or, as in
MEG-MASC, a ``trial_type`` column of Python-dict strings
(``"{'kind': 'word', 'word': 'Tara', ...}"``) whose ``word_column`` key is read
for the rows of kind ``word``. With ``dataset.event_category`` set, the column
holds MNE's hierarchical event tags as mne-bids writes annotation descriptions
(``word/Alice``): rows tagged ``<event_category>/<word>`` are the words, other
rows are other events.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._tsv import is_missing, read_tsv_cells, tsv_numbers
from .._validation import ConfigError, InputFileError
from .registry import ElectroKind

__all__ = ["Recording", "find_recordings", "list_meeg_subjects", "read_bids_raw", "read_bids_words",
           "word_table", "MeegBidsKind", "SENTENCE_PAUSE"]

# Words in a row further apart than this start a new sentence (the events have no sentences).
SENTENCE_PAUSE = 1.0


@dataclass(frozen=True)
class Recording:
    """One recording of one subject: its run number, file and events table (or None)."""

    run: int
    path: Path
    events: Path | None
    key: tuple[str, str, str]  # (session, task, run) entities, '' when absent
    bids_path: Any = None  # the mne_bids.BIDSPath


def read_bids_raw(recording: Recording):
    """Read one recording with mne-bids (channel types and bad channels from ``*_channels.tsv``)."""
    import mne_bids

    from ..preprocess.meeg.edf import _check_edf_header

    if recording.path.suffix.lower() in (".edf", ".bdf"):
        _check_edf_header(recording.path)
    try:
        raw = mne_bids.read_raw_bids(recording.bids_path, verbose="error").load_data(verbose="error")
    except Exception as err:
        raise InputFileError(recording.path, f"mne-bids cannot read this recording ({type(err).__name__}: "
                                             f"{err}).") from err
    _check_sidecar_sfreq(recording, float(raw.info["sfreq"]))
    return raw


def _sidecar(recording: Recording) -> Path:
    """The recording's ``*_<datatype>.json`` sidecar (beside it, without the split entity)."""
    return Path(recording.bids_path.copy().update(extension=".json", split=None).fpath)


def _check_sidecar_sfreq(recording: Recording, sfreq: float) -> None:
    """Raise when the sampling rate read from the file disagrees with the sidecar's ``SamplingFrequency``.

    The rate of an EDF/BDF file is derived from two header fields (samples
    per data record / duration of a data record): a wrong record duration
    reads every sample at the wrong time, with nothing else to tell.
    """
    sidecar = _sidecar(recording)
    if not sidecar.is_file():
        return
    try:
        stated = json.loads(sidecar.read_text(encoding="utf-8")).get("SamplingFrequency")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise InputFileError(sidecar, f"not a readable JSON object ({err}).") from None
    if stated is None:
        return
    if isinstance(stated, bool) or not isinstance(stated, (int, float)) or not np.isfinite(stated) or stated <= 0:
        raise InputFileError(sidecar, f"field 'SamplingFrequency' is {stated!r}, not a positive number of Hz.")
    if abs(sfreq - stated) <= 1e-3 * stated:
        return
    where = "its header"
    if recording.path.suffix.lower() in (".edf", ".bdf"):
        where = "its header fields 'number of samples in each data record' / 'duration of a data record'"
        record = _edf_record_duration(recording.path)
        if record is not None:
            where += f" (data records of {record:g} s)"
    raise InputFileError(recording.path, f"sampling rate {sfreq:g} Hz from {where}, but the sidecar {sidecar} "
                                         f"gives field 'SamplingFrequency' = {stated:g} Hz; correct the one that "
                                         "is wrong (reading at the wrong rate misplaces every word).")


def _edf_record_duration(path: Path) -> float | None:
    with open(path, "rb") as fh:
        head = fh.read(256)
    try:
        return float(head[244:252].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def list_meeg_subjects(ds: dict[str, Any]) -> list[str]:
    """``sub-XX`` labels of the subjects with at least one recording of ``dataset.datatype``."""
    import mne_bids

    root = Path(ds["bids_dir"])
    if not root.is_dir():
        raise ConfigError(None, "dataset.bids_dir", f"the folder {root} does not exist.")
    subjects = sorted(mne_bids.get_entity_vals(root, "subject"))
    found = [s for s in subjects if _matching(ds, s)]
    if not found:
        raise InputFileError(root, f"no {ds['datatype']} recordings found (field dataset.datatype, "
                                   f"task {ds.get('task')!r}).")
    return [f"sub-{s}" for s in found]


def _matching(ds: dict[str, Any], subject: str) -> list[Any]:
    import mne_bids

    exts = [ds["extension"]] if ds.get("extension") else None
    paths = mne_bids.find_matching_paths(
        ds["bids_dir"], subjects=subject, tasks=ds.get("task") or None, datatypes=ds["datatype"],
        suffixes=ds["datatype"], extensions=exts,
        sessions=None if ds["sessions"] == "all" else ds["sessions"],
        runs=None if ds["runs"] == "all" else [str(r) for r in ds["runs"]])
    # Sidecars share the suffix; keep recordings only (one per entity set, e.g. .vhdr not .eeg/.vmrk).
    recordings = [p for p in paths if p.extension not in (".json", ".tsv", ".eeg", ".vmrk", ".fdt")]
    return sorted(recordings, key=lambda p: (p.session or "", p.task or "", str(p.run or "")))


def find_recordings(ds: dict[str, Any], subject: str) -> list[Recording]:
    """The subject's recordings in run order (1, 2, ...)."""
    label = subject.removeprefix("sub-")
    paths = _matching(ds, label)
    if not paths:
        raise InputFileError(Path(ds["bids_dir"]) / subject, f"no {ds['datatype']} recordings "
                                                             "(field dataset.datatype).")
    keys = [(p.session or "", p.task or "", str(p.run or "")) for p in paths]
    if len(set(keys)) != len(keys):
        raise InputFileError(Path(ds["bids_dir"]) / subject, "several recording files share the same session, "
                             "task and run; set dataset.extension to choose one.")
    out = []
    for k, (p, key) in enumerate(zip(paths, keys)):
        events = p.copy().update(suffix="events", extension=".tsv").fpath
        out.append(Recording(k + 1, Path(p.fpath), Path(events) if Path(events).exists() else None, key, p))
    return out


def read_bids_words(path: str | os.PathLike, word_column: str = "word",
                    event_category: str | None = None) -> pd.DataFrame:
    """Word onsets (s) and words of one BIDS events TSV.

    Parameters
    ----------
    path : str or path-like
        The ``*_events.tsv``.
    word_column : str
        Column holding the words. When the file has no such column, ``trial_type``
        is read instead: MEG-MASC's dict strings (the key ``word_column`` of the
        rows of kind ``word``), or tags (with ``event_category``).
    event_category : str or None
        The values are MNE hierarchical event tags ``<category>/<word>``, as
        mne-bids writes annotation descriptions such as ``word/Alice`` into
        ``trial_type``: only rows tagged ``<event_category>/...`` are words, and
        the word is what follows that prefix (it may itself hold a ``/``). None:
        the values are the words, and a column most of whose values look like
        tags is refused rather than read as words.

    Returns
    -------
    words : DataFrame
        Columns ``onset`` (s from the recording's first sample) and ``word``, sorted by onset.

    Raises
    ------
    InputFileError
        No usable column, no word in it (the categories found are listed), tags
        read without ``event_category``, or a word without a finite onset.
    """
    from ..preprocess.meeg import tagged_word

    path = Path(path)
    cells = read_tsv_cells(path, "events file")
    table = cells.mask(cells.map(is_missing))  # missing cells (brainalign._tsv.MISSING_CELLS) become NaN
    if "onset" not in table.columns:
        raise InputFileError(path, f"no 'onset' column; columns: {list(table.columns)}.")
    if word_column in table.columns:
        column = word_column
    elif "trial_type" in table.columns:
        column = "trial_type"
    else:
        raise InputFileError(path, f"no {word_column!r} column (field dataset.word_column) and no trial_type "
                                   f"column to read it from; columns: {list(table.columns)}.")
    values = table[column]
    if event_category is not None:
        words = values.map(lambda v: tagged_word(v, event_category))
        if not words.notna().any():
            raise InputFileError(path, f"column {column!r}: no event of category {event_category!r} (values "
                                       f"'{event_category}/<word>', field dataset.event_category); "
                                       f"{_found_values(values)}.")
    elif column == word_column:
        words = values
    else:
        words = values.map(lambda v: _dict_word(v, word_column))
    if event_category is None and _looks_tagged(values if words.isna().all() else words):
        raise InputFileError(path, f"column {column!r} holds hierarchical event tags such as "
                                   f"{_first_tag(values)!r} (<category>/<word>, as mne-bids writes annotation "
                                   f"descriptions), not words; set dataset.event_category to the category of "
                                   f"the word events ({_found_values(values)}).")
    keep = (words.notna() & (words.astype(str).str.strip() != "")).to_numpy()
    rows = np.flatnonzero(keep)
    onsets = tsv_numbers(table["onset"].iloc[rows], path, "onset", rows=rows)
    out = pd.DataFrame({"onset": onsets, "word": words[keep].astype(str).str.strip().to_numpy()})
    if out.empty:
        raise InputFileError(path, f"no words in column {word_column!r} (field dataset.word_column).")
    return out.sort_values("onset", kind="stable").reset_index(drop=True)


def _looks_tagged(values: pd.Series) -> bool:
    """Whether most values have the form ``<category>/<rest>`` (transcripts rarely hold a ``/``)."""
    text = values.dropna().astype(str).str.strip()
    text = text[(text != "") & ~text.str.startswith("{")]
    return len(text) > 0 and text.str.contains(r"^[^/]+/.", regex=True).mean() > 0.5


def _first_tag(values: pd.Series) -> str:
    text = values.dropna().astype(str).str.strip()
    return str(text[text.str.contains("/", regex=False)].iloc[0])


def _found_values(values: pd.Series, limit: int = 10) -> str:
    """The categories (prefixes before the first ``/``) of the values, or the values when none has one."""
    text = sorted({str(v).strip() for v in values.dropna()} - {""})
    categories = sorted({v.split("/", 1)[0] for v in text if "/" in v})
    if categories:
        return f"categories found: {categories[:limit]}" + (" ..." if len(categories) > limit else "")
    return f"values found: {text[:limit]}" + (" ..." if len(text) > limit else "") + " (none has a '/')"


def _dict_word(value: Any, key: str) -> str | None:
    if not isinstance(value, str) or not value.startswith("{"):
        return None
    try:
        entry = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(entry, dict) or entry.get("kind", "word") != "word":
        return None
    word = entry.get(key)
    return None if word is None else str(word)


def word_table(files: list[tuple[int, Path]], word_column: str = "word",
               event_category: str | None = None) -> pd.DataFrame:
    """The word table of recordings' events TSVs: (run, file) pairs read with :func:`read_bids_words`.

    Returns ``onset`` (s from each recording's first sample), ``duration`` (0),
    ``word``, ``run`` and ``sentence``: the events give no sentences, so a new
    one starts after each pause longer than :data:`SENTENCE_PAUSE`.
    """
    parts = []
    for run, path in files:
        words = read_bids_words(path, word_column, event_category)
        words["duration"] = 0.0
        words["run"] = run
        parts.append(words)
    events = pd.concat(parts, ignore_index=True)
    gap = events.groupby("run")["onset"].diff().fillna(np.inf).to_numpy() > SENTENCE_PAUSE
    events["sentence"] = np.cumsum(gap) - 1
    return events[["onset", "duration", "word", "run", "sentence"]]


class MeegBidsKind(ElectroKind):
    """``meeg_bids``: a BIDS MEG/EEG/iEEG dataset read with mne-bids (``dataset.bids_dir``, ``dataset.datatype``)."""

    name = "meeg_bids"
    required = ("bids_dir", "datatype")
    data_field = "dataset.bids_dir"
    sentence_rule = f"a sentence ends at each pause longer than {SENTENCE_PAUSE:g} s"

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return list_meeg_subjects(cfg["dataset"])

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        """Words of every recording of the first subject; a new "sentence" after each pause > SENTENCE_PAUSE."""
        ds = cfg["dataset"]
        files = []
        for rec in find_recordings(ds, self.subjects(cfg)[0]):
            if rec.events is None:
                raise InputFileError(rec.path, "no *_events.tsv beside the recording (word onsets are read from it).")
            files.append((rec.run, rec.events))
        return word_table(files, ds["word_column"], ds["event_category"]), [path for _, path in files]

    def input_files(self, cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
        """``subject`` None: the first subject's events TSVs; a label: its recordings and every sidecar
        sharing their entities (events, channels, sidecar JSON, BrainVision/EEGLAB data files)."""
        import glob

        ds = cfg["dataset"]
        if subject is None:
            recordings = find_recordings(ds, self.subjects(cfg)[0])
            return [r.events for r in recordings if r.events is not None]
        files: set[Path] = set()
        for rec in find_recordings(ds, subject):
            # sub-01_task-x_run-1 of sub-01_task-x_run-1[_split-01]_eeg.edf: every file of the recording's entities.
            stem = rec.bids_path.copy().update(suffix=None, extension=None, split=None).basename
            files.update(p for p in rec.path.parent.glob(f"{glob.escape(stem)}_*") if p.is_file())
        return sorted(files)

    def recordings(self, cfg: dict[str, Any], subject: str, raw_dir: str | os.PathLike | None,
                   ) -> list[tuple[int, Path, Path | None, Any]]:
        return [(r.run, r.path, r.events, lambda r=r: read_bids_raw(r))
                for r in find_recordings(cfg["dataset"], subject)]

    def check_recordings(self, cfg: dict[str, Any], subject: str, runs: list[int], events: pd.DataFrame,
                         events_path: str | os.PathLike, raw_dir: str | os.PathLike | None) -> None:
        """Recordings are numbered per subject, so a missing one would also shift the numbers of the later
        ones: their (session, task, run) entities are compared with the first subject's, whose recordings
        gave the word table its runs."""
        ds = cfg["dataset"]
        first = self.subjects(cfg)[0]
        if subject == first:
            return
        keys = {r.key for r in find_recordings(ds, subject)}
        lacking = [r for r in find_recordings(ds, first) if r.key not in keys]
        if lacking:
            r = lacking[0]
            path = r.bids_path.copy().update(subject=subject.removeprefix("sub-")).fpath
            raise InputFileError(path, f"this recording does not exist, but {first}'s {r.path.name} gives run {r.run} "
                                       f"of the word table {events_path} ({len(lacking)} recording(s) of {first} "
                                       f"missing for {subject}: {[x.path.name for x in lacking][:5]}); every "
                                       "subject needs the recordings of the first.")

    def credit(self, cfg: dict[str, Any]) -> str:
        ds = cfg["dataset"]
        return (f"BIDS {ds['datatype']} dataset {Path(ds['bids_dir']).name} (cite the dataset's authors as its "
                "dataset_description.json asks).")
