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
random windows; with a single run, the run's last whole sentences, after a gap
that keeps every training window apart from every test window in time. The
validation split for early stopping holds out whole sentences of the training
data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import ConfigError, InputFileError
from ..backend.device import resolve_device
from ..datasets.registry import get_kind
from ..io import Epochs, _json, provenance, read_epochs, read_features, write_epochs, write_table, write_text

# Epochs, read_epochs and write_epochs live in brainalign.io (the Epochs contract); still importable from here.

__all__ = [
    "electro_events",
    "electro_input_files",
    "electro_modality",
    "electro_subjects",
    "run_contrastive",
    "run_epochs",
    "run_simulate_electro",
    "run_word_decoding",
    "target_set",
]

logger = logging.getLogger("brainalign")


def electro_modality(cfg: dict[str, Any]) -> str:
    """``"seeg"`` for sEEG/ECoG datasets (word classification), ``"meeg"`` for MEG/EEG (segment identification)."""
    return get_kind(cfg).task(cfg)


def electro_subjects(cfg: dict[str, Any]) -> list[str]:
    """``sub-XX`` labels of the dataset: the simulated subjects, or those of the BIDS folder with recordings."""
    return get_kind(cfg).subjects(cfg)


def target_set(cfg: dict[str, Any]) -> tuple[str, str]:
    """(feature set instance, layer) whose word embeddings the decoders target."""
    ep = cfg["electrophysiology"]
    name = ep["target_feature_set"] or cfg["simulation"]["planted_feature_set"]
    layer = ep["target_layer"] or cfg["simulation"]["planted_layer"]
    return name, str(layer)


