"""Simulated MEG/EEG and sEEG recordings with word-locked responses (the default of the electrophysiology rules).

No language MEG or sEEG dataset can ship with the project, so the workflow
generates one whose ground truth is known:

- **MEG/EEG** (:func:`simulate_meeg_run`): sensors of a standard MNE montage
  (``biosemi32``/``biosemi64``/``standard_1020``; magnetometers at the same
  directions on a larger sphere for ``modality='meg'``). Each word drives
  ``n_sources`` latent sources with amplitudes ``Z = features @ P`` (a planted
  linear map of the word's model features, shared by subjects) and a temporal
  kernel per source (gamma-shaped bumps peaking 100--600 ms after onset); the
  sources reach the sensors through smooth, subject-specific spatial patterns
  (Gaussian blobs on the sensor sphere whose centres are jittered per subject).
- **sEEG** (:func:`simulate_seeg_run`): shafts of contacts (``LA1`` ... ``LA8``)
  at ``sfreq`` (1 kHz by default). Each trial presents one word of a small
  vocabulary; the *high-gamma* (70--150 Hz) amplitude of each contact is
  modulated by ``exp(snr * m / 2)`` during 100--700 ms, where ``m`` is the
  contact's value of a subject-specific mixing of ``features @ P``.

Both add realistic noise: 1/f ("pink") background per channel plus a shared,
spatially smooth pink component, line noise at ``line_freq`` with a random
phase per channel, and white sensor noise. ``snr`` scales the planted signal
(the ratio of signal to noise standard deviation on the sensors, before any
filtering); ``snr = 0`` plants nothing, so every decoder must fall to chance.

Recordings are written as FIF files whose annotations hold the words (one
annotation per word onset, description = the word), exactly what
:func:`brainalign.preprocess.meeg.read_word_events` reads back from any
MNE-readable file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import ConfigError, InputFileError
from ..io import atomic_path
from .registry import ElectroKind, PlantedSimulation

__all__ = [
    "SimulatedMeegKind",
    "SimulatedSeegKind",
    "generate_word_trials",
    "planted_sources",
    "seeg_channel_names",
    "simulate_meeg_run",
    "simulate_seeg_run",
    "write_raw_fif",
]

#: Seconds of recording before the first word and after the last one.
LEAD_IN = 2.0
TAIL = 4.0


def generate_word_trials(vocabulary: list[str], trials_per_word: int, n_runs: int, seed: int,
                         soa: float = 3.5) -> pd.DataFrame:
    """Isolated-word trials (the Du-IN paradigm): each word ``trials_per_word`` times, shuffled, split into runs.

    Returns
    -------
    events : DataFrame
        Columns ``onset`` (s from the run's start), ``duration`` (s), ``word``,
        ``run`` (1-based), ``sentence`` (trial index, so context never spans trials).
    """
    rng = np.random.default_rng([seed, 7])
    words = np.repeat(np.asarray(vocabulary, dtype=object), trials_per_word)
    words = words[rng.permutation(len(words))]
    bounds = np.linspace(0, len(words), n_runs + 1).round().astype(int)
    rows = []
    for k in range(n_runs):
        for j, word in enumerate(words[bounds[k]:bounds[k + 1]]):
            # Jittered onsets, so that the trial clock cannot predict the word.
            rows.append((LEAD_IN + j * soa + rng.uniform(0.0, 0.3), 0.5, str(word), k + 1))
    out = pd.DataFrame(rows, columns=["onset", "duration", "word", "run"])
    out["onset"] = out["onset"].round(4)
    out["sentence"] = np.arange(len(out))
    return out


def planted_sources(features: np.ndarray, n_sources: int, seed: int) -> np.ndarray:
    """Source amplitudes of each word: ``features @ P``, standardised per source.

    Parameters
    ----------
    features : ndarray of shape (n_words, n_features)
    n_sources : int
    seed : int
        Seed of ``P`` (shared by all subjects).

    Returns
    -------
    Z : ndarray of shape (n_words, n_sources)
    """
    rng = np.random.default_rng([seed, 11])
    F = np.asarray(features, dtype=np.float64)
    F = (F - F.mean(axis=0)) / np.where(F.std(axis=0) > 0, F.std(axis=0), 1.0)
    Z = F @ rng.standard_normal((F.shape[1], n_sources)) / np.sqrt(F.shape[1])
    return (Z - Z.mean(axis=0)) / np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)


def _pink_noise(rng: np.random.Generator, n_channels: int, n_times: int, sfreq: float) -> np.ndarray:
    """Unit-variance noise with a 1/f power spectrum (above 0.5 Hz) per channel."""
    spectrum = rng.standard_normal((n_channels, n_times // 2 + 1)) + 1j * rng.standard_normal(
        (n_channels, n_times // 2 + 1))
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    spectrum /= np.sqrt(np.maximum(freqs, 0.5))
    spectrum[:, 0] = 0.0
    x = np.fft.irfft(spectrum, n=n_times, axis=1)
    return x / x.std(axis=1, keepdims=True)


def _noise(rng: np.random.Generator, positions: np.ndarray, n_times: int, sfreq: float,
           line_freq: float) -> np.ndarray:
    """Pink background (private + shared smooth part), line noise and white noise; unit-ish variance."""
    n_channels = len(positions)
    private = _pink_noise(rng, n_channels, n_times, sfreq)
    patterns = _blobs(rng, positions, 4, width=0.6)
    shared = patterns @ _pink_noise(rng, 4, n_times, sfreq)
    t = np.arange(n_times) / sfreq
    line = 0.3 * np.sin(2 * np.pi * line_freq * t[None, :] + rng.uniform(0, 2 * np.pi, (n_channels, 1)))
    white = 0.3 * rng.standard_normal((n_channels, n_times))
    out = 0.8 * private + 0.5 * shared / max(shared.std(), 1e-12) + line + white
    return out / out.std()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _blobs(rng: np.random.Generator, positions: np.ndarray, n: int, width: float,
           centres: np.ndarray | None = None) -> np.ndarray:
    """Smooth sensor patterns: Gaussian blobs (in angle) on the sensor sphere, random signs; (n_channels, n)."""
    directions = _unit(positions - positions.mean(axis=0))
    if centres is None:
        centres = _unit(rng.standard_normal((n, 3)) * np.array([1.0, 1.0, 0.3]) + np.array([0, 0, 0.7]))
    angle = np.arccos(np.clip(directions @ centres.T, -1.0, 1.0))
    patterns = np.exp(-0.5 * (angle / width) ** 2) * rng.choice([-1.0, 1.0], size=n)
    return patterns / np.linalg.norm(patterns, axis=0, keepdims=True)


def _kernel(sfreq: float, n_sources: int) -> np.ndarray:
    """Temporal response of each source, (n_sources, n_samples) over 0..0.8 s: gamma bumps peaking 0.1..0.6 s."""
    t = np.arange(int(round(0.8 * sfreq))) / sfreq
    peaks = np.linspace(0.1, 0.6, n_sources)
    k = (t[None, :] / peaks[:, None]) ** 3 * np.exp(3.0 * (1.0 - t[None, :] / peaks[:, None]))
    return k / np.linalg.norm(k, axis=1, keepdims=True)


def montage_positions(montage: str, modality: str) -> tuple[list[str], np.ndarray]:
    """Channel names and 3-D positions (m) of a standard MNE montage (magnetometers 3 cm further out)."""
    import mne

    pos = mne.channels.make_standard_montage(montage).get_positions()["ch_pos"]
    names = list(pos)
    xyz = np.array([pos[n] for n in names], dtype=np.float64)
    if modality == "meg":
        centre = xyz.mean(axis=0)
        xyz = centre + _unit(xyz - centre) * (np.linalg.norm(xyz - centre, axis=1, keepdims=True) + 0.03)
        names = [f"MEG {k + 1:03d}" for k in range(len(names))]
    return names, xyz


def simulate_meeg_run(events: pd.DataFrame, Z: np.ndarray, *, subject_index: int, run: int, modality: str = "eeg",
                      montage: str = "biosemi32", sfreq: float = 1000.0, snr: float = 1.0, line_freq: float = 50.0,
                      seed: int = 0, onset_offset: float = 0.0):
    """One simulated MEG/EEG run as an :class:`mne.io.RawArray` with word annotations.

    Parameters
    ----------
    events : DataFrame
        This run's words: ``onset`` (s from the run's start) and ``word``.
    Z : ndarray of shape (n_words, n_sources)
        Planted source amplitudes of these words (:func:`planted_sources`).
    subject_index : int
        Seeds the subject's spatial patterns and noise.
    onset_offset : float
        Seconds added to every onset (subjects start their recordings at
        different times, so onsets are never shared by accident).
    """
    import mne

    names, xyz = montage_positions(montage, modality)
    n_sources = Z.shape[1]
    subject_rng = np.random.default_rng([seed, 23, subject_index])
    # Source centres shared across subjects, jittered per subject: subject-specific mixing.
    base_rng = np.random.default_rng([seed, 29])
    centres = _unit(base_rng.standard_normal((n_sources, 3)) * np.array([1.0, 1.0, 0.3]) + np.array([0, 0, 0.7]))
    centres = _unit(centres + 0.25 * subject_rng.standard_normal(centres.shape))
    A = _blobs(subject_rng, xyz, n_sources, width=0.5, centres=centres)
    onsets = events["onset"].to_numpy(dtype=float) + onset_offset
    n_times = int(np.ceil((onsets.max() + TAIL) * sfreq))
    kernel = _kernel(sfreq, n_sources)
    sources = np.zeros((n_sources, n_times))
    for z, onset in zip(Z, onsets):
        start = int(round(onset * sfreq))
        stop = min(start + kernel.shape[1], n_times)
        sources[:, start:stop] += z[:, None] * kernel[:, : stop - start]
    signal = A @ sources
    signal /= max(signal.std(), 1e-12)
    run_rng = np.random.default_rng([seed, 31, subject_index, run])
    data = snr * signal + _noise(run_rng, xyz, n_times, sfreq, line_freq)
    scale = 1e-12 if modality == "meg" else 1e-5  # T or V
    ch_type = "mag" if modality == "meg" else "eeg"
    info = mne.create_info(names, sfreq, ch_type, verbose="error")
    raw = mne.io.RawArray(data * scale, info, verbose="error")
    if modality == "meg":
        for ch, p in zip(raw.info["chs"], xyz):
            ch["loc"][:3] = p
            ch["loc"][9:12] = _unit(p - xyz.mean(axis=0))
    else:
        raw.set_montage(mne.channels.make_standard_montage(montage), verbose="error")
    raw.info["line_freq"] = line_freq
    raw.set_annotations(mne.Annotations(onsets, 0.0, events["word"].astype(str).tolist()))
    return raw


def seeg_channel_names(n_shafts: int, contacts_per_shaft: int) -> list[str]:
    """Contact names ``LA1 .. LA<n>``, ``LB1 ..``, ... (shaft letters, then the contact number)."""
    return [f"L{chr(ord('A') + s)}{c + 1}" for s in range(n_shafts) for c in range(contacts_per_shaft)]


def _band_noise(rng: np.random.Generator, n_channels: int, n_times: int, sfreq: float,
                band: tuple[float, float]) -> np.ndarray:
    """Unit-variance noise confined to ``band`` (Hz), by zeroing FFT bins outside it."""
    spectrum = np.fft.rfft(rng.standard_normal((n_channels, n_times)), axis=1)
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    spectrum[:, (freqs < band[0]) | (freqs > band[1])] = 0.0
    x = np.fft.irfft(spectrum, n=n_times, axis=1)
    return x / x.std(axis=1, keepdims=True)


def simulate_seeg_run(events: pd.DataFrame, Z: np.ndarray, *, subject_index: int, run: int, n_shafts: int = 2,
                      contacts_per_shaft: int = 6, sfreq: float = 1000.0, snr: float = 1.0,
                      line_freq: float = 50.0, seed: int = 0, onset_offset: float = 0.0):
    """One simulated sEEG run (:class:`mne.io.RawArray`, ``seeg`` channels, volts) with word annotations.

    The high-gamma (70--150 Hz) amplitude of contact ``c`` during 100--700 ms
    after a word is ``exp(snr * m_c / 2)`` times its baseline, with ``m = A_s z``
    the subject's mixing (``A_s``, contacts x sources, random per subject) of the
    word's planted sources ``z``.
    """
    import mne

    names = seeg_channel_names(n_shafts, contacts_per_shaft)
    n_channels = len(names)
    subject_rng = np.random.default_rng([seed, 37, subject_index])
    A = subject_rng.standard_normal((n_channels, Z.shape[1])) / np.sqrt(Z.shape[1])
    onsets = events["onset"].to_numpy(dtype=float) + onset_offset
    n_times = int(np.ceil((onsets.max() + TAIL) * sfreq))
    log_gain = np.zeros((n_channels, n_times))
    t = np.arange(int(round(0.8 * sfreq))) / sfreq
    window = np.where((t >= 0.1) & (t <= 0.7), np.sin(np.pi * np.clip((t - 0.1) / 0.6, 0, 1)), 0.0)
    for z, onset in zip(Z, onsets):
        start = int(round(onset * sfreq))
        stop = min(start + len(window), n_times)
        log_gain[:, start:stop] += (0.5 * snr * (A @ z))[:, None] * window[None, : stop - start]
    run_rng = np.random.default_rng([seed, 41, subject_index, run])
    high_gamma = _band_noise(run_rng, n_channels, n_times, sfreq, (70.0, 150.0)) * np.exp(log_gain)
    background = _pink_noise(run_rng, n_channels, n_times, sfreq)
    tt = np.arange(n_times) / sfreq
    line = 0.5 * np.sin(2 * np.pi * line_freq * tt[None, :] + run_rng.uniform(0, 2 * np.pi, (n_channels, 1)))
    data = background + 0.3 * high_gamma + line + 0.1 * run_rng.standard_normal((n_channels, n_times))
    info = mne.create_info(names, sfreq, "seeg", verbose="error")
    raw = mne.io.RawArray(data * 1e-5, info, verbose="error")
    raw.info["line_freq"] = line_freq
    raw.set_annotations(mne.Annotations(onsets, 0.0, events["word"].astype(str).tolist()))
    return raw


def write_raw_fif(path: str | os.PathLike, raw) -> Path:
    """Atomically save a Raw as FIF (float32 samples)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fif = tmp.with_name(tmp.name[: -len(".part")] + "_raw.fif")
        raw.save(fif, fmt="single", overwrite=True, verbose="error")
        os.replace(fif, tmp)
    return path


