"""The error catalogue (docs/errors.md), one test case per row.

Every case builds one malformed input in a folder whose path holds a space, a
single quote and a non-ASCII letter, runs the real command line in-process
(``brainalign.cli.main``; one case runs the Snakemake workflow), and checks
that

* the exit status is non-zero (2 for the command line),
* the message names the offending file and the field (dataset, attribute,
  column, config key, channel, header field, ...),
* the listing of the output folder ``results/`` (hidden files included) is
  unchanged: nothing written, not even a temporary file.

``test_catalogue_matches_the_docs`` keeps the ids here and the rows of
docs/errors.md identical.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign.cli import main
from brainalign.io import Features, Responses, write_features, write_responses
from brainalign.stimuli.events import write_events

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "errors.md"
TYPES = {"nifti": "NIfTI", "electro": "FIF/EDF", "hdf5": "HDF5", "events": "TextGrid/events",
         "config": "Configs", "text": "Other text files", "language": "Language-model inputs"}


# =========================================================================== the workspace
@dataclass
class Workspace:
    """Input and output folders under a path with a space, a quote and a non-ASCII letter."""

    root: Path

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def config(self, cfg: dict, name: str = "config.yaml") -> Path:
        path = self.inputs / name
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        return path


def _listing(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@dataclass
class Failure:
    """What a case runs and what its message must name."""

    argv: list
    file: Path
    fields: tuple[str, ...]
    workflow: bool = False  # run `python -m snakemake` instead of the command line


@dataclass
class Case:
    id: str
    kind: str
    build: Callable[[Workspace], Failure] = field(repr=False)


CASES: list[Case] = []


def case(case_id: str, kind: str):
    """Register a builder of one malformed input as the catalogue row ``case_id``."""
    assert kind in TYPES, kind

    def register(build: Callable[[Workspace], Failure]) -> Callable[[Workspace], Failure]:
        CASES.append(Case(case_id, kind, build))
        return build

    return register


def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


# =========================================================================== NIfTI: BIDS + fMRIPrep
SHAPE = (4, 4, 3)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
TASK = "story"
SPACE = "MNI152NLin2009cAsym"
N_VOL = 30


def _nifti(path: Path, data: np.ndarray, tr: float | None = None, affine: np.ndarray = AFFINE) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header["pixdim"][4] = tr
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _brain_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:3, 1:3, 1] = 1
    return mask


def _func(ds: Path, subject: str) -> Path:
    return ds / "derivatives" / "fmriprep" / subject / "func"


def _bold(ds: Path, subject: str = "sub-01", run: int = 1) -> Path:
    return _func(ds, subject) / f"{subject}_task-{TASK}_run-{run}_space-{SPACE}_desc-preproc_bold.nii.gz"


def _run_mask(ds: Path, subject: str = "sub-01", run: int = 1) -> Path:
    return _func(ds, subject) / f"{subject}_task-{TASK}_run-{run}_space-{SPACE}_desc-brain_mask.nii.gz"


def _confounds(ds: Path, subject: str = "sub-01", run: int = 1) -> Path:
    return _func(ds, subject) / f"{subject}_task-{TASK}_run-{run}_desc-confounds_timeseries.tsv"


def _bids_events(ds: Path, subject: str = "sub-01", run: int = 1) -> Path:
    return ds / subject / "func" / f"{subject}_task-{TASK}_run-{run}_events.tsv"


def _write_bold(path: Path, n_vol: int = N_VOL, tr: float = 2.0, seed: int = 0) -> Path:
    mask = _brain_mask()
    data = np.zeros(SHAPE + (n_vol,), np.float32)
    data[mask > 0] = 100 + np.random.default_rng(seed).standard_normal((int(mask.sum()), n_vol))
    return _nifti(path, data, tr=tr)


def _bids(w: Workspace, **dataset) -> Path:
    """A tiny BIDS + fMRIPrep dataset (2 subjects x 2 runs) and its config."""
    rng = np.random.default_rng(0)
    ds = w.inputs / "bids"
    ds.mkdir(parents=True)
    (ds / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    motion_names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    for seed, (subject, run) in enumerate((s, r) for s in ("sub-01", "sub-02") for r in (1, 2)):
        _write_bold(_bold(ds, subject, run), seed=seed)
        _nifti(_run_mask(ds, subject, run), _brain_mask())
        motion = pd.DataFrame(np.cumsum(rng.standard_normal((N_VOL, 6)) * 0.05, axis=0), columns=motion_names)
        motion.to_csv(_confounds(ds, subject, run), sep="\t", index=False)
        _confounds(ds, subject, run).with_suffix(".json").write_text("{}")
        words = pd.DataFrame({"onset": np.arange(2.0, N_VOL * 2.0 - 6, 0.9), "duration": 0.3})
        words["word"] = [f"w{k}" for k in range(len(words))]
        _bids_events(ds, subject, run).parent.mkdir(parents=True, exist_ok=True)
        words.to_csv(_bids_events(ds, subject, run), sep="\t", index=False)
    return w.config({
        "dataset": {"name": "tiny", "kind": "bids", "bids_dir": str(ds), "task": TASK, **dataset},
        "feature_sets": {"word_rate": {"kind": "word_rate"}},
        "preprocessing": {"confounds": "fmriprep",
                          "fmriprep_confounds": {"strategy": ["motion"], "motion": "basic"}},
    })


def _analysis_mask(w: Workspace) -> Path:
    return _nifti(w.inputs / "mask.nii.gz", _brain_mask())


def _stimuli(config: Path, w: Workspace) -> list:
    return ["stimuli", "--config", config, "--out", w.results / "tiny" / "events.tsv"]


def _responses(config: Path, w: Workspace, subject: str = "sub-01", mask: Path | None = None) -> list:
    return ["responses", "--config", config, "--subject", subject, "--mask", mask or _analysis_mask(w),
            "--out", w.results / "tiny" / "responses" / f"{subject}.h5"]


def _mask(config: Path, w: Workspace) -> list:
    return ["mask", "--config", config, "--out", w.results / "tiny" / "mask.nii.gz"]


@case("nifti-truncated", "nifti")
def _(w):
    config = _bids(w)
    bold = _bold(w.inputs / "bids")
    _truncate(bold)
    return Failure(_responses(config, w), bold, ("data (the voxel values after the header)", "truncated"))


@case("nifti-not-an-image", "nifti")
def _(w):
    config = _bids(w)
    bold = _bold(w.inputs / "bids", run=2)
    bold.write_bytes(b"this is not an image\n" * 30)
    return Failure(_stimuli(config, w), bold, ("not a readable NIfTI image", "header cannot be read"))


@case("nifti-3d-bold", "nifti")
def _(w):
    config = _bids(w)
    bold = _bold(w.inputs / "bids")
    _nifti(bold, np.ones(SHAPE, np.float32))
    return Failure(_stimuli(config, w), bold, ("header field 'dim'", "4-D"))


@case("nifti-tr-differs-between-runs", "nifti")
def _(w):
    config = _bids(w)
    bold = _bold(w.inputs / "bids", run=2)
    _write_bold(bold, tr=1.5)
    return Failure(_stimuli(config, w), bold, ("pixdim[4]", "TR = 1.5 s", "TR = 2 s"))


@case("nifti-tr-differs-between-subjects", "nifti")
def _(w):
    config = _bids(w)
    for run in (1, 2):
        _write_bold(_bold(w.inputs / "bids", "sub-02", run), tr=2.5)
    return Failure(_responses(config, w, "sub-02"), _bold(w.inputs / "bids", "sub-02"),
                   ("pixdim[4]", "TR = 2.5 s", "sub-01"))


@case("nifti-volumes-differ-between-subjects", "nifti")
def _(w):
    config = _bids(w)
    bold = _write_bold(_bold(w.inputs / "bids", "sub-02"), n_vol=N_VOL - 5)
    return Failure(_responses(config, w, "sub-02"), bold, ("dim[4]", f"{N_VOL - 5} volumes", f"has {N_VOL}"))


@case("nifti-mask-on-another-grid", "nifti")
def _(w):
    other = _nifti(w.inputs / "mask_2mm.nii.gz", np.ones((6, 6, 5), np.uint8), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    config = _bids(w, mask=str(other))
    return Failure(_mask(config, w), other, ("dataset.mask", "another grid"))


@case("nifti-mask-not-binary", "nifti")
def _(w):
    labels = _brain_mask() * 3
    other = _nifti(w.inputs / "labels as mask.nii.gz", labels)
    config = _bids(w, mask=str(other))
    return Failure(_mask(config, w), other, ("dataset.mask", "binary", "[0, 3]"))


@case("nifti-brain-mask-missing", "nifti")
def _(w):
    config = _bids(w)
    _run_mask(w.inputs / "bids").unlink()
    return Failure(_mask(config, w), _bold(w.inputs / "bids"), ("brain mask", "dataset.mask"))


@case("nifti-analysis-mask-truncated", "nifti")
def _(w):
    config = _bids(w)
    mask = _analysis_mask(w)
    _truncate(mask, 0.3)
    return Failure(_responses(config, w, mask=mask), mask, ("analysis mask (--mask)", "not a readable NIfTI image"))


@case("nifti-nan-voxels", "nifti")
def _(w):
    import nibabel as nib

    config = _bids(w)
    bold = _bold(w.inputs / "bids", run=2)
    data = np.asarray(nib.load(str(bold)).dataobj)
    data[1, 2, 1, 7] = np.nan
    _nifti(bold, data, tr=2.0)
    return Failure(_responses(config, w), bold, ("NaN", "voxel index (1, 2, 1)"))


@case("nifti-constant-voxels", "nifti")
def _(w):
    import nibabel as nib

    config = _bids(w)
    for run in (1, 2):
        bold = _bold(w.inputs / "bids", run=run)
        data = np.asarray(nib.load(str(bold)).dataobj)
        data[2, 1, 1, :] = 100.0
        _nifti(bold, data, tr=2.0)
    return Failure(_responses(config, w), _bold(w.inputs / "bids"), ("constant", "voxel index (2, 1, 1)"))


@case("nifti-brain-mask-empty", "nifti")
def _(w):
    config = _bids(w)
    empty = _nifti(_run_mask(w.inputs / "bids", "sub-02", 2), np.zeros(SHAPE, np.uint8))
    # The empty intersection used to be reported against sub-01 run 1's mask.
    return Failure(_mask(config, w), empty, ("brain mask of sub-02 is empty", "dataset.subjects"))


@case("nifti-brain-masks-disjoint", "nifti")
def _(w):
    config = _bids(w)
    elsewhere = np.zeros(SHAPE, np.uint8)
    elsewhere[0, 0, 0] = 1
    odd = _nifti(_run_mask(w.inputs / "bids", "sub-02", 2), elsewhere)
    return Failure(_mask(config, w), odd, ("brain mask of sub-02 has 1 voxel(s)", "the 3 run(s) before it",
                                           "dataset.mask_threshold"))


# =========================================================================== FIF / EDF
VOCAB = ["house", "water", "music"]


def _electro_config(w: Workspace, kind: str = "simulated_seeg", dataset: dict | None = None, **electro) -> Path:
    return w.config({
        "dataset": {"name": "electro", "kind": kind, **(dataset or {})},
        "simulation": {"n_subjects": 2, "planted_feature_set": "m", "planted_layer": "0",
                       "seeg": {"vocabulary": VOCAB, "trials_per_word": 2, "n_runs": 2, "sfreq": 500.0}},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}},
        "electrophysiology": {"reference": "bipolar", "sfreq": 100.0, "tmin": 0.0, "tmax": 1.0,
                              "baseline": None, **electro},
    })


def _seeg_runs(sfreqs=(500.0, 500.0)):
    """The simulated sEEG word trials and one Raw per run."""
    from brainalign.datasets.simulated_meeg import (
        generate_word_trials,
        planted_sources,
        simulate_seeg_run,
    )

    events = generate_word_trials(VOCAB, 2, 2, seed=0)
    Z = planted_sources(np.eye(len(events)), 2, seed=0)
    raws = []
    for run, sfreq in zip((1, 2), sfreqs):
        rows = (events["run"] == run).to_numpy()
        raws.append(simulate_seeg_run(events[rows], Z[rows], subject_index=0, run=run, sfreq=sfreq))
    return events, raws


def _fif(w: Workspace, sfreqs=(500.0, 500.0), constant: tuple[int, str, float] | None = None) -> tuple[Path, Path]:
    """The word table and ``raw/sub-01/run-<k>_raw.fif``.

    ``constant=(run, channel, value)`` sets every sample of one channel of one run to ``value``.
    """
    from brainalign.datasets.simulated_meeg import write_raw_fif

    events, raws = _seeg_runs(sfreqs)
    for run, raw in enumerate(raws, start=1):
        if constant is not None and constant[0] == run:
            raw.apply_function(lambda x: np.full_like(x, constant[2]), picks=[constant[1]])
        write_raw_fif(_fif_path(w, run), raw)
    return write_events(w.inputs / "events.tsv", events), w.inputs / "raw"


def _fif_path(w: Workspace, run: int) -> Path:
    return w.inputs / "raw" / "sub-01" / f"run-{run}_raw.fif"


def _epochs(config: Path, events: Path, w: Workspace, raw_dir: Path | None = None) -> list:
    argv = ["epochs", "--config", config, "--subject", "sub-01", "--events", events,
            "--out", w.results / "electro" / "epochs" / "sub-01.h5"]
    return argv + (["--raw-dir", raw_dir] if raw_dir is not None else [])


def _edf(w: Workspace) -> tuple[Path, Path]:
    """A BIDS iEEG dataset of EDF recordings (mne-bids), its config and the word table."""
    import mne_bids

    events, raws = _seeg_runs((200.0, 200.0))
    root = w.inputs / "ieeg bids"
    for run, raw in enumerate(raws, start=1):
        path = mne_bids.BIDSPath(subject="01", task="words", run=run, datatype="ieeg", root=root)
        mne_bids.write_raw_bids(raw, path, format="EDF", allow_preload=True, overwrite=True, verbose="error")
        tsv = path.copy().update(suffix="events", extension=".tsv").fpath
        table = pd.read_csv(tsv, sep="\t")
        table["word"] = table["trial_type"]
        table.to_csv(tsv, sep="\t", index=False)
    config = _electro_config(w, "meeg_bids", {"bids_dir": str(root), "datatype": "ieeg", "extension": ".edf"},
                             target_feature_set="m")
    return config, write_events(w.inputs / "events.tsv", events)


def _edf_path(w: Workspace, run: int = 1) -> Path:
    return w.inputs / "ieeg bids" / "sub-01" / "ieeg" / f"sub-01_task-words_run-{run}_ieeg.edf"


@case("fif-truncated", "electro")
def _(w):
    events, raw_dir = _fif(w)
    _truncate(_fif_path(w, 1), 0.3)
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 1),
                   ("cannot read this file as a raw recording", "truncated"))


@case("fif-not-a-recording", "electro")
def _(w):
    events, raw_dir = _fif(w)
    _fif_path(w, 2).write_text("onset\tword\n1.0\thouse\n")
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 2),
                   ("cannot read this file as a raw recording", "file id tag"))


@case("fif-sfreq-differs-between-runs", "electro")
def _(w):
    events, raw_dir = _fif(w, sfreqs=(500.0, 400.0))
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 2),
                   ("field sfreq", "400.0 Hz", "run-1_raw.fif", "500.0 Hz"))


@case("fif-unknown-bad-channel", "electro")
def _(w):
    events, raw_dir = _fif(w)
    return Failure(_epochs(_electro_config(w, bad_channels=["LZ9"]), events, w, raw_dir), _fif_path(w, 1),
                   ("electrophysiology.bad_channels", "'LZ9'"))


@case("fif-words-differ-from-events", "electro")
def _(w):
    events, raw_dir = _fif(w)
    table = events.read_text().replace("\thouse\t", "\tmouse\t", 1)
    events.write_text(table)
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 1),
                   ("annotations", "'house'", "'mouse'", "run 1"))


@case("fif-epochs-outside-recording", "electro")
def _(w):
    events, raw_dir = _fif(w)
    return Failure(_epochs(_electro_config(w, tmax=30.0), events, w, raw_dir), _fif_path(w, 1),
                   ("event 0", "tmax=30", "outside the recording"))


@case("fif-sfreq-too-low-for-high-gamma", "electro")
def _(w):
    events, raw_dir = _fif(w, sfreqs=(200.0, 200.0))
    return Failure(_epochs(_electro_config(w, high_gamma=[70.0, 150.0]), events, w, raw_dir), _fif_path(w, 1),
                   ("sfreq", "150", "Nyquist"))


@case("fif-nan-channel", "electro")
def _(w):
    events, raw_dir = _fif(w, constant=(2, "LA4", np.nan))
    return Failure(_epochs(_electro_config(w, detect_bad_channels=False), events, w, raw_dir), _fif_path(w, 2),
                   ("channel 'LA4'", "NaN", "electrophysiology.bad_channels"))


@case("fif-flat-channel-in-one-run", "electro")
def _(w):
    events, raw_dir = _fif(w, constant=(2, "LA5", 1e-6))
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 2),
                   ("field ch_names", "['LA5'] here", "run-1_raw.fif"))


@case("edf-truncated", "electro")
def _(w):
    config, events = _edf(w)
    _truncate(_edf_path(w, 2), 0.5)
    return Failure(_epochs(config, events, w), _edf_path(w, 2), ("header field 'number of data records'",
                                                                  "truncated"))


@case("edf-corrupt-header", "electro")
def _(w):
    config, events = _edf(w)
    data = bytearray(_edf_path(w, 1).read_bytes())
    data[252:256] = b"ab  "  # the header field "number of signals"
    _edf_path(w, 1).write_bytes(bytes(data))
    return Failure(_epochs(config, events, w), _edf_path(w, 1), ("header field 'number of signals'", "'ab'"))


@case("fif-epoch-crosses-recording-edge", "electro")
def _(w):
    events, raw_dir = _fif(w)  # run 1 lasts 13.04 s; its last word is at 9.04 s
    config = _electro_config(w, tmax=4.5, drop_edge_epochs=False)
    return Failure(_epochs(config, events, w, raw_dir), _fif_path(w, 1),
                   ("event 2", "outside the recording", "1 of 3", "electrophysiology.drop_edge_epochs: true"))


@case("fif-run-missing", "electro")
def _(w):
    events, raw_dir = _fif(w)
    _fif_path(w, 2).unlink()  # the epochs of run 1 alone used to be written: half the trials, exit 0
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 2),
                   ("does not exist", "run 2", "events.tsv", "runs recorded: [1]"))


@case("meeg-recording-missing-for-a-subject", "electro")
def _(w):
    import mne_bids

    config, events = _edf(w)
    _, raws = _seeg_runs((200.0, 200.0))
    path = mne_bids.BIDSPath(subject="02", task="words", run=1, datatype="ieeg", root=w.inputs / "ieeg bids")
    mne_bids.write_raw_bids(raws[0], path, format="EDF", allow_preload=True, overwrite=True, verbose="error")
    argv = ["epochs", "--config", config, "--subject", "sub-02", "--events", events,
            "--out", w.results / "electro" / "epochs" / "sub-02.h5"]
    missing = w.inputs / "ieeg bids" / "sub-02" / "ieeg" / "sub-02_task-words_run-2_ieeg.edf"
    return Failure(argv, missing, ("does not exist", "sub-01's sub-01_task-words_run-2_ieeg.edf", "run 2"))


def _edf_signal_field(path: Path, offset: int, signal: int, text: str) -> None:
    """Overwrite one 8-byte field of one signal's EDF header (``offset`` bytes per signal before the field)."""
    data = bytearray(path.read_bytes())
    n_signals = int(data[252:256])
    start = 256 + offset * n_signals + 8 * signal
    data[start:start + 8] = text.encode("ascii").ljust(8)
    path.write_bytes(bytes(data))