def electro_events(cfg: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
    """The dataset's word table (``onset``, ``duration``, ``word``, ``run``, ``sentence``) and the files it came from."""
    events, inputs = get_kind(cfg).events(cfg)
    # The test split depends on the word table only: refuse an impossible one before any recording is read.
    _word_split(cfg, events)
    return events, inputs


def electro_input_files(cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
    """Files of the dataset that a stage reads, for the workflow to track (none for simulated data).

    Parameters
    ----------
    cfg : dict
        The validated config.
    subject : str or None
        None: the files the word table is read from (``stimuli`` stage). A
        ``sub-XX`` label: that subject's recordings and their sidecars
        (``epochs`` stage).
    """
    return get_kind(cfg).input_files(cfg, subject)


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
    seeg = get_kind(cfg).task(cfg) == "seeg"
    spec = sim["seeg"] if seeg else sim["meeg"]
    if seeg:
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
        if not seeg:
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
def _check_finite_channels(raw, source: Path) -> None:
    """Raise naming the first channel with a NaN or infinite sample."""
    for k, name in enumerate(raw.ch_names):
        bad = ~np.isfinite(raw.get_data(picks=[k])[0])
        if bad.any():
            raise InputFileError(source, f"channel {name!r} has {int(bad.sum())} NaN or infinite sample(s), the "
                                         f"first at {raw.times[int(np.argmax(bad))]:.3f} s; list it in "
                                         "electrophysiology.bad_channels (or set "
                                         "electrophysiology.detect_bad_channels: true).")


def _check_some_data_channel(raw, bads: list[str], detected: list[str], listed: list[str], source: Path) -> None:
    """Raise when the recording has no data channel, or every one is bad (nothing would be left to epoch)."""
    from ..preprocess.meeg.filtering import _data_picks

    data = [raw.ch_names[k] for k in _data_picks(raw.info)]
    if not data:
        raise InputFileError(source, f"field ch_names: none of the {len(raw.ch_names)} channels is a data channel "
                                     "(MEG, EEG, sEEG, ECoG, DBS, fNIRS); channel types: "
                                     f"{sorted(set(raw.get_channel_types()))}.")
    if set(data) - set(bads):
        return
    reasons = [f"{len(set(detected) & set(data))} flat or non-finite, found by "
               "electrophysiology.detect_bad_channels" if detected else "",
               f"{len(set(listed) & set(data))} listed in electrophysiology.bad_channels" if listed else "",
               f"{len(set(raw.info['bads']) & set(data))} marked bad in the recording" if raw.info["bads"] else ""]
    raise InputFileError(source, f"every one of the recording's {len(data)} data channels is bad "
                                 f"({'; '.join(r for r in reasons if r)}; e.g. {data[:3]}): no signal is left to "
                                 "epoch. Check the recording (a copy or export that lost its data?), or list fewer "
                                 "channels in electrophysiology.bad_channels.")


def _check_not_all_flat(raw, source: Path, threshold: float = 1e-15) -> None:
    """Raise when every channel left is flat (a recording without signal gives all-zero epochs).

    ``threshold`` is :func:`~brainalign.preprocess.meeg.find_bad_channels`'s
    absolute one: a standard deviation below the noise floor of any sensor,
    in the channel's SI unit. Reached when ``detect_bad_channels`` is false.
    """
    # One channel at a time, stopping at the first that varies (a recording can be as large as memory).
    for k in range(len(raw.ch_names)):
        if raw.get_data(picks=[k])[0].std() >= threshold:
            return
    first = raw.get_data(picks=[0], stop=1)[0, 0]
    raise InputFileError(source, f"all {len(raw.ch_names)} data channels are flat (standard deviation below "
                                 f"{threshold:g} in SI units; channel {raw.ch_names[0]!r} stays at {first:g}): the "
                                 "recording holds no signal, and its epochs would be all zero. Check the recording "
                                 "(a copy or export that lost its data?).")


def _preprocess_run(cfg: dict[str, Any], raw, source: Path):
    """The preprocessed recording and its bad channels (dropped or interpolated)."""
    from ..preprocess import meeg, seeg

    ep = cfg["electrophysiology"]
    bads = sorted(set(raw.info["bads"]) | set(ep["bad_channels"]))
    unknown = [b for b in ep["bad_channels"] if b not in raw.ch_names]
    if unknown:
        raise InputFileError(source, f"electrophysiology.bad_channels names channel(s) {unknown} that the "
                                     "recording does not have.")
    detected = meeg.find_bad_channels(raw) if ep["detect_bad_channels"] else []
    bads = sorted(set(bads) | set(detected))
    _check_some_data_channel(raw, bads, detected, ep["bad_channels"], source)
    if bads:
        raw = meeg.handle_bad_channels(raw, bads, method=ep["bad_channel_method"], source=source)
    # Brain signals only: stimulus, trigger and misc channels carry no positions and no response.
    raw = raw.pick("data", exclude="bads")
    _check_finite_channels(raw, source)
    _check_not_all_flat(raw, source)
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
    """Preprocess every recording of ``subject`` and cut word-locked epochs (:class:`Epochs`).

    A word whose window crosses the recording's start or end has no epoch
    when ``electrophysiology.drop_edge_epochs`` is true (it is logged, and
    listed in the file's ``dropped_word_index`` and, counted per run, in its
    provenance); otherwise, or when no window of a recording fits, it is an
    error naming the word.
    """
    from ..preprocess import meeg
    from ..stimuli.events import read_events

    ep = cfg["electrophysiology"]
    ds = cfg["dataset"]
    events = read_events(events_path)
    parts, inputs, dropped = [], [], {}
    reference: tuple[Path, float, list[str], list[str]] | None = None
    kind = get_kind(cfg)
    recordings = kind.recordings(cfg, subject, raw_dir)
    kind.check_recordings(cfg, subject, [r[0] for r in recordings], events, events_path, raw_dir)
    for run, path, events_tsv, read in recordings:
        raw = read()
        if reference is not None and abs(raw.info["sfreq"] - reference[1]) > 1e-6:
            raise InputFileError(path, f"field sfreq: {raw.info['sfreq']} Hz, but {reference[0].name} of the "
                                       f"same subject was recorded at {reference[1]} Hz.")
        words = meeg.read_word_events(raw, events_tsv=None, source=path) if events_tsv is None else None
        if words is None:
            from ..datasets.meeg_bids import read_bids_words

            # BIDS onsets count from the recording's first sample, as epoch_words expects.
            words = read_bids_words(events_tsv, ds["word_column"], ds["event_category"])
        expected = events[events["run"] == run]
        if expected.empty:
            raise InputFileError(path, f"run {run} has no words in {events_path}.")
        _check_run_words(list(words["word"]), list(expected["word"].astype(str)), run, events_path,
                         path if events_tsv is None else events_tsv,
                         "annotations" if events_tsv is None else f"column {ds['word_column']!r}")
        sfreq_in = raw.info["sfreq"]
        raw, bads = _preprocess_run(cfg, raw, path)
        onsets = words["onset"].to_numpy()
        keep = _edge_mask(cfg, raw, onsets, path)
        X, times = meeg.epoch_words(raw, onsets[keep], tmin=ep["tmin"], tmax=ep["tmax"],
                                    baseline=None if ep["baseline"] is None else tuple(ep["baseline"]),
                                    shift=ep["shift"], source=path)
        if not keep.all():
            lost = words[~keep]
            logger.warning("%s run %d (%s): %d of %d word(s) dropped, their window crossing the recording's edge "
                           "(electrophysiology.drop_edge_epochs): %s", subject, run, path.name, len(lost),
                           len(words), ", ".join(f"{w!r} at {t:.3f} s" for w, t in
                                                 zip(lost["word"][:5], lost["onset"][:5]))
                           + (" ..." if len(lost) > 5 else ""))
        dropped[str(run)] = expected.index.to_numpy()[~keep]
        if reference is not None and raw.ch_names != reference[2]:
            missing = [c for c in reference[2] if c not in raw.ch_names]
            extra = [c for c in raw.ch_names if c not in reference[2]]
            # Blame the run that lost channels: the first one when it dropped channels this one keeps.
            first_is_odd = bool(extra) and not missing
            odd, other = (reference[0], path) if first_is_odd else (path, reference[0])
            sizes = (len(reference[2]), len(raw.ch_names)) if first_is_odd else (len(raw.ch_names), len(reference[2]))
            only = (missing, extra) if first_is_odd else (extra, missing)
            dropped_here = (reference[3], bads) if first_is_odd else (bads, reference[3])
            raise InputFileError(odd, f"field ch_names: the channels after preprocessing differ from "
                                      f"{other.name}'s ({sizes[0]} vs {sizes[1]}; missing here: {only[1]}, only "
                                      f"here: {only[0]}). Bad channels (dropped): {dropped_here[0]} here, "
                                      f"{dropped_here[1]} in {other.name}; list them in "
                                      "electrophysiology.bad_channels to drop the same channels in every run.")
        if reference is None:
            reference = (path, sfreq_in, list(raw.ch_names), bads)
            positions = None if electro_modality(cfg) == "seeg" else meeg.sensor_positions_2d(raw.info)
        parts.append((X, expected.index.to_numpy()[keep], np.full(len(X), run)))
        inputs += [path] if events_tsv is None else [path, events_tsv]
    X = np.concatenate([p[0] for p in parts])
    ep_out = Epochs(X, times, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                    reference[2], positions, ep["sfreq"], subject, np.concatenate(list(dropped.values())))
    prov = provenance(cfg, [events_path, *inputs], stage="epochs", subject=subject,
                      edge_epochs_dropped={run: len(rows) for run, rows in dropped.items()})
    return write_epochs(out, ep_out, prov)


def _edge_mask(cfg: dict[str, Any], raw, onsets: np.ndarray, source: Path) -> np.ndarray:
    """The words whose window lies inside the (preprocessed) recording; raise when none may be dropped."""
    from ..preprocess.meeg import check_epochs_in_recording, windows_inside_recording

    ep = cfg["electrophysiology"]
    bounds = (raw.n_times, raw.info["sfreq"], ep["tmin"], ep["tmax"])
    inside = windows_inside_recording(onsets, *bounds, shift=ep["shift"])
    if not inside.all() and not (ep["drop_edge_epochs"] and inside.any()):
        hint = ("No window fits in the recording: shorten electrophysiology.tmin…tmax (or shift)."
                if ep["drop_edge_epochs"] else
                "Set electrophysiology.drop_edge_epochs: true to leave out the words whose window crosses the "
                "recording's edge.")
        try:
            check_epochs_in_recording(onsets, *bounds, source, shift=ep["shift"])
        except InputFileError as err:
            raise InputFileError(err.path, f"{err.detail} {hint}") from None
    return inside


# --------------------------------------------------------------------------- decoding
def _word_split(cfg: dict[str, Any], events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and test words (boolean masks over the rows of the word table) and the split in words.

    The test words are whole runs (``electrophysiology.test_runs``; null: the
    last run). When the dataset has a single run and ``test_runs`` is null,
    they are the run's last whole sentences, starting at the sentence start
    nearest ``1 - test_fraction`` of its words; the training words are the
    earlier words whose window ends at least two samples (at
    ``electrophysiology.sfreq``) before the first test window starts, so that
    no training window shares a sample with a test window. The words in
    between are in neither set.
    """
    ep = cfg["electrophysiology"]
    runs = events["run"].to_numpy()
    available = sorted(int(r) for r in np.unique(runs))
    wanted = ep["test_runs"]
    if wanted is None and len(available) == 1:
        return _within_run_split(cfg, events)
    wanted = available[-1:] if wanted is None else list(wanted)
    missing = [r for r in wanted if r not in available]
    if missing:
        raise ConfigError(None, "electrophysiology.test_runs", f"run(s) {missing} not found; runs: {available}.")
    if len(set(wanted)) == len(available):
        single = " (a single run: set test_runs to null to hold out its last sentences)" if len(available) == 1 else ""
        raise ConfigError(None, "electrophysiology.test_runs", f"leaves no run for training{single}.")
    test = np.isin(runs, wanted)
    return ~test, test, f"whole run(s) {sorted(set(wanted))} of {available}"


def _within_run_split(cfg: dict[str, Any], events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    ep = cfg["electrophysiology"]
    n, run, fraction = len(events), int(events["run"].iloc[0]), ep["test_fraction"]
    sentence = events["sentence"].to_numpy() if "sentence" in events else np.arange(n)
    onsets = events["onset"].to_numpy(dtype=np.float64)
    starts = np.flatnonzero(sentence[1:] != sentence[:-1]) + 1  # first word of every sentence but the first
    where = f"the dataset has a single run (run {run}, {n} words"
    if get_kind(cfg).sentence_rule:
        where += f"; {get_kind(cfg).sentence_rule}"
    if starts.size == 0:
        raise ConfigError(None, "electrophysiology.test_runs", f"{where}) holding a single sentence: no block of "
                                                                "whole sentences can be held out for testing; "
                                                                "give the dataset a second run.")
    first = int(starts[np.argmin(np.abs(starts - (1.0 - fraction) * n))])
    span = ep["tmax"] - ep["tmin"] + 2.0 / ep["sfreq"]
    index = np.arange(n)
    test = index >= first
    train = (index < first) & (onsets + span <= onsets[first])
    if not train.any():
        raise ConfigError(None, "electrophysiology.test_fraction",
                          f"{where}): holding out its last {int(test.sum())} words (from {onsets[first]:.3f} s, "
                          f"test_fraction {fraction:g}) leaves no training word whose window "
                          f"({ep['tmin']:g}…{ep['tmax']:g} s) ends before the first test window; lower "
                          "test_fraction, or shorten the window.")
    gap = int((index < first).sum() - train.sum())
    return train, test, (f"within run {run}, the only run: the last {int(test.sum())} of {n} words (whole "
                         f"sentences, test_fraction {fraction:g}) for testing; {gap} word(s) before them in neither "
                         "set, so that no training window overlaps a test window")


def _split(cfg: dict[str, Any], epochs: list[Epochs], events: pd.DataFrame,
           epoch_paths: list[str | os.PathLike]) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(training, test) epoch masks of each subject (:func:`_word_split`), and their record for the provenance."""
    seen: dict[str, str | os.PathLike] = {}
    for e, path in zip(epochs, epoch_paths):
        # A subject given twice (the same file, or a copy) would be trained and tested twice.
        if e.subject in seen:
            raise InputFileError(path, f"attribute 'subject' is {e.subject!r}, as in {seen[e.subject]}; give each "
                                       "subject's epochs once.")
        seen[e.subject] = path
    train_words, test_words, description = _word_split(cfg, events)
    masks = []
    for e, path in zip(epochs, epoch_paths):
        train, test = train_words[e.word_index], test_words[e.word_index]
        for name, mask in (("training", train), ("test", test)):
            if not mask.any():
                raise InputFileError(path, f"dataset 'word_index': subject {e.subject} has no {name} epoch "
                                           f"({description}; {e.dropped_word_index.size} word(s) without an epoch "
                                           "at the recording's edges).")
        masks.append((train, test))
    record = {"test_split": description,
              "n_train_epochs": {e.subject: int(m[0].sum()) for e, m in zip(epochs, masks)},
              "n_test_epochs": {e.subject: int(m[1].sum()) for e, m in zip(epochs, masks)},
              "edge_epochs_dropped": {e.subject: int(e.dropped_word_index.size) for e in epochs}}
    return masks, record


def _scaled(cfg: dict[str, Any], epochs: list[Epochs], split: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Per-subject scaling fitted on the training epochs only, then clamping."""
    from ..preprocess.meeg import RobustScaler, clamp

    ep = cfg["electrophysiology"]
    out = []
    for e, (train, _) in zip(epochs, split):
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

    Writes ``scores.csv`` (one row per decoder, subject, pooled and k),
    ``topk.csv`` (the accuracy curve for k = 1..50 with its chance level) and
    the checkpoint ``contrastive.safetensors`` (+ ``.json``) to ``out_dir``.
    The ``decoder`` column tells the brain module (``brain_module``) from its
    linear baseline (``ridge``, :func:`_ridge_decoder`: one ridge per subject
    from the same scaled, clamped windows to the same z-scored targets), both
    scored by the same identification among the same candidates.
    """
    from ..encoders.contrastive import ContrastiveEncoder
    from ..metrics.identification import binomial_chance_interval, identification_topk
    from ..stimuli.events import read_events

    ep, cc = cfg["electrophysiology"], cfg["contrastive"]
    name, layer = target_set(cfg)
    events = read_events(events_path)
    Y_all = read_features(features_path, [layer]).layers[layer]
    epochs = [read_epochs(p) for p in epoch_paths]
    split, split_record = _split(cfg, epochs, events, epoch_paths)
    Xs = _scaled(cfg, epochs, split)
    sentence = events["sentence"].to_numpy() if "sentence" in events else np.arange(len(events))
    train_X, train_Y, train_s, train_g = [], [], [], []
    for e, X, (train, _) in zip(epochs, Xs, split):
        train_X += list(X[train])
        train_Y.append(Y_all[e.word_index[train]])
        train_s += [e.subject] * int(train.sum())
        train_g.append(sentence[e.word_index[train]])
    positions = {e.subject: e.positions for e in epochs if e.positions is not None}
    front = "spatial_attention" if len(positions) == len(epochs) else "channel_fusion"
    model = ContrastiveEncoder(front_end=front, spatial_channels=cc["spatial_channels"], hidden=cc["hidden"],
                               depth=cc["depth"], dropout=cc["dropout"], spatial_dropout=cc["spatial_dropout"],
                               epochs=cc["epochs"], batch_size=cc["batch_size"], lr=cc["lr"],
                               weight_decay=cc["weight_decay"],
                               n_time_bins=None if cc["n_time_bins"] is None else min(cc["n_time_bins"],
                                                                                      epochs[0].X.shape[2]),
                               patience=cc["patience"], refit=cc["refit"], val_fraction=cc["val_fraction"],
                               random_state=cc["seed"], verbose=progress, device=resolve_device(cfg))
    same_channels = len({x.shape[0] for x in train_X}) == 1
    model.fit(np.stack(train_X) if same_channels else train_X, np.concatenate(train_Y), subjects=np.asarray(train_s),
              groups=np.concatenate(train_g), positions=positions or None)
    ks = sorted(set(ep["topk"]))
    rows, curves = [], []
    # Both decoders are scored against the same z-scored targets (the brain module's training statistics).
    trues = [(Y_all[e.word_index[test]] - model.target_mean_) / model.target_scale_
             for e, (_, test) in zip(epochs, split)]
    preds = {"brain_module": [model.predict(X[test], subjects=np.asarray([e.subject] * int(test.sum())))
                              for e, X, (_, test) in zip(epochs, Xs, split)]}
    preds["ridge"], ridge_alpha = [], {}
    for e, X, (train, test) in zip(epochs, Xs, split):
        ridge = _ridge_decoder(cfg, X[train], (Y_all[e.word_index[train]] - model.target_mean_) / model.target_scale_,
                               sentence[e.word_index[train]], e.subject)
        preds["ridge"].append(ridge.predict(_flat(X[test])))
        ridge_alpha[e.subject] = float(ridge.alpha_[0])
    # The shift tests move targets along each run's word sequence; windows of one word share it.
    word_run = events["run"].to_numpy()
    positions = [e.word_index[test] for e, (_, test) in zip(epochs, split)]
    for decoder, subject_preds in preds.items():
        for e, pred, true, pos in zip(epochs, subject_preds, trues, positions):
            rows += _identification_rows(cfg, e.subject, pred, true, ks, identification_topk, binomial_chance_interval,
                                         decoder, stimulus=pos, runs=word_run[pos])
            curves.append(_topk_curve(e.subject, pred, true, identification_topk, decoder))
        # Pooled over subjects: every window ranks the same unique test segments.
        pred, true, pos = np.concatenate(subject_preds), np.concatenate(trues), np.concatenate(positions)
        rows += _identification_rows(cfg, "pooled", pred, true, ks, identification_topk, binomial_chance_interval,
                                     decoder, stimulus=pos, runs=word_run[pos])
        curves.append(_topk_curve("pooled", pred, true, identification_topk, decoder))
    out_dir = Path(out_dir)
    prov = provenance(cfg, [events_path, features_path, *epoch_paths], stage="contrastive", **split_record,
                      ridge_alpha=ridge_alpha)
    scores = pd.DataFrame(rows)
    scores.insert(0, "dataset", cfg["dataset"]["name"])
    scores.insert(3, "feature_set", name)
    scores.insert(4, "layer", layer)
    write_table(out_dir / "scores.csv", scores, prov)
    write_table(out_dir / "topk.csv", pd.concat(curves, ignore_index=True), prov)
    _write_history(out_dir / "history.csv", model.history_, prov)
    model.save(out_dir / "contrastive.safetensors")
    return out_dir


def _shift_null(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Settings of the identification/accuracy shift tests (None when ``statistics.n_permutations`` is 0)."""
    stats_cfg = cfg["statistics"]
    if int(stats_cfg["n_permutations"]) == 0:
        return None
    return {"n_permutations": int(stats_cfg["n_permutations"]), "min_shift": int(stats_cfg["min_shift"]),
            "random_state": np.random.default_rng([int(stats_cfg["seed"]), 2])}


def _identification_rows(cfg, subject, pred, true, ks, identification_topk, interval,
                         decoder: str = "brain_module", stimulus=None, runs=None) -> list[dict[str, Any]]:
    """Top-k rows with the binomial chance interval and the shift test (``p_value``, ``chance_null``).

    ``chance`` = k / C assumes a prediction ranks its target uniformly at
    random; ``chance_null`` is the mean accuracy when the targets are shifted
    along the word sequence within each run
    (:func:`brainalign.metrics.identification.identification_shift_test`),
    which also counts what a decoder gains from the words' frequencies, and
    ``p_value`` is that test's one-sided p.
    """
    from ..metrics.identification import identification_shift_test

    res = identification_topk(pred, true, k=ks)
    n_cand = int(res["n_candidates"])
    settings = _shift_null(cfg)
    test = (identification_shift_test(pred, true, k=ks, stimulus=stimulus, runs=runs, **settings)
            if settings is not None else None)
    rows = []
    for k in ks:
        chance = float(res["chance"][k])
        lo, hi = interval(len(pred), chance)
        rows.append({"decoder": decoder, "subject": subject, "metric": f"top{k}", "value": float(res["accuracy"][k]),
                     "chance": chance, "chance_low": lo, "chance_high": hi, "n_windows": len(pred),
                     "n_candidates": n_cand, "chance_null": np.nan if test is None else test.null_mean[k],
                     "p_value": np.nan if test is None else test.pvalues[k]})
    return rows


def _topk_curve(subject, pred, true, identification_topk, decoder: str = "brain_module") -> pd.DataFrame:
    n = len(np.unique(true, axis=0))
    ks = list(range(1, min(50, n) + 1))
    res = identification_topk(pred, true, k=ks)
    return pd.DataFrame({"decoder": decoder, "subject": subject, "k": ks,
                         "accuracy": [float(res["accuracy"][k]) for k in ks],
                         "chance": [float(res["chance"][k]) for k in ks]})


def _flat(X: np.ndarray) -> np.ndarray:
    """Windows (n_windows, n_channels, n_times) as rows of channels × samples, float64."""
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


def _group_folds(groups: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold of each window: whole groups (sentences, trials), in order of appearance, cut into contiguous blocks.

    Parameters
    ----------
    groups : ndarray of shape (n_windows,)
        Group label of each window (windows in time order).
    n_folds : int
        Number of blocks (at most the number of groups).

    Returns
    -------
    ndarray of int64, shape (n_windows,)
        Block ``0 … min(n_folds, n_groups) - 1`` of each window; a group never spans two blocks.
    """
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")[inverse.reshape(-1)]
    n_groups = len(first)
    return (rank * min(n_folds, n_groups) // n_groups).astype(np.int64)


def _ridge_decoder(cfg: dict[str, Any], X: np.ndarray, Y: np.ndarray, groups: np.ndarray, subject: str):
    """The linear baseline: ridge from one subject's flattened training windows to their targets.

    One penalty, shared by all target columns, is chosen from ``encoder.alphas``
    by ``encoder.inner_folds``-fold cross-validation over contiguous blocks of
    whole sentences (trials) of the training data (mean squared error; the
    test windows are never seen), then the model is refit on all training
    windows (:class:`~brainalign.encoders.ridge_cv.RidgeCV`).
    """
    from ..encoders.cv import ContiguousKFold
    from ..encoders.ridge_cv import RidgeCV

    folds = _group_folds(groups, cfg["encoder"]["inner_folds"])
    if folds.max() < 1:
        raise InputFileError(None, f"subject {subject}: the training windows hold a single sentence; the ridge "
                                   "baseline's inner cross-validation needs at least 2.")
    alphas = np.asarray(cfg["encoder"]["alphas"], dtype=np.float64)
    # With groups, ContiguousKFold leaves one block out at a time (n_splits is ignored).
    model = RidgeCV(alphas=alphas, cv=ContiguousKFold(n_splits=2, gap=0), alpha_per_target=False, dtype="float64")
    model.fit(_flat(X), Y, groups=folds)
    if len(alphas) > 1 and model.alpha_[0] in (alphas.min(), alphas.max()):
        logger.warning("%s: the ridge baseline's penalty %g is at the end of encoder.alphas; widen the grid.",
                       subject, model.alpha_[0])
    return model


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
    split, split_record = _split(cfg, epochs, events, epoch_paths)
    Xs = _scaled(cfg, epochs, split)
    train_X, train_y, train_s = [], [], []
    for e, X, (train, _) in zip(epochs, Xs, split):
        train_X += list(X[train])
        train_y.append(labels[e.word_index[train]])
        train_s += [e.subject] * int(train.sum())
    model = DuINWordDecoder(sfreq=cfg["electrophysiology"]["sfreq"], patch_ms=wd["patch_ms"], d_model=wd["d_model"],
                            n_layers=wd["n_layers"], n_heads=wd["n_heads"], codebook_size=wd["codebook_size"],
                            pretrain_epochs=wd["pretrain_epochs"], epochs=wd["epochs"], batch_size=wd["batch_size"],
                            lr=wd["lr"], patience=wd["patience"], val_fraction=wd["val_fraction"],
                            random_state=wd["seed"], verbose=progress, device=resolve_device(cfg))
    model.fit(train_X, np.concatenate(train_y), subjects=np.asarray(train_s))
    rows, all_true, all_pred = [], [], []
    chance = 1.0 / len(model.classes_)
    sentence = events["sentence"].to_numpy() if "sentence" in events else np.arange(len(events))
    ridge_true, ridge_pred, ridge_alpha = [], [], {}
    word_run = events["run"].to_numpy()
    positions = []
    for e, X, (train, test) in zip(epochs, Xs, split):
        subj = np.asarray([e.subject] * int(test.sum()))
        y = labels[e.word_index[test]]
        pos = e.word_index[test]
        positions.append(pos)
        shift = {"cfg": cfg, "stimulus": pos, "runs": word_run[pos]}
        pred = model.predict(list(X[test]), subjects=subj)
        all_true.append(y)
        all_pred.append(pred)
        rows.append(_accuracy_row(e.subject, y, pred, chance, binomial_chance_interval, **shift))
        # Linear baseline: a ridge classifier (ridge to ±1 class codes, arg-max), one per subject.
        codes = np.where(labels[e.word_index[train]][:, None] == model.classes_[None, :], 1.0, -1.0)
        ridge = _ridge_decoder(cfg, X[train], codes, sentence[e.word_index[train]], e.subject)
        ridge_pred.append(model.classes_[np.argmax(ridge.predict(_flat(X[test])), axis=1)])
        ridge_true.append(y)
        ridge_alpha[e.subject] = float(ridge.alpha_[0])
        rows.append(_accuracy_row(e.subject, y, ridge_pred[-1], chance, binomial_chance_interval, "ridge", **shift))
    y, pred = np.concatenate(all_true), np.concatenate(all_pred)
    pos = np.concatenate(positions)
    shift = {"cfg": cfg, "stimulus": pos, "runs": word_run[pos]}
    rows.append(_accuracy_row("pooled", y, pred, chance, binomial_chance_interval, **shift))
    rows.append(_accuracy_row("pooled", np.concatenate(ridge_true), np.concatenate(ridge_pred), chance,
                              binomial_chance_interval, "ridge", **shift))
    classes = list(model.classes_)
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, ([index[v] for v in y], [index[v] for v in pred]), 1)
    out_dir = Path(out_dir)
    prov = provenance(cfg, [events_path, *epoch_paths], stage="word_decoding", **split_record,
                      ridge_alpha=ridge_alpha)
    scores = pd.DataFrame(rows).sort_values("decoder", kind="stable", key=lambda d: d != "duin")
    scores.insert(0, "dataset", cfg["dataset"]["name"])
    write_table(out_dir / "scores.csv", scores, prov)
    write_table(out_dir / "confusion.csv", pd.DataFrame(confusion, index=classes, columns=classes)
                .rename_axis("true").reset_index(), prov)
    _write_history(out_dir / "history.csv", model.history_, prov)
    model.save(out_dir / "word_decoder.safetensors")
    return out_dir


def _accuracy_row(subject, y, pred, chance, interval, decoder: str = "duin", cfg=None, stimulus=None,
                  runs=None) -> dict[str, Any]:
    """Accuracy with the binomial chance interval and, given ``cfg``, the label-shift test (as the top-k rows)."""
    from ..metrics.identification import accuracy_shift_test

    lo, hi = interval(len(y), chance)
    settings = None if cfg is None else _shift_null(cfg)
    null_mean = p_value = np.nan
    if settings is not None:
        _, p_value, null_mean = accuracy_shift_test(pred, y, stimulus=stimulus, runs=runs, **settings)
    return {"decoder": decoder, "subject": subject, "metric": "accuracy",
            "value": float(np.mean(np.asarray(y) == np.asarray(pred))), "chance": chance, "chance_low": lo,
            "chance_high": hi, "n_windows": len(y), "n_candidates": None, "chance_null": null_mean,
            "p_value": p_value}
