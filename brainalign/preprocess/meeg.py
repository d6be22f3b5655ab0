"""MEG/EEG preprocessing for speech decoding (the Défossez et al. 2023 chain).

The default chain of Défossez et al. (2023, *Decoding speech perception from
non-invasive brain recordings*, code: brainmagick) is

1. no band-pass (high-pass 0 Hz; :func:`band_pass` is available but off),
2. resample to 120 Hz (:func:`resample`),
3. windows of −0.5 … 2.5 s around each word onset (:func:`epoch_words`), MEG
   shifted by +150 ms (``shift=0.15``),
4. baseline: the mean of the 0.5 s before onset, per channel and epoch,
5. a per-channel robust scaler (median and interquartile range, fitted on the
   training epochs; :class:`RobustScaler`),
6. clamp at ±20 (:func:`clamp`).

Its brain module starts with a spatial attention over 2-D sensor positions
(:func:`sensor_positions_2d`).

Every function taking a recording accepts a file path (any format
:func:`mne.io.read_raw` reads) or an in-memory :class:`mne.io.BaseRaw`; the
caller's object is never modified (functions that change data work on a
copy). Errors about a recording are :class:`~brainalign._validation.InputFileError`
naming the file (``source`` overrides the name, e.g. for a Raw built in
memory) and the field (channel, event index, column).

Times are in seconds, frequencies in hertz, data in the SI units MNE uses
(T, T/m, V).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd
import scipy.signal

from .._tsv import read_tsv_cells
from .._validation import (
    BrainalignError,
    InputFileError,
    check_fname,
    check_option,
    check_range,
)

__all__ = [
    "RobustScaler",
    "band_pass",
    "band_pass_array",
    "baseline_correct",
    "check_epochs_in_recording",
    "clamp",
    "epoch_words",
    "find_bad_channels",
    "handle_bad_channels",
    "read_raw",
    "read_word_events",
    "resample",
    "resample_array",
    "sensor_positions_2d",
    "tagged_word",
    "windows_inside_recording",
]

# Words missing in a BIDS events TSV ("n/a" is BIDS's marker for no value).
_MISSING_WORD = {"", "n/a", "nan"}
# Anti-aliasing filter of the polyphase resampling (see resample_array).
_RESAMPLE_BETA = 8.6
_RESAMPLE_HALF_LEN = 20
# Annotation prefixes that mark artefacts or recording edges, not words. Case
# matters: MNE and its readers write them in capitals ("BAD_muscle", "EDGE
# boundary"), while "bad", "badly" or "edge" are words of a transcript.
_IGNORED_ANNOTATIONS = ("BAD", "EDGE")


# --------------------------------------------------------------------------- reading
def _source_of(raw: mne.io.BaseRaw, source: str | os.PathLike | None) -> str | os.PathLike | None:
    """The file to name in messages: ``source`` if given, else the Raw's first file."""
    if source is not None:
        return source
    filenames = getattr(raw, "filenames", None) or ()
    first = filenames[0] if len(filenames) else None
    return first if first else None


def _check_edf_header(path: Path) -> None:
    """Check the fixed header of an EDF/BDF file: numeric fields, and a file as long as the header says.

    MNE reads a truncated EDF without complaint (it infers the number of data
    records from the file size), so a cut-off recording would silently lose
    its end; a header field that is not a number gives a bare ``ValueError``;
    a signal whose digital (or physical) minimum equals its maximum has no
    scale, and MNE, after a warning, reads it scaled by an arbitrary factor.
    Here each names the file and the header field (and the channel).
    """
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise InputFileError(path, f"EDF header: the file has {len(head)} bytes, fewer than the 256 bytes of "
                                       "the fixed header (truncated file?).")

        def number(name: str, start: int, stop: int, kind: type = int) -> Any:
            text = head[start:stop].decode("ascii", "replace").strip()
            try:
                return kind(text)
            except ValueError:
                raise InputFileError(path, f"EDF header field {name!r} (bytes {start}-{stop - 1}) is {text!r}, "
                                           "not a number (corrupt header).") from None

        header_bytes = number("number of bytes in header record", 184, 192)
        n_records = number("number of data records", 236, 244)
        number("duration of a data record", 244, 252, float)
        n_signals = number("number of signals", 252, 256)
        signal_header = fh.read(256 * max(n_signals, 0))
        fields = signal_header[216 * n_signals:224 * n_signals]
    _check_edf_scaling(path, signal_header, n_signals)
    try:
        samples = [int(fields[8 * k:8 * k + 8].decode("ascii")) for k in range(n_signals)]
    except ValueError:
        raise InputFileError(path, "EDF header field 'number of samples in each data record' is not a whole "
                                   "number for every signal (corrupt header).") from None
    sample_bytes = 3 if head[:1] == b"\xff" else 2  # BDF stores 24-bit samples
    expected = header_bytes + n_records * sum(samples) * sample_bytes
    size = path.stat().st_size
    if n_records >= 0 and size < expected:
        raise InputFileError(path, f"EDF header field 'number of data records' is {n_records} ({expected} bytes "
                                   f"in all), but the file has {size} bytes: it is truncated.")


