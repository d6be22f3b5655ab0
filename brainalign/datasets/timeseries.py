"""``timeseries``: the user's own preprocessed fMRI time series, with a words TSV.

For data already preprocessed elsewhere (ROI means, parcels or voxels,
without a brain grid): one file per subject and run, samples in rows and
units in columns, plus one word table. A minimal config::

    dataset:
      name: my_study
      kind: timeseries
      responses: data/{subject}_run-{run}.tsv   # {subject} and {run} are filled in
      events: data/words.tsv                     # onset, duration, word, run (seconds)
      sampling_interval: 2.0                     # s between samples (the TR)
      first_sample_onset: 0.0                    # s: time of each run's first sample on the events' clock
    feature_sets:
      minilm: {kind: transformer}
      word_rate: {kind: word_rate}

Response files, by extension:

``.tsv`` (or ``.tsv.gz``)
    Tab-separated, a header row naming the units, one row per sample.
``.npy``
    A 2-D array (n_samples, n_units); units named by ``dataset.unit_names``,
    else ``unit_0``, ``unit_1``, ...
``.h5`` / ``.hdf5``
    The 2-D dataset ``dataset.h5_key`` (default ``"responses"``); units named
    by its ``unit_names`` attribute, else as for ``.npy``.

Every subject has a file for every run of the word table; all runs of all
subjects have the same units. Each unit is its own ROI in the score tables.
Optional ``dataset.confounds_file`` (same pattern rules, TSV with named
columns, one row per sample) gives nuisance regressors, regressed out with
``preprocessing.confounds: motion``. Relative paths are relative to the
config file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._tsv import read_tsv_cells, tsv_numbers
from .._validation import ConfigError, InputFileError, resolve_against
from ..io import Responses
from ._patterns import check_pattern, fill, pattern_matches
from ._preflight import on_field, text_rows
from .registry import DatasetKind, Preflight, Sampling, selected_subjects

__all__ = ["TimeseriesKind", "read_timeseries"]

_EXTENSIONS = (".tsv", ".tsv.gz", ".npy", ".h5", ".hdf5")
_FIELDS = ("responses", "events", "confounds_file")


def read_timeseries(path: str | os.PathLike, unit_names: list[str] | None = None,
                    h5_key: str = "responses") -> tuple[np.ndarray, list[str]]:
    """Read one run's response matrix.

    Parameters
    ----------
    path : str or path-like
        A ``.tsv`` (``.tsv.gz``), ``.npy``, ``.h5`` or ``.hdf5`` file (see the
        module docstring for each layout).
    unit_names : list of str or None
        Unit names for ``.npy`` files and HDF5 datasets without a
        ``unit_names`` attribute (default ``unit_<k>``); ignored for TSV,
        whose header names the units.
    h5_key : str
        The HDF5 dataset holding the matrix.

    Returns
    -------
    data : ndarray of shape (n_samples, n_units), float64
        Finite values.
    names : list of str, length n_units
        Unique unit names.

    Raises
    ------
    InputFileError
        Naming the file (and the row and column of a bad cell): a missing or
        unreadable file, an unknown extension, a matrix that is not 2-D or has
        no rows or columns, non-numeric or non-finite values, duplicate or
        empty unit names, or ``unit_names`` of the wrong length.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "this response file does not exist.")
    name = path.name.lower()
    if name.endswith((".tsv", ".tsv.gz")):
        # The header is row 0, so that a repeated unit name is refused below, not renamed.
        table = read_tsv_cells(path, "response file", header=False)
        names = [str(c) for c in table.iloc[0]]
        body = table.iloc[1:]
        data = np.column_stack([tsv_numbers(body[c], path, name) for c, name in zip(body.columns, names)]) \
            if len(body) else np.empty((0, len(names)))
        given = None
    elif name.endswith(".npy"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise InputFileError(path, f"cannot be read as a NumPy .npy array ({err}).") from None
        given = unit_names
    elif name.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if h5_key not in f or not isinstance(f[h5_key], h5py.Dataset):
                    raise InputFileError(path, f"has no dataset {h5_key!r} (field dataset.h5_key); "
                                               f"found: {sorted(f.keys())}.")
                data = f[h5_key][()]
                attr = f[h5_key].attrs.get("unit_names")
        except OSError as err:
            raise InputFileError(path, f"cannot be read as HDF5 ({err}).") from None
        given = [str(n.decode() if isinstance(n, bytes) else n) for n in attr] if attr is not None else unit_names
    else:
        raise InputFileError(path, f"unknown extension; response files are {', '.join(_EXTENSIONS)}.")
    data = np.asarray(data)
    if data.dtype.kind not in "iuf" or data.dtype == bool:
        raise InputFileError(path, f"holds {data.dtype} values; responses are numbers.")
    if data.ndim != 2 or 0 in data.shape:
        raise InputFileError(path, f"holds an array of shape {data.shape}; responses are 2-D "
                                   "(n_samples, n_units) with at least one of each.")
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(data)))
        raise InputFileError(path, f"has a non-finite value (NaN or infinite) at row {row}, column {col}.")
    if not name.endswith((".tsv", ".tsv.gz")):
        names = list(given) if given is not None else [f"unit_{k}" for k in range(data.shape[1])]
        if len(names) != data.shape[1]:
            raise InputFileError(path, f"has {data.shape[1]} columns but {len(names)} unit names "
                                       "(field dataset.unit_names or the dataset's unit_names attribute).")
    empty = [k for k, n in enumerate(names) if not n.strip()]
    if empty:
        raise InputFileError(path, f"unit {empty[0]} has an empty name.")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        raise InputFileError(path, f"the unit name {twice[0]!r} appears more than once.")
    return data, names


