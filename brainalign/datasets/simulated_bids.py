"""A simulated story-listening dataset written exactly as BIDS + fMRIPrep lay it out.

Generative model (documented in docs/bids.md):

* **Grid.** nilearn's bundled MNI152 template brain mask at ``voxel_size`` mm
  (2 mm: 99 x 117 x 95 voxels, 235,375 in the brain). The atlas (e.g. the
  Fedorenko/Ivanova language parcels) is resampled onto it (nearest;
  :func:`brainalign.preprocess.nifti.labels_on_grid`).
* **Story.** One generated story, split into ``n_runs`` consecutive parts; each
  run starts with ``LEAD_IN`` seconds of silence and ends 20 s after its last
  word. The ``story`` column of the events keeps the parts together.
* **Signal.** For each planted parcel ``p``, ``s_p = X W_p`` where ``X`` is the
  planted layer's HRF-convolved features (all runs, z-scored) and ``W_p`` one
  column of the shared planted map; every voxel of the parcel carries
  ``sqrt(snr_p) * s_p / std(s_p)``. Other voxels carry none.
* **Noise.** Independent AR(1) noise of unit variance per voxel, a slow drift
  (``drift_amplitude``), and **motion**: six rigid-body parameters per run
  (smoothed random walks plus sudden jumps at a ``spike_rate`` fraction of
  volumes) enter every voxel linearly with voxel-specific weights, scaled so
  the artefact's std is ``motion_amplitude`` times the noise std. The
  confounds TSV holds the true parameters (and their derivatives and squares,
  framewise displacement, global signal, WM/CSF and aCompCor-like columns),
  so regressing them removes the artefact and leaving them in does not.
* **Images.** ``baseline * (1 + 0.01 * (signal + noise + drift + motion))`` in
  the brain, 0 outside, float32, gzipped.

The planted parcels, their SNR and the mask of planted voxels are written to
``derivatives/simulation/`` for tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import ConfigError
from ..io import write_text
from ..preprocess.nifti import labels_on_grid, write_nifti
from ._preflight import on_field
from .registry import PlantedSimulation, Preflight, VolumeKind
from .simulated import _ar1, _drift, generate_story, n_volumes_for, planted_map, simulated_timing

__all__ = ["LEAD_IN", "TASK", "SPACE", "split_story", "mni_grid", "write_simulated_bids", "SimulatedBidsKind"]

#: Seconds of silence before the first word of each run.
LEAD_IN = 10.0
#: BIDS task label of the simulated dataset.
TASK = "listening"
#: fMRIPrep space of the simulated images.
SPACE = "MNI152NLin2009cAsym"
_CHUNK = 16384  # voxels generated at once


def split_story(n_words: int, n_runs: int, seed: int) -> pd.DataFrame:
    """A generated story split into ``n_runs`` runs, onsets relative to each run's start."""
    story = generate_story(n_words, seed)
    bounds = np.linspace(0, len(story), n_runs + 1).round().astype(int)
    parts = []
    for k in range(n_runs):
        part = story.iloc[bounds[k]:bounds[k + 1]].copy()
        part["onset"] = part["onset"] - part["onset"].iloc[0] + LEAD_IN
        part["run"] = k + 1
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["story"] = "story1"
    return out


