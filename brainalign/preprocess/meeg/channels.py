"""Bad channels: finding data channels with non-finite or (near-)flat signals, and dropping or interpolating them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import mne
import numpy as np

from ..._validation import InputFileError, check_option, check_range
from .filtering import _data_picks
from .reading import _as_raw, _source_of, read_raw


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
