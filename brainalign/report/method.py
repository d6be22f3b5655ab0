"""The fMRI report's Method, stated from what was run: the scores table and the outputs' provenance.

Every setting the Method names comes from ``scores.csv`` (its ``cv`` and
``alpha_criterion`` columns, its folds) or from the config recorded in the
provenance sidecar (``<table>.json``) of the stage that used it, never from the
config the report is given: a report states what produced its numbers.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .._validation import InputFileError
from ..io import read_table

__all__ = ["recorded_config", "score_configs", "cv_text", "cleaning_text", "fmriprep_confounds_text", "method_items",
           "partition_reason"]

_CV_LABEL = re.compile(r"^(?:(?P<runs>leave_one_run_out)|contiguous(?P<k>\d+))_gap(?P<gap>\d+)(?P<pooled>_pooled)?$")


def recorded_config(table: Path) -> dict[str, Any]:
    """The config recorded in the provenance sidecar ``<table>.json`` of an output table.

    Raises
    ------
    InputFileError
        When the sidecar is missing, is not JSON or records no config.
    """
    sidecar = table.with_name(table.name + ".json")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(sidecar, "provenance sidecar does not exist; the report states the settings that "
                                      "ran from it (rerun the stage that writes the table).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputFileError(sidecar, f"provenance sidecar is not readable JSON ({err}).") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise InputFileError(sidecar, "provenance sidecar records no config.")
    return record["config"]


def score_configs(results_dir: Path, scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Feature set -> the config its score stage ran with (``scores/<set>.csv.json``).

    A set whose own sidecar is absent gets the config of the aggregate stage
    (``scores.csv.json``), which read its scores.
    """
    names = dict.fromkeys(scores["feature_set"].astype(str)) if "feature_set" in scores else {}
    out = {}
    for name in names:
        own = results_dir / "scores" / f"{name}.csv"
        out[name] = recorded_config(own if own.with_name(own.name + ".json").exists() else results_dir / "scores.csv")
    return out or {"": recorded_config(results_dir / "scores.csv")}


def _code(text: Any) -> str:
    return f"<code>{html.escape(str(text))}</code>"


def cv_text(label: str, n_outer: int, encoder: dict[str, Any]) -> str:
    """The outer and inner cross-validation that produced scores with ``cv`` = ``label``, in words (HTML).

    Parameters
    ----------
    label : str
        The ``cv`` column of the scores table
        (:func:`brainalign.pipeline.stages.cv_label`).
    n_outer : int
        The number of outer folds in the table (the runs, for leave-one-run-out).
    encoder : dict
        The ``encoder`` section recorded by the score stage.
    """
    match = _CV_LABEL.match(label)
    chosen = "per target" if encoder["alpha_per_target"] else "shared by all targets"
    alphas = encoder["alphas"]
    grid = f"{len(alphas)} values from {min(alphas):g} to {max(alphas):g}"
    if match is None:
        return f"outer folds {_code(label)}; alphas {chosen} ({grid}), chosen on the outer training set alone"
    gap = int(match["gap"])
    if match["runs"]:
        outer = f"leave-one-run-out CV over the {n_outer} runs"
        note = f"each run held out whole, the {gap}-sample gap applying only within a run"
        inner = (f"leave-one-run-out CV over the {n_outer - 1} training runs" if n_outer - 1 >= 2 else
                 f"{encoder['inner_folds']}-fold contiguous CV within the one training run, {gap} samples dropped "
                 "at each inner test boundary")
    else:
        outer = f"{match['k']}-fold contiguous CV"
        note = f"{gap} samples dropped at each test boundary"
        inner = f"{encoder['inner_folds']}-fold contiguous CV with the same gap"
    return (f"outer {outer} ({note}; {_code('cv')} = {_code(label)} in {_code('scores.csv')}); alphas {chosen} "
            f"({grid}), chosen on the outer training set alone by an inner {inner}")


