"""Verbatim short-term memory: the paradigm's trials and repeat surprisal on a model whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from brainalign.features.verbatim import (
    CONDITIONS,
    NOUNS,
    repeat_surprisal,
    summarize_repeat_surprisal,
    verbatim_trials,
)
from brainalign.stimuli.corpus import WordVocabulary


class PerfectCopier(nn.Module):
    """Predicts the token that followed the last earlier occurrence of the current token (logit 10), else uniform."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, input_ids):
        ids = input_ids[0].tolist()
        logits = torch.zeros(1, len(ids), self.vocab_size, dtype=torch.float64)
        for t, token in enumerate(ids):
            earlier = [j for j in range(t) if ids[j] == token]
            if earlier:
                logits[0, t, ids[earlier[-1] + 1]] = 10.0
        return {"logits": logits}


def test_trials_share_the_first_list_and_differ_only_in_the_second():
    trials = verbatim_trials(list_lengths=(3, 5), intervening_lengths=(4, 30), n_trials=4, seed=1)
    assert len(trials) == 2 * 2 * 4 * 3 and set(trials["condition"]) == set(CONDITIONS)
    for _, group in trials.groupby(["list_length", "intervening_length", "trial"]):
        rows = {r.condition: r for r in group.itertuples()}
        first = [rows["repeated"].words[i] for i in rows["repeated"].first]
        assert all([r.words[i] for i in r.first] == first for r in rows.values())
        second = {c: [r.words[i] for i in r.second] for c, r in rows.items()}
        assert second["repeated"] == first and sorted(second["permuted"]) == sorted(first)
        assert second["permuted"] != first and not set(second["control"]) & set(first)
        assert len(rows["repeated"].words) - len(first) * 2 - rows["repeated"].intervening_length == 13 + 6


def test_repeat_surprisal_of_a_perfect_copier_matches_the_hand_computed_values():
    trials = verbatim_trials(list_lengths=(3, 5), intervening_lengths=(4, 26), n_trials=3, seed=0)
    vocab = WordVocabulary(sorted({w for words in trials["words"] for w in words}))
    result = repeat_surprisal(PerfectCopier(len(vocab)), vocab, trials, progress=False)
    V = len(vocab)
    uniform = math.log2(V)  # the first list: no noun has an earlier occurrence of its preceding token
    hit = -math.log2(math.exp(10) / (math.exp(10) + V - 1))
    np.testing.assert_allclose(result["first_median"], uniform, rtol=1e-12)
    by = result.groupby("condition")["repeat_surprisal"]
    np.testing.assert_allclose(by.get_group("repeated"), 100 * hit / uniform, rtol=1e-12)
    # Control: only the first new noun is mispredicted (the cue's ':' recalls the first list); the median is uniform.
    np.testing.assert_allclose(by.get_group("control"), 100.0, rtol=1e-12)
    # Permuted: some transitions of the first list survive the shuffle, never all of them.
    assert (by.get_group("permuted") >= 100 * hit / uniform - 1e-9).all()
    assert by.get_group("permuted").mean() > 100 * hit / uniform
    summary = summarize_repeat_surprisal(result, n_boot=50)
    assert len(summary) == 3 * 2 * 2 and (summary["ci_low"] <= summary["median"]).all()


def test_the_noun_pool_is_not_in_the_texts():
    from brainalign.features import verbatim

    texts = set(verbatim._PREFACE) | set(verbatim._CUE) | set(verbatim._FILLER)
    assert not texts & set(NOUNS) and len(set(NOUNS)) == len(NOUNS)