@case("edf-digital-range-zero", "electro")
def _(w):
    config, events = _edf(w)
    # Digital maximum = digital minimum of 'LA4': MNE read it tens of thousands of times too large, warning unheard.
    _edf_signal_field(_edf_path(w, 2), 128, 3, "-32767")
    return Failure(_epochs(config, events, w), _edf_path(w, 2),
                   ("'digital minimum' (-32767)", "'digital maximum' (-32767)", "channel 'LA4'"))


@case("edf-record-duration-differs-from-sidecar", "electro")
def _(w):
    config, events = _edf(w)
    data = bytearray(_edf_path(w, 1).read_bytes())
    data[244:252] = b"2       "  # "duration of a data record": 1 s → 2 s reads the run at half its rate
    _edf_path(w, 1).write_bytes(bytes(data))
    return Failure(_epochs(config, events, w), _edf_path(w, 1),
                   ("'duration of a data record'", "100 Hz", "sub-01_task-words_run-1_ieeg.json",
                    "'SamplingFrequency' = 200 Hz"))


@case("fif-all-channels-flat", "electro")
def _(w):
    from brainalign.datasets.simulated_meeg import write_raw_fif

    events, raw_dir = _fif(w)
    _, raws = _seeg_runs()
    raws[1].apply_function(lambda x: np.zeros_like(x), picks="data")
    write_raw_fif(_fif_path(w, 2), raws[1])
    return Failure(_epochs(_electro_config(w, detect_bad_channels=False), events, w, raw_dir), _fif_path(w, 2),
                   ("all 12 data channels are flat", "no signal"))