def _check_edf_scaling(path: Path, signal_header: bytes, n_signals: int) -> None:
    """Raise naming the first channel whose header gives no scale (digital or physical range of zero).

    A sample's physical value is ``physical min + (digital - digital min) *
    (physical max - physical min) / (digital max - digital min)``: with
    digital min = max the scale is undefined (MNE then uses a range of 1, so
    a 16-bit channel comes out tens of thousands of times too large); with
    physical min = max every value is the same. The EDF specification
    requires digital max > digital min.
    """
    def field(offset: int, width: int, k: int) -> str:
        start = n_signals * offset + width * k
        return signal_header[start:start + width].decode("ascii", "replace").strip()

    for k in range(n_signals):
        label = field(0, 16, k)
        if label in ("EDF Annotations", "BDF Annotations"):
            continue
        values = {}
        for name, offset in (("physical minimum", 104), ("physical maximum", 112), ("digital minimum", 120),
                             ("digital maximum", 128)):
            text = field(offset, 8, k)
            try:
                values[name] = float(text)
            except ValueError:
                raise InputFileError(path, f"EDF header field {name!r} of signal {k} (channel {label!r}) is "
                                           f"{text!r}, not a number (corrupt header).") from None
        low, high = values["digital minimum"], values["digital maximum"]
        if not high > low:
            raise InputFileError(path, f"EDF header fields 'digital minimum' ({low:g}) and 'digital maximum' "
                                       f"({high:g}) of signal {k} (channel {label!r}): the maximum must exceed "
                                       "the minimum, or the channel's samples have no scale (corrupt header; "
                                       "re-export the recording).")
        if values["physical minimum"] == values["physical maximum"]:
            raise InputFileError(path, f"EDF header fields 'physical minimum' and 'physical maximum' of signal {k} "
                                       f"(channel {label!r}) are both {values['physical minimum']:g}: the channel's "
                                       "samples have no scale (corrupt header; re-export the recording).")


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
    return word if word.lower() not in _MISSING_WORD else None


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
        if word.lower() in _MISSING_WORD:
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


# --------------------------------------------------------------------------- windows
def _window_starts(onsets: np.ndarray, sfreq: float, tmin: float) -> np.ndarray:
    """Index of the sample nearest ``onset + tmin`` (ties go to the later sample)."""
    return np.floor((onsets + tmin) * sfreq + 0.5).astype(np.int64)


def _window_length(sfreq: float, tmin: float, tmax: float) -> int:
    return int(np.floor((tmax - tmin) * sfreq + 0.5))


def windows_inside_recording(
    onsets: Sequence[float] | np.ndarray,
    n_times: int,
    sfreq: float,
    tmin: float,
    tmax: float,
    *,
    shift: float = 0.0,
) -> np.ndarray:
    """Which events' windows lie wholly inside the recording.

    The window of an event is cut exactly as by :func:`epoch_words`: it
    starts at the sample nearest ``onset + shift + tmin`` and has
    ``round((tmax - tmin) * sfreq)`` samples. Use the mask to drop the words
    whose window crosses the recording's start or end (as :class:`mne.Epochs`
    does) before calling :func:`epoch_words`, which refuses them.

    Parameters
    ----------
    onsets : array-like of shape (n_events,)
        Event onsets in seconds from the first sample (finite).
    n_times : int
        Samples in the recording.
    sfreq : float
        Sampling rate in Hz.
    tmin, tmax : float
        Window bounds in seconds relative to the (shifted) onset.
    shift : float
        Delay in seconds added to every onset.

    Returns
    -------
    inside : ndarray of shape (n_events,), bool
        True where the whole window is inside ``[0, n_times)``; False for a
        non-finite onset.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    finite = np.isfinite(onsets)
    starts = _window_starts(np.where(finite, onsets, 0.0) + shift, sfreq, tmin)
    return finite & (starts >= 0) & (starts + _window_length(sfreq, tmin, tmax) <= n_times)


def check_epochs_in_recording(
    onsets: Sequence[float] | np.ndarray,
    n_times: int,
    sfreq: float,
    tmin: float,
    tmax: float,
    source: str | os.PathLike | None,
    *,
    shift: float = 0.0,
) -> None:
    """Raise if the window of any event falls outside the recording.

    The window of an event of onset ``t`` (seconds from the first sample)
    starts at the sample nearest ``t + shift + tmin`` and has
    ``round((tmax - tmin) * sfreq)`` samples, exactly as cut by
    :func:`epoch_words`.

    Parameters
    ----------
    onsets : array-like of shape (n_events,)
        Event onsets in seconds from the first sample.
    n_times : int
        Samples in the recording.
    sfreq : float
        Sampling rate in Hz.
    tmin, tmax : float
        Window bounds in seconds relative to the (shifted) onset.
    source : str, path-like or None
        File named in the message.
    shift : float
        Delay in seconds added to every onset.

    Raises
    ------
    InputFileError
        Naming the first event outside, its index, onset and window, and
        the number of such events.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    if not np.isfinite(onsets).all():
        i = int(np.flatnonzero(~np.isfinite(onsets))[0])
        raise InputFileError(source, f"event {i}: onset is not a finite number ({onsets[i]!r}).")
    outside = ~windows_inside_recording(onsets, n_times, sfreq, tmin, tmax, shift=shift)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        duration = n_times / sfreq
        lo, hi = onsets[i] + shift + tmin, onsets[i] + shift + tmax
        raise InputFileError(
            source,
            f"event {i} (onset {onsets[i]:.6g} s): its window [{lo:.6g}, {hi:.6g}] s "
            f"(tmin={tmin:g}, tmax={tmax:g}, shift={shift:g}) falls outside the recording "
            f"(0 to {duration:.6g} s, {n_times} samples at {sfreq:g} Hz); "
            f"{int(outside.sum())} of {onsets.size} event(s) are outside.",
        )


