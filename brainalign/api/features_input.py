"""Model features in any of the forms a notebook holds them, on each subject's samples.

:func:`as_layers` turns an array, a dict of arrays, a features HDF5 file or a
model (with the words heard) into named layers; :func:`on_samples` puts
word-level layers on a subject's samples (HRF convolution for fMRI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, InputFileError
from ..io.features import Features
from .responses_input import SubjectResponses

__all__ = ["as_events", "as_layers", "on_samples"]


def as_events(events: Any) -> pd.DataFrame | None:
    """An events table (onset, duration, word, run) from a DataFrame or a TSV path, validated; None stays None."""
    from ..stimuli.events import read_events, validate_events

    if events is None:
        return None
    if isinstance(events, (str, os.PathLike)):
        return read_events(events)
    table = pd.DataFrame(events).copy()
    if "duration" not in table.columns:
        table["duration"] = 0.0
    if "run" not in table.columns:
        table["run"] = 1
    return validate_events(table)


def _model_layers(model: Any, events: pd.DataFrame | None, *, context_words: int, layers: Any,
                  progress: bool, device: str = "cpu") -> tuple[dict[str, np.ndarray], str]:
    from ..features.words import extract_word_features
    from ..models.hf import LoadedModel, load_model
    from ..stimuli.events import context_groups

    if events is None:
        raise BrainalignError("'features' is a model: give 'events' (the words heard, with their onsets in "
                              "seconds) so that its activations can be extracted.")
    if isinstance(model, LoadedModel):
        loaded = model  # the caller's model runs where the caller put it
    else:
        loaded = load_model(model)
        loaded.model.to(device)
    arrays = extract_word_features(
        loaded.model, loaded.tokenizer, events["word"].astype(str).tolist(), context_groups(events),
        context_words=context_words, max_length=loaded.identity["max_length"],
        layers=None if layers is None else list(layers), progress=progress,
    )
    return arrays, str(loaded.identity["name_or_path"])


def _h5_layers(path: Path, layers: Any) -> tuple[dict[str, np.ndarray], str]:
    from ..io.features import read_features
    from ..io.hdf5 import contract_of

    kind = "design" if contract_of(path).startswith("design") else "features"
    feats = read_features(path, layers=None if layers is None else [str(x) for x in layers], kind=kind)
    return dict(feats.layers), feats.model


def as_layers(
    features: Any, events: pd.DataFrame | None = None, *, layers: Any = None, context_words: int = 32,
    progress: bool = True, device: str = "cpu",
) -> tuple[dict[str, np.ndarray], str]:
    """Named 2-D float64 layers (rows = samples or words) and a name for the feature set.

    Parameters
    ----------
    features : array-like, dict of str to array-like, Features, path, model name/path or LoadedModel
        An array of shape (n_rows, n_features) is one layer named
        ``"features"``. A ``.h5``/``.hdf5`` path is a features or design file
        written by the workflow. Any other string or path, or a
        :class:`~brainalign.models.hf.LoadedModel`, is a transformer (local
        folder or a hub name in the local Hugging Face cache) run on the
        words of ``events``: one layer per hidden state.
    events : DataFrame or None
        The words (:func:`as_events`), needed for a model.
    layers : sequence or None
        Only these layers (indices for a model, names otherwise).
    context_words : int
        Words of context per window for a model.
    progress : bool
        Show a progress bar while a model runs.
    device : str
        Torch device a model given by name or path runs on (a
        ``LoadedModel`` stays where it is).
    """
    from ..models.hf import LoadedModel

    if isinstance(features, Features):
        arrays, name = dict(features.layers), features.model
    elif isinstance(features, LoadedModel):
        arrays, name = _model_layers(features, events, context_words=context_words, layers=layers,
                                     progress=progress, device=device)
    elif isinstance(features, (str, os.PathLike)):
        path = Path(features)
        if path.name.lower().endswith((".h5", ".hdf5")):
            if not path.is_file():
                raise InputFileError(path, "features file does not exist.")
            arrays, name = _h5_layers(path, layers)
        else:
            arrays, name = _model_layers(features, events, context_words=context_words, layers=layers,
                                         progress=progress, device=device)
    elif isinstance(features, Mapping):
        arrays, name = {str(k): v for k, v in features.items()}, "features"
    else:
        arrays, name = {"features": features}, "features"
    if layers is not None and not isinstance(features, (LoadedModel, str, os.PathLike)):
        wanted = [str(x) for x in layers]
        missing = [x for x in wanted if x not in arrays]
        if missing:
            raise BrainalignError(f"layer(s) {missing} not in the features; have {list(arrays)}.")
        arrays = {x: arrays[x] for x in wanted}
    out = {}
    for layer, value in arrays.items():
        arr = np.asarray(value, dtype=np.float64)
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise BrainalignError(f"features of layer {layer!r} must be 2-D (rows × features), got {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise BrainalignError(f"features of layer {layer!r} hold a NaN or infinite value.")
        out[layer] = arr
    if not out:
        raise BrainalignError("'features' holds no layer.")
    return out, name


def on_samples(
    layer: np.ndarray, subject: SubjectResponses, events: pd.DataFrame | None, *, sampling_interval: float | None,
    first_sample_onset: float, hrf_model: str,
) -> np.ndarray:
    """One layer on one subject's samples, shape (n_samples, n_features).

    With ``events``, rows are words when there are as many as the events'
    rows (whatever the sample count): they are convolved with the HRF
    (``hrf_model``, nilearn's SPM or Glover) on each run's sample times —
    the subject's own times where the input had them (a
    :class:`~brainalign.io.Responses`), else ``first_sample_onset +
    sampling_interval * k`` within each run. Otherwise rows equal to the
    subject's samples are used as they are (epoched data, MNE ``Epochs``,
    take one row per epoch).

    Raises
    ------
    BrainalignError
        Rows matching neither; words of a run the subject does not have, or
        starting after the last sample of their run (the workflow's rules,
        :func:`brainalign.pipeline.stages.convolve_runs`: such a word would
        be left out silently).
    """
    from ..features.design import events_after_last_volume, hrf_convolve

    n = subject.data.shape[0]
    words = events is not None and layer.shape[0] == len(events)
    if not words:
        if layer.shape[0] == n:
            return layer
        rows = f"the {len(events)} words of 'events'" if events is not None else "no 'events' given"
        raise BrainalignError(f"features have {layer.shape[0]} rows, but subject {subject.subject!r} has {n} "
                              f"samples ({rows}): give features on the samples, or one row per word with 'events'.")
    if subject.epochs:
        raise BrainalignError(f"subject {subject.subject!r} is epoched ({n} epochs): give one feature row per "
                              f"epoch, not per word ({layer.shape[0]}).")
    if subject.modality != "fmri":
        raise BrainalignError(f"subject {subject.subject!r} is {subject.modality} data: word-level features are put "
                              "on the samples by HRF convolution, which is for fMRI only. Give epochs (mne.Epochs, "
                              "one feature row per epoch) or features on the samples (e.g. a lagged design).")
    onsets = events["onset"].to_numpy(float)
    durations = events["duration"].to_numpy(float)
    word_runs = events["run"].to_numpy()
    sample_runs = np.unique(subject.runs)
    unknown = sorted(set(word_runs.tolist()) - set(sample_runs.tolist()))
    if unknown:
        raise BrainalignError(f"'events' have words in run(s) {unknown}, which subject {subject.subject!r} does not "
                              f"have (its runs: {sample_runs.tolist()}); give the samples' run labels with 'runs' "
                              "(one per sample) for data of several runs.")
    blocks = []
    for run in sample_runs:
        in_run = subject.runs == run
        if subject.times is not None:
            times = subject.times[in_run]
        elif sampling_interval is None:
            raise BrainalignError("word-level features need the responses' sampling interval: give "
                                  "'sampling_interval' (seconds between samples, the TR for fMRI).")
        else:
            times = first_sample_onset + sampling_interval * np.arange(int(in_run.sum()), dtype=np.float64)
        sel = word_runs == run
        if not sel.any():
            raise BrainalignError(f"'events' have no word in run {run} of subject {subject.subject!r} "
                                  f"(runs of the events: {sorted(set(word_runs.tolist()))}).")
        late = np.flatnonzero(events_after_last_volume(onsets[sel], times))
        if late.size:
            first = np.flatnonzero(sel)[late[0]]
            raise BrainalignError(f"word {events['word'].iat[first]!r} (events row {first}) starts at "
                                  f"{onsets[first]:.3f} s, after the last sample of run {run} of subject "
                                  f"{subject.subject!r} ({times.size} samples from {times[0]:g} s); {late.size} "
                                  "word(s) of the run in all. Check the onsets (seconds on the samples' clock), "
                                  "'first_sample_onset' and 'sampling_interval'.")
        blocks.append(hrf_convolve(onsets[sel], durations[sel], layer[sel], times, hrf_model))
    return np.concatenate(blocks, axis=0)