@case("fif-every-channel-bad", "electro")
def _(w):
    from brainalign.datasets.simulated_meeg import write_raw_fif

    events, raw_dir = _fif(w)
    _, raws = _seeg_runs()
    raws[0].apply_function(lambda x: np.zeros_like(x), picks="data")
    write_raw_fif(_fif_path(w, 1), raws[0])
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 1),
                   ("every one of the recording's 12 data channels is bad", "electrophysiology.detect_bad_channels"))


@case("fif-flat-channel-in-first-run", "electro")
def _(w):
    events, raw_dir = _fif(w, constant=(1, "LA5", 1e-6))  # the odd run is run 1, though run 2 is read later
    return Failure(_epochs(_electro_config(w), events, w, raw_dir), _fif_path(w, 1),
                   ("field ch_names", "['LA5'] here", "run-2_raw.fif"))


# =========================================================================== Alice: ROI time courses, TextGrid
N_ALICE = 362  # volumes of an Alice time course


def _textgrid(labels: list[str], tier: str = "word", step: float = 0.5) -> str:
    """A long-format TextGrid with one interval tier."""
    end = step * len(labels)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {end}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             f'        name = "{tier}"', "        xmin = 0", f"        xmax = {end}",
             f"        intervals: size = {len(labels)}"]
    for k, label in enumerate(labels):
        lines += [f"        intervals [{k + 1}]:", f"            xmin = {k * step}",
                  f"            xmax = {(k + 1) * step}", f'            text = "{label}"']
    return "\n".join(lines) + "\n"