def _per_feature_set(texts: dict[str, str]) -> str:
    """One text when every feature set shares it, else each text on its own line after the sets it describes."""
    groups: dict[str, list[str]] = {}
    for name, text in texts.items():
        groups.setdefault(text, []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "<br>".join(f"<b>{html.escape(', '.join(names))}</b>: {text}" for text, names in groups.items())


def _rows(scores: pd.DataFrame, feature_set: str) -> pd.DataFrame:
    """The scores of one feature set (all of them for ``""``: a table without the column)."""
    return scores[scores["feature_set"].astype(str) == feature_set] if feature_set else scores


def _encoder_text(scores: pd.DataFrame, configs: dict[str, dict[str, Any]]) -> str:
    from ..encoders.ridge_core import ALPHA_CRITERIA

    texts = {}
    for name, cfg in configs.items():
        rows = _rows(scores, name)
        n_outer = rows.loc[rows["fold"].astype(str) != "mean", "fold"].astype(str).nunique()
        schemes = "; ".join(cv_text(label, n_outer, cfg["encoder"]) for label in sorted(set(rows["cv"].astype(str))))
        criteria = "; ".join(f"{_code(c)}: {html.escape(ALPHA_CRITERIA.get(c, c))}"
                             for c in sorted(set(rows["alpha_criterion"].astype(str))))
        texts[name] = f"{schemes}, by {criteria}"
    return f"Encoder: ridge with intercept; {_per_feature_set(texts)}."


def _score_text(scores: pd.DataFrame, configs: dict[str, dict[str, Any]]) -> str:
    pooled = set()
    for name, cfg in configs.items():
        for label in set(_rows(scores, name)["cv"].astype(str)):
            match = _CV_LABEL.match(label)
            pooled.add(bool(match["pooled"]) if match else bool(cfg["encoder"]["pooled"]))
    ways = {False: "Pearson r within each outer fold, averaged over folds",
            True: "Pearson r of the held-out predictions of all outer folds concatenated (pooled)"}
    return "Score: " + " or ".join(ways[p] for p in sorted(pooled)) + "."


def cleaning_text(pre: dict[str, Any]) -> str:
    """The signal cleaning of the ``preprocessing`` section, with the fMRIPrep confounds regressed (HTML)."""
    return (f"nilearn.signal.clean(detrend={pre['detrend']}, high_pass={pre['high_pass']}, "
            f"standardize={pre['standardize']!r}, confounds={pre['confounds']!r})"
            f"{html.escape(fmriprep_confounds_text(pre))}")


def fmriprep_confounds_text(pre: dict[str, Any]) -> str:
    """Which fMRIPrep confounds were regressed (empty unless ``confounds`` is ``fmriprep``)."""
    if pre["confounds"] != "fmriprep":
        return ""
    settings = pre["fmriprep_confounds"]
    if settings["preset"]:
        return f", fMRIPrep confounds: nilearn preset {settings['preset']!r}"
    parts = []
    for component in settings["strategy"]:
        if component == "scrub":
            parts.append(f"scrub (FD > {settings['fd_threshold']:g} mm or std DVARS > "
                         f"{settings['std_dvars_threshold']:g}, segments < {settings['scrub']} volumes)")
        elif component == "compcor":
            parts.append(f"compcor ({settings['compcor']}, {settings['n_compcor']})")
        elif component in settings:
            parts.append(f"{component} ({settings[component]})")
        else:
            parts.append(component)
    return f", fMRIPrep confounds: {', '.join(parts)}"


def method_items(results_dir: Path) -> list[str]:
    """The Method section's list items (HTML), each stating what the tables and their provenance record."""
    scores = read_table(results_dir / "scores.csv", required=["cv", "alpha_criterion", "fold"])
    configs = score_configs(results_dir, scores)
    min_ceiling = recorded_config(results_dir / "scores.csv")["statistics"]["min_ceiling"]
    cleaning = _per_feature_set({n: cleaning_text(c["preprocessing"]) for n, c in configs.items()})
    design = _per_feature_set({n: html.escape(f"{c['design']['model']} ({c['design']['hrf_model']} HRF)")
                               for n, c in configs.items()})
    return [
        f"Cleaning (responses and designs alike): {cleaning}.",
        f"Design: {design}.",
        _encoder_text(scores, configs),
        _score_text(scores, configs),
        f"Normalized score = score / ceiling of the ROI clipped to [0, 1] (Brain-Score's), unclipped ratio kept; "
        f"missing where the ceiling is below {min_ceiling:g}.",
        "Best layer: chosen on the other subjects (nested), never on the subject reported.",
    ]


def partition_reason(cfg: dict[str, Any], results_dir: Path) -> str:
    """Why the results hold no ``variance_partition.csv``, in words (HTML).

    The partition stage runs on ROI datasets with a model and a word-rate
    feature set (``workflows/rules/common.smk``); the feature sets are the
    ones the aggregate stage recorded.
    """
    from ..datasets.registry import get_kind
    from ..pipeline.stages import partition_pair

    recorded = recorded_config(results_dir / "scores.csv")
    rate = next((n for n, s in recorded["feature_sets"].items() if s["kind"] == "word_rate"), None)
    kind = get_kind(cfg)
    if kind.modality != "roi":
        have = f"the word-rate baseline {_code(rate)} is configured, but " if rate else ""
        return (f"Not run: {have}variance partitioning runs on ROI datasets only; this dataset (kind "
                f"{_code(kind.name)}) is scored voxel by voxel over the whole brain, where no banded ridge is fit.")
    if rate is None:
        return f"Not run: no word-rate feature set (kind {_code('word_rate')}) is configured."
    if partition_pair(recorded) is None:
        return (f"Not run: no model to set against the word-rate baseline {_code(rate)} "
                f"({_code('comparison.model')}, or a transformer feature set).")
    return (f"Not run: {_code('variance_partition.csv')} is not in the results folder (the partition stage did not "
            "run for these results).")