def _baseline_slice(
    times: np.ndarray, sfreq: float, baseline: tuple[float | None, float | None]
) -> slice:
    """Samples of ``times`` in ``[baseline[0], baseline[1])`` (None: the window's edge)."""
    if len(baseline) != 2:
        raise BrainalignError(f"'baseline' must be a (start, stop) pair or None, got {baseline!r}.")
    start, stop = baseline
    tmin = float(times[0])
    # Tolerance of a millionth of a sample so that a bound on a sample is included.
    lo = 0 if start is None else int(np.ceil((start - tmin) * sfreq - 1e-6))
    hi = len(times) if stop is None else int(np.ceil((stop - tmin) * sfreq - 1e-6))
    lo, hi = max(lo, 0), min(hi, len(times))
    if hi <= lo:
        raise BrainalignError(
            f"'baseline' {baseline!r} contains no sample of the window "
            f"[{times[0]:g}, {times[-1]:g}] s at {sfreq:g} Hz."
        )
    return slice(lo, hi)


def baseline_correct(
    X: np.ndarray, times: np.ndarray, sfreq: float, baseline: tuple[float | None, float | None] | None
) -> np.ndarray:
    """Subtract the per-channel mean over ``[baseline[0], baseline[1])``.

    Parameters
    ----------
    X : ndarray of shape (..., n_channels, n_times)
        Epochs or one evoked response.
    times : ndarray of shape (n_times,)
        Time of each sample in seconds.
    sfreq : float
        Sampling rate in Hz.
    baseline : (start, stop) or None
        Interval in seconds, start included, stop excluded; None in either
        place means the window's first/last sample. None disables.

    Returns
    -------
    X : ndarray of the same shape
        A new array (float64 unless ``X`` is float32).
    """
    X = np.array(X, dtype=np.result_type(np.asarray(X).dtype, np.float32), copy=True)
    if baseline is None:
        return X
    span = _baseline_slice(np.asarray(times), sfreq, baseline)
    X -= X[..., span].mean(axis=-1, keepdims=True)
    return X


