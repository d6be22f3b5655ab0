"""An n-gram language model with interpolated absolute discounting: the count-based baseline of the trained LMs.

``P(w | h) = max(c(h, w) - D, 0) / c(h) + D * N1+(h ·) / c(h) * P(w | h')``,
with ``h'`` the context shortened by one word, ``N1+(h ·)`` the number of
distinct words seen after ``h``, and a discount ``D = n1 / (n1 + 2 n2)`` per
order (Ney, Essen & Kneser 1994; ``n1``, ``n2``: n-grams seen once, twice).
Unseen contexts use ``P(w | h')`` alone. The recursion ends in the add-one
unigram distribution over the vocabulary, so every probability is positive
and each conditional distribution sums to 1 (tested).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .._validation import BrainalignError

__all__ = ["NGramLM"]


class NGramLM:
    """Interpolated absolute-discounting n-gram model over token ids.

    Parameters
    ----------
    order : int, default=3
    vocab_size : int
        Number of token ids (ids are ``0 .. vocab_size - 1``).
    """

    def __init__(self, order: int = 3, vocab_size: int | None = None):
        if int(order) != order or order < 1:
            raise BrainalignError(f"NGramLM: order must be an integer >= 1, got {order!r}.")
        self.order = int(order)
        self.vocab_size = vocab_size

    def fit(self, ids: Sequence[int]) -> NGramLM:
        """Count n-grams of every order up to :attr:`order` in a token stream."""
        ids = [int(i) for i in ids]
        if self.vocab_size is None:
            self.vocab_size = max(ids) + 1
        self.counts_: list[Counter] = []
        self.context_counts_: list[Counter] = []
        self.followers_: list[Counter] = []
        self.discounts_: list[float] = []
        for n in range(1, self.order + 1):
            grams = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))
            contexts: Counter = Counter()
            followers: defaultdict = defaultdict(int)
            for gram, count in grams.items():
                contexts[gram[:-1]] += count
                followers[gram[:-1]] += 1
            n1 = sum(1 for c in grams.values() if c == 1)
            n2 = sum(1 for c in grams.values() if c == 2)
            self.counts_.append(grams)
            self.context_counts_.append(contexts)
            self.followers_.append(Counter(followers))
            self.discounts_.append(n1 / (n1 + 2 * n2) if n1 + n2 else 0.5)
        self.total_ = len(ids)
        return self

    def prob(self, context: Sequence[int], word: int) -> float:
        """``P(word | context)`` using the last ``order - 1`` ids of ``context``."""
        context = tuple(int(i) for i in context)[-(self.order - 1):] if self.order > 1 else ()
        unigram = self.counts_[0]
        p = (unigram.get((int(word),), 0) + 1) / (self.total_ + self.vocab_size)
        for n in range(2, self.order + 1):
            if len(context) < n - 1:
                break
            h = context[len(context) - (n - 1):]
            c_h = self.context_counts_[n - 1].get(h, 0)
            if c_h == 0:
                continue
            D = self.discounts_[n - 1]
            c_hw = self.counts_[n - 1].get(h + (int(word),), 0)
            p = max(c_hw - D, 0.0) / c_h + D * self.followers_[n - 1][h] / c_h * p
        return p

    def surprisal(self, ids: Sequence[int]) -> np.ndarray:
        """Bits of every token given the preceding ones (the first token: the unigram distribution)."""
        ids = [int(i) for i in ids]
        return np.array([-math.log2(self.prob(ids[max(0, i - self.order + 1):i], w)) for i, w in enumerate(ids)])

    def perplexity(self, ids: Sequence[int]) -> float:
        """``2 ** mean surprisal`` over a held-out stream (tokens after the first ``order - 1``)."""
        bits = self.surprisal(ids)[self.order - 1:]
        return float(2.0 ** bits.mean())