def _matrix_text(matrix: np.ndarray) -> str:
    return "".join(" ".join(f"{v: .7e}" for v in row) + "\n" for row in matrix)


def _alice(w: Workspace, textgrid: str | None = None, **dataset) -> Path:
    """A fake Alice folder (the authors' layout, two subjects) and its config."""
    rng = np.random.default_rng(0)
    root = w.inputs / "alice"
    data = root / "alice_data_shared"
    (data / "6mm").mkdir(parents=True)
    for subject in ("s1", "s2"):
        (data / "6mm" / f"{subject}-timecourses.txt").write_text(_matrix_text(100 + rng.standard_normal((N_ALICE, 6))))
        (data / f"{subject}-rp_run01.txt").write_text(_matrix_text(rng.standard_normal((N_ALICE + 10, 6))))
    (root / "alice_stim_shared").mkdir()
    _alice_textgrid(w).write_text(textgrid or _textgrid(["Alice", "was", "beginning"]), encoding="utf-8")
    return w.config({"dataset": {"name": "alice", "kind": "alice", "data_dir": str(root), **dataset},
                     "feature_sets": {"word_rate": {"kind": "word_rate"}}})


def _alice_textgrid(w: Workspace) -> Path:
    return w.inputs / "alice" / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"


def _timecourses(w: Workspace, subject: str = "s1") -> Path:
    return w.inputs / "alice" / "alice_data_shared" / "6mm" / f"{subject}-timecourses.txt"


# =========================================================================== HDF5 contracts
def _events(w: Workspace, n_words: int = 5) -> Path:
    events = pd.DataFrame({"onset": 20.0 + 0.4 * np.arange(n_words), "duration": 0.3,
                           "word": [f"w{i}" for i in range(n_words)], "run": 1})
    return write_events(w.inputs / "events.tsv", events)


def _features(w: Workspace, layers: dict[str, np.ndarray], name: str = "word_rate.h5", model: str = "word_rate",
              kind: str = "features") -> Path:
    return write_features(w.inputs / name, Features(layers, model), {}, kind=kind)


def _responses_file(w: Workspace, subject: str, n: int = 120, nan: bool = False) -> Path:
    data = np.random.default_rng(1).standard_normal((n, 2))
    if nan:
        data[17, 1] = np.nan
    return write_responses(w.inputs / f"{subject}.h5", Responses(data, 2.0, 2.0 * np.arange(n), np.ones(n),
                                                                 ["A", "B"], ["A", "B"], subject), {})


def _design(config: Path, events: Path, features: Path, w: Workspace) -> list:
    return ["design", "--config", config, "--events", events, "--features", features,
            "--out", w.results / "alice" / "designs" / "word_rate.h5"]


def _ceiling(config: Path, responses: list[Path], w: Workspace) -> list:
    return ["ceiling", "--config", config, "--responses", *responses, "--out", w.results / "alice" / "ceiling.csv"]


def _score(config: Path, design: Path, responses: list[Path], w: Workspace) -> list:
    return ["score", "--config", config, "--design", design, "--responses", *responses,
            "--out", w.results / "alice" / "scores" / "word_rate.csv"]


def _ones(n: int, k: int = 1) -> np.ndarray:
    return np.ones((n, k), np.float32)


@case("hdf5-truncated", "hdf5")
def _(w):
    feats = _features(w, {"0": _ones(5)})
    _truncate(feats, 0.5)
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("not a readable HDF5 file", "truncated file"))


@case("hdf5-not-hdf5", "hdf5")
def _(w):
    feats = w.inputs / "word_rate.h5"
    feats.write_text("onset\tword\n1.0\tAlice\n")
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("not a readable HDF5 file", "file signature not found"))


@case("hdf5-wrong-contract", "hdf5")
def _(w):
    design = _features(w, {"0": _ones(120)}, "design.h5", kind="design")
    return Failure(_ceiling(_alice(w), [design, design], w), design, ("attribute 'contract'", "responses/1"))


@case("hdf5-missing-layer", "hdf5")
def _(w):
    feats = _features(w, {"0": _ones(5), "1": _ones(5)})
    with h5py.File(feats, "a") as f:
        del f["layers/1"]
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("dataset 'layers/1'", "missing"))


@case("hdf5-missing-attribute", "hdf5")
def _(w):
    feats = _features(w, {"0": _ones(5)})
    with h5py.File(feats, "a") as f:
        del f.attrs["layer_order"]
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("attribute 'layer_order'", "missing"))


@case("hdf5-nan-features", "hdf5")
def _(w):
    values = _ones(5, 3)
    values[2, 1] = np.nan
    feats = _features(w, {"0": values})
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("dataset 'layers/0'", "NaN", "row=2"))


@case("hdf5-nan-responses", "hdf5")
def _(w):
    good, bad = _responses_file(w, "s1"), _responses_file(w, "s2", nan=True)
    return Failure(_ceiling(_alice(w), [good, bad], w), bad, ("dataset 'data'", "NaN", "row=17"))


@case("hdf5-wrong-shape", "hdf5")
def _(w):
    feats = _features(w, {"0": np.ones((5, 2, 2), np.float32)})
    return Failure(_design(_alice(w), _events(w), feats, w), feats, ("dataset 'layers/0'", "(5, 2, 2)", "2-D"))


@case("hdf5-rows-differ-from-events", "hdf5")
def _(w):
    feats = _features(w, {"0": _ones(5), "1": _ones(6)})
    events = _events(w, 5)
    return Failure(_design(_alice(w), events, feats, w), feats, ("layers/1", "6 rows", "events.tsv", "5 words"))


@case("hdf5-design-volumes-differ-from-responses", "hdf5")
def _(w):
    design = _features(w, {"0": _ones(100)}, "design.h5", kind="design")
    responses = [_responses_file(w, s) for s in ("s1", "s2")]
    return Failure(_score(_alice(w), design, responses, w), design, ("layer '0'", "100 volumes", "120"))


