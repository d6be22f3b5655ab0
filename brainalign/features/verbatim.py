"""Verbatim short-term memory of language models: repeat surprisal of noun lists (Armeni et al. 2022).

A trial is a preface sentence, a list of ``N`` nouns, an intervening text of
``K`` words, a short cue, and a second list: the **same** nouns in the same
order (``repeated``), the same nouns shuffled (``permuted``), or ``N`` other
nouns (``control``). Repeat surprisal = median surprisal (bits) over the second
list's nouns / median over the first list's, in %. A model that retrieves the
list verbatim predicts the repeat: well below 100 % for ``repeated``, nearer
100 % for ``control``. The texts and the noun pool below are brainalign's own
(common English words, so that word-level models trained on a corpus such as
Brown know them); ``docs/language.md`` has the details.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError
from .surprisal import lm_word_surprisal

__all__ = ["NOUNS", "CONDITIONS", "verbatim_trials", "repeat_surprisal", "summarize_repeat_surprisal"]

CONDITIONS = ("repeated", "permuted", "control")

#: Common concrete nouns (each one word, lower case).
NOUNS = ("table", "window", "river", "horse", "letter", "church", "garden", "doctor", "money", "paper", "music",
         "picture", "village", "kitchen", "island", "ship", "glass", "mountain", "student", "teacher", "camera",
         "bridge", "forest", "flower", "engine", "hotel", "market", "library", "bottle", "chair", "train",
         "street", "soldier", "farmer", "minister", "coffee", "bread", "apple", "shirt", "dog", "car", "boat",
         "hospital", "lawyer", "prison", "theater", "college", "factory", "wall", "door", "bed", "box", "tree",
         "book", "fish", "horn", "coat", "wheel", "stone")

_PREFACE = "before the meeting , mary wrote down the following list of words :".split()
_CUE = "she read the list again :".split()
#: Filler of the intervening text, cut to length (it is repeated if a longer one is asked for).
_FILLER = ("after the meeting , she went for a walk in the park near the office and sat on a bench for a while . "
           "the weather was mild , and many people were out with their children . later she returned to her desk , "
           "answered a few calls , and made herself a cup of tea before the afternoon session started . "
           "when the session was over , she packed her things and looked at her notes once more .").split()


def _intervening(length: int) -> list[str]:
    words = list(_FILLER)
    while len(words) < length:
        words += _FILLER
    return words[:length]


def verbatim_trials(list_lengths: Sequence[int] = (3, 5, 7, 10), intervening_lengths: Sequence[int] = (4, 26, 99),
                    n_trials: int = 20, nouns: Sequence[str] = NOUNS, seed: int = 0) -> pd.DataFrame:
    """The trials of the paradigm, one row per (condition, list length, intervening length, trial).

    The first list is drawn once per (list length, trial) and shared by the
    three conditions, so they differ only in the second list.

    Returns
    -------
    DataFrame
        ``condition``, ``list_length``, ``intervening_length``, ``trial``,
        ``words`` (list of str), ``first`` and ``second`` (word indices of the two lists).
    """
    nouns = list(nouns)
    if max(list_lengths) * 2 > len(nouns):
        raise BrainalignError(f"the noun pool has {len(nouns)} nouns; a list of {max(list_lengths)} and its control "
                              f"need {2 * max(list_lengths)}.")
    rng = np.random.default_rng(seed)
    rows = []
    for n in list_lengths:
        for trial in range(n_trials):
            picked = rng.permutation(len(nouns))[: 2 * n]
            first = [nouns[i] for i in picked[:n]]
            control = [nouns[i] for i in picked[n:]]
            permuted = list(first)
            while n > 1 and permuted == first:
                permuted = [first[i] for i in rng.permutation(n)]
            for k in intervening_lengths:
                for condition, second in zip(CONDITIONS, (first, permuted, control)):
                    head = _PREFACE + first + _intervening(k) + _CUE
                    words = head + second
                    start1 = len(_PREFACE)
                    rows.append({"condition": condition, "list_length": n, "intervening_length": k, "trial": trial,
                                 "words": words, "first": list(range(start1, start1 + n)),
                                 "second": list(range(len(head), len(head) + n))})
    return pd.DataFrame(rows)


def repeat_surprisal(model: Any, tokenizer: Any, trials: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Repeat surprisal (%) of every trial: median bits over the second list / over the first list.

    Parameters
    ----------
    model : nn.Module
        A causal LM (:func:`~brainalign.models.lm.next_token_logits`).
    tokenizer : transformers tokenizer or WordVocabulary
    trials : DataFrame
        :func:`verbatim_trials`.

    Returns
    -------
    DataFrame
        ``trials`` without the word lists, plus ``first_median``,
        ``second_median`` (bits) and ``repeat_surprisal`` (%).
    """
    words, groups = [], []
    for k, row in enumerate(trials.itertuples(index=False)):
        words += row.words
        groups += [k] * len(row.words)
    values = lm_word_surprisal(model, tokenizer, words, groups, progress=progress)["surprisal"].to_numpy()
    out = trials.drop(columns=["words", "first", "second"]).copy()
    first_med, second_med = [], []
    offset = 0
    for row in trials.itertuples(index=False):
        first_med.append(float(np.median(values[offset + np.asarray(row.first)])))
        second_med.append(float(np.median(values[offset + np.asarray(row.second)])))
        offset += len(row.words)
    out["first_median"] = first_med
    out["second_median"] = second_med
    out["repeat_surprisal"] = 100.0 * out["second_median"] / out["first_median"]
    return out


def summarize_repeat_surprisal(per_trial: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Median repeat surprisal over trials with a 95 % bootstrap interval, per condition, list and intervening length."""
    rng = np.random.default_rng(seed)
    keys = [k for k in ("model", "condition", "list_length", "intervening_length") if k in per_trial]
    rows = []
    for key, group in per_trial.groupby(keys, sort=True):
        values = group["repeat_surprisal"].to_numpy()
        boots = np.median(values[rng.integers(0, len(values), (n_boot, len(values)))], axis=1)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "median": float(np.median(values)), "ci_low": float(np.quantile(boots, 0.025)),
                     "ci_high": float(np.quantile(boots, 0.975)), "n_trials": len(values)})
    return pd.DataFrame(rows)
