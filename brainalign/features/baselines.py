"""Baseline feature sets that go through the same path as model features.

* **word rate** — a single column of ones per word: after HRF convolution it
  is the classic word-rate regressor (a strong baseline on small datasets).
* **random embedding** — one fixed N(0, 1) vector per lower-cased word type,
  of the model's dimension. A type's vector depends only on the seed and the
  word itself (not on the rest of the vocabulary), so the same word gets the
  same vector in every dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["word_rate_features", "random_embedding_features"]


def word_rate_features(n_words: int) -> np.ndarray:
    """Return ones of shape (n_words, 1), float32: one unit impulse per word."""
    return np.ones((n_words, 1), dtype=np.float32)


def _word_seed(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")


def random_embedding_features(words: Sequence[str], dim: int, seed: int) -> np.ndarray:
    """One fixed standard-normal vector per lower-cased word type.

    Parameters
    ----------
    words : sequence of str, length n_words
    dim : int
        Embedding dimension (use the compared model's hidden size).
    seed : int
        Seed of this random embedding; different seeds give independent vectors.

    Returns
    -------
    features : ndarray of shape (n_words, dim), float32
    """
    table: dict[str, np.ndarray] = {}
    out = np.empty((len(words), dim), dtype=np.float32)
    for i, word in enumerate(words):
        key = word.lower()
        if key not in table:
            rng = np.random.default_rng([int(seed), _word_seed(key)])
            table[key] = rng.standard_normal(dim).astype(np.float32)
        out[i] = table[key]
    return out