def mni_grid(voxel_size: int):
    """nilearn's MNI152 brain mask at ``voxel_size`` mm (a nibabel image, uint8)."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=voxel_size)
    return nib.Nifti1Image(np.asarray(mask.get_fdata() > 0, dtype=np.uint8), mask.affine)


def _planted_labels(atlas: str | os.PathLike, opts: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """The MNI grid of ``simulation.bids``, its brain mask, and the atlas's labels inside the mask.

    Raises
    ------
    ConfigError
        On ``simulation.bids.planted_parcels`` when a planted label has no voxel there.
    """
    grid = mni_grid(opts["voxel_size"])
    brain = grid.get_fdata() > 0
    labels = labels_on_grid(atlas, grid)[0] * brain
    missing = [int(k) for k in opts["planted_parcels"] if not (labels == int(k)).any()]
    if missing:
        raise ConfigError(None, "simulation.bids.planted_parcels",
                          f"label(s) {missing} have no voxel of {atlas} inside the brain mask.")
    return grid, brain, labels


def _motion(rng: np.random.Generator, n: int, spike_rate: float) -> np.ndarray:
    """Six rigid-body parameters (mm, mm, mm, rad, rad, rad) of one run."""
    steps = rng.standard_normal((n, 6)) * np.array([0.02, 0.02, 0.02, 0.0004, 0.0004, 0.0004])
    jumps = rng.random(n) < spike_rate
    steps[jumps] += rng.standard_normal((int(jumps.sum()), 6)) * np.array([0.6] * 3 + [0.01] * 3)
    params = np.cumsum(steps, axis=0)
    return params - params.mean(axis=0)


def _confounds_table(motion: np.ndarray, global_signal: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    cols: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        base = motion[:, k]
        deriv = np.concatenate([[np.nan], np.diff(base)])
        cols[name] = base
        cols[f"{name}_derivative1"] = deriv
        cols[f"{name}_power2"] = base**2
        cols[f"{name}_derivative1_power2"] = deriv**2
    d = np.abs(np.diff(motion, axis=0))
    fd = d[:, :3].sum(axis=1) + 50.0 * d[:, 3:].sum(axis=1)  # Power et al. (2012), 50 mm head
    cols["framewise_displacement"] = np.concatenate([[np.nan], fd])
    dvars = np.concatenate([[np.nan], 1.0 + fd + 0.05 * rng.standard_normal(len(fd))])
    cols["std_dvars"] = dvars
    cols["dvars"] = 20.0 * dvars
    n = len(motion)
    for name in ("global_signal", "csf", "white_matter"):
        series = global_signal if name == "global_signal" else (
            global_signal.mean() + rng.standard_normal(n) * global_signal.std())
        cols[name] = series
        cols[f"{name}_derivative1"] = np.concatenate([[np.nan], np.diff(series)])
        cols[f"{name}_power2"] = series**2
        cols[f"{name}_derivative1_power2"] = cols[f"{name}_derivative1"] ** 2
    for k in range(6):
        cols[f"a_comp_cor_{k:02d}"] = rng.standard_normal(n) / np.sqrt(n)
    t = np.arange(n)
    for k in range(1, 3):
        cols[f"cosine{k - 1:02d}"] = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * t + 1) / (2 * n))
    return pd.DataFrame(cols)


def _write_nifti(path: Path, img) -> None:
    write_nifti(path, img, compresslevel=1)  # large 4-D images: level 1 is several times faster


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_simulated_bids(
    out_dir: str | os.PathLike,
    events: pd.DataFrame,
    design: np.ndarray,
    atlas: str | os.PathLike,
    cfg: Mapping[str, Any],
) -> Path:
    """Write the simulated dataset (raw BIDS events + fMRIPrep derivatives) under ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        The BIDS root to create (must not exist yet, or be empty).
    events : DataFrame
        From :func:`split_story`: ``onset`` (s from each run's start), ``duration``,
        ``word``, ``run``, ``story``.
    design : ndarray of shape (n_volumes_total, n_features)
        The planted layer convolved with the HRF, runs concatenated in order.
    atlas : path-like
        Label image whose parcels are planted.
    cfg : mapping
        The validated config (``simulation`` and ``simulation.bids`` sections).

    Returns
    -------
    out_dir : Path
    """
    import nibabel as nib

    sim = cfg["simulation"]
    opts = sim["bids"]
    tr = float(sim["tr"])
    out = Path(out_dir)
    grid, brain, labels = _planted_labels(atlas, opts)
    planted = {int(k): float(v) for k, v in opts["planted_parcels"].items()}
    run_labels = sorted(events["run"].unique())
    n_per_run = [n_volumes_for(events[events["run"] == r], tr) for r in run_labels]
    if design.shape[0] != sum(n_per_run):
        raise ConfigError(None, "simulation", f"design has {design.shape[0]} volumes, runs need {sum(n_per_run)}.")

    x = np.asarray(design, dtype=np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    ids = sorted(planted)
    signal = x @ planted_map(x.shape[1], len(ids), sim["seed"])
    signal = (signal - signal.mean(0)) / signal.std(0)
    ijk = np.argwhere(brain)
    vox_label = labels[brain]
    snr = np.array([planted.get(int(k), 0.0) for k in vox_label])
    column = np.array([ids.index(int(k)) if int(k) in planted else 0 for k in vox_label])
    n_vox = len(ijk)
    n_total = x.shape[0]
    times = tr * np.arange(n_total)

    # Raw BIDS
    _write_json(out / "dataset_description.json",
                {"Name": "brainalign simulated story listening", "BIDSVersion": "1.9.0",
                 "DatasetType": "raw", "GeneratedBy": [{"Name": "brainalign"}]})
    _write_json(out / f"task-{TASK}_bold.json", {"RepetitionTime": tr, "TaskName": TASK})
    subjects = [f"sub-{k + 1:02d}" for k in range(sim["n_subjects"])]
    table = pd.DataFrame({"participant_id": subjects})
    write_text(out / "participants.tsv", table.to_csv(sep="\t", index=False))
    prep = out / "derivatives" / "fmriprep"
    _write_json(prep / "dataset_description.json",
                {"Name": "fMRIPrep (simulated by brainalign)", "BIDSVersion": "1.9.0",
                 "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep"}]})
    comp_meta = {f"a_comp_cor_{k:02d}": {"Method": "aCompCor", "Mask": "combined", "Retained": True}
                 for k in range(6)}
    res = f"_res-{opts['voxel_size']}"

    noise_std = np.where(snr > 0, 1.0 / np.sqrt(np.where(snr > 0, snr, 1.0)), 1.0)
    for s, subject in enumerate(subjects):
        rng = np.random.default_rng([sim["seed"], 7, s])
        motions = [_motion(rng, n, opts["spike_rate"]) for n in n_per_run]
        # Motion in "noise std" units: each parameter normalised, mixed per voxel.
        mz = np.concatenate([m / np.maximum(m.std(0), 1e-12) for m in motions])
        bounds = np.cumsum([0, *n_per_run])
        data = np.empty((n_total, n_vox), dtype=np.float32)
        # Voxels in chunks (each with its own random stream) keep memory bounded at 2 mm.
        for c0 in range(0, n_vox, _CHUNK):
            cs = slice(c0, min(c0 + _CHUNK, n_vox))
            crng = np.random.default_rng([sim["seed"], 7, s, c0])
            noise = _ar1(crng, n_total, cs.stop - cs.start, sim["noise_ar1"])
            chunk = (noise - noise.mean(0)) / noise.std(0) * noise_std[cs]
            chunk += signal[:, column[cs]] * (snr[cs] > 0)
            chunk += sim["drift_amplitude"] * chunk.std(0) * _drift(crng, times, cs.stop - cs.start)
            weights = crng.standard_normal((6, cs.stop - cs.start))
            for k in range(len(n_per_run)):
                rows = slice(bounds[k], bounds[k + 1])
                artefact = mz[rows] @ weights
                chunk[rows] += opts["motion_amplitude"] * noise_std[cs] * artefact / np.maximum(artefact.std(0), 1e-12)
            data[:, cs] = opts["baseline"] * (1.0 + 0.01 * chunk)
        for k, (label, n) in enumerate(zip(run_labels, n_per_run)):
            motion = motions[k]
            run_data = data[bounds[k]:bounds[k + 1]]
            volume = np.zeros(brain.shape + (n,), dtype=np.float32)
            volume[brain] = run_data.T
            img = nib.Nifti1Image(volume, grid.affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = tr
            stem = f"{subject}_task-{TASK}_run-{label}"
            func = prep / subject / "func"
            _write_nifti(func / f"{stem}_space-{SPACE}{res}_desc-preproc_bold.nii.gz", img)
            _write_nifti(func / f"{stem}_space-{SPACE}{res}_desc-brain_mask.nii.gz",
                         nib.Nifti1Image(brain.astype(np.uint8), grid.affine))
            conf = _confounds_table(motion, run_data.mean(axis=1).astype(np.float64), rng)
            write_text(func / f"{stem}_desc-confounds_timeseries.tsv",
                       conf.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.8g"))
            _write_json(func / f"{stem}_desc-confounds_timeseries.json", comp_meta)
            words = events[events["run"] == label][["onset", "duration", "word"]].copy()
            words.insert(2, "trial_type", "word")
            write_text(out / subject / "func" / f"{stem}_events.tsv",
                       words.to_csv(sep="\t", index=False, float_format="%.3f"))

    truth = out / "derivatives" / "simulation"
    planted_vol = np.where(np.isin(labels, ids), labels, 0).astype(np.int16)
    _write_nifti(truth / "planted_parcels.nii.gz", nib.Nifti1Image(planted_vol, grid.affine))
    _write_json(truth / "truth.json", {"planted_parcels": {str(k): planted[k] for k in ids},
                                       "planted_layer": sim["planted_layer"],
                                       "planted_feature_set": sim["planted_feature_set"],
                                       "atlas": str(atlas), "voxel_size_mm": opts["voxel_size"],
                                       "volumes_per_run": n_per_run, "tr": tr})
    return out


class SimulatedBidsKind(VolumeKind, PlantedSimulation):
    """``simulated_bids``: a BIDS + fMRIPrep dataset written by brainalign, signal planted in atlas parcels."""

    name = "simulated_bids"

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        if not cfg["dataset"].get("atlas"):
            raise ConfigError(path, "dataset.atlas", "is required for dataset.kind 'simulated_bids' (the "
                                                     "parcels in which signal is planted).")
        super().check_config(cfg, path)

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        ds = cfg["dataset"]
        # The generated dataset lives in the results folder (relative to the
        # workflow's working directory, where the `results/` tree is).
        if ds.get("bids_dir") is None:
            ds["bids_dir"] = str((Path.cwd() / "results" / ds["name"] / "bids").resolve())
        ds.update(task=TASK, space=SPACE, res=str(cfg["simulation"]["bids"]["voxel_size"]))

    def events(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
        sim = cfg["simulation"]
        return split_story(sim["n_words"], sim["bids"]["n_runs"], sim["seed"]), []

    def timing(self, cfg: dict[str, Any], events: pd.DataFrame | None = None,
               ) -> tuple[float, dict[int, np.ndarray]]:
        return simulated_timing(cfg, events)

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The volumes of the generated runs, and every planted parcel inside the MNI brain mask of the atlas
        (the rule of :func:`write_simulated_bids`)."""
        checked = super().preflight(cfg)
        atlas, opts = cfg["dataset"]["atlas"], cfg["simulation"]["bids"]
        with on_field("dataset.atlas"):
            _planted_labels(atlas, opts)
        planted = sorted(int(k) for k in opts["planted_parcels"])
        checked.facts.append(f"atlas {Path(atlas).name} (planted labels {planted} in the MNI "
                             f"{opts['voxel_size']} mm brain)")
        return checked

    def credit(self, cfg: dict[str, Any]) -> str:
        sim, ds = cfg["simulation"], cfg["dataset"]
        # Parcels are named from the user's dataset.atlas_labels, as in the score tables.
        names = {int(k): str(v) for k, v in ds["atlas_labels"].items()}
        planted = ", ".join(f"{names.get(int(k), f'label_{int(k)}')} (label {int(k)}, SNR {float(snr):g})"
                            for k, snr in sorted(sim["bids"]["planted_parcels"].items(), key=lambda kv: int(kv[0])))
        return (f"simulated BIDS + fMRIPrep dataset (docs/bids.md): {self.planted_credit(cfg)} in atlas parcels "
                f"{planted} on the MNI152 {sim['bids']['voxel_size']} mm grid, {sim['bids']['n_runs']} runs, "
                f"motion artefact ×{sim['bids']['motion_amplitude']}, seed {sim['seed']}. Atlas: "
                f"{Path(str(ds['atlas'])).name}.")