class _SimulatedRecordings(ElectroKind, PlantedSimulation):
    """Recordings simulated into ``results/<name>/raw/<subject>/run-<k>_raw.fif`` (``--raw-dir``)."""

    def recordings(self, cfg: dict[str, Any], subject: str, raw_dir: str | os.PathLike | None,
                   ) -> list[tuple[int, Path, Path | None, Any]]:
        from ..preprocess.meeg import read_raw

        if raw_dir is None:
            raise ConfigError(None, "dataset.kind", "simulated recordings need --raw-dir.")
        folder = Path(raw_dir) / subject
        paths = sorted(folder.glob("run-*_raw.fif"), key=lambda p: int(p.name.split("_")[0].removeprefix("run-")))
        if not paths:
            raise InputFileError(folder, "no run-*_raw.fif recordings.")
        return [(int(p.name.split("_")[0].removeprefix("run-")), p, None, lambda p=p: read_raw(p)) for p in paths]


class SimulatedMeegKind(_SimulatedRecordings):
    """``simulated_meeg``: EEG/MEG of listeners to a generated story (segment identification)."""

    name = "simulated_meeg"

    def task(self, cfg: dict[str, Any]) -> str:
        return "meeg"

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        from .simulated_bids import split_story

        sim = cfg["simulation"]
        return split_story(sim["n_words"], sim["meeg"]["n_runs"], sim["seed"]).drop(columns="story"), []

    def credit(self, cfg: dict[str, Any]) -> str:
        sim = cfg["simulation"]
        return (f"simulated by brainalign (docs/electrophysiology.md): {self.planted_credit(cfg)}, "
                f"{sim['meeg']['modality'].upper()} at SNR {sim['meeg']['snr']:g}, seed {sim['seed']}.")


class SimulatedSeegKind(_SimulatedRecordings):
    """``simulated_seeg``: sEEG contacts during repeated words (word classification)."""

    name = "simulated_seeg"

    def task(self, cfg: dict[str, Any]) -> str:
        return "seeg"

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        s, seed = cfg["simulation"]["seeg"], cfg["simulation"]["seed"]
        return generate_word_trials(s["vocabulary"], s["trials_per_word"], s["n_runs"], seed), []

    def credit(self, cfg: dict[str, Any]) -> str:
        sim = cfg["simulation"]
        return (f"simulated by brainalign (docs/electrophysiology.md): {self.planted_credit(cfg)}, sEEG at SNR "
                f"{sim['seeg']['snr']:g}, seed {sim['seed']}.")
