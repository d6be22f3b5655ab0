"""Voxel time series with known truth: null voxels and planted ones, with motion and drift.

The generator behind the calibration checks of the per-unit significance
test (tests/test_cv_permutation.py, benchmarks/calibration.py): every run
has its own word train and head-motion trace; a design is the words' random
features convolved with the Glover HRF; every voxel gets noise (white or
AR(1)), a linear drift and a motion artefact, and a planted fraction of the
voxels gets the design times random weights on top. Because the truth of
each voxel is known, the fraction of null p-values below α and the
false-discovery proportion of a corrected map can be measured exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from ..features.design import frame_times_for_run, hrf_convolve

__all__ = ["PlantedVoxels", "simulate_planted_voxels"]


@dataclass
class PlantedVoxels:
    """A simulated scan with known truth.

    Attributes
    ----------
    design : ndarray of shape (n_samples, n_features)
        HRF-convolved word features, before cleaning.
    responses : ndarray of shape (n_samples, n_voxels)
        Raw voxel time series (noise + drift + motion artefact [+ signal]).
    runs : ndarray of shape (n_samples,)
        Run labels 1, 2, ...
    confounds : ndarray of shape (n_samples, n_confounds * n_runs)
        Each run's regressors in their own columns (zero elsewhere), as the
        volume path stacks fMRIPrep confounds: its six motion traces first,
        then random walks up to ``n_confounds``.
    planted : ndarray of bool, shape (n_voxels,)
        True where the voxel carries the design's signal.
    tr : float
        Seconds between volumes.
    """

    design: np.ndarray
    responses: np.ndarray
    runs: np.ndarray
    confounds: np.ndarray
    planted: np.ndarray
    tr: float


def simulate_planted_voxels(
    n_voxels: int = 4000,
    n_runs: int = 2,
    n_volumes: int = 200,
    n_features: int = 32,
    *,
    tr: float = 2.0,
    phi: float = 0.0,
    planted_fraction: float = 0.0,
    snr: float = 0.3,
    motion: float = 0.5,
    n_confounds: int = 6,
    seed: int = 0,
) -> PlantedVoxels:
    """Simulate a scan with null and planted voxels.

    Parameters
    ----------
    n_voxels : int
        Voxels (columns).
    n_runs : int
        Runs, each of ``n_volumes`` volumes.
    n_volumes : int
        Volumes per run.
    n_features : int
        Dimensions of the random word features.
    tr : float
        Repetition time in seconds.
    phi : float
        AR(1) coefficient of the noise (0 = white), per volume; the noise is
        stationary with unit variance.
    planted_fraction : float
        Fraction of voxels (the first ones) that carry signal.
    snr : float
        Standard deviation of the planted signal relative to the noise's.
    motion : float
        Standard deviation of the motion artefact relative to the noise's
        (every voxel loads on the six motion traces with random weights).
    n_confounds : int
        Confound regressors per run (>= 6): the six motion traces, then
        random walks that no voxel loads on (fMRIPrep's default set has 26).
    seed : int

    Returns
    -------
    PlantedVoxels
    """
    if n_confounds < 6:
        raise ValueError(f"'n_confounds' must be >= 6 (the motion traces), got {n_confounds}.")
    rng = np.random.default_rng(seed)
    designs, runs, confounds, motions = [], [], [], []
    duration = n_volumes * tr
    for run in range(n_runs):
        # Words every 0.25-0.5 s, as in read speech; features drawn per word.
        onsets = np.cumsum(rng.uniform(0.25, 0.5, size=int(duration / 0.25) + 10))
        onsets = onsets[onsets < duration - 1.0]
        features = rng.standard_normal((onsets.size, n_features))
        frames = frame_times_for_run(n_volumes, tr, 0.0)
        designs.append(hrf_convolve(onsets, np.zeros(onsets.size), features, frames, "glover"))
        runs.append(np.full(n_volumes, run + 1))
        block = np.zeros((n_volumes, n_confounds * n_runs))
        walks = np.cumsum(rng.standard_normal((n_volumes, n_confounds)), axis=0) / np.sqrt(n_volumes)
        block[:, n_confounds * run:n_confounds * (run + 1)] = walks
        confounds.append(block)
        motion_block = np.zeros((n_volumes, 6 * n_runs))
        motion_block[:, 6 * run:6 * run + 6] = walks[:, :6]
        motions.append(motion_block)
    design = np.concatenate(designs)
    runs_arr = np.concatenate(runs)
    conf = np.concatenate(confounds)
    n = design.shape[0]
    burn = 100
    white = rng.standard_normal((n + burn * n_runs, n_voxels))
    noise = np.empty((n, n_voxels))
    for run in range(n_runs):
        raw = white[run * (n_volumes + burn):(run + 1) * (n_volumes + burn)]
        series = scipy.signal.lfilter([np.sqrt(1.0 - phi**2)], [1.0, -phi], raw, axis=0) if phi else raw
        noise[run * n_volumes:(run + 1) * n_volumes] = series[burn:]
    loadings = rng.standard_normal((6 * n_runs, n_voxels))
    artefact = np.concatenate(motions) @ loadings
    artefact *= motion / max(float(artefact.std()), 1e-12)
    drift = np.linspace(-1.0, 1.0, n)[:, None] * rng.standard_normal(n_voxels)
    responses = noise + artefact + drift
    planted = np.zeros(n_voxels, dtype=bool)
    planted[: int(round(planted_fraction * n_voxels))] = True
    if planted.any():
        signal = design @ rng.standard_normal((n_features, int(planted.sum())))
        signal /= signal.std(axis=0)
        responses[:, planted] += snr * signal
    return PlantedVoxels(design, responses, runs_arr, conf, planted, float(tr))