@case("hdf5-design-of-unconfigured-feature-set", "hdf5")
def _(w):
    design = _features(w, {"0": _ones(120)}, "design.h5", model="gpt2", kind="design")
    return Failure(_score(_alice(w), design, [_responses_file(w, "s1")], w), design, ("attribute 'model'", "'gpt2'"))


@case("hdf5-samples-differ-between-subjects", "hdf5")
def _(w):
    first, second = _responses_file(w, "s1", n=120), _responses_file(w, "s2", n=110)
    return Failure(_ceiling(_alice(w), [first, second], w), second, ("dataset 'data'", "110 samples", "120"))


@case("hdf5-responses-file-given-twice", "hdf5")
def _(w):
    first = _responses_file(w, "s1")
    return Failure(_ceiling(_alice(w), [first, _responses_file(w, "s2"), first], w), first,
                   ("given twice", "once"))


@case("hdf5-subject-in-two-files", "hdf5")
def _(w):
    first = _responses_file(w, "s1")
    copy = w.inputs / "s2.h5"
    copy.write_bytes(first.read_bytes())  # a copy under another subject's name: its attribute says s1
    return Failure(_score(_alice(w), _features(w, {"0": _ones(120)}, "design.h5", kind="design"), [first, copy], w),
                   copy, ("attribute 'subject'", "'s1'", str(first)))


@case("hdf5-units-differ-between-subjects", "hdf5")
def _(w):
    first, second = _responses_file(w, "s1"), _responses_file(w, "s2")
    with h5py.File(second, "a") as f:
        f.attrs["unit_names"] = '["B", "A"]'
    return Failure(_ceiling(_alice(w), [first, second], w), second,
                   ("attribute 'unit_names'", "another order", "unit 0 is 'B' here, 'A' there", "s1.h5"))


# =========================================================================== TextGrid and events tables
def _features_cmd(config: Path, events: Path, w: Workspace) -> list:
    return ["features", "--config", config, "--events", events, "--feature-set", "word_rate",
            "--out", w.results / "alice" / "features" / "word_rate.h5", "--no-progress"]


def _events_text(w: Workspace, text: str | bytes) -> Path:
    path = w.inputs / "my events.tsv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _alice_stimuli(config: Path, w: Workspace) -> list:
    return ["stimuli", "--config", config, "--out", w.results / "alice" / "events.tsv"]


HEADER = "onset\tduration\tword\trun\n"


@case("textgrid-no-word-tier", "events")
def _(w):
    config = _alice(w, _textgrid(["AE1", "L"], tier="phone"))
    return Failure(_alice_stimuli(config, w), _alice_textgrid(w), ("no tier named 'word'", "'phone'"))


@case("textgrid-truncated", "events")
def _(w):
    text = _textgrid(["Alice", "was", "beginning", "to", "get"])
    config = _alice(w, text[: text.index('text = "beginning"') + 12])
    return Failure(_alice_stimuli(config, w), _alice_textgrid(w), ("tier 1 ('word')", "interval 3", "truncated"))


@case("textgrid-bad-number", "events")
def _(w):
    config = _alice(w, _textgrid(["Alice", "was", "beginning"]).replace("xmin = 0.5", "xmin = O.5"))
    return Failure(_alice_stimuli(config, w), _alice_textgrid(w), ("interval 2", "field 'xmin'", "line 20"))


@case("textgrid-not-utf8", "events")
def _(w):
    config = _alice(w)
    _alice_textgrid(w).write_bytes(_textgrid(["Alice", "caf\u00e9"]).encode("latin-1"))
    return Failure(_alice_stimuli(config, w), _alice_textgrid(w), ("not UTF-8/UTF-16 text", "byte 0xe9 at line 22"))


@case("events-missing-file", "events")
def _(w):
    missing = w.inputs / "nope_events.tsv"
    return Failure(_features_cmd(_alice(w), missing, w), missing, ("events file", "does not exist"))


@case("events-header-only", "events")
def _(w):
    events = _events_text(w, HEADER)
    return Failure(_features_cmd(_alice(w), events, w), events, ("events table is empty", "no rows"))


@case("events-missing-column", "events")
def _(w):
    events = _events_text(w, "onset\tduration\trun\n1.0\t0.3\t1\n")
    return Failure(_features_cmd(_alice(w), events, w), events, ("missing required column(s) ['word']",))


@case("events-duplicated", "events")
def _(w):
    events = _events_text(w, HEADER + "1.0\t0.3\tthe\t1\n1.5\t0.3\tcat\t1\n1.5\t0.3\tcat\t1\n2.0\t0.3\tsat\t1\n")
    return Failure(_features_cmd(_alice(w), events, w), events, ("'cat'", "row 1 (line 3)", "row 2 (line 4)",
                                                                 "duplicated"))


@case("events-onset-decreases", "events")
def _(w):
    events = _events_text(w, HEADER + "1.0\t0.3\tthe\t1\n2.0\t0.3\tcat\t1\n1.5\t0.3\tsat\t1\n")
    return Failure(_features_cmd(_alice(w), events, w), events, ("column 'onset' decreases", "row 2 (line 4)"))


@case("events-nan-onset", "events")
def _(w):
    events = _events_text(w, HEADER + "1.0\t0.3\tthe\t1\nn/a\t0.3\tcat\t1\n")
    return Failure(_features_cmd(_alice(w), events, w), events, ("column 'onset' is NaN", "row 1 (line 3)"))


@case("events-negative-duration", "events")
def _(w):
    events = _events_text(w, HEADER + "1.0\t-0.3\tthe\t1\n")
    return Failure(_features_cmd(_alice(w), events, w), events, ("column 'duration' is negative", "row 0 (line 2)"))


@case("events-not-utf8", "events")
def _(w):
    events = _events_text(w, (HEADER + "1.0\t0.3\tthe\t1\n2.0\t0.3\tcaf\u00e9\t1\n").encode("latin-1"))
    return Failure(_features_cmd(_alice(w), events, w), events, ("not UTF-8 text", "byte 0xe9 at line 3"))


@case("bids-events-after-end-of-run", "events")
def _(w):
    config = _bids(w)
    events = _bids_events(w.inputs / "bids", run=2)
    table = pd.read_csv(events, sep="\t")
    table.loc[len(table)] = [70.5, 0.3, "late"]
    table.to_csv(events, sep="\t", index=False)
    return Failure(_stimuli(config, w), events, ("column 'onset'", "'late'", "70.500 s", "after the end"))


@case("bids-events-missing-word-column", "events")
def _(w):
    config = _bids(w)
    events = _bids_events(w.inputs / "bids", "sub-01", 2)
    pd.read_csv(events, sep="\t").drop(columns="word").to_csv(events, sep="\t", index=False)
    return Failure(_stimuli(config, w), events, ("column 'word'",))


@case("meeg-events-missing-word-column", "events")
def _(w):
    config, _ = _edf(w)
    events = _edf_path(w, 2).with_name("sub-01_task-words_run-2_events.tsv")
    pd.read_csv(events, sep="\t").drop(columns=["word", "trial_type"]).to_csv(events, sep="\t", index=False)
    return Failure(["stimuli", "--config", config, "--out", w.results / "electro" / "events.tsv"], events,
                   ("'word' column", "dataset.word_column"))


