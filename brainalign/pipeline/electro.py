"""Electrophysiology stages: simulate → epochs → contrastive segment identification or sEEG word decoding.

Data flow (docs/electrophysiology.md)::

    raw recordings (FIF, or anything MNE/mne-bids reads)
      └─ run_epochs: bad channels → re-reference (sEEG) → band-pass → high-gamma
         envelope (sEEG) → resample → word-locked epochs with baseline   epochs/<subject>.h5
    stimuli/events.tsv + features/<set>.h5 (word embeddings)
      ├─ run_contrastive (MEG/EEG): per-subject robust scaling fitted on the
      │  training runs, clamp, contrastive brain module, top-k identification
      │  among the unique held-out segments                              decoding/*
      └─ run_word_decoding (sEEG): per-subject z-scoring fitted on the training
         runs, Du-IN-style classifier, accuracy and confusion matrix      decoding/*

Test data are whole runs (stories, or blocks of isolated-word trials), never
random windows; the validation split for early stopping holds out whole
sentences of the training runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .._validation import ConfigError, InputFileError
from ..io import _json, _open_h5, atomic_path, provenance, read_features, write_table, write_text

__all__ = [
    "ELECTRO_KINDS",
    "Epochs",
    "electro_events",
    "electro_modality",
    "electro_subjects",
    "read_epochs",
    "run_contrastive",
    "run_epochs",
    "run_simulate_electro",
    "run_word_decoding",
    "target_set",
]

#: Dataset kinds handled by this module.
ELECTRO_KINDS = ("simulated_meeg", "simulated_seeg", "meeg_bids")
EPOCHS_CONTRACT = "epochs/1"


def electro_modality(cfg: dict[str, Any]) -> str:
    """``"seeg"`` for sEEG/ECoG datasets (word classification), ``"meeg"`` for MEG/EEG (segment identification)."""
    ds = cfg["dataset"]
    return "seeg" if ds["kind"] == "simulated_seeg" or ds.get("datatype") == "ieeg" else "meeg"


def electro_subjects(cfg: dict[str, Any]) -> list[str]:
    """``sub-XX`` labels of the dataset: the simulated subjects, or those of the BIDS folder with recordings."""
    ds = cfg["dataset"]
    if ds["kind"] == "meeg_bids":
        from ..datasets.meeg_bids import list_meeg_subjects

        return list_meeg_subjects(ds)
    return [f"sub-{k + 1:02d}" for k in range(cfg["simulation"]["n_subjects"])]


def target_set(cfg: dict[str, Any]) -> tuple[str, str]:
    """(feature set instance, layer) whose word embeddings the decoders target."""
    ep = cfg["electrophysiology"]
    name = ep["target_feature_set"] or cfg["simulation"]["planted_feature_set"]
    layer = ep["target_layer"] or cfg["simulation"]["planted_layer"]
    return name, str(layer)


def electro_events(cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
    """The dataset's word table (``onset``, ``duration``, ``word``, ``run``, ``sentence``) and the files it came from."""
    ds, sim = cfg["dataset"], cfg["simulation"]
    if ds["kind"] == "simulated_meeg":
        from ..datasets.simulated_bids import split_story

        events = split_story(sim["n_words"], sim["meeg"]["n_runs"], sim["seed"]).drop(columns="story")
        return events, []
    if ds["kind"] == "simulated_seeg":
        from ..datasets.simulated_meeg import generate_word_trials

        s = sim["seeg"]
        return generate_word_trials(s["vocabulary"], s["trials_per_word"], s["n_runs"], sim["seed"]), []
    from ..datasets.meeg_bids import find_recordings, read_bids_words

    subject = electro_subjects(cfg)[0]
    parts, inputs = [], []
    for rec in find_recordings(ds, subject):
        if rec.events is None:
            raise InputFileError(rec.path, "no *_events.tsv beside the recording (word onsets are read from it).")
        words = read_bids_words(rec.events, ds["word_column"])
        words["duration"] = 0.0
        words["run"] = rec.run
        parts.append(words)
        inputs.append(rec.events)
    events = pd.concat(parts, ignore_index=True)
    # Sentences are unknown in general: a new "sentence" after each pause > 1 s.
    gap = events.groupby("run")["onset"].diff().fillna(np.inf).to_numpy() > 1.0
    events["sentence"] = np.cumsum(gap) - 1
    return events[["onset", "duration", "word", "run", "sentence"]], inputs


