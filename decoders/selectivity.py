"""Voxel-wise selectivity captions (BrainSCUBA, Luo et al. 2023).

A linear encoder maps image embeddings to each voxel's response, so the
voxel's weight vector ``w`` (in embedding space) is the direction it prefers.
BrainSCUBA projects that direction onto the manifold of natural images: with a
bank of image embeddings ``b_j`` (L2-normalised), the projection is the
softmax-weighted mean

    p(w) = sum_j softmax_j(tau * cos(w, b_j)) b_j,   tau = 100,

which is then rescaled to the bank's mean norm and decoded into a caption by
a captioner conditioned on image embeddings. Units can be voxels or ROIs (the
mean weight vector of the ROI's voxels).

Captions are then summarised by word category (:func:`category_shares`),
e.g. the share of person, place or food words in each voxel's caption, which
BrainSCUBA maps over the cortex.

This module imports only numpy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError

__all__ = ["STOP_WORDS", "category_shares", "project_to_bank", "roi_weights"]

#: Words not counted in a caption's length by :func:`category_shares`.
STOP_WORDS = tuple(sorted("a an the on in of with and at to is are its their some by near from for".split()))


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def project_to_bank(weights: ArrayLike, bank: ArrayLike, temperature: float = 100.0,
                    top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Project preferred directions onto a bank of natural-image embeddings.

    Parameters
    ----------
    weights : array-like of shape (n_units, dim)
        Encoder weight vectors (one per voxel or ROI), in embedding space.
    bank : array-like of shape (n_bank, dim)
        Image embeddings (e.g. the training images' pooled embeddings).
    temperature : float
        Inverse softmax temperature on cosine similarities (100 in BrainSCUBA).
    top : int
        How many bank entries with the largest softmax weight to return per unit.

    Returns
    -------
    projected : ndarray of shape (n_units, dim)
        The softmax-weighted mean of the unit-norm bank embeddings, rescaled to
        the bank's mean norm (the scale the captioner was trained on).
    top_index : ndarray of shape (n_units, top)
        Bank rows with the largest weights, best first.
    """
    W = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    B = np.atleast_2d(np.asarray(bank, dtype=np.float64))
    if W.shape[1] != B.shape[1]:
        raise BrainalignError(f"'weights' have {W.shape[1]} dimensions but the 'bank' embeddings {B.shape[1]}.")
    if not (np.isfinite(W).all() and np.isfinite(B).all()):
        raise BrainalignError("'weights' and 'bank' must be finite.")
    if temperature <= 0:
        raise BrainalignError(f"'temperature' must be positive, got {temperature}.")
    Bu = _unit(B)
    logits = temperature * (_unit(W) @ Bu.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    projected = _unit(p @ Bu) * np.linalg.norm(B, axis=1).mean()
    top_index = np.argsort(-p, axis=1, kind="stable")[:, : min(top, B.shape[0])]
    return projected, top_index


def roi_weights(weights: ArrayLike, labels: ArrayLike) -> tuple[list[str], np.ndarray]:
    """Mean weight vector of each ROI.

    Parameters
    ----------
    weights : array-like of shape (n_voxels, dim)
    labels : array-like of shape (n_voxels,)
        ROI of each voxel; empty strings are outside every ROI and ignored.

    Returns
    -------
    rois : list of str
        ROI names, sorted.
    mean_weights : ndarray of shape (n_rois, dim)
    """
    W = np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    if len(labels) != len(W):
        raise BrainalignError(f"{len(labels)} ROI labels for {len(W)} weight vectors.")
    rois = sorted(set(labels) - {""})
    if not rois:
        raise BrainalignError("no voxel belongs to an ROI (all labels are empty).")
    return rois, np.stack([W[labels == r].mean(axis=0) for r in rois])


def _singular(word: str) -> tuple[str, ...]:
    forms = [word]
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and len(word) > 2:
        forms.append(word[:-1])
    return tuple(forms)


def category_shares(captions: Sequence[str], categories: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Share of each caption's content words that belong to each word category.

    Parameters
    ----------
    captions : sequence of str
    categories : mapping of str to sequence of str
        Category name → its words (lower case). A caption word matches a
        category when it, or it without a plural ``-s``/``-es``, is listed.

    Returns
    -------
    ndarray of shape (n_captions, n_categories), float64
        Matching words / content words (lower-case alphabetic words that are
        not in :data:`STOP_WORDS`), in the order of ``categories``; 0 for a
        caption without content words.
    """
    if not categories:
        raise BrainalignError("'categories' is empty: give at least one category and its words.")
    lexicon = {name: {str(w).lower() for w in words} for name, words in categories.items()}
    stop = set(STOP_WORDS)
    out = np.zeros((len(captions), len(lexicon)))
    for i, caption in enumerate(captions):
        words = [w for w in re.findall(r"[a-z]+", str(caption).lower()) if w not in stop]
        if not words:
            continue
        for k, vocabulary in enumerate(lexicon.values()):
            out[i, k] = sum(any(f in vocabulary for f in _singular(w)) for w in words) / len(words)
    return out