def _tagged_edf(w: Workspace, category: str, **dataset) -> tuple[Path, Path]:
    """The BIDS iEEG dataset with mne-bids-style tags ``<category>/<word>`` in trial_type (no word column)."""
    _edf(w)
    for run in (1, 2):
        events = _edf_path(w, run).with_name(f"sub-01_task-words_run-{run}_events.tsv")
        table = pd.read_csv(events, sep="\t")
        table["trial_type"] = category + "/" + table.pop("word")
        table.to_csv(events, sep="\t", index=False)
    config = _electro_config(w, "meeg_bids", {"bids_dir": str(w.inputs / "ieeg bids"), "datatype": "ieeg",
                                              "extension": ".edf", **dataset}, target_feature_set="m")
    return config, _edf_path(w, 1).with_name("sub-01_task-words_run-1_events.tsv")


@case("meeg-events-tags-without-category", "events")
def _(w):
    config, events = _tagged_edf(w, "word", word_column="trial_type")
    return Failure(["stimuli", "--config", config, "--out", w.results / "electro" / "events.tsv"], events,
                   ("column 'trial_type'", "'word/music'", "categories found: ['word']", "dataset.event_category"))


@case("meeg-events-no-word-category", "events")
def _(w):
    config, events = _tagged_edf(w, "stim", event_category="word")
    return Failure(["stimuli", "--config", config, "--out", w.results / "electro" / "events.tsv"], events,
                   ("column 'trial_type'", "category 'word'", "categories found: ['stim']"))


@case("bids-events-decimal-comma", "events")
def _(w):
    config = _bids(w)
    events = _bids_events(w.inputs / "bids", run=2)
    table = pd.read_csv(events, sep="\t", dtype=str)
    table.loc[3, "onset"] = "4,7"  # was skipped as an untimed word, with an INFO line only
    table.to_csv(events, sep="\t", index=False)
    return Failure(_stimuli(config, w), events, ("column 'onset'", "row 3 (line 5)", "'4,7'", "decimal comma"))


@case("meeg-events-decimal-comma", "events")
def _(w):
    config, _ = _edf(w)
    events = _edf_path(w, 1).with_name("sub-01_task-words_run-1_events.tsv")
    table = pd.read_csv(events, sep="\t", dtype=str)
    table.loc[1, "onset"] = "7,5"
    table.to_csv(events, sep="\t", index=False)
    return Failure(["stimuli", "--config", config, "--out", w.results / "electro" / "events.tsv"], events,
                   ("column 'onset'", "row 1 (line 3)", "'7,5'", "decimal comma"))


@case("events-word-after-end-of-run", "events")
def _(w):
    events = _events(w)
    table = pd.read_csv(events, sep="\t")
    table.loc[4, "onset"] = 5000.0  # Alice's run ends at 744 s: the design used to leave the word out
    events.write_text(table.to_csv(sep="\t", index=False))
    return Failure(_design(_alice(w), events, _features(w, {"0": _ones(5)}), w), events,
                   ("column 'onset'", "'w4'", "row 4 (line 6)", "5000.000 s", "run 1", "744.000 s"))


# =========================================================================== configs
def _valid_config() -> dict:
    return {"dataset": {"name": "x", "kind": "simulated"},
            "simulation": {"planted_feature_set": "m", "planted_layer": "0"},
            "feature_sets": {"m": {"kind": "transformer", "layers": [0]}, "word_rate": {"kind": "word_rate"}}}


def _validate(config: Path) -> list:
    return ["validate", "--config", config]


def _config_text(w: Workspace, text: str | bytes) -> Path:
    path = w.inputs / "my config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@case("config-unknown-key", "config")
def _(w):
    config = w.config({**_valid_config(), "encodr": {"gap": 3}})
    return Failure(_validate(config), config, ("field 'encodr'", "unknown key", "Did you mean 'encoder'?"))


@case("config-wrong-type", "config")
def _(w):
    config = w.config({**_valid_config(), "encoder": {"outer_folds": "five"}})
    return Failure(_validate(config), config, ("field 'encoder.outer_folds'", "'five'", "integer"))


@case("config-out-of-range", "config")
def _(w):
    config = w.config({**_valid_config(), "encoder": {"gap": -1}})
    return Failure(_validate(config), config, ("field 'encoder.gap'", "minimum"))


@case("config-missing-key", "config")
def _(w):
    cfg = _valid_config()
    del cfg["dataset"]["kind"]
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'dataset.kind'", "required"))


@case("config-inconsistent-fields", "config")
def _(w):
    cfg = _valid_config()
    cfg["simulation"]["planted_layer"] = "7"
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'simulation.planted_layer'", "'7'"))


@case("config-malformed-yaml", "config")
def _(w):
    config = _config_text(w, "dataset:\n  name: x\n  kind: [simulated\nthreads: 1\n")
    return Failure(_validate(config), config, ("not valid YAML", "line 4"))


@case("config-not-utf8", "config")
def _(w):
    config = _config_text(w, "# caf\u00e9 study\ndataset:\n  name: x\n".encode("latin-1"))
    return Failure(_validate(config), config, ("not UTF-8 text", "byte 0xe9 at line 1"))


@case("config-file-missing", "config")
def _(w):
    config = w.inputs / "no such config.yaml"
    return Failure(_validate(config), config, ("--config", "does not exist"))


@case("config-data-dir-missing", "config")
def _(w):
    config = w.config({"dataset": {"name": "alice", "kind": "alice", "data_dir": str(w.inputs / "nowhere")},
                       "feature_sets": {"word_rate": {"kind": "word_rate"}}})
    return Failure(["subjects", "--config", config], config, ("field 'dataset.data_dir'", "nowhere",
                                                              "does not exist"))


@case("config-bids-dir-missing", "config")
def _(w):
    config = w.config({"dataset": {"name": "tiny", "kind": "bids", "bids_dir": str(w.inputs / "nowhere"),
                                   "task": TASK},
                       "feature_sets": {"word_rate": {"kind": "word_rate"}}})
    return Failure(["subjects", "--config", config], config, ("field 'dataset.bids_dir'", "nowhere"))


@case("config-unknown-subject", "config")
def _(w):
    config = _alice(w, subjects=["s1", "s99"])
    return Failure(["subjects", "--config", config], config, ("field 'dataset.subjects'", "'s99'"))


@case("config-workflow-override", "config")
def _(w):
    config = _config_text(w, (REPO / "workflows" / "configs" / "simulated_ci.yaml").read_text())
    return Failure(["--configfile", config, "--config", "threads=two"], config, ("field 'threads'", "'two'"),
                   workflow=True)


@case("config-single-run-single-sentence", "config")
def _(w):
    _edf(w)
    events = _edf_path(w, 1).with_name("sub-01_task-words_run-1_events.tsv")
    table = pd.read_csv(events, sep="\t")
    table["onset"] = [2.0, 2.5, 3.0]  # no pause longer than 1 s: one sentence
    table.to_csv(events, sep="\t", index=False)
    config = _electro_config(w, "meeg_bids", {"bids_dir": str(w.inputs / "ieeg bids"), "datatype": "ieeg",
                                              "extension": ".edf", "runs": [1]}, target_feature_set="m")
    return Failure(["stimuli", "--config", config, "--out", w.results / "electro" / "events.tsv"], config,
                   ("field 'electrophysiology.test_runs'", "single run (run 1, 3 words", "single sentence"))