# --------------------------------------------------------------------------- simulation
def run_simulate_electro(cfg: dict[str, Any], events_path: str | os.PathLike, features_path: str | os.PathLike,
                         out_dir: str | os.PathLike) -> Path:
    """Write ``<out_dir>/<subject>/run-<k>_raw.fif`` for every simulated subject and run."""
    from ..datasets import simulated_meeg as sm
    from ..stimuli.events import read_events

    sim = cfg["simulation"]
    events = read_events(events_path)
    layer = str(sim["planted_layer"])
    X = read_features(features_path, [layer]).layers[layer]
    kind = cfg["dataset"]["kind"]
    spec = sim["meeg"] if kind == "simulated_meeg" else sim["seeg"]
    if kind == "simulated_seeg":
        # One embedding per vocabulary word: the planted pattern depends on the word only.
        table = pd.DataFrame(X).groupby(events["word"].to_numpy()).mean()
        Z_words = sm.planted_sources(table.to_numpy(), spec["n_sources"], sim["seed"])
        lookup = dict(zip(table.index, Z_words))
        Z = np.stack([lookup[w] for w in events["word"]])
    else:
        Z = sm.planted_sources(X, spec["n_sources"], sim["seed"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    jobs = [(s, r) for s in range(sim["n_subjects"]) for r in sorted(events["run"].unique())]
    for s, run in tqdm(jobs, desc="simulate recordings", unit="run"):
        rows = (events["run"] == run).to_numpy()
        offset = float(np.random.default_rng([sim["seed"], 43, s, int(run)]).uniform(0.0, 5.0))
        common = dict(subject_index=s, run=int(run), sfreq=spec["sfreq"], snr=spec["snr"],
                      line_freq=spec["line_freq"], seed=sim["seed"], onset_offset=offset)
        if kind == "simulated_meeg":
            raw = sm.simulate_meeg_run(events[rows], Z[rows], modality=spec["modality"], montage=spec["montage"],
                                       **common)
        else:
            raw = sm.simulate_seeg_run(events[rows], Z[rows], n_shafts=spec["n_shafts"],
                                       contacts_per_shaft=spec["contacts_per_shaft"], **common)
        sm.write_raw_fif(out_dir / f"sub-{s + 1:02d}" / f"run-{int(run)}_raw.fif", raw)
    # FIF files hold no provenance: the config (with the simulation's seed) and inputs sit beside them.
    write_text(out_dir / "provenance.json",
               _json(provenance(cfg, [events_path, features_path], stage="simulate_electro")) + "\n")
    return out_dir


# --------------------------------------------------------------------------- epochs
class Epochs:
    """Word-locked epochs of one subject (the *Epochs* contract, ``epochs/<subject>.h5``).

    Attributes
    ----------
    X : ndarray of shape (n_epochs, n_channels, n_times), float32
        Preprocessed signals (baseline-corrected, unscaled).
    times : ndarray of shape (n_times,)
        Seconds relative to word onset.
    word_index : ndarray of shape (n_epochs,)
        Row of each epoch's word in ``stimuli/events.tsv``.
    run : ndarray of shape (n_epochs,)
    ch_names : list of str
    positions : ndarray of shape (n_channels, 2) or None
        2-D sensor positions in [0, 1] (None for sEEG contacts).
    sfreq : float
        Hz.
    subject : str
    """

    def __init__(self, X, times, word_index, run, ch_names, positions, sfreq, subject):
        self.X, self.times, self.word_index, self.run = X, times, word_index, run
        self.ch_names, self.positions, self.sfreq, self.subject = list(ch_names), positions, float(sfreq), subject


def write_epochs(path: str | os.PathLike, ep: Epochs, prov: dict[str, Any]) -> Path:
    """Atomically write :class:`Epochs` to HDF5 (contract ``epochs/1``)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("X", data=np.asarray(ep.X, np.float32), track_times=False)
        f.create_dataset("times", data=ep.times, track_times=False)
        f.create_dataset("word_index", data=np.asarray(ep.word_index, np.int64), track_times=False)
        f.create_dataset("run", data=np.asarray(ep.run, np.int64), track_times=False)
        if ep.positions is not None:
            f.create_dataset("positions", data=np.asarray(ep.positions, np.float64), track_times=False)
        f.attrs["contract"] = EPOCHS_CONTRACT
        f.attrs["ch_names"] = json.dumps(ep.ch_names)
        f.attrs["sfreq"] = ep.sfreq
        f.attrs["subject"] = ep.subject
        f.attrs["provenance"] = _json(prov)
    return Path(path)


def read_epochs(path: str | os.PathLike) -> Epochs:
    """Read and check an ``epochs/<subject>.h5`` file (:class:`Epochs`)."""
    with _open_h5(path, EPOCHS_CONTRACT) as f:
        for key in ("X", "times", "word_index", "run"):
            if key not in f:
                raise InputFileError(path, f"dataset {key!r} is missing.")
        X = f["X"][()]
        if not np.isfinite(X).all():
            raise InputFileError(path, "dataset 'X' has non-finite values.")
        return Epochs(X, f["times"][()], f["word_index"][()], f["run"][()], json.loads(f.attrs["ch_names"]),
                      f["positions"][()] if "positions" in f else None, f.attrs["sfreq"], str(f.attrs["subject"]))


def _recordings(cfg: dict[str, Any], subject: str,
                raw_dir: str | os.PathLike | None) -> list[tuple[int, Path, Path | None, Any]]:
    """(run, file, events TSV or None, reader) of each recording of ``subject``."""
    from ..preprocess.meeg import read_raw

    ds = cfg["dataset"]
    if ds["kind"] == "meeg_bids":
        from ..datasets.meeg_bids import find_recordings, read_bids_raw

        return [(r.run, r.path, r.events, lambda r=r: read_bids_raw(r)) for r in find_recordings(ds, subject)]
    if raw_dir is None:
        raise ConfigError(None, "dataset.kind", "simulated recordings need --raw-dir.")
    folder = Path(raw_dir) / subject
    paths = sorted(folder.glob("run-*_raw.fif"), key=lambda p: int(p.name.split("_")[0].removeprefix("run-")))
    if not paths:
        raise InputFileError(folder, "no run-*_raw.fif recordings.")
    return [(int(p.name.split("_")[0].removeprefix("run-")), p, None, lambda p=p: read_raw(p)) for p in paths]


def _check_finite_channels(raw, source: Path) -> None:
    """Raise naming the first channel with a NaN or infinite sample."""
    for k, name in enumerate(raw.ch_names):
        bad = ~np.isfinite(raw.get_data(picks=[k])[0])
        if bad.any():
            raise InputFileError(source, f"channel {name!r} has {int(bad.sum())} NaN or infinite sample(s), the "
                                         f"first at {raw.times[int(np.argmax(bad))]:.3f} s; list it in "
                                         "electrophysiology.bad_channels (or set "
                                         "electrophysiology.detect_bad_channels: true).")


def _preprocess_run(cfg: dict[str, Any], raw, source: Path):
    """The preprocessed recording and its bad channels (dropped or interpolated)."""
    from ..preprocess import meeg, seeg

    ep = cfg["electrophysiology"]
    bads = sorted(set(raw.info["bads"]) | set(ep["bad_channels"]))
    unknown = [b for b in ep["bad_channels"] if b not in raw.ch_names]
    if unknown:
        raise InputFileError(source, f"electrophysiology.bad_channels names channel(s) {unknown} that the "
                                     "recording does not have.")
    if ep["detect_bad_channels"]:
        bads = sorted(set(bads) | set(meeg.find_bad_channels(raw)))
    if bads:
        raw = meeg.handle_bad_channels(raw, bads, method=ep["bad_channel_method"], source=source)
    # Brain signals only: stimulus, trigger and misc channels carry no positions and no response.
    raw = raw.pick("data", exclude="bads")
    _check_finite_channels(raw, source)
    if ep["reference"] == "bipolar":
        raw = seeg.bipolar_reference(raw, source=source)
    elif ep["reference"] == "laplacian":
        raw = seeg.laplacian_reference(raw, source=source)
    if ep["l_freq"] or ep["h_freq"]:
        raw = meeg.band_pass(raw, ep["l_freq"], ep["h_freq"], order=ep["filter_order"])
    if ep["high_gamma"]:
        raw = seeg.high_gamma_envelope(raw, tuple(ep["high_gamma"]), order=ep["filter_order"], source=source)
    if abs(raw.info["sfreq"] - ep["sfreq"]) > 1e-9:
        raw = meeg.resample(raw, ep["sfreq"])
    return raw, bads


def _check_run_words(got: list[str], expected: list[str], run: int, events_path: str | os.PathLike,
                     source: str | os.PathLike, field: str) -> None:
    """Raise naming the first word of a recording that differs from the dataset's word table."""
    if got == expected:
        return
    k = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    here = repr(got[k]) if k < len(got) else "missing"
    there = repr(expected[k]) if k < len(expected) else "missing"
    raise InputFileError(source, f"{field}: the words of run {run} differ from the dataset's word table "
                                 f"{events_path}: word {k} is {here} here but {there} there ({len(got)} vs "
                                 f"{len(expected)} words).")


def run_epochs(cfg: dict[str, Any], subject: str, events_path: str | os.PathLike, out: str | os.PathLike,
               raw_dir: str | os.PathLike | None = None) -> Path:
    """Preprocess every recording of ``subject`` and cut word-locked epochs (:class:`Epochs`)."""
    from ..preprocess import meeg
    from ..stimuli.events import read_events

    ep = cfg["electrophysiology"]
    events = read_events(events_path)
    parts, inputs = [], []
    reference: tuple[Path, float, list[str], list[str]] | None = None
    for run, path, events_tsv, read in _recordings(cfg, subject, raw_dir):
        raw = read()
        if reference is not None and abs(raw.info["sfreq"] - reference[1]) > 1e-6:
            raise InputFileError(path, f"field sfreq: {raw.info['sfreq']} Hz, but {reference[0].name} of the "
                                       f"same subject was recorded at {reference[1]} Hz.")
        words = meeg.read_word_events(raw, events_tsv=None, source=path) if events_tsv is None else None
        if words is None:
            from ..datasets.meeg_bids import read_bids_words

            # BIDS onsets count from the recording's first sample, as epoch_words expects.
            words = read_bids_words(events_tsv, cfg["dataset"]["word_column"])
        expected = events[events["run"] == run]
        if expected.empty:
            raise InputFileError(path, f"run {run} has no words in {events_path}.")
        _check_run_words(list(words["word"]), list(expected["word"].astype(str)), run, events_path,
                         path if events_tsv is None else events_tsv,
                         "annotations" if events_tsv is None else f"column {cfg['dataset']['word_column']!r}")
        sfreq_in = raw.info["sfreq"]
        raw, bads = _preprocess_run(cfg, raw, path)
        X, times = meeg.epoch_words(raw, words["onset"].to_numpy(), tmin=ep["tmin"], tmax=ep["tmax"],
                                    baseline=None if ep["baseline"] is None else tuple(ep["baseline"]),
                                    shift=ep["shift"], source=path)
        if reference is not None and raw.ch_names != reference[2]:
            missing = [c for c in reference[2] if c not in raw.ch_names]
            extra = [c for c in raw.ch_names if c not in reference[2]]
            raise InputFileError(path, f"field ch_names: the channels after preprocessing differ from "
                                       f"{reference[0].name}'s ({len(raw.ch_names)} vs {len(reference[2])}; "
                                       f"missing here: {missing}, only here: {extra}). Bad channels (dropped): "
                                       f"{bads} here, {reference[3]} in {reference[0].name}; list them in "
                                       "electrophysiology.bad_channels to drop the same channels in every run.")
        if reference is None:
            reference = (path, sfreq_in, list(raw.ch_names), bads)
            positions = None if electro_modality(cfg) == "seeg" else meeg.sensor_positions_2d(raw.info)
        parts.append((X, expected.index.to_numpy(), np.full(len(X), run)))
        inputs.append(path)
    X = np.concatenate([p[0] for p in parts])
    ep_out = Epochs(X, times, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                    reference[2], positions, ep["sfreq"], subject)
    return write_epochs(out, ep_out, provenance(cfg, [events_path, *inputs], stage="epochs", subject=subject))


# --------------------------------------------------------------------------- decoding
def _test_runs(cfg: dict[str, Any], runs: np.ndarray) -> list[int]:
    wanted = cfg["electrophysiology"]["test_runs"]
    available = sorted(int(r) for r in np.unique(runs))
    if wanted is None:
        return available[-1:]
    missing = [r for r in wanted if r not in available]
    if missing:
        raise ConfigError(None, "electrophysiology.test_runs", f"run(s) {missing} not found; runs: {available}.")
    if len(set(wanted)) == len(available):
        raise ConfigError(None, "electrophysiology.test_runs", "leaves no run for training.")
    return list(wanted)


def _scaled(cfg: dict[str, Any], epochs: list[Epochs], test_runs: list[int]) -> list[np.ndarray]:
    """Per-subject scaling fitted on the training epochs only, then clamping."""
    from ..preprocess.meeg import RobustScaler, clamp

    ep = cfg["electrophysiology"]
    out = []
    for e in epochs:
        train = ~np.isin(e.run, test_runs)
        X = e.X.astype(np.float64)
        if ep["scaling"] == "robust":
            X = RobustScaler().fit(X[train]).transform(X)
        elif ep["scaling"] == "zscore":
            mean = X[train].mean(axis=(0, 2), keepdims=True)
            std = X[train].std(axis=(0, 2), keepdims=True)
            X = (X - mean) / np.where(std > 0, std, 1.0)
        out.append(clamp(X, ep["clamp"]).astype(np.float32))
    return out


def run_contrastive(cfg: dict[str, Any], epoch_paths: list[str | os.PathLike], events_path: str | os.PathLike,
                    features_path: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Train the contrastive brain module on the training runs; top-k segment identification on the test runs.

    Writes ``scores.csv`` (one row per subject, pooled and k), ``topk.csv`` (the
    accuracy curve for k = 1..50 with its chance level) and the checkpoint
    ``contrastive.safetensors`` (+ ``.json``) to ``out_dir``.
    """
    from ..encoders.contrastive import ContrastiveEncoder
    from ..metrics.identification import binomial_chance_interval, identification_topk
    from ..stimuli.events import read_events

    ep, cc = cfg["electrophysiology"], cfg["contrastive"]
    name, layer = target_set(cfg)
    events = read_events(events_path)
    Y_all = read_features(features_path, [layer]).layers[layer]
    epochs = [read_epochs(p) for p in epoch_paths]
    test_runs = _test_runs(cfg, np.concatenate([e.run for e in epochs]))
    Xs = _scaled(cfg, epochs, test_runs)
    sentence = events["sentence"].to_numpy() if "sentence" in events else np.arange(len(events))
    train_X, train_Y, train_s, train_g = [], [], [], []
    for e, X in zip(epochs, Xs):
        train = ~np.isin(e.run, test_runs)
        train_X += list(X[train])
        train_Y.append(Y_all[e.word_index[train]])
        train_s += [e.subject] * int(train.sum())
        train_g.append(sentence[e.word_index[train]])
    positions = {e.subject: e.positions for e in epochs if e.positions is not None}
    front = "spatial_attention" if len(positions) == len(epochs) else "channel_fusion"
    model = ContrastiveEncoder(front_end=front, spatial_channels=cc["spatial_channels"], hidden=cc["hidden"],
                               depth=cc["depth"], dropout=cc["dropout"], spatial_dropout=cc["spatial_dropout"],
                               epochs=cc["epochs"], batch_size=cc["batch_size"], lr=cc["lr"],
                               weight_decay=cc["weight_decay"], n_time_bins=cc["n_time_bins"],
                               patience=cc["patience"], val_fraction=cc["val_fraction"], random_state=cc["seed"],
                               verbose=progress)
    same_channels = len({x.shape[0] for x in train_X}) == 1
    model.fit(np.stack(train_X) if same_channels else train_X, np.concatenate(train_Y), subjects=np.asarray(train_s),
              groups=np.concatenate(train_g), positions=positions or None)
    ks = sorted(set(ep["topk"]))
    rows, curves = [], []
    pooled_pred, pooled_true = [], []
    for e, X in zip(epochs, Xs):
        test = np.isin(e.run, test_runs)
        pred = model.predict(X[test], subjects=np.asarray([e.subject] * int(test.sum())))
        true = (Y_all[e.word_index[test]] - model.target_mean_) / model.target_scale_
        pooled_pred.append(pred)
        pooled_true.append(true)
        rows += _identification_rows(cfg, e.subject, pred, true, ks, identification_topk, binomial_chance_interval)
        curves.append(_topk_curve(e.subject, pred, true, identification_topk))
    # Pooled over subjects: every window ranks the same unique test segments.
    pred, true = np.concatenate(pooled_pred), np.concatenate(pooled_true)
    rows += _identification_rows(cfg, "pooled", pred, true, ks, identification_topk, binomial_chance_interval)
    curves.append(_topk_curve("pooled", pred, true, identification_topk))
    out_dir = Path(out_dir)
    prov = provenance(cfg, [events_path, features_path, *epoch_paths], stage="contrastive")
    scores = pd.DataFrame(rows)
    scores.insert(0, "dataset", cfg["dataset"]["name"])
    scores.insert(2, "feature_set", name)
    scores.insert(3, "layer", layer)
    write_table(out_dir / "scores.csv", scores, prov)
    write_table(out_dir / "topk.csv", pd.concat(curves, ignore_index=True), prov)
    _write_history(out_dir / "history.csv", model.history_, prov)
    model.save(out_dir / "contrastive.safetensors")
    return out_dir


def _identification_rows(cfg, subject, pred, true, ks, identification_topk, interval) -> list[dict[str, Any]]:
    res = identification_topk(pred, true, k=ks)
    n_cand = int(res["n_candidates"])
    rows = []
    for k in ks:
        chance = float(res["chance"][k])
        lo, hi = interval(len(pred), chance)
        rows.append({"subject": subject, "metric": f"top{k}", "value": float(res["accuracy"][k]), "chance": chance,
                     "chance_low": lo, "chance_high": hi, "n_windows": len(pred), "n_candidates": n_cand})
    return rows


def _topk_curve(subject, pred, true, identification_topk) -> pd.DataFrame:
    n = len(np.unique(true, axis=0))
    ks = list(range(1, min(50, n) + 1))
    res = identification_topk(pred, true, k=ks)
    return pd.DataFrame({"subject": subject, "k": ks, "accuracy": [float(res["accuracy"][k]) for k in ks],
                         "chance": [float(res["chance"][k]) for k in ks]})


def _write_history(path: Path, history: dict[str, list[float]], prov: dict[str, Any]) -> None:
    curves = {k: list(v) for k, v in history.items() if isinstance(v, (list, tuple, np.ndarray)) and k != "epoch"}
    longest = max((len(v) for v in curves.values()), default=0)
    table = pd.DataFrame({k: v + [np.nan] * (longest - len(v)) for k, v in curves.items()})
    table.insert(0, "epoch", np.arange(1, longest + 1))
    write_table(path, table, prov)


def run_word_decoding(cfg: dict[str, Any], epoch_paths: list[str | os.PathLike], events_path: str | os.PathLike,
                      out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Du-IN-style word classification from sEEG epochs: accuracy per subject and pooled, confusion matrix."""
    from ..encoders.duin import DuINWordDecoder
    from ..metrics.identification import binomial_chance_interval
    from ..stimuli.events import read_events

    wd = cfg["word_decoder"]
    events = read_events(events_path)
    labels = events["word"].astype(str).to_numpy()
    epochs = [read_epochs(p) for p in epoch_paths]
    test_runs = _test_runs(cfg, np.concatenate([e.run for e in epochs]))
    Xs = _scaled(cfg, epochs, test_runs)
    train_X, train_y, train_s = [], [], []
    for e, X in zip(epochs, Xs):
        train = ~np.isin(e.run, test_runs)
        train_X += list(X[train])
        train_y.append(labels[e.word_index[train]])
        train_s += [e.subject] * int(train.sum())
    model = DuINWordDecoder(sfreq=cfg["electrophysiology"]["sfreq"], patch_ms=wd["patch_ms"], d_model=wd["d_model"],
                            n_layers=wd["n_layers"], n_heads=wd["n_heads"], codebook_size=wd["codebook_size"],
                            pretrain_epochs=wd["pretrain_epochs"], epochs=wd["epochs"], batch_size=wd["batch_size"],
                            lr=wd["lr"], patience=wd["patience"], val_fraction=wd["val_fraction"],
                            random_state=wd["seed"], verbose=progress)
    model.fit(train_X, np.concatenate(train_y), subjects=np.asarray(train_s))
    rows, all_true, all_pred = [], [], []
    chance = 1.0 / len(model.classes_)
    for e, X in zip(epochs, Xs):
        test = np.isin(e.run, test_runs)
        subj = np.asarray([e.subject] * int(test.sum()))
        y = labels[e.word_index[test]]
        pred = model.predict(list(X[test]), subjects=subj)
        all_true.append(y)
        all_pred.append(pred)
        rows.append(_accuracy_row(e.subject, y, pred, chance, binomial_chance_interval))
    y, pred = np.concatenate(all_true), np.concatenate(all_pred)
    rows.append(_accuracy_row("pooled", y, pred, chance, binomial_chance_interval))
    classes = list(model.classes_)
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, ([index[v] for v in y], [index[v] for v in pred]), 1)
    out_dir = Path(out_dir)
    prov = provenance(cfg, [events_path, *epoch_paths], stage="word_decoding")
    scores = pd.DataFrame(rows)
    scores.insert(0, "dataset", cfg["dataset"]["name"])
    write_table(out_dir / "scores.csv", scores, prov)
    write_table(out_dir / "confusion.csv", pd.DataFrame(confusion, index=classes, columns=classes)
                .rename_axis("true").reset_index(), prov)
    _write_history(out_dir / "history.csv", model.history_, prov)
    model.save(out_dir / "word_decoder.safetensors")
    return out_dir


def _accuracy_row(subject, y, pred, chance, interval) -> dict[str, Any]:
    lo, hi = interval(len(y), chance)
    return {"subject": subject, "metric": "accuracy", "value": float(np.mean(np.asarray(y) == np.asarray(pred))),
            "chance": chance, "chance_low": lo, "chance_high": hi, "n_windows": len(y), "n_candidates": None}
