"""Cross-validation splitters for fMRI (and other) time series.

Why not shuffled K-fold
-----------------------
Consecutive fMRI volumes are not independent samples. The haemodynamic
response function (HRF) smears the response to each stimulus event over
roughly 10–15 s (5–10 volumes at a TR of 1.5–2 s), and slow drifts and
physiological noise add further autocorrelation. With shuffled splits, almost
every test sample has its immediate neighbours in the training set; those
neighbours carry nearly the same response (and the same noise), so a flexible
model can *interpolate* the test sample from them instead of predicting it from
the stimulus features. The result is an inflated, optimistic score — even for
features that are unrelated to the stimulus. Features derived from a stimulus
(e.g. language-model embeddings convolved with an HRF, or averaged over a
TR) are themselves autocorrelated, which makes the leak worse.

:class:`ContiguousKFold` therefore holds out contiguous blocks in time order,
and additionally drops ``gap`` samples on each side of every train/test
boundary, so that no training sample lies within the HRF's reach of a test
sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError

__all__ = ["ContiguousKFold"]


def _num_samples(X: Any) -> int:
    """Number of samples (rows) in ``X``: its first dimension."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise BrainalignError(f"'X' must have at least one dimension, got a scalar ({X!r}).")
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        raise BrainalignError(
            f"'X' must be array-like with one row per sample, got {type(X).__name__}."
        ) from None


def _gap_excluded(test_mask: np.ndarray, gap: int, segment: np.ndarray) -> np.ndarray:
    """Mask of samples within ``gap`` steps of a test sample, in the same segment.

    ``segment`` labels maximal runs of consecutive samples that belong together
    (one run of an fMRI session); the gap never crosses a segment boundary. The
    returned mask includes the test samples themselves.
    """
    excluded = test_mask.copy()
    test_idx = np.flatnonzero(test_mask)
    n = test_mask.shape[0]
    for shift in range(1, gap + 1):
        for neighbours in (test_idx - shift, test_idx + shift):
            valid = (neighbours >= 0) & (neighbours < n)
            nb = neighbours[valid]
            same = segment[nb] == segment[test_idx[valid]]
            excluded[nb[same]] = True
    return excluded


