"""2-D sensor positions in [0, 1] for a spatial-attention layer (:func:`sensor_positions_2d`).

Each sensor's 3-D position is projected about the centre of the least-squares
sphere fitted to all positions, as brainmagick does.
"""

from __future__ import annotations

import os

import mne
import numpy as np

from ..._validation import InputFileError
from .channels import _missing_position


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
