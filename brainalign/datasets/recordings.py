"""``recordings``: the user's own MEG/EEG/iEEG recordings, any format MNE reads, with events TSVs.

One recording per subject and run (FIF, EDF/BDF, BrainVision, EEGLAB, ...,
whatever :func:`mne.io.read_raw` opens) and, beside each, a TSV of the words'
onsets in seconds from the recording's first sample. A minimal config::

    dataset:
      name: my_meg
      kind: recordings
      datatype: meg                               # meg, eeg (segment identification) or ieeg (words)
      recordings: data/{subject}/run-{run}_raw.fif
      recording_events: data/{subject}/run-{run}_events.tsv   # onset, word (columns)
    feature_sets:
      minilm: {kind: transformer, layers: [3]}
    electrophysiology:
      target_feature_set: minilm
      target_layer: "3"

Runs are numbered by ``{run}``; every subject needs the runs of the first.
The word table (``stimuli/events.tsv``) is the first subject's words, a new
sentence after each pause longer than 1 s; every subject's recordings must
hold the same words in the same order (each subject's onsets are its own).
The events TSVs are read as BIDS events files: ``dataset.word_column``
(default ``word``) or MEG-MASC's ``trial_type`` dicts, or MNE event tags with
``dataset.event_category``. Relative paths are relative to the config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from .._validation import InputFileError, resolve_against
from ._patterns import check_pattern, fill, pattern_matches
from .meeg_bids import SENTENCE_PAUSE, word_table
from .registry import ElectroKind

__all__ = ["RecordingsKind"]


class RecordingsKind(ElectroKind):
    """``recordings``: MNE-readable files per subject and run, each with a words TSV (module docstring)."""

    name = "recordings"
    required = ("recordings", "recording_events", "datatype")
    data_field = "dataset.recordings"
    sentence_rule = f"a sentence ends at each pause longer than {SENTENCE_PAUSE:g} s"
    schema = {
        "recordings": {"type": ["string", "null"], "minLength": 1, "description": (
            "recordings: path pattern of the recordings, with {subject} and {run} (any format mne.io.read_raw "
            "reads).")},
        "recording_events": {"type": ["string", "null"], "minLength": 1, "description": (
            "recordings: path pattern of each recording's words TSV (onset in s from its first sample, and "
            "dataset.word_column), with {subject} and {run}.")},
    }

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        for key in ("recordings", "recording_events"):
            check_pattern(cfg["dataset"][key], f"dataset.{key}", path)

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        ds = cfg["dataset"]
        for key in ("recordings", "recording_events"):
            ds[key] = resolve_against(base, ds[key]) if ds.get(key) else None

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return sorted({s for s, _ in pattern_matches(cfg["dataset"]["recordings"], "dataset.recordings")})

    def _runs(self, cfg: dict[str, Any], subject: str) -> list[int]:
        return [r for _, r in pattern_matches(cfg["dataset"]["recordings"], "dataset.recordings", subject=subject)]

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        ds = cfg["dataset"]
        first = self.subjects(cfg)[0]
        files = [(run, fill(ds["recording_events"], first, run)) for run in self._runs(cfg, first)]
        for _, path in files:
            if not path.is_file():
                raise InputFileError(path, "this events file does not exist (field dataset.recording_events).")
        return word_table(files, ds["word_column"], ds["event_category"]), [path for _, path in files]

    def input_files(self, cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
        ds = cfg["dataset"]
        if subject is None:
            first = self.subjects(cfg)[0]
            return [fill(ds["recording_events"], first, run) for run in self._runs(cfg, first)]
        runs = self._runs(cfg, self.subjects(cfg)[0])
        return [fill(ds[key], subject, run) for run in runs for key in ("recordings", "recording_events")]

    def recordings(self, cfg: dict[str, Any], subject: str, raw_dir: str | os.PathLike | None,
                   ) -> list[tuple[int, Path, Path | None, Any]]:
        from ..preprocess.meeg import read_raw

        ds, out = cfg["dataset"], []
        for run in self._runs(cfg, self.subjects(cfg)[0]):
            path, events = fill(ds["recordings"], subject, run), fill(ds["recording_events"], subject, run)
            if not events.is_file():
                raise InputFileError(events, f"this events file of {path.name} does not exist "
                                             "(field dataset.recording_events).")
            out.append((run, path, events, lambda path=path: read_raw(path)))
        return out

    def check_recordings(self, cfg: dict[str, Any], subject: str, runs: list[int], events: pd.DataFrame,
                         events_path: str | os.PathLike, raw_dir: str | os.PathLike | None) -> None:
        for run in runs:
            path = fill(cfg["dataset"]["recordings"], subject, run)
            if not path.is_file():
                raise InputFileError(path, f"this recording does not exist, but run {run} has words in "
                                           f"{events_path}; every subject needs the runs of the first.")

    def credit(self, cfg: dict[str, Any]) -> str:
        ds = cfg["dataset"]
        return f"the user's {ds['datatype']} recordings ({Path(ds['recordings']).name}) and words TSVs."
