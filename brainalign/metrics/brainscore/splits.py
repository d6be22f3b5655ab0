"""Brain-Score's train/test splits, written out on numpy alone.

The split generators give the same indices as scikit-learn's ``ShuffleSplit``
and ``GroupKFold(shuffle=True)`` (scikit-learn >= 1.6) for the same seeds;
:data:`MIN_TEST_SIZE` and :func:`_check_test_sizes` refuse splits whose test
sets are too small for a score to mean anything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int

#: Fewest stimuli a test split may hold. On 2 stimuli a Pearson r is +1 or -1
#: (and a linear CKA 1, a Spearman r of RDMs undefined) whatever the data, so
#: each split's score is a coin flip: 12 to 20 stimuli of pure noise give
#: ``linear_pearsonr`` raw scores of +-0.4 to 0.6. From 3 stimuli on the
#: score depends on the data, though it stays noisy: the null standard
#: deviation of a split's r is about ``1 / sqrt(n_test - 1)``.
MIN_TEST_SIZE = 3

Splits = list[tuple[np.ndarray, np.ndarray]]


def _check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise BrainalignError(
            f"'random_state' must be a non-negative int (Brain-Score seeds numpy's legacy "
            f"RandomState), got {value!r}."
        )
    return int(value)


def _split_sizes(n: int, train_size: float | None, test_size: float | None) -> tuple[int, int]:
    """scikit-learn's ShuffleSplit size rule: ceil(test * n), floor(train * n)."""

    def kind(name: str, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool):
            raise BrainalignError(f"'{name}' must be a float in (0, 1) or an int, got {v!r}.")
        if isinstance(v, (int, np.integer)):
            if not 0 < v < n:
                raise BrainalignError(f"'{name}' must be in [1, {n - 1}] as an int, got {v}.")
            return "i"
        if isinstance(v, (float, np.floating)):
            if not 0 < v < 1:
                raise BrainalignError(f"'{name}' must be in (0, 1) as a float, got {v}.")
            return "f"
        raise BrainalignError(f"'{name}' must be a float in (0, 1) or an int, got {v!r}.")

    if train_size is None and test_size is None:
        test_size = 0.1
    k_train, k_test = kind("train_size", train_size), kind("test_size", test_size)
    n_test = math.ceil(test_size * n) if k_test == "f" else (int(test_size) if k_test == "i" else None)
    n_train = math.floor(train_size * n) if k_train == "f" else (int(train_size) if k_train == "i" else None)
    if n_train is None:
        n_train = n - n_test
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n or n_train <= 0 or n_test <= 0:
        raise BrainalignError(
            f"train_size={train_size!r} and test_size={test_size!r} give {n_train} training and "
            f"{n_test} test samples out of {n}; both must be >= 1 and sum to at most {n}."
        )
    return n_train, n_test


def shuffle_split(
    n_samples: int,
    n_splits: int = 10,
    *,
    train_size: float | None = None,
    test_size: float | None = None,
    random_state: int = 1,
) -> Splits:
    """Random train/test splits, index for index as scikit-learn's ``ShuffleSplit``.

    One ``numpy.random.RandomState(random_state)`` draws a permutation of the
    samples per split; the first ``n_test`` indices are the test set, the next
    ``n_train`` the training set. ``n_test = ceil(test_size * n)`` and
    ``n_train = floor(train_size * n)`` for floats; a missing size is the
    complement of the other (both missing: ``test_size=0.1``).

    Parameters
    ----------
    n_samples : int
        Number of samples (stimuli), >= 2.
    n_splits : int, default=10
    train_size, test_size : float in (0, 1), int or None
    random_state : int, default=1

    Returns
    -------
    splits : list of (train, test)
        Index arrays of shapes (n_train,) and (n_test,), in permutation order
        (not sorted), as scikit-learn yields them.
    """
    n = check_int("n_samples", n_samples, 2)
    n_splits = check_int("n_splits", n_splits, 1)
    n_train, n_test = _split_sizes(n, train_size, test_size)
    rng = np.random.RandomState(_check_seed(random_state))
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((perm[n_test : n_test + n_train], perm[:n_test]))
    return out


def group_kfold_shuffle(groups: ArrayLike, n_splits: int = 10, *, random_state: int = 1234) -> Splits:
    """K folds of whole groups, as scikit-learn's ``GroupKFold(shuffle=True)``.

    The distinct group labels are **sorted** (``numpy.unique``), permuted by
    ``numpy.random.RandomState(random_state)`` and cut into ``n_splits``
    consecutive chunks of near-equal numbers of groups (``numpy.array_split``);
    fold ``k`` tests every sample whose label is in chunk ``k``. Because the
    labels are sorted first, string labels (``'story_10'`` before
    ``'story_2'``) give different folds from the same stories numbered as
    integers.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Group label of each sample (story, sentence, ...).
    n_splits : int, default=10
        Number of folds, at most the number of distinct groups.
    random_state : int, default=1234

    Returns
    -------
    splits : list of (train, test)
        Sorted index arrays; the test sets partition the samples.
    """
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.shape[0] < 2:
        raise BrainalignError(
            f"'groups' must be 1-D with one label per sample (>= 2 samples), got shape {labels.shape}."
        )
    n_splits = check_int("n_splits", n_splits, 2)
    unique = np.unique(labels)
    if n_splits > unique.shape[0]:
        raise BrainalignError(
            f"'n_splits' ({n_splits}) must not exceed the number of distinct groups "
            f"({unique.shape[0]})."
        )
    rng = np.random.RandomState(_check_seed(random_state))
    shuffled = unique[rng.permutation(unique.shape[0])]
    indices = np.arange(labels.shape[0])
    out = []
    for chunk in np.array_split(shuffled, n_splits):
        test_mask = np.isin(labels, chunk)
        out.append((indices[~test_mask], indices[test_mask]))
    return out


def _check_test_sizes(metric: str, splits: Splits, n: int, remedy: str) -> None:
    """Refuse splits whose smallest test set has fewer than :data:`MIN_TEST_SIZE` stimuli."""
    smallest = min(test.size for _, test in splits)
    if smallest < MIN_TEST_SIZE:
        raise BrainalignError(
            f"{metric}: a test split holds {smallest} of the {n} stimuli, fewer than MIN_TEST_SIZE = "
            f"{MIN_TEST_SIZE}: on 2 stimuli a split's score says nothing about the data (a Pearson r is +1 "
            f"or -1, a linear CKA 1), so the result would be noise. {remedy}"
        )