@case("config-feature-set-name-collides", "config")
def _(w):
    cfg = _valid_config()
    cfg["feature_sets"] = {**cfg["feature_sets"], "random": {"kind": "random_embedding", "seeds": [0]},
                           "random_seed0": {"kind": "word_rate"}}
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'feature_sets.random_seed0'", "'random_seed0'",
                                               "feature_sets.random ", "rename one"))


_VALID_TEXT = """\
dataset:
  name: x
  kind: simulated
simulation:
  planted_feature_set: m
  planted_layer: "0"
feature_sets:
  m: {kind: transformer, layers: [0]}
  word_rate: {kind: word_rate}
"""


@case("config-yte-template", "config")
def _(w):
    # Snakemake's --configfile would run this template's Python while loading it.
    config = _config_text(w, "__use_yte__: true\n" + _VALID_TEXT
                          + "?if __import__('os').system('touch pwned') == 0:\n  threads: 1\n")
    return Failure(_validate(config), config, ("field '__use_yte__'", "YTE templates are not accepted",
                                               "brainalign run"))


@case("config-workflow-yte-template", "config")
def _(w):
    config = _config_text(w, "__use_yte__: true\n" + _VALID_TEXT)
    return Failure(["--config", f"config_path={config}"], config, ("field '__use_yte__'", "YTE templates"),
                   workflow=True)


@case("config-yaml-aliases", "config")
def _(w):
    # "Billion laughs": nine levels of nine aliases expand to 10**9 values (2 GB, 98 s before).
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    config = _config_text(w, _VALID_TEXT + "bomb:\n" + "".join(f"  {line}\n" for line in lines))
    return Failure(_validate(config), config, ("field 'bomb.a0'", "anchor '&a0' at line 11",
                                               "anchors and aliases are not accepted"))


@case("config-duplicate-key", "config")
def _(w):
    config = _config_text(w, _VALID_TEXT + "encoder:\n  outer_folds: 3\nencoder:\n  outer_folds: 4\n")
    return Failure(_validate(config), config, ("field 'encoder'", "given twice, at lines 10 and 12"))


@case("config-key-not-text", "config")
def _(w):
    config = _config_text(w, _VALID_TEXT.replace("simulation:\n", "simulation:\n  rois:\n    yes: 0.3\n"))
    return Failure(_validate(config), config, ("field 'simulation.rois.yes'", "read by YAML as the bool True",
                                               "quote it"))


@case("config-number-not-finite", "config")
def _(w):
    config = _config_text(w, _VALID_TEXT.replace("simulation:\n", "simulation:\n  tr: .nan\n"))
    return Failure(_validate(config), config, ("field 'simulation.tr'", "must be a finite number", "nan"))


@case("config-roi-value-not-finite", "config")
def _(w):
    config = _config_text(w, _VALID_TEXT.replace("simulation:\n", "simulation:\n  rois: {ROI_A: .nan}\n"))
    return Failure(_validate(config), config, ("field 'simulation.rois.ROI_A'", "must be a finite number"))


@case("config-number-too-large", "config")
def _(w):
    config = w.config({**_valid_config(), "simulation": {**_valid_config()["simulation"],
                                                          "n_words": 99999999999999999999999}})
    return Failure(_validate(config), config, ("field 'simulation.n_words'", "500000"))


@case("config-threads-too-large", "config")
def _(w):
    config = w.config({**_valid_config(), "threads": 10**9})
    return Failure(_validate(config), config, ("field 'threads'", "1024"))


@case("config-alphas-not-finite", "config")
def _(w):
    config = _config_text(w, _VALID_TEXT + "encoder:\n  alphas: [1.0, .inf]\n")
    return Failure(_validate(config), config, ("field 'encoder.alphas.1'", "must be a finite number"))


@case("config-layer-out-of-range", "config")
def _(w):
    cfg = _valid_config()
    cfg["feature_sets"]["m"]["layers"] = [0, 99]
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'feature_sets.m.layers'", "[99] out of range",
                                               "hidden states 0..6"))


@case("config-dataset-name-unsafe", "config")
def _(w):
    config = w.config({**_valid_config(), "dataset": {"name": "..", "kind": "simulated"}})
    return Failure(_validate(config), config, ("field 'dataset.name'", "'..' is not allowed",
                                               "start with a letter or digit"))


@case("config-feature-set-name-unsafe", "config")
def _(w):
    cfg = _valid_config()
    cfg["feature_sets"]["../../../../x"] = {"kind": "word_rate"}
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'feature_sets'", "'../../../../x' is not allowed",
                                               "under results/"))


@case("config-feature-set-name-option", "config")
def _(w):
    cfg = _valid_config()
    cfg["feature_sets"]["-h"] = {"kind": "word_rate"}
    config = w.config(cfg)
    return Failure(_validate(config), config, ("field 'feature_sets'", "'-h' is not allowed"))


@case("config-roi-name-empty", "config")
def _(w):
    config = w.config({**_valid_config(), "simulation": {**_valid_config()["simulation"], "rois": {"": 0.3}}})
    return Failure(_validate(config), config, ("field 'simulation.rois'", "the name '' is not allowed"))


@case("config-workflow-dataset-name-unsafe", "config")
def _(w):
    config = w.config({**_valid_config(), "dataset": {"name": "..", "kind": "simulated"}})
    return Failure(["--config", f"config_path={config}"], config, ("field 'dataset.name'", "'..' is not allowed"),
                   workflow=True)


# =========================================================================== other text files
def _alice_responses(config: Path, w: Workspace) -> list:
    return ["responses", "--config", config, "--subject", "s1", "--out", w.results / "alice" / "s1.h5"]


