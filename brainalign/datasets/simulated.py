"""The embedded default dataset: a simulated story-listening fMRI experiment.

Generative model (documented in ``docs/simulated.md``), for seed ``s``:

1. **Text.** A story of ``n_words`` words drawn from a small English grammar
   (determiners, adjectives, nouns, verbs, prepositional phrases, relative
   clauses), with numpy generators seeded from ``s``.
2. **Timing.** Word ``i`` lasts ``0.15 + 0.045·len(word) + U(0, 0.06)`` s;
   sentences are separated by 0.5 s pauses; the story starts at 10 s and the
   scan ends 20 s after the last word. Volumes are acquired every ``tr``
   seconds from t = 0.
3. **Planted signal.** ``X`` = the word-level features of one layer of the
   chosen model (MiniLM layer 3 by default), HRF-convolved onto the volume grid
   (:func:`brainalign.features.design.hrf_convolve`, SPM HRF) and z-scored per
   column. One map ``W ~ N(0, 1)`` of shape (n_features, n_units), *shared by all
   subjects*, gives ``s = X W``, scaled to unit variance per unit. Each ROI has
   ``voxels_per_roi`` units (voxels) sharing the ROI's SNR.
4. **Noise.** Per subject and unit, AR(1) noise ``e_t = φ e_{t-1} + η_t`` scaled
   to variance ``1 / snr``, independent across subjects, so that
   ``snr = var(s) / var(e)``; an ROI with ``snr = 0`` carries noise only.
5. **Drift.** A slow drift (a linear trend plus cosines with periods of
   200–600 s, random phases and weights) scaled to ``drift_amplitude`` times
   the standard deviation of signal + noise, plus a baseline of 100 (raw BOLD-
   like units). The default cleaning (detrend + 1/128 Hz high-pass) removes it.

Analytic limits (no drift, infinitely many samples): a model that recovers
``s`` exactly reaches ``r = sqrt(snr / (1 + snr))``; the leave-one-subject-out
ISC ceiling with ``N`` subjects is ``1 / sqrt((1 + 1/snr)(1 + 1/((N - 1) snr)))``
(:mod:`brainalign.metrics.ceilings`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError
from ..io import Responses
from .registry import PlantedSimulation

__all__ = ["generate_story", "simulate_responses", "planted_map", "SIM_STORY_ONSET", "SimulatedKind"]

SIM_STORY_ONSET = 10.0
_TAIL = 20.0

_DET = ["the", "a", "this", "that", "every", "one"]
_ADJ = ["old", "young", "small", "bright", "quiet", "curious", "tired", "golden", "strange",
        "little", "dark", "gentle", "famous", "sleepy", "green", "clever", "ancient", "happy"]
_NOUN = ["rabbit", "queen", "garden", "river", "sister", "book", "door", "key", "cat", "king",
         "forest", "letter", "table", "house", "girl", "boy", "bird", "clock", "window", "city",
         "teacher", "doctor", "painter", "song", "story", "tree", "hill", "boat", "bridge", "lamp"]
_VERB_T = ["saw", "found", "followed", "opened", "carried", "painted", "watched", "remembered",
           "lost", "built", "visited", "helped", "called", "read", "wrote", "heard"]
_VERB_I = ["slept", "laughed", "waited", "ran", "sang", "smiled", "fell", "listened", "wandered",
           "cried", "arrived", "disappeared"]
_PREP = ["near", "behind", "under", "beside", "across", "inside", "above", "without"]
_ADV = ["slowly", "quickly", "quietly", "suddenly", "again", "carefully", "happily", "never"]
_CONJ = ["and then", "but", "because", "so", "while"]


def _noun_phrase(rng: np.random.Generator, depth: int = 0) -> list[str]:
    words = [str(rng.choice(_DET))]
    if rng.random() < 0.5:
        words.append(str(rng.choice(_ADJ)))
    words.append(str(rng.choice(_NOUN)))
    if depth == 0 and rng.random() < 0.2:
        words += ["that", str(rng.choice(_VERB_I))]
    elif depth == 0 and rng.random() < 0.25:
        words += [str(rng.choice(_PREP))] + _noun_phrase(rng, depth + 1)
    return words


def _clause(rng: np.random.Generator) -> list[str]:
    words = _noun_phrase(rng)
    if rng.random() < 0.2:
        words.append(str(rng.choice(_ADV)))
    if rng.random() < 0.6:
        words += [str(rng.choice(_VERB_T))] + _noun_phrase(rng)
    else:
        words.append(str(rng.choice(_VERB_I)))
        if rng.random() < 0.5:
            words += [str(rng.choice(_PREP))] + _noun_phrase(rng, 1)
    return words


def generate_story(n_words: int, seed: int) -> pd.DataFrame:
    """Generate the simulated story as an events table.

    Parameters
    ----------
    n_words : int
        Number of words.
    seed : int
        Seed of the text and its timing.

    Returns
    -------
    events : DataFrame
        Columns ``onset`` (s), ``duration`` (s), ``word``, ``run`` (all 1),
        ``sentence`` (index of the sentence).
    """
    rng = np.random.default_rng([seed, 1])
    words: list[str] = []
    sentence_ids: list[int] = []
    sentence = 0
    while len(words) < n_words:
        clause = _clause(rng)
        if rng.random() < 0.35:
            clause += str(rng.choice(_CONJ)).split() + _clause(rng)
        words += clause
        sentence_ids += [sentence] * len(clause)
        sentence += 1
    words, sentence_ids = words[:n_words], sentence_ids[:n_words]
    onsets = np.empty(n_words)
    durations = np.empty(n_words)
    t = SIM_STORY_ONSET
    for i, word in enumerate(words):
        if i > 0 and sentence_ids[i] != sentence_ids[i - 1]:
            t += 0.5
        onsets[i] = t
        durations[i] = 0.15 + 0.045 * len(word) + rng.uniform(0, 0.06)
        t += durations[i]
    return pd.DataFrame({
        "onset": np.round(onsets, 4), "duration": np.round(durations, 4),
        "word": words, "run": 1, "sentence": sentence_ids,
    })


def n_volumes_for(events: pd.DataFrame, tr: float) -> int:
    """Number of volumes covering the story plus a 20 s tail."""
    end = float((events["onset"] + events["duration"]).max()) + _TAIL
    return int(np.ceil(end / tr))


def planted_map(n_features: int, n_rois: int, seed: int) -> np.ndarray:
    """The planted linear map ``W`` of shape (n_features, n_rois), shared by subjects."""
    return np.random.default_rng([seed, 2]).standard_normal((n_features, n_rois))


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    eta = rng.standard_normal((n, k))
    out = np.empty_like(eta)
    out[0] = eta[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + eta[t]
    return out


def _drift(rng: np.random.Generator, times: np.ndarray, k: int) -> np.ndarray:
    span = times[-1] - times[0]
    tn = (times - times[0]) / max(span, 1e-9)
    parts = [np.outer(tn - 0.5, rng.standard_normal(k))]
    for period in (600.0, 400.0, 250.0, 200.0):
        phase = rng.uniform(0, 2 * np.pi, k)
        parts.append(rng.standard_normal(k) * np.cos(2 * np.pi * times[:, None] / period + phase))
    drift = np.sum(parts, axis=0)
    drift -= drift.mean(axis=0)
    return drift / np.maximum(drift.std(axis=0), 1e-12)


def simulate_responses(
    design: np.ndarray,
    rois: Mapping[str, float],
    n_subjects: int,
    tr: float,
    seed: int,
    drift_amplitude: float = 1.0,
    noise_ar1: float = 0.3,
    voxels_per_roi: int = 1,
) -> list[Responses]:
    """Simulate every subject's ROI time courses from a planted design.

    Parameters
    ----------
    design : ndarray of shape (n_volumes, n_features)
        The planted layer's HRF-convolved features on the volume grid.
    rois : mapping of str to float
        ROI name → SNR (signal variance / noise variance).
    n_subjects : int
    tr : float
        Repetition time in seconds.
    seed : int
    drift_amplitude : float
        Drift std relative to the std of signal + noise.
    noise_ar1 : float
        AR(1) coefficient of the noise.
    voxels_per_roi : int
        Units per ROI (``<roi>_v00``, ...), each with its own column of ``W``
        and the ROI's SNR.

    Returns
    -------
    responses : list of Responses, one per subject (``sub-01``, ``sub-02``, ...)
        ``n_units = len(rois) * voxels_per_roi``; ``unit_rois`` gives each unit's ROI.
    """
    design = np.asarray(design, dtype=np.float64)
    x = (design - design.mean(0)) / np.where(design.std(0) > 0, design.std(0), 1.0)
    names = [f"{roi}_v{k:02d}" if voxels_per_roi > 1 else roi for roi in rois for k in range(voxels_per_roi)]
    labels = [roi for roi in rois for _ in range(voxels_per_roi)]
    snr = np.array([rois[roi] for roi in labels], dtype=np.float64)
    signal = x @ planted_map(x.shape[1], len(names), seed)
    signal = (signal - signal.mean(0)) / signal.std(0)
    n = x.shape[0]
    times = tr * np.arange(n, dtype=np.float64)
    out = []
    for subject in range(n_subjects):
        rng = np.random.default_rng([seed, 3, subject])
        noise = _ar1(rng, n, len(names), noise_ar1)
        noise = (noise - noise.mean(0)) / noise.std(0)
        planted = np.where(snr > 0, 1.0, 0.0)
        noise_std = np.where(snr > 0, 1.0 / np.sqrt(np.where(snr > 0, snr, 1.0)), 1.0)
        data = planted * signal + noise_std * noise
        data += drift_amplitude * data.std(0) * _drift(rng, times, len(names))
        out.append(Responses(
            data=(100.0 + data).astype(np.float32), sampling=tr, times=times,
            runs=np.ones(n, dtype=np.int64), unit_names=names, unit_rois=labels,
            subject=f"sub-{subject + 1:02d}", modality="fmri",
        ))
    return out


class SimulatedKind(PlantedSimulation):
    """``simulated``: the embedded default dataset (ROI time series written by the ``simulate`` stage)."""

    name = "simulated"
    modality = "roi"

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        sim = cfg["simulation"]
        return generate_story(sim["n_words"], sim["seed"]), []

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        return simulated_timing(cfg, events)

    def responses(self, cfg: dict[str, Any], subject: str, raw: str | os.PathLike | None = None,
                  ) -> tuple[Responses, list[Path]]:
        from ..io import read_responses

        if raw is None:
            raise BrainalignError("simulated responses need the raw file (--raw).")
        return read_responses(raw), [Path(raw)]

    def credit(self, cfg: dict[str, Any]) -> str:
        sim = cfg["simulation"]
        return (f"simulated by brainalign (docs/simulated.md): {self.planted_credit(cfg)} through one shared "
                f"linear map, SPM-HRF convolved, AR(1) noise at SNR {json.dumps(sim['rois'])}, drift "
                f"×{sim['drift_amplitude']}, seed {sim['seed']}.")


def simulated_timing(cfg: dict[str, Any], events: pd.DataFrame | None) -> tuple[float, dict[int, np.ndarray]]:
    """TR (``simulation.tr``) and frame times of each run: volumes from t = 0 to 20 s after its last word."""
    from ..features.design import frame_times_for_run

    if events is None:
        raise BrainalignError("the timing of a simulated dataset needs its events table.")
    tr = float(cfg["simulation"]["tr"])
    return tr, {int(r): frame_times_for_run(n_volumes_for(events[events["run"] == r], tr), tr, 0.0)
                for r in sorted(events["run"].unique())}