def epoch_words(
    raw: str | os.PathLike | mne.io.BaseRaw,
    onsets: Sequence[float] | np.ndarray,
    *,
    tmin: float = -0.5,
    tmax: float = 2.5,
    baseline: tuple[float | None, float | None] | None = (-0.5, 0.0),
    shift: float = 0.0,
    source: str | os.PathLike | None = None,
    picks: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one window per word onset.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (read, never modified).
    onsets : array-like of shape (n_events,)
        Word onsets in seconds from the first sample of ``raw`` (as returned
        by :func:`read_word_events`).
    tmin, tmax : float
        Window bounds in seconds relative to the shifted onset. The window
        starts at the sample nearest ``onset + shift + tmin`` (ties go to the
        later sample) and has exactly ``round((tmax - tmin) * sfreq)``
        samples.
    baseline : (start, stop) or None
        Per epoch and channel, the mean over the samples whose time (in
        ``times``) is in ``[start, stop)`` is subtracted; None disables.
    shift : float
        Delay in seconds of the brain response: every window is moved later
        by ``shift`` (Défossez et al. use 0.15 for MEG). ``times`` and
        ``baseline`` are relative to the shifted onset.
    source : str, path-like or None
        File named in messages (default: the Raw's file).
    picks : str, list or None
        Channels to keep, as MNE's ``picks`` (None: all channels, in order).

    Returns
    -------
    X : ndarray of shape (n_events, n_channels, n_times), float32
        The windows.
    times : ndarray of shape (n_times,), float64
        ``tmin + k / sfreq`` in seconds, relative to the shifted onset.

    Raises
    ------
    InputFileError
        A window falls outside the recording (the event is named).
    """
    raw = _as_raw(raw, preload=False)
    where = _source_of(raw, source)
    if not tmax > tmin:
        raise BrainalignError(f"'tmax' ({tmax!r}) must be greater than 'tmin' ({tmin!r}).")
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    sfreq = float(raw.info["sfreq"])
    length = _window_length(sfreq, tmin, tmax)
    if length < 1:
        raise BrainalignError(f"the window [{tmin}, {tmax}] s holds no sample at {sfreq:g} Hz.")
    check_epochs_in_recording(onsets, raw.n_times, sfreq, tmin, tmax, where, shift=shift)
    times = tmin + np.arange(length) / sfreq
    data = raw.get_data(picks=picks)
    starts = _window_starts(onsets + shift, sfreq, tmin)
    X = data[:, starts[:, None] + np.arange(length)[None, :]]  # (n_channels, n_events, n_times)
    X = np.ascontiguousarray(X.transpose(1, 0, 2))
    X = baseline_correct(X, times, sfreq, baseline)
    return X.astype(np.float32, copy=False), times


# --------------------------------------------------------------------------- filtering
def _data_picks(info: mne.Info) -> np.ndarray:
    """Indices of the data channels (MEG, EEG, sEEG, ECoG, DBS, fNIRS), bad ones included."""
    return mne.pick_types(info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, fnirs=True,
                          exclude=())


def _check_band(
    sfreq: float, l_freq: float | None, h_freq: float | None, where: str | os.PathLike | None
) -> tuple[float | None, float | None]:
    """Normalize ``None``/0 to None and check ``0 < l_freq < h_freq < sfreq / 2``."""
    l_freq = None if l_freq is None or l_freq == 0 else float(l_freq)
    h_freq = None if h_freq is None or h_freq == 0 else float(h_freq)
    nyquist = sfreq / 2.0
    for name, value in (("l_freq", l_freq), ("h_freq", h_freq)):
        if value is not None and not 0 < value < nyquist:
            raise InputFileError(
                where,
                f"sfreq: {name}={value:g} Hz is not between 0 and the Nyquist frequency "
                f"{nyquist:g} Hz of the recording (sampled at {sfreq:g} Hz).",
            )
    if l_freq is not None and h_freq is not None and not l_freq < h_freq:
        raise BrainalignError(
            f"'l_freq' ({l_freq:g} Hz) must be below 'h_freq' ({h_freq:g} Hz) for a band-pass."
        )
    return l_freq, h_freq


def _iir_params(order: int) -> dict[str, Any]:
    if int(order) != order or order < 1:
        raise BrainalignError(f"'order' must be a positive integer, got {order!r}.")
    return {"order": int(order), "ftype": "butter", "output": "sos"}


def band_pass_array(
    data: np.ndarray,
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    *,
    order: int = 4,
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass of an array along its last axis.

    A Butterworth filter of order ``order`` (as designed by
    :func:`scipy.signal.butter`, second-order sections) is applied forward
    and backward (:func:`scipy.signal.sosfiltfilt` through
    :func:`mne.filter.filter_data`, which pads the edges by reflection over
    the filter's ringing length), so the result has no phase shift and an
    attenuation of twice the filter's in dB.

    Parameters
    ----------
    data : ndarray of shape (..., n_times)
        Signals.
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float or None
        Low and high cut-off in Hz (−3 dB of one pass); None or 0 disables
        that edge (high-pass only, low-pass only); both disabled returns a
        copy.
    order : int
        Filter order (one pass).
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    filtered : ndarray of the same shape, float64
    """
    data = np.array(data, dtype=np.float64, copy=True)
    l_freq, h_freq = _check_band(float(sfreq), l_freq, h_freq, source)
    if l_freq is None and h_freq is None:
        return data
    return mne.filter.filter_data(
        data, float(sfreq), l_freq, h_freq, method="iir", iir_params=_iir_params(order),
        phase="zero", copy=False, verbose="error",
    )


def band_pass(
    raw: str | os.PathLike | mne.io.BaseRaw,
    l_freq: float | None,
    h_freq: float | None,
    *,
    order: int = 4,
    source: str | os.PathLike | None = None,
) -> mne.io.BaseRaw:
    """Zero-phase Butterworth band-pass of the data channels of a recording.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (a copy is filtered).
    l_freq, h_freq : float or None
        Cut-offs in Hz; None or 0 disables each edge; both disabled returns
        an unchanged copy.
    order : int
        Butterworth order of one pass (see :func:`band_pass_array`).
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    raw : mne.io.BaseRaw
        A filtered copy; ``info["highpass"]`` and ``info["lowpass"]`` are
        updated. Non-data channels (stimulus, misc, ...) are left as they
        are.
    """
    raw = read_raw(raw)
    where = _source_of(raw, source)
    l_freq, h_freq = _check_band(float(raw.info["sfreq"]), l_freq, h_freq, where)
    if l_freq is None and h_freq is None:
        return raw
    picks = _data_picks(raw.info)
    if len(picks) == 0:
        return raw
    return raw.filter(
        l_freq, h_freq, picks=picks, method="iir", iir_params=_iir_params(order), phase="zero",
        verbose="error",
    )


# --------------------------------------------------------------------------- resampling
def _rational_ratio(sfreq: float, new_sfreq: float) -> tuple[int, int]:
    """``new_sfreq / sfreq`` as ``up / down`` in lowest terms (denominator ≤ 10 000)."""
    for name, value in (("sfreq", sfreq), ("new_sfreq", new_sfreq)):
        if not (np.isfinite(value) and value > 0):
            raise BrainalignError(f"'{name}' must be a positive number of Hz, got {value!r}.")
    ratio = (Fraction(float(new_sfreq)) / Fraction(float(sfreq))).limit_denominator(10_000)
    return ratio.numerator, ratio.denominator


def _resampling_filter(up: int, down: int) -> np.ndarray:
    """Anti-aliasing FIR of :func:`resample_array` (before SciPy's gain of ``up``)."""
    max_rate = max(up, down)
    half_len = _RESAMPLE_HALF_LEN * max_rate
    return scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", _RESAMPLE_BETA))


def resample_array(data: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Resample an array along its last axis (polyphase anti-aliasing filter).

    :func:`scipy.signal.resample_poly` with ``up / down = new_sfreq / sfreq``
    in lowest terms, on the signal minus its mean (the mean is added back,
    so a DC offset cannot leak through the small gain differences between
    the polyphase branches), with ``padtype="line"`` (edges extended by a
    line, no step) and a longer, steeper FIR than SciPy's default: windowed
    sinc with cut-off at the lower Nyquist frequency (−6 dB there),
    Kaiser β = 8.6, ``2 × 20 × max(up, down) + 1`` taps. Away from the edges
    a sine well below the new Nyquist frequency is reproduced to about 1e-5
    of its amplitude (SciPy's default filter: about 1e-3).

    Output sample ``k`` lies at time ``k / new_sfreq`` exactly, for any
    length. MNE's resampling is not used: its FFT method (``npad="auto"``)
    rounds the padded length, which misplaces samples by up to half an
    output sample, and its polyphase method derives the ratio from the
    signal lengths, which is slow and inexact for most lengths.

    Parameters
    ----------
    data : ndarray of shape (..., n_times)
    sfreq, new_sfreq : float
        Current and target sampling rates in Hz (the ratio is taken as a
        fraction with a denominator of at most 10 000).

    Returns
    -------
    resampled : ndarray of shape (..., ceil(n_times * new_sfreq / sfreq)), float64
    """
    up, down = _rational_ratio(sfreq, new_sfreq)
    data = np.asarray(data, dtype=np.float64)
    if up == down:
        return data.copy()
    mean = data.mean(axis=-1, keepdims=True)
    out = scipy.signal.resample_poly(
        data - mean, up, down, axis=-1, window=_resampling_filter(up, down), padtype="line"
    )
    return out + mean


def _nearest_samples(n_times: int, up: int, down: int) -> np.ndarray:
    """Index of the input sample nearest each output sample (same length as resample_poly)."""
    n_out = -(-n_times * up // down)
    return np.minimum((np.arange(n_out) * down + up // 2) // up, n_times - 1)


def resample(raw: str | os.PathLike | mne.io.BaseRaw, sfreq: float = 120.0) -> mne.io.BaseRaw:
    """Resample a recording (a copy) to ``sfreq`` Hz.

    Data channels (and every other channel except stimulus channels) are
    resampled by :func:`resample_array`. Stimulus channels take the value of
    the input sample nearest each new sample, so trigger codes are not
    smeared (a trigger shorter than the new sampling period may be lost).

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording.
    sfreq : float
        Target sampling rate in Hz (Défossez et al.: 120).

    Returns
    -------
    raw : mne.io.RawArray
        A resampled copy in memory (it has no file: pass ``source`` to later
        functions so that their messages name the recording; an unchanged
        copy when the rate is already ``sfreq``) with the same channels, measurement info (``sfreq``
        updated, ``lowpass`` capped at the new Nyquist frequency) and
        annotations (same times relative to the first sample). The first
        sample index becomes ``round(first_samp * sfreq / old_sfreq)``, as in
        MNE.
    """
    raw = read_raw(raw)
    old = float(raw.info["sfreq"])
    up, down = _rational_ratio(old, sfreq)
    if up == down:
        return raw
    data = raw.get_data()
    stim = np.zeros(len(raw.ch_names), bool)
    stim[mne.pick_types(raw.info, meg=False, stim=True, exclude=())] = True
    out = np.empty(data.shape[:-1] + (-(-data.shape[-1] * up // down),))
    if (~stim).any():
        out[~stim] = resample_array(data[~stim], old, sfreq)
    if stim.any():
        out[stim] = data[stim][:, _nearest_samples(data.shape[-1], up, down)]
    info = raw.info.copy()
    with info._unlock():  # sfreq is read-only in MNE's public API
        info["sfreq"] = float(sfreq)
        info["lowpass"] = min(float(info["lowpass"]), float(sfreq) / 2.0)
    first_samp = int(np.round(raw.first_samp * up / down))
    new = mne.io.RawArray(out, info, first_samp=first_samp, verbose="error")
    new.set_annotations(_annotations_for_copy(raw))
    return new


def _annotations_for_copy(raw: mne.io.BaseRaw) -> mne.Annotations:
    """Annotations of ``raw`` to set on a new Raw built from it (times from the first sample kept)."""
    annotations = raw.annotations.copy()
    if annotations.orig_time is None:
        # Without a measurement date, raw.annotations onsets include first_time
        # and set_annotations adds the new Raw's first_time again.
        annotations.onset = annotations.onset - raw.first_time
    return annotations


# --------------------------------------------------------------------------- scaling
def _check_epochs_array(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim not in (2, 3):
        raise BrainalignError(
            f"'{name}' must be 3-D (n_epochs, n_channels, n_times) or 2-D (n_channels, n_times), "
            f"got shape {X.shape}."
        )
    if X.size == 0:
        raise BrainalignError(f"'{name}' must not be empty, got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number):
        raise BrainalignError(f"'{name}' must be numeric, got dtype {X.dtype}.")
    return X


class RobustScaler:
    """Per-channel robust scaler: subtract the median, divide by the IQR.

    Défossez et al. (2023) scale each channel by statistics fitted on the
    training epochs; this is scikit-learn's ``RobustScaler`` with channels as
    features and every (epoch, time) pair as a sample.

    Parameters
    ----------
    quantile_range : (float, float)
        Percentiles (0–100) whose difference is the scale; (25, 75) gives the
        interquartile range. Percentiles are interpolated linearly as in
        :func:`numpy.percentile`.

    Attributes
    ----------
    center_ : ndarray of shape (n_channels,), float64
        Median of each channel over epochs and times.
    scale_ : ndarray of shape (n_channels,), float64
        Quantile range of each channel; 1.0 where it is exactly zero (a
        constant channel), so such a channel is only centred. (scikit-learn
        replaces scales below 10 machine epsilons; we keep every non-zero
        scale since M/EEG data in SI units are legitimately tiny, e.g. 1e-13 T.)
    n_channels_ : int
    """

    def __init__(self, quantile_range: tuple[float, float] = (25.0, 75.0)):
        self.quantile_range = quantile_range

    def _check_quantiles(self) -> tuple[float, float]:
        try:
            q_min, q_max = (float(q) for q in self.quantile_range)
        except (TypeError, ValueError):
            raise BrainalignError(
                f"'quantile_range' must be a pair of percentiles, got {self.quantile_range!r}."
            ) from None
        if not 0.0 <= q_min <= q_max <= 100.0:
            raise BrainalignError(
                f"'quantile_range' must satisfy 0 <= low <= high <= 100, got {self.quantile_range!r}."
            )
        return q_min, q_max

    @staticmethod
    def _by_channel(X: np.ndarray) -> np.ndarray:
        """(n_channels, n_samples) view of epochs (n_epochs, n_channels, n_times) or (n_channels, n_times)."""
        if X.ndim == 2:
            return X
        return X.transpose(1, 0, 2).reshape(X.shape[1], -1)

    def fit(self, X: np.ndarray, y: Any = None) -> RobustScaler:
        """Fit the median and quantile range of each channel.

        Parameters
        ----------
        X : ndarray of shape (n_epochs, n_channels, n_times) or (n_channels, n_times)
            Finite data.
        y : ignored

        Returns
        -------
        self
        """
        q_min, q_max = self._check_quantiles()
        X = _check_epochs_array(X)
        by_channel = self._by_channel(X).astype(np.float64, copy=False)
        bad = ~np.isfinite(by_channel).all(axis=1)
        if bad.any():
            raise BrainalignError(
                f"'X' contains NaN or infinite values in channel(s) {np.flatnonzero(bad)[:10].tolist()}."
            )
        self.center_ = np.median(by_channel, axis=1)
        low, high = np.percentile(by_channel, [q_min, q_max], axis=1)
        scale = high - low
        self.scale_ = np.where(scale == 0.0, 1.0, scale)
        self.n_channels_ = X.shape[-2]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` with the fitted statistics.

        Parameters
        ----------
        X : ndarray of shape (n_epochs, n_channels, n_times) or (n_channels, n_times)

        Returns
        -------
        X_scaled : ndarray of the same shape
            ``(X - center_) / scale_`` per channel; float32 input stays
            float32, anything else becomes float64.
        """
        if not hasattr(self, "center_"):
            raise BrainalignError("This RobustScaler is not fitted yet; call 'fit' first.")
        X = _check_epochs_array(X)
        if X.shape[-2] != self.n_channels_:
            raise BrainalignError(
                f"'X' has {X.shape[-2]} channels but the scaler was fitted on {self.n_channels_}."
            )
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        out = (X.astype(np.float64) - self.center_[:, None]) / self.scale_[:, None]
        return out.astype(dtype, copy=False)

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)


def clamp(X: np.ndarray, value: float | None = 20.0) -> np.ndarray:
    """Clip values to ``[-value, value]`` (Défossez et al.: 20, after robust scaling).

    Parameters
    ----------
    X : ndarray
    value : float or None
        Positive bound; None returns ``X`` unchanged (as an array, not copied).

    Returns
    -------
    X_clamped : ndarray of the same shape and dtype
    """
    X = np.asarray(X)
    if value is None:
        return X
    if not (np.isfinite(value) and value > 0):
        raise BrainalignError(f"'value' must be a positive number or None, got {value!r}.")
    return np.clip(X, -value, value)


# --------------------------------------------------------------------------- bad channels
def find_bad_channels(
    raw: str | os.PathLike | mne.io.BaseRaw,
    *,
    flat_threshold: float = 1e-15,
    relative_threshold: float = 1e-6,
) -> list[str]:
    """Data channels with a non-finite sample or a (near-)flat signal.

    A channel is bad when

    * any sample is NaN or infinite, or
    * its standard deviation over time is below ``flat_threshold`` (in the
      channel's SI unit: 1e-15 is 1 fT for magnetometers, 1 fV for EEG,
      below the noise floor of any real sensor; an exactly constant channel
      always qualifies), or
    * its standard deviation is below ``relative_threshold`` times the median
      standard deviation of the other channels of its type (a dead channel
      whose residual noise is a million times smaller than its neighbours',
      whatever the unit).

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (read, never modified). Only data channels (MEG, EEG,
        sEEG, ECoG, DBS, fNIRS) are examined, including those already in
        ``info["bads"]``.
    flat_threshold : float
        Absolute standard deviation threshold.
    relative_threshold : float
        Relative standard deviation threshold (0 disables).

    Returns
    -------
    bads : list of str
        Channel names in recording order.
    """
    check_range("flat_threshold", flat_threshold, 0.0)
    check_range("relative_threshold", relative_threshold, 0.0, 1.0)
    raw = _as_raw(raw, preload=False)
    picks = _data_picks(raw.info)
    if len(picks) == 0:
        return []
    data = raw.get_data(picks=picks)
    finite = np.isfinite(data).all(axis=1)
    with np.errstate(invalid="ignore"):
        std = np.where(finite, data.std(axis=1), np.nan)
    bad = ~finite | (std < flat_threshold)
    types = np.array(raw.get_channel_types(picks=picks))
    if relative_threshold > 0:
        for kind in np.unique(types):
            same = (types == kind) & finite
            if same.sum() < 2:
                continue
            reference = np.median(std[same])
            bad |= same & (std < relative_threshold * reference)
    return [raw.ch_names[p] for p, b in zip(picks, bad) if b]


def _missing_position(loc: np.ndarray) -> bool:
    xyz = np.asarray(loc[:3], dtype=np.float64)
    return bool(not np.isfinite(xyz).all() or np.allclose(xyz, 0.0, atol=0.0))


def handle_bad_channels(
    raw: str | os.PathLike | mne.io.BaseRaw,
    bads: Sequence[str],
    *,
    method: str = "drop",
    source: str | os.PathLike | None = None,
    origin: Any = "auto",
) -> mne.io.BaseRaw:
    """Drop or interpolate bad channels (on a copy).

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording.
    bads : sequence of str
        Channel names (e.g. from :func:`find_bad_channels`); empty returns an
        unchanged copy.
    method : {"drop", "interpolate"}
        ``"drop"`` removes the channels. ``"interpolate"`` replaces them by
        MNE's interpolation from the good channels of the same type
        (spherical splines for EEG, field mapping for MEG;
        :meth:`mne.io.Raw.interpolate_bads`), which needs the 3-D position of
        every bad channel and of the good channels used.
    source : str, path-like or None
        File named in messages.
    origin : "auto" or array-like of shape (3,)
        Sphere origin for the interpolation in metres (MNE's ``origin``;
        "auto" fits it to the head digitization).

    Returns
    -------
    raw : mne.io.BaseRaw
        A copy; after interpolation the channels are kept with new data and
        removed from ``info["bads"]``.

    Raises
    ------
    InputFileError
        A name in ``bads`` is not a channel of the recording, a channel has
        no position, or MNE cannot interpolate (its message is included).
    """
    check_option("method", method, ["drop", "interpolate"])
    raw = read_raw(raw)
    where = _source_of(raw, source)
    if isinstance(bads, str):
        bads = [bads]
    bads = list(dict.fromkeys(bads))
    unknown = [name for name in bads if name not in raw.ch_names]
    if unknown:
        raise InputFileError(
            where, f"bads: channel(s) not in the recording: {', '.join(map(repr, unknown[:10]))}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            + f" ({len(raw.ch_names)} channels, e.g. {', '.join(raw.ch_names[:5])})."
        )
    if not bads:
        return raw
    if method == "drop":
        return raw.drop_channels(bads)
    return _interpolate(raw, bads, where, origin)


def _interpolate(
    raw: mne.io.BaseRaw, bads: list[str], where: str | os.PathLike | None, origin: Any
) -> mne.io.BaseRaw:
    bad_types = set(raw.get_channel_types(picks=bads))
    same_type = [
        ch["ch_name"] for ch, kind in zip(raw.info["chs"], raw.get_channel_types())
        if kind in bad_types or (kind in ("mag", "grad") and bad_types & {"mag", "grad"})
    ]
    no_position = [
        name for name in same_type if _missing_position(raw.info["chs"][raw.ch_names.index(name)]["loc"])
    ]
    if no_position:
        raise InputFileError(
            where,
            f"channel position: cannot interpolate {', '.join(bads[:10])} because channel(s) "
            f"{', '.join(no_position[:10])}{' …' if len(no_position) > 10 else ''} have no 3-D "
            "position (set a montage, or use method='drop').",
        )
    raw.info["bads"] = sorted(set(raw.info["bads"]) | set(bads), key=raw.ch_names.index)
    try:
        raw.interpolate_bads(reset_bads=True, mode="accurate", origin=origin, verbose="error")
    except Exception as err:
        raise InputFileError(
            where,
            f"channels {', '.join(bads[:10])}: MNE cannot interpolate them "
            f"({type(err).__name__}: {err})",
        ) from err
    return raw


# --------------------------------------------------------------------------- sensor layout
def _fit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre of the least-squares sphere through ``points`` (n, 3).

    Solves ``|p|² = 2 c·p + d`` for the centre ``c`` (and ``d = r² − |c|²``)
    by linear least squares. With fewer than 4 points, or points (nearly) on
    a plane or a line, the sphere is undetermined and the centroid is
    returned instead.
    """
    if len(points) >= 4:
        design = np.column_stack([2.0 * points, np.ones(len(points))])
        scale = np.abs(points - points.mean(axis=0)).max()
        singular = np.linalg.svd(design, compute_uv=False)
        if scale > 0 and singular[-1] > 1e-6 * singular[0]:
            solution, *_ = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)
            return solution[:3]
    return points.mean(axis=0)


def sensor_positions_2d(info: mne.Info, *, source: str | os.PathLike | None = None) -> np.ndarray:
    """2-D sensor coordinates in [0, 1] for a spatial-attention layer.

    Each channel's 3-D position (``info["chs"][i]["loc"][:3]``, metres) is
    taken relative to the centre of the least-squares sphere fitted to all
    positions (the centroid when the positions are coplanar or fewer than
    4), then projected with an azimuthal equidistant projection about the +z
    axis of the coordinate frame (the vertex in MNE's head and device
    frames, as in MNE's topographic layouts): a sensor at colatitude θ
    (radians from +z) and azimuth φ (from +x towards +y) goes to
    ``(θ cos φ, θ sin φ)``. Each of the two coordinates is finally scaled
    linearly to [0, 1] (min → 0, max → 1; an axis where all sensors
    coincide is set to 0.5), as brainmagick does.

    Parameters
    ----------
    info : mne.Info
        Measurement info; every channel is used, in order.
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    positions : ndarray of shape (n_channels, 2), float64

    Raises
    ------
    InputFileError
        A channel has no position (all-zero or non-finite ``loc[:3]``).
    """
    if len(info["chs"]) == 0:
        raise InputFileError(source, "channels: the info has no channel.")
    points = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=np.float64)
    missing = [ch["ch_name"] for ch in info["chs"] if _missing_position(ch["loc"])]
    if missing:
        raise InputFileError(
            source,
            f"channel position: {len(missing)} channel(s) have no 3-D position (loc all zero or NaN): "
            f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}.",
        )
    centred = points - _fit_sphere(points)
    radius = np.linalg.norm(centred, axis=1)
    radius[radius == 0] = 1.0
    colatitude = np.arccos(np.clip(centred[:, 2] / radius, -1.0, 1.0))
    azimuth = np.arctan2(centred[:, 1], centred[:, 0])
    flat = np.column_stack([colatitude * np.cos(azimuth), colatitude * np.sin(azimuth)])
    low, high = flat.min(axis=0), flat.max(axis=0)
    span = high - low
    scaled = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1.0), 0.5)
    return scaled