class TimeseriesKind(DatasetKind):
    """``timeseries``: preprocessed response files per subject and run, and a words TSV (module docstring)."""

    name = "timeseries"
    modality = "roi"
    required = ("responses", "events", "sampling_interval")
    data_field = "dataset.responses"
    schema = {
        "responses": {"type": ["string", "null"], "minLength": 1, "description": (
            "timeseries: path pattern of the response files, with {subject} and {run} (e.g. "
            "data/{subject}_run-{run}.tsv); .tsv, .tsv.gz, .npy, .h5 or .hdf5.")},
        "events": {"type": ["string", "null"], "minLength": 1, "description": (
            "timeseries: the words TSV (onset, duration, word, run; seconds on the clock of "
            "first_sample_onset).")},
        "sampling_interval": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 3600,
                              "description": "timeseries: seconds between samples (the TR)."},
        "first_sample_onset": {"type": "number", "minimum": -1e6, "maximum": 1e6, "description": (
            "timeseries: time (s) of each run's first sample on the events' clock (default 0).")},
        "confounds_file": {"type": ["string", "null"], "minLength": 1, "description": (
            "timeseries: optional path pattern of confound TSVs (named columns, one row per sample), "
            "regressed out with preprocessing.confounds: motion.")},
        "unit_names": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1},
                       "maxItems": 1000000, "description": (
                           "timeseries: unit names of .npy files (and HDF5 datasets without a "
                           "unit_names attribute); default unit_0, unit_1, ...")},
        "h5_key": {"type": "string", "pattern": "^[A-Za-z0-9_./-]+$", "description": (
            "timeseries: the HDF5 dataset holding the responses (default 'responses').")},
    }

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        ds = cfg["dataset"]
        for key in ("responses", "confounds_file"):
            if ds.get(key):
                check_pattern(ds[key], f"dataset.{key}", path)
        if not Path(ds["events"]).is_file():
            raise ConfigError(path, "dataset.events", f"the file {ds['events']} does not exist.")

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        ds = cfg["dataset"]
        for key in _FIELDS:
            if ds.get(key):
                ds[key] = resolve_against(base, ds[key])
            else:
                ds[key] = None
        ds.setdefault("sampling_interval", None)
        ds.setdefault("first_sample_onset", 0.0)
        ds.setdefault("unit_names", None)
        ds.setdefault("h5_key", "responses")

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        """Subjects with a response file of the word table's first run."""
        return [s for s, _ in pattern_matches(cfg["dataset"]["responses"], "dataset.responses",
                                              run=self._runs(cfg)[0])]

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        from ..stimuli.events import read_events

        path = Path(cfg["dataset"]["events"])
        return read_events(path), [path]

    def input_files(self, cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
        ds = cfg["dataset"]
        if subject is None:
            return [Path(ds["events"])]
        patterns = [ds["responses"]] + ([ds["confounds_file"]] if ds.get("confounds_file") else [])
        return [fill(p, subject, run) for p in patterns for run in self._runs(cfg)]

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        from ..features.design import frame_times_for_run
        from .registry import selected_subjects

        ds = cfg["dataset"]
        tr = float(ds["sampling_interval"])
        subject = selected_subjects(cfg)[0]
        return tr, {run: frame_times_for_run(len(self._read_run(cfg, subject, run)[0]), tr,
                                             float(ds["first_sample_onset"]))
                    for run in self._runs(cfg)}

    def responses(self, cfg: dict[str, Any], subject: str, raw: str | os.PathLike | None = None,
                  ) -> tuple[Responses, list[Path]]:
        ds = cfg["dataset"]
        tr, onset = float(ds["sampling_interval"]), float(ds["first_sample_onset"])
        parts, confounds, times, runs, names, conf_names = [], [], [], [], None, None
        paths, conf_paths = [], []  # the inputs, as input_files lists them (without reading the words again)
        for run in self._runs(cfg):
            data, run_names = self._read_run(cfg, subject, run)
            path = fill(ds["responses"], subject, run)
            paths.append(path)
            if names is not None and run_names != names:
                raise InputFileError(path, f"its units {run_names[:5]} differ from those of the subject's first "
                                           f"run {names[:5]}; every run holds the same units in the same order.")
            names = run_names
            if ds.get("confounds_file"):
                conf_path = fill(ds["confounds_file"], subject, run)
                conf, cols = read_timeseries(conf_path)
                conf_paths.append(conf_path)
                if len(conf) != len(data):
                    raise InputFileError(conf_path, f"has {len(conf)} rows but {path.name} has {len(data)} samples.")
                if conf_names is not None and cols != conf_names:
                    raise InputFileError(conf_path, f"its columns {cols} differ from the first run's {conf_names}.")
                conf_names = cols
                confounds.append(conf)
            parts.append(data)
            times.append(onset + tr * np.arange(len(data)))
            runs.append(np.full(len(data), run, dtype=np.int64))
        assert names is not None
        resp = Responses(
            data=np.concatenate(parts).astype(np.float32), sampling=tr, times=np.concatenate(times),
            runs=np.concatenate(runs), unit_names=list(names), unit_rois=list(names), subject=subject,
            modality="fmri", confounds=np.concatenate(confounds) if confounds else None,
            confound_names=list(conf_names or []),
        )
        return resp, paths + conf_paths

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The words TSV, a response file per subject and run with its samples (from ``.npy`` headers, HDF5
        shapes or line counts), and the confounds files, one row per sample."""
        from ..features.design import frame_times_for_run

        ds = cfg["dataset"]
        with on_field("dataset.events"):
            events, (events_path,) = self.events(cfg)
        runs = sorted(int(r) for r in events["run"].unique())
        lengths, files = {}, {}
        subjects = selected_subjects(cfg)
        for subject in subjects:
            paths = [fill(ds["responses"], subject, run) for run in runs]
            lengths[subject], files[subject] = [_sample_count(p, ds["h5_key"]) for p in paths], paths
        if ds.get("confounds_file"):
            with on_field("dataset.confounds_file"):
                for subject in subjects:
                    _check_confounds(ds["confounds_file"], subject, runs, lengths[subject], files[subject])
        tr, onset = float(ds["sampling_interval"]), float(ds["first_sample_onset"])
        frame_times = {run: frame_times_for_run(n, tr, onset) for run, n in zip(runs, lengths[subjects[0]])}
        return Preflight([], events, Sampling(lengths, files, self.data_field, frame_times, Path(events_path),
                                              events_field="dataset.events", unit="samples"))

    def credit(self, cfg: dict[str, Any]) -> str:
        ds = cfg["dataset"]
        return (f"the user's preprocessed time series ({Path(ds['responses']).name}, sampled every "
                f"{float(ds['sampling_interval']):g} s) and word table ({Path(ds['events']).name}).")

    # ------------------------------------------------------------------ helpers
    def _runs(self, cfg: dict[str, Any]) -> list[int]:
        events, _ = self.events(cfg)
        return sorted(int(r) for r in events["run"].unique())

    def _read_run(self, cfg: dict[str, Any], subject: str, run: int) -> tuple[np.ndarray, list[str]]:
        ds = cfg["dataset"]
        return read_timeseries(fill(ds["responses"], subject, run), ds.get("unit_names"), ds["h5_key"])


# --------------------------------------------------------------------------- checks before a run
def _sample_count(path: Path, h5_key: str) -> int:
    """Samples of one response file, from its header or line count (the data are not read)."""
    if not path.is_file():
        raise InputFileError(path, "this response file does not exist.")
    name = path.name.lower()
    if name.endswith((".tsv", ".tsv.gz")):
        return text_rows(path, header=True)
    if name.endswith(".npy"):
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (ValueError, OSError) as err:
            raise InputFileError(path, f"cannot be read as a NumPy .npy array ({err}).") from None
    elif name.endswith((".h5", ".hdf5")):
        shape = _h5_shape(path, h5_key)
    else:
        raise InputFileError(path, f"unknown extension; response files are {', '.join(_EXTENSIONS)}.")
    if len(shape) != 2 or 0 in shape:
        raise InputFileError(path, f"holds an array of shape {shape}; responses are 2-D (n_samples, n_units) with "
                                   "at least one of each.")
    return int(shape[0])


def _h5_shape(path: Path, key: str) -> tuple[int, ...]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise InputFileError(path, f"has no dataset {key!r} (field dataset.h5_key); found: {sorted(f.keys())}.")
            return tuple(f[key].shape)
    except OSError as err:
        raise InputFileError(path, f"cannot be read as HDF5 ({err}).") from None


def _check_confounds(pattern: str, subject: str, runs: list[int], lengths: list[int], paths: list[Path]) -> None:
    """Every run of ``subject`` has a confounds file with one row per sample of its response file."""
    for run, n, path in zip(runs, lengths, paths):
        conf = fill(pattern, subject, run)
        if not conf.is_file():
            raise InputFileError(conf, "this confounds file does not exist.")
        rows = text_rows(conf, header=True)
        if rows != n:
            raise InputFileError(conf, f"has {rows} rows but {path.name} has {n} samples.")
