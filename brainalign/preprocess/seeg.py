"""sEEG/ECoG preprocessing for word decoding (a Du-IN-style chain).

Du-IN (2024) releases sEEG re-referenced bipolarly (neighbouring contacts of
one shaft subtracted) at 1 kHz, cut in 3 s epochs and z-scored per channel.
This module provides the pieces: contact-name parsing (:func:`parse_contact`),
bipolar and Laplacian re-referencing along a shaft, the high-gamma
(70–150 Hz) analytic amplitude, downsampling and the per-channel z-score.

Contact names are ``<shaft><number>``: the shaft is a letter followed by
letters, digits, underscores or primes (``'``) and ending with a non-digit,
the number is the contact's position on the shaft (1 is usually the deepest).
ECoG grids named ``G1 … G64`` are handled the same way, as one "shaft"
numbered row by row (so a bipolar pair may join the last contact of one row
to the first of the next).

Functions taking a recording accept a file path (any format
:func:`mne.io.read_raw` reads) or an :class:`mne.io.BaseRaw`; the caller's
object is never modified. The channels re-referenced are those of type
sEEG, ECoG or DBS; when a recording has none (EDF files are often read with
every channel typed EEG), its EEG channels are used instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import mne
import numpy as np
import scipy.fft
import scipy.signal

from .._validation import BrainalignError, InputFileError
from .meeg import band_pass_array, read_raw, resample
from .meeg.reading import _as_raw, _source_of
from .meeg.resampling import _annotations_for_copy

__all__ = [
    "bipolar_pairs",
    "bipolar_reference",
    "downsample",
    "high_gamma_envelope",
    "laplacian_reference",
    "parse_contact",
    "zscore_channels",
]

# Prefixes written by clinical systems (Nihon Kohden, Micromed, Natus EDF
# exports: "EEG LA1", "POL LA1", "SEEG LA1") and the "-Ref" suffix of
# referential montages ("LA1-Ref"); both are removed before parsing.
_PREFIX = re.compile(r"^(?:EEG|SEEG|POL|ECOG|IEEG)[\s_]+", re.IGNORECASE)
_SUFFIX = re.compile(r"-REF$", re.IGNORECASE)
_CONTACT = re.compile(r"^([A-Za-z](?:[A-Za-z0-9_']*[A-Za-z_'])?)\s*(\d+)$")
_IEEG_TYPES = ("seeg", "ecog", "dbs")


# --------------------------------------------------------------------------- names
def parse_contact(name: str) -> tuple[str, int] | None:
    """Split a contact name into its shaft and its number.

    Parameters
    ----------
    name : str
        A channel name such as ``"LA1"``, ``"LA 12"``, ``"A'3"``, ``"LA01"``
        or, with a clinical prefix and reference suffix,
        ``"EEG RAH10-Ref"``. Leading ``EEG``/``SEEG``/``POL``/``ECOG``/
        ``IEEG`` followed by a space or underscore, and a trailing ``-Ref``
        (any case), are removed first; nothing else is.

    Returns
    -------
    contact : (str, int) or None
        ``(shaft, number)``, e.g. ``("LA", 1)``, ``("A'", 3)``,
        ``("RAH", 10)``; None when the name does not end in a number after a
        shaft (``"ECG"``, ``"12"``, ``"LA1-LA2"``).
    """
    if not isinstance(name, str):
        return None
    text = _SUFFIX.sub("", _PREFIX.sub("", name.strip())).strip()
    match = _CONTACT.match(text)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def _parse_all(
    ch_names: Sequence[str], where: str | os.PathLike | None
) -> dict[str, tuple[str, int]]:
    """Parse every name; raise naming the unparseable and duplicated contacts."""
    parsed = {name: parse_contact(name) for name in ch_names}
    bad = [name for name, contact in parsed.items() if contact is None]
    if bad:
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise InputFileError(
            where,
            f"ch_names: {len(bad)} channel name(s) are not contacts '<shaft><number>': "
            f"{', '.join(map(repr, bad[:10]))}{more} (pick the sEEG/ECoG channels first).",
        )
    seen: dict[tuple[str, int], str] = {}
    for name, contact in parsed.items():
        if contact in seen:
            raise InputFileError(
                where,
                f"ch_names: channels {seen[contact]!r} and {name!r} are the same contact "
                f"{contact[0]}{contact[1]}.",
            )
        seen[contact] = name
    return parsed  # type: ignore[return-value]


def _shafts(parsed: dict[str, tuple[str, int]]) -> dict[str, dict[int, str]]:
    """``{shaft: {number: name}}``, shafts in order of first appearance."""
    shafts: dict[str, dict[int, str]] = {}
    for name, (shaft, number) in parsed.items():
        shafts.setdefault(shaft, {})[number] = name
    return shafts


def bipolar_pairs(
    ch_names: Sequence[str], *, source: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """Neighbouring contacts of each shaft, as (anode, cathode) pairs.

    Parameters
    ----------
    ch_names : sequence of str
        Contact names (see :func:`parse_contact`).
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    pairs : list of (str, str)
        ``(shaft n, shaft n+1)`` for every pair of consecutive numbers both
        present (a gap in the numbering is not bridged), ordered by shaft
        (in order of first appearance in ``ch_names``) then by number. The
        names are returned as given (prefixes kept).

    Raises
    ------
    InputFileError
        Names that are not contacts (up to 10 named), or two names for one
        contact.
    """
    shafts = _shafts(_parse_all(list(ch_names), source))
    pairs = []
    for contacts in shafts.values():
        for number in sorted(contacts):
            if number + 1 in contacts:
                pairs.append((contacts[number], contacts[number + 1]))
    return pairs


def _ieeg_names(raw: mne.io.BaseRaw) -> list[str]:
    """sEEG/ECoG/DBS channels, or the EEG channels when there are none."""
    types = raw.get_channel_types()
    names = [name for name, kind in zip(raw.ch_names, types) if kind in _IEEG_TYPES]
    if not names:
        names = [name for name, kind in zip(raw.ch_names, types) if kind == "eeg"]
    return names


# --------------------------------------------------------------------------- references
def bipolar_reference(
    raw: str | os.PathLike | mne.io.BaseRaw,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    source: str | os.PathLike | None = None,
) -> mne.io.BaseRaw:
    """Bipolar derivations ``anode − cathode``.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (read, never modified).
    pairs : sequence of (str, str) or None
        ``(anode, cathode)`` channel names; None uses
        :func:`bipolar_pairs` of the sEEG/ECoG/DBS channels (see the module
        notes).
    source : str, path-like or None
        File named in messages (default: the Raw's file).

    Returns
    -------
    bipolar : mne.io.RawArray
        In memory (it has no file: pass ``source`` to later functions so that
        their messages name the recording). One channel per pair, named ``"<anode>-<cathode>"``, with the type of
        the anode, positioned at the midpoint of the two contacts (when both
        have positions), bad when either contact is bad; same sampling rate,
        first sample, measurement date, filter settings and annotations.

    Raises
    ------
    InputFileError
        A name of ``pairs`` is not a channel (all unknown names listed), a
        pair joins a channel to itself, or there are no pairs.
    """
    raw = _as_raw(raw, preload=False)  # only read
    where = _source_of(raw, source)
    if pairs is None:
        pairs = bipolar_pairs(_ieeg_names(raw), source=where)
    pairs = [tuple(pair) for pair in pairs]
    if not pairs:
        raise InputFileError(where, "ch_names: no pair of neighbouring contacts to re-reference.")
    malformed = [pair for pair in pairs if len(pair) != 2]
    if malformed:
        raise BrainalignError(f"'pairs' must hold (anode, cathode) pairs, got {malformed[0]!r}.")
    unknown = sorted({name for pair in pairs for name in pair if name not in raw.ch_names})
    if unknown:
        raise InputFileError(
            where,
            f"pairs: channel(s) not in the recording: {', '.join(map(repr, unknown[:10]))}"
            + (f" and {len(unknown) - 10} more." if len(unknown) > 10 else "."),
        )
    same = [pair for pair in pairs if pair[0] == pair[1]]
    if same:
        raise InputFileError(where, f"pairs: {same[0][0]!r} is paired with itself.")
    anodes = [a for a, _ in pairs]
    cathodes = [c for _, c in pairs]
    data = raw.get_data(picks=anodes) - raw.get_data(picks=cathodes)
    info = _bipolar_info(raw, pairs)
    out = mne.io.RawArray(data, info, first_samp=raw.first_samp, verbose="error")
    out.set_annotations(_annotations_for_copy(raw))
    return out


def _bipolar_info(raw: mne.io.BaseRaw, pairs: list[tuple[str, str]]) -> mne.Info:
    names = [f"{a}-{c}" for a, c in pairs]
    types = [raw.get_channel_types(picks=[a])[0] for a, _ in pairs]
    info = mne.create_info(names, raw.info["sfreq"], types)
    chs = {ch["ch_name"]: ch for ch in raw.info["chs"]}
    for ch, (anode, cathode) in zip(info["chs"], pairs):
        a, c = np.asarray(chs[anode]["loc"][:3]), np.asarray(chs[cathode]["loc"][:3])
        if np.isfinite(a).all() and np.isfinite(c).all() and a.any() and c.any():
            ch["loc"][:3] = (a + c) / 2.0
            ch["coord_frame"] = chs[anode]["coord_frame"]
    bads = set(raw.info["bads"])
    info["bads"] = [name for name, (a, c) in zip(names, pairs) if a in bads or c in bads]
    info["line_freq"] = raw.info["line_freq"]
    if raw.info["meas_date"] is not None:
        info.set_meas_date(raw.info["meas_date"])
    with info._unlock():  # filter settings are read-only in MNE's public API
        info["highpass"] = raw.info["highpass"]
        info["lowpass"] = raw.info["lowpass"]
    return info


def laplacian_reference(
    raw: str | os.PathLike | mne.io.BaseRaw,
    *,
    source: str | os.PathLike | None = None,
    isolated: str = "drop",
) -> mne.io.BaseRaw:
    """Shaft Laplacian: each contact minus the mean of its neighbours.

    For contact ``n`` of a shaft the neighbours are contacts ``n − 1`` and
    ``n + 1`` of the same shaft that exist in the recording: the reference
    is their mean (or the single one at the ends of the shaft or beside a
    gap).

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (a copy is re-referenced).
    source : str, path-like or None
        File named in messages.
    isolated : {"drop", "raise"}
        What to do with a contact with no neighbour: drop it (it cannot be
        re-referenced) or raise naming it.

    Returns
    -------
    laplacian : mne.io.BaseRaw
        The sEEG/ECoG/DBS channels only (see the module notes), same names,
        in recording order, minus the isolated contacts.
    """
    if isolated not in ("drop", "raise"):
        raise BrainalignError(f"'isolated' must be 'drop' or 'raise', got {isolated!r}.")
    raw = read_raw(raw)
    where = _source_of(raw, source)
    names = _ieeg_names(raw)
    if not names:
        raise InputFileError(where, "ch_names: the recording has no sEEG, ECoG, DBS or EEG channel.")
    shafts = _shafts(_parse_all(names, where))
    neighbours: dict[str, list[str]] = {}
    lonely = []
    for contacts in shafts.values():
        for number, name in contacts.items():
            around = [contacts[n] for n in (number - 1, number + 1) if n in contacts]
            if around:
                neighbours[name] = around
            else:
                lonely.append(name)
    if lonely and isolated == "raise":
        raise InputFileError(
            where, f"ch_names: contact(s) with no neighbour on their shaft: {', '.join(lonely[:10])}."
        )
    kept = [name for name in names if name in neighbours]
    if not kept:
        raise InputFileError(where, "ch_names: no contact has a neighbour on its shaft.")
    index = {name: i for i, name in enumerate(names)}
    weights = np.zeros((len(kept), len(names)))
    for row, name in enumerate(kept):
        weights[row, index[name]] = 1.0
        for other in neighbours[name]:
            weights[row, index[other]] -= 1.0 / len(neighbours[name])
    data = raw.get_data(picks=names)
    raw.pick(kept)
    raw.apply_function(lambda _: weights @ data, picks=kept, channel_wise=False, verbose="error")
    return raw


# --------------------------------------------------------------------------- high gamma
def high_gamma_envelope(
    raw: str | os.PathLike | mne.io.BaseRaw,
    band: tuple[float, float] = (70.0, 150.0),
    *,
    order: int = 4,
    source: str | os.PathLike | None = None,
) -> mne.io.BaseRaw:
    """Analytic amplitude of the high-gamma band.

    Each data channel is band-passed with a zero-phase Butterworth filter
    (:func:`brainalign.preprocess.meeg.band_pass_array`) and replaced by the
    modulus of its analytic signal (:func:`scipy.signal.hilbert`, computed
    over the next fast FFT length and truncated). Non-data channels are left
    as they are.

    Parameters
    ----------
    raw : str, path-like or mne.io.BaseRaw
        The recording (a copy is transformed).
    band : (float, float)
        Lower and upper edges in Hz.
    order : int
        Butterworth order of one pass.
    source : str, path-like or None
        File named in messages.

    Returns
    -------
    envelope : mne.io.BaseRaw
        Same channels, sampling rate and annotations; ``info["highpass"]`` and
        ``info["lowpass"]`` are the band's edges.

    Raises
    ------
    InputFileError
        Field ``sfreq``: the upper edge is not below 0.9 × Nyquist (the
        filter would be distorted near Nyquist), or the lower edge is not
        between 0 and the upper edge.
    """
    raw = _as_raw(raw, preload=False)
    where = _source_of(raw, source)
    sfreq = float(raw.info["sfreq"])
    low, high = (float(f) for f in band)
    limit = 0.9 * sfreq / 2.0
    if not (0 < low < high < limit):
        raise InputFileError(
            where,
            f"sfreq: a recording sampled at {sfreq:g} Hz (Nyquist {sfreq / 2:g} Hz) cannot "
            f"support the band {low:g}–{high:g} Hz: the edges must satisfy "
            f"0 < low < high < 0.9 × Nyquist = {limit:g} Hz.",
        )
    raw = read_raw(raw)  # the copy to transform
    picks = mne.pick_types(raw.info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True,
                           exclude=())
    if len(picks) == 0:
        raise InputFileError(where, "ch_names: the recording has no data channel.")

    def envelope(data: np.ndarray) -> np.ndarray:
        filtered = band_pass_array(data, sfreq, low, high, order=order, source=where)
        n = filtered.shape[-1]
        analytic = scipy.signal.hilbert(filtered, N=scipy.fft.next_fast_len(n), axis=-1)
        return np.abs(analytic[..., :n])

    raw.apply_function(envelope, picks=picks, channel_wise=False, verbose="error")
    with raw.info._unlock():
        raw.info["highpass"], raw.info["lowpass"] = low, high
    return raw


# --------------------------------------------------------------------------- scaling
def downsample(raw: str | os.PathLike | mne.io.BaseRaw, sfreq: float) -> mne.io.BaseRaw:
    """Resample a copy of the recording to ``sfreq`` Hz (:func:`brainalign.preprocess.meeg.resample`)."""
    return resample(raw, sfreq)


def zscore_channels(
    X: np.ndarray,
    axis: int | tuple[int, ...] = -1,
    *,
    ch_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Z-score each channel (mean 0, standard deviation 1, ``ddof=0``).

    Parameters
    ----------
    X : ndarray of shape (n_channels, n_times) or (n_epochs, n_channels, n_times)
        Finite data.
    axis : int or tuple of int
        The time axis (or the axes to pool). For 3-D input with the default
        ``axis=-1`` the statistics are pooled over epochs and times (axes 0
        and 2), i.e. one mean and one standard deviation per channel, as for
        the continuous recording; pass ``axis=(-1,)`` to z-score each epoch
        separately.
    ch_names : sequence of str or None
        Channel names (along axis −2) used in the error message.

    Returns
    -------
    Z : ndarray of the same shape
        float32 input stays float32, anything else becomes float64.

    Raises
    ------
    BrainalignError
        A channel is constant (standard deviation 0) or holds NaN/inf;
        the channels are named (by ``ch_names`` or index).
    """
    X = np.asarray(X)
    if X.ndim not in (2, 3):
        raise BrainalignError(
            f"'X' must be 2-D (n_channels, n_times) or 3-D (n_epochs, n_channels, n_times), "
            f"got shape {X.shape}."
        )
    axes = (0, 2) if (X.ndim == 3 and axis == -1) else axis
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    data = X.astype(np.float64)
    mean = data.mean(axis=axes, keepdims=True)
    std = data.std(axis=axes, keepdims=True)
    bad = ~np.isfinite(std) | (std == 0)
    if bad.any():
        channels = np.flatnonzero(bad.any(axis=tuple(i for i in range(X.ndim) if i != X.ndim - 2)))
        labels = [str(ch_names[i]) if ch_names is not None else str(i) for i in channels]
        raise BrainalignError(
            f"'X': {len(channels)} channel(s) are constant or hold NaN/inf, so they cannot be "
            f"z-scored: {', '.join(labels[:10])}{' …' if len(labels) > 10 else ''}."
        )
    return ((data - mean) / std).astype(dtype, copy=False)