def _replace_line(path: Path, index: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = new + "\n"
    path.write_text("".join(lines))


@case("text-timecourses-missing", "text")
def _(w):
    config = _alice(w)
    _timecourses(w).unlink()
    return Failure(_alice_responses(config, w), _timecourses(w), ("time-course file", "does not exist"))


@case("text-timecourses-columns", "text")
def _(w):
    config = _alice(w)
    _replace_line(_timecourses(w), 4, "1.0 2.0 3.0 4.0 5.0")
    return Failure(_alice_responses(config, w), _timecourses(w), ("row 4 (line 5)", "5 column(s), expected 6"))


@case("text-timecourses-nan", "text")
def _(w):
    config = _alice(w)
    _replace_line(_timecourses(w), 9, "100.0 101.0 nan 99.0 100.5 100.2")
    return Failure(_alice_responses(config, w), _timecourses(w), ("column 'LPTL'", "NaN", "row 9 (line 10)"))


@case("tsv-confounds-missing", "text")
def _(w):
    config = _bids(w)
    _confounds(w.inputs / "bids", "sub-02", 2).unlink()
    return Failure(_responses(config, w, "sub-02"), _bold(w.inputs / "bids", "sub-02", 2),
                   ("confounds", "preprocessing.confounds"))


@case("tsv-confounds-rows", "text")
def _(w):
    config = _bids(w)
    tsv = _confounds(w.inputs / "bids", run=2)
    pd.read_csv(tsv, sep="\t").iloc[:-3].to_csv(tsv, sep="\t", index=False)
    return Failure(_responses(config, w), tsv, (f"{N_VOL - 3} rows", f"{N_VOL} volumes"))


@case("tsv-confounds-scrubbed-away", "text")
def _(w):
    cfg = yaml.safe_load(_bids(w).read_text(encoding="utf-8"))
    cfg["preprocessing"]["fmriprep_confounds"].update(strategy=["motion", "scrub"], fd_threshold=0.5)
    for run in (1, 2):  # the head moves 0.9 mm at every volume: scrubbing flags them all
        tsv = _confounds(w.inputs / "bids", run=run)
        table = pd.read_csv(tsv, sep="\t")
        table["framewise_displacement"] = [np.nan] + [0.9] * (N_VOL - 1)
        table["std_dvars"] = [np.nan] + [1.0] * (N_VOL - 1)
        table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    return Failure(_responses(w.config(cfg), w), _confounds(w.inputs / "bids", run=1),
                   ("fd_threshold = 0.5 mm", "std_dvars_threshold", f"censors {N_VOL} of the run's {N_VOL} volumes",
                    "leaving 0", f"at least {N_VOL // 2} must remain"))


def _edit_confounds(w: Workspace, row: int, column: str, value: str) -> Path:
    tsv = _confounds(w.inputs / "bids", "sub-01", 2)
    table = pd.read_csv(tsv, sep="\t", dtype=str)
    table.loc[row, column] = value
    table.to_csv(tsv, sep="\t", index=False)
    return tsv


@case("tsv-confounds-text-value", "text")
def _(w):
    config = _bids(w)
    tsv = _edit_confounds(w, 5, "trans_z", "abc")  # was a bare TypeError from nilearn
    return Failure(_responses(config, w), tsv, ("column 'trans_z'", "not a number", "row 5 (line 7)", "'abc'"))


@case("tsv-confounds-infinite", "text")
def _(w):
    config = _bids(w)
    tsv = _edit_confounds(w, 9, "rot_y", "inf")  # was blamed on the BOLD file, in scikit-learn's words
    return Failure(_responses(config, w), tsv, ("column 'rot_y'", "infinite", "row 9 (line 11)"))


@case("tsv-confounds-empty", "text")
def _(w):
    config = _bids(w)
    tsv = _confounds(w.inputs / "bids", "sub-01", 2)
    tsv.write_text("")
    return Failure(_responses(config, w), tsv, ("confounds TSV is empty",))


@case("tsv-confounds-not-utf8", "text")
def _(w):
    config = _bids(w)
    tsv = _confounds(w.inputs / "bids", "sub-01", 2)
    text = tsv.read_text().replace("rot_z", "rot_z_caf\u00e9", 1)
    tsv.write_bytes(text.encode("latin-1"))
    return Failure(_responses(config, w), tsv, ("confounds TSV is not UTF-8 text", "byte 0xe9 at line 1"))


# =========================================================================== language models
def _reading_config(w: Workspace, corpus: Path | None = None, **language) -> Path:
    data = w.inputs / "natural stories"
    data.mkdir(exist_ok=True)
    cfg = {"dataset": {"name": "ns", "kind": "naturalstories", "data_dir": str(data)},
           "language": {"corpus": None if corpus is None else str(corpus),
                        "models": {"lstm": {"architecture": "lstm", "params": {"n_layers": 1, "n_heads": 1,
                                                                              "head_dim": 4}}}, **language}}
    return w.config(cfg)


def _train_lm(config: Path, w: Workspace) -> list:
    return ["train-lm", "--config", config, "--model", "lstm", "--out", w.results / "lm" / "lstm.safetensors",
            "--history", w.results / "lm" / "lstm_history.csv"]


@case("corpus-not-utf8", "language")
def _(w):
    corpus = w.inputs / "corpus caf\u00e9.txt"
    corpus.write_bytes("the caf\u00e9 was open .\nthe cat sat .".encode("latin-1"))
    config = _reading_config(w, corpus)
    return Failure(_train_lm(config, w), corpus, ("corpus text is not UTF-8", "byte 0xe9 at line 1"))


@case("corpus-no-text", "language")
def _(w):
    corpus = w.inputs / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("   \n")
    config = _reading_config(w, corpus)
    return Failure(_train_lm(config, w), corpus, ("holds no text",))


@case("corpus-bad-tag", "language")
def _(w):
    corpus = w.inputs / "brown.txt"
    corpus.write_text("The/at jury/nn said/vbd Friday ./.")
    config = _reading_config(w, corpus, corpus_format="tagged")
    return Failure(_train_lm(config, w), corpus, ("'Friday'", "word/tag"))


@case("checkpoint-not-safetensors", "language")
def _(w):
    config = _reading_config(w, w.inputs / "unused corpus.txt")
    words = w.inputs / "words.csv"
    words.write_text("story,zone,word\n1,1,If\n")
    checkpoint = w.inputs / "lstm.safetensors"
    checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    return Failure(["surprisal", "--config", config, "--model", "lstm", "--words", words, "--checkpoint", checkpoint,
                    "--out", w.results / "surprisal" / "lstm.csv"], checkpoint, ("not a safetensors file",))


# =========================================================================== the tests
@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "in put ' \u00e4")
    w.inputs.mkdir(parents=True)
    w.results.mkdir()
    (w.results / "earlier.csv").write_text("kept\n")
    (w.results / ".hidden").write_text("kept\n")
    return w


def _run_workflow(w: Workspace, argv: list) -> tuple[int, str]:
    """``python -m snakemake`` with its working directory beside ``results/`` (no job runs)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
                           "-n", "-d", str(w.root), *map(str, argv)],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, workspace: Workspace, capsys):
    failure = case.build(workspace)
    before = _listing(workspace.results)
    if failure.workflow:
        status, err = _run_workflow(workspace, failure.argv)
    else:
        status = main([str(a) for a in failure.argv])
        captured = capsys.readouterr()
        err = captured.err
        assert status == 2, err
        assert "brainalign: error:" in err
        assert captured.out == ""
    assert status != 0, err
    assert str(failure.file) in err, f"{failure.file} not named in {err!r}"
    for text in failure.fields:
        assert text in err, f"{text!r} not in {err!r}"
    assert _listing(workspace.results) == before


# --------------------------------------------------------------------------- catalogue == tests
def _catalogue() -> dict[str, list[str]]:
    """The ids of docs/errors.md, by the section (input type) they are listed in."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current is not None and (match := re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|", line)):
            sections[current].append(match.group(1))
    return sections


def test_catalogue_matches_the_docs():
    sections = _catalogue()
    assert set(TYPES.values()) <= set(sections), sorted(sections)
    documented = [i for ids in sections.values() for i in ids]
    tested = [c.id for c in CASES]
    assert len(documented) == len(set(documented)), "an id is listed twice in docs/errors.md"
    assert len(tested) == len(set(tested)), "an id is used twice in the tests"
    assert sorted(documented) == sorted(tested)
    for c in CASES:
        assert c.id in sections[TYPES[c.kind]], f"{c.id} is not in the section {TYPES[c.kind]!r}"
    for kind in ("nifti", "electro", "hdf5", "events", "config"):
        assert len(sections[TYPES[kind]]) >= 4, TYPES[kind]
    assert len(documented) >= 30