class ContiguousKFold:
    """K-fold cross-validation with contiguous test blocks and a gap.

    The ``n_samples`` samples are cut, in time order, into ``n_splits``
    contiguous blocks of (nearly) equal size — the first ``n_samples %
    n_splits`` blocks get one sample more, exactly as
    :class:`sklearn.model_selection.KFold` without shuffling. Each block is the
    test set once. The training set is every other sample **except** the
    ``gap`` samples immediately before and the ``gap`` samples immediately
    after the test block, which are dropped from both sets.

    Shuffled splits are wrong for fMRI time series: samples are
    autocorrelated, and the haemodynamic response smears each stimulus over
    ~10–15 s, so a shuffled test sample's neighbours — which share its response
    and its noise — sit in the training set and the model can interpolate
    rather than predict, inflating the score. Contiguous blocks leave only two
    boundaries per fold, and the gap removes the leak across those too. Choose
    ``gap`` to cover the HRF: ``ceil(15 s / TR)`` volumes is a safe default
    (the default 5 fits TR = 2 s and a 10 s HRF tail).

    When ``groups`` (e.g. run labels) are passed to :meth:`split`, the splitter
    does leave-one-group-out instead: one fold per distinct group (in sorted
    order of the labels, as :class:`sklearn.model_selection.LeaveOneGroupOut`),
    and ``n_splits`` is ignored. The gap is applied only between adjacent
    samples of the same group, because separate runs are separate acquisitions
    with no autocorrelation across their boundary. As each run is held out
    whole, the gap then removes nothing unless a group's samples are
    interleaved with another group's within one contiguous stretch.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds (>= 2).
    gap : int, default=5
        Samples dropped from the training set on each side of each test block
        (>= 0).

    Raises
    ------
    BrainalignError
        If ``n_splits < 2`` or ``gap < 0`` (at construction), or, in
        :meth:`split`, if there are fewer samples than folds, or if a training
        set would be empty (``gap`` too large for the data).

    Examples
    --------
    >>> import numpy as np
    >>> cv = ContiguousKFold(n_splits=3, gap=1)
    >>> for train, test in cv.split(np.zeros(9)):
    ...     print(train, test)
    [4 5 6 7 8] [0 1 2]
    [0 1 7 8] [3 4 5]
    [0 1 2 3 4] [6 7 8]
    """

    def __init__(self, n_splits: int = 5, gap: int = 5):
        if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
            raise BrainalignError(
                f"'n_splits' must be an int >= 2, got {type(n_splits).__name__} ({n_splits!r})."
            )
        if n_splits < 2:
            raise BrainalignError(f"'n_splits' must be an int >= 2, got {n_splits!r}.")
        if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)):
            raise BrainalignError(
                f"'gap' must be an int >= 0, got {type(gap).__name__} ({gap!r})."
            )
        if gap < 0:
            raise BrainalignError(f"'gap' must be an int >= 0, got {gap!r}.")
        self.n_splits = int(n_splits)
        self.gap = int(gap)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_splits={self.n_splits}, gap={self.gap})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: ArrayLike | None = None) -> int:
        """Number of folds: ``n_splits``, or the number of distinct groups if given.

        Parameters
        ----------
        X, y : ignored
            Present for compatibility with scikit-learn.
        groups : array-like of shape (n_samples,), optional
            Group labels; if given, one fold per distinct label.

        Returns
        -------
        int
        """
        if groups is not None:
            return int(np.unique(np.asarray(groups)).shape[0])
        return self.n_splits

    def split(
        self, X: ArrayLike, y: Any = None, groups: ArrayLike | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generate ``(train_idx, test_idx)`` for each fold.

        All folds are computed and validated when this method is called, so a
        bad configuration raises immediately rather than mid-loop.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Only its number of rows is used.
        y : ignored
            Present for compatibility with scikit-learn.
        groups : array-like of shape (n_samples,), optional
            Run (or session) labels. If given, leave-one-group-out (see the
            class docstring).

        Yields
        ------
        train_idx : ndarray of int, shape (n_train,)
            Sorted training indices.
        test_idx : ndarray of int, shape (n_test,)
            Sorted test indices.
        """
        n = _num_samples(X)
        if groups is None:
            folds = self._contiguous_folds(n)
        else:
            folds = self._group_folds(n, groups)
        return iter(folds)

    def _contiguous_folds(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if n < self.n_splits:
            raise BrainalignError(
                f"'n_splits'={self.n_splits} is larger than the number of samples "
                f"(n_samples={n}); each fold needs at least one test sample."
            )
        sizes = np.full(self.n_splits, n // self.n_splits, dtype=np.intp)
        sizes[: n % self.n_splits] += 1
        stops = np.cumsum(sizes)
        starts = stops - sizes
        indices = np.arange(n, dtype=np.intp)
        folds = []
        for k, (start, stop) in enumerate(zip(starts, stops)):
            keep = (indices < start - self.gap) | (indices >= stop + self.gap)
            train = indices[keep]
            if train.size == 0:
                raise BrainalignError(
                    f"The training set of fold {k} is empty: 'gap'={self.gap} is too large for "
                    f"n_samples={n} with 'n_splits'={self.n_splits} (test block "
                    f"[{start}, {stop}) plus {self.gap} samples on each side covers all samples)."
                )
            folds.append((train, indices[start:stop]))
        return folds

    def _group_folds(self, n: int, groups: ArrayLike) -> list[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray(groups)
        if groups.ndim != 1 or groups.shape[0] != n:
            raise BrainalignError(
                f"'groups' must be a 1-D array with one label per sample (n_samples={n}), "
                f"got shape {groups.shape}."
            )
        labels, codes = np.unique(groups, return_inverse=True)
        if labels.shape[0] < 2:
            raise BrainalignError(
                f"'groups' must contain at least 2 distinct labels for leave-one-group-out, "
                f"got {labels.shape[0]} ({labels.tolist()!r}); the training set would be empty."
            )
        # Segment = maximal stretch of consecutive samples sharing one label.
        segment = np.concatenate([[0], np.cumsum(codes[1:] != codes[:-1])])
        indices = np.arange(n, dtype=np.intp)
        folds = []
        for code, label in enumerate(labels):
            test_mask = codes == code
            excluded = _gap_excluded(test_mask, self.gap, segment)
            train = indices[~excluded]
            if train.size == 0:  # pragma: no cover - impossible with >= 2 groups
                raise BrainalignError(
                    f"The training set for group {label!r} is empty ('gap'={self.gap})."
                )
            folds.append((train, indices[test_mask]))
        return folds
