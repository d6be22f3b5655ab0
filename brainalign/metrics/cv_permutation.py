"""Significance of cross-validated ridge scores: the refit circular-shift test.

A cross-validated encoding score is the mean over outer folds of the Pearson
r between each test fold's responses and the predictions of a ridge model
fitted on the other folds (or the r of all held-out predictions pooled). Its
null distribution is not that of a correlation between two fixed series:

* the folds are not independent: with two runs, the score of run A is
  ``y_Aᵀ X_A M_B X_Bᵀ y_B`` and that of run B is ``y_Bᵀ X_B M_A X_Aᵀ y_A``,
  nearly the same bilinear form (identical when the penalty is large, as it
  is on null voxels), so averaging folds does not shrink the null variance;
* responses and design were cleaned by the same operator (detrend, high-pass,
  confound regression), so both live in the same reduced space, and their
  correlation varies more than that of series with all their degrees of
  freedom.

Shifting the pooled held-out predictions against the responses (the test
this module replaces) keeps neither property: measured on null voxels, 9-11 %
of p-values fell below .05 (docs/method.md, "Per-unit significance").
Shifting the *responses* and cleaning them again keeps the first but not the
second: a shifted, re-cleaned series is orthogonal to the confounds *and* to
their shifted copies, so it has less low-frequency power than the observed
responses, and with many confounds (fMRIPrep's 26 per run) 7 % of null
p-values fell below .05.

:func:`refit_shift_test` therefore shifts the **design** (``shift="design"``): the raw
(uncleaned) design of each run is shifted circularly by its own random
amount, cleaned exactly as the fitted design was (so it lives in the same
reduced space as the responses, like the observed design), and the whole
cross-validated score is recomputed: every fold is refitted on the shifted
design with the penalty it chose on the observed data, predicts its test
fold, and the folds are combined as for the observed score. The responses
are never modified. A ridge fit with a fixed penalty is linear in the
training responses::

    ŷ_test = H_k(α) y_train + mean(y_train),
    H_k(α) = (X_test − m) V diag(s / (s² + α)) Uᵀ,   X_train − m = U diag(s) Vᵀ,

with ``m`` the training mean of the features, which reproduces the fitted
encoder's predictions to rounding error.

Refitting costs one decomposition of each fold's training design per
permutation, which is negligible beside the products with thousands of
voxels but dominates for a few ROIs over long runs. Without confound
regressors (detrending and high-pass filtering only) shifting the responses
is calibrated too and needs no refit of the design (``shift="responses"``:
each run of the responses is shifted, cleaned again, and passed through the
observed folds' operators); the workflow picks it there.

The decompositions come from the ridge core (:mod:`brainalign.encoders.ridge_core`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d, check_int, check_random_state
from brainalign.backend import get_backend
from brainalign.encoders.ridge_core import fold_eigendecomposition, shrinkage

__all__ = ["FoldOperators", "RefitShiftResult", "circular_shift_indices", "refit_shift_test", "refit_shift_tests"]

Fold = tuple[np.ndarray, np.ndarray]




class _PenaltyTable:
    """Each fold's distinct penalties and, per target, the index of its penalty among them.

    Computed once per test (a sort over every target) and shared by the
    operators of every permutation.
    """

    def __init__(self, alphas: ArrayLike, n_folds: int):
        a = np.asarray(alphas, dtype=np.float64)
        if a.ndim == 0:
            a = np.full((n_folds, 1), float(a))
        elif a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] != n_folds:
            raise BrainalignError(f"'alphas' must have one row per fold ({n_folds}), got shape {a.shape}.")
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise BrainalignError("'alphas' must be finite and >= 0.")
        self.alphas = a
        self.values: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        for row in a:
            values, codes = np.unique(row, return_inverse=True)
            self.values.append(values)
            self.codes.append(codes.astype(np.intp))


class FoldOperators:
    """Ridge prediction operators of the outer folds, for fixed penalties.

    For fold ``k`` and penalty ``α`` the held-out prediction is
    ``H_k(α) @ y[train] + mean(y[train])`` (see the module docstring), with
    ``H_k(α) = A_k diag(g_α(s)) Q_k``, ``A_k = (X_test − m) V`` (n_test, r),
    ``Q_k = Uᵀ`` (r, n_train) and ``g_α(s) = s / (s² + α)``. It is applied
    either as one ``(n_test, n_train)`` matrix per penalty (for many targets,
    or operators applied many times) or through the factors,
    ``A_k @ (G ⊙ (Q_k @ y))``, where column ``j`` of ``G`` holds the gains of
    target ``j``'s penalty (per-target penalties then cost no more than a
    shared one, and no column is gathered by penalty), whichever costs fewer
    operations.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The design (cleaned, as the encoders were fitted on it).
    folds : sequence of (train, test) index arrays
        The outer folds, as used for the observed score.
    alphas : array-like of shape (n_folds, n_targets), (n_folds,) or scalar
        Penalty of each fold's model for each target.
    n_targets : int, optional
        Targets the operators will be applied to at once (for the choice
        between the two forms); default: the columns of ``alphas``.
    dtype : numpy dtype, default=float32
        Precision of the operators and their products with the responses
        (the decompositions are float64).
    applications : int, default=1
        How many times the operators will be applied (the permutations, when
        the responses are shifted), over which building one matrix per
        penalty is amortized.
    backend : module, optional
        A torch array backend (:func:`brainalign.backend.get_backend`; a GPU
        with ``torch_cuda``): ``X`` may then be a float64 tensor of it, the
        decompositions and operators live there, and :meth:`fold_predictions`
        takes and returns its tensors. None: NumPy.
    """

    def __init__(self, X: ArrayLike, folds: Sequence[Fold], alphas: ArrayLike | _PenaltyTable,
                 n_targets: int | None = None, dtype: Any = np.float32, applications: int = 1,
                 backend: Any = None):
        self.backend = None if backend is None or backend.name == "numpy" else backend
        self._xp = self.backend or get_backend("numpy")  # the module of fold_predictions' arrays
        X = check_2d(X, "X", "features") if self.backend is None else self.backend.asarray(X, dtype="float64")
        self.folds = [(np.asarray(tr, dtype=np.intp), np.asarray(te, dtype=np.intp)) for tr, te in folds]
        if not self.folds:
            raise BrainalignError("'folds' must hold at least one (train, test) pair.")
        table = alphas if isinstance(alphas, _PenaltyTable) else _PenaltyTable(alphas, len(self.folds))
        self._table = table
        self.alphas = table.alphas
        self.dtype = np.dtype(dtype)
        self.n_samples = X.shape[0]
        width = self.alphas.shape[1] if n_targets is None else int(n_targets)
        # Wide designs (more features than training samples): one Gram matrix for every fold.
        gram = X @ X.T if X.shape[1] >= min(tr.size for tr, _ in self.folds) else None
        # Per fold: ("dense", H) for one shared penalty, else ("factors", A, Q, gains (r, n_penalties)).
        self._ops: list[tuple] = []
        for k, (train, test) in enumerate(self.folds):
            U, s, XtV = fold_eigendecomposition(X, train, test, gram, self.backend)
            values = table.values[k]
            shape = (train.size, X.shape[1])
            r = s.shape[0]
            # Operations: one matrix per penalty, built once for ``applications`` uses, applied to column
            # groups gathered by penalty (counted twice) unless shared; or the two factors per use.
            build = values.size * test.size * r * train.size / max(int(applications), 1)
            apply = test.size * train.size * width * (1 if values.size == 1 else 2)
            self._ops.append(self._fold_operator(U, s, XtV, values, shape,
                                                 dense=build + apply < r * (train.size + test.size) * width))

    def _fold_operator(self, U: Any, s: Any, XtV: Any, values: np.ndarray, shape: tuple[int, int],
                       dense: bool) -> tuple:
        """One fold's operator, ``("dense", {alpha: H})`` or ``("factors", A, Q, gains (r, n_penalties))``."""
        xp, dtype = self._xp, self.dtype
        s_host = xp.to_numpy(s)
        gains = xp.asarray(np.stack([shrinkage(s_host, float(alpha), shape) for alpha in values], axis=1))
        if dense:
            return ("dense", {float(alpha): xp.astype(xp.matmul(XtV * gains[:, j], U.T), dtype)
                              for j, alpha in enumerate(values)})
        return ("factors", xp.astype(XtV, dtype), _contiguous(xp.astype(U.T, dtype)), xp.astype(gains, dtype))

    @property
    def n_targets(self) -> int:
        """Targets whose penalties were given (1 if one penalty is shared by all)."""
        return self.alphas.shape[1]

    def fold_predictions(self, Y: np.ndarray, targets: np.ndarray, intercept: bool = True) -> list[np.ndarray]:
        """Held-out predictions of every fold for the targets ``targets`` of the penalty table.

        Parameters
        ----------
        Y : ndarray of shape (n_samples, n_batch)
            Responses of those targets (the columns ``targets`` of ``alphas``).
        targets : ndarray of int, shape (n_batch,)
            Columns of ``alphas`` that ``Y`` holds.
        intercept : bool, default=True
            Add each fold's training mean. A per-fold Pearson r does not
            depend on it; the r of all folds pooled does.

        Returns
        -------
        list of ndarray, one (n_test, n_batch) array per fold
        """
        bk = self._xp
        out = []
        shared = self.alphas.shape[1] == 1
        for k, (train, test) in enumerate(self.folds):
            Ytr = bk.take(Y, train)
            op = self._ops[k]
            if op[0] == "dense":
                if len(op[1]) == 1:
                    pred = bk.matmul(next(iter(op[1].values())), Ytr)
                else:
                    pred = bk.empty((test.size, Y.shape[1]), dtype=self.dtype)
                    codes = self._table.codes[k][targets]
                    for code, H in enumerate(op[1].values()):
                        cols = np.flatnonzero(codes == code)
                        if cols.size:
                            _put_columns(pred, cols, bk.matmul(H, bk.take(Ytr, cols, axis=1)))
            else:
                _, A, Q, gains = op
                projected = bk.matmul(Q, Ytr)  # (r, n_batch)
                projected *= gains[:, :1] if shared else bk.take(gains, self._table.codes[k][targets], axis=1)
                pred = bk.matmul(A, projected)
            if intercept:
                pred += bk.astype(bk.mean_float64(Ytr, axis=0), self.dtype)
            out.append(pred)
        return out


def _torch() -> Any:
    """The torch module (imported only when a torch backend is in use)."""
    import torch

    return torch


def _contiguous(a: Any) -> Any:
    """``a`` in C order (a NumPy array or a torch tensor)."""
    return np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a.contiguous()


def _put_columns(target: Any, cols: np.ndarray, values: Any) -> None:
    """``target[:, cols] = values`` for a NumPy array or a torch tensor."""
    if isinstance(target, np.ndarray):
        target[:, cols] = values
    else:
        target.index_copy_(1, _torch().as_tensor(cols, device=target.device), values)


class RefitShiftResult(NamedTuple):
    """Result of :func:`refit_shift_test` (unpacks as ``observed, pvalues, n_permutations, null``).

    Attributes
    ----------
    observed : ndarray of float64, shape (n_targets,)
        The cross-validated score recomputed through the fold operators.
    pvalues : ndarray of float64, shape (n_targets,)
        One-sided p-values (see :func:`refit_shift_tests`).
    n_permutations : ndarray of int, shape (n_targets,)
        Permutations drawn for each target (fewer than requested where the
        sequential rule stopped early).
    null : ndarray of float64, shape (n_permutations, n_targets) or None
        Every null score, when all permutations were run for every target
        (``stop_after=None``); None with sequential stopping.
    """

    observed: np.ndarray
    pvalues: np.ndarray
    n_permutations: np.ndarray
    null: np.ndarray | None


def _centred_columns(a: Any) -> tuple[Any, Any]:
    """Columns minus their means (float64 accumulation, ``a``'s precision) and their float64 norms.

    ``a`` is a NumPy array or a torch tensor (the backends' arrays); the results are of the same kind.
    """
    if not isinstance(a, np.ndarray):
        c = a - a.mean(dim=0, dtype=_torch().float64)
        return c.to(a.dtype), (c * c).sum(dim=0).sqrt()
    c = a - a.mean(axis=0, dtype=np.float64)
    return c.astype(a.dtype, copy=False), np.sqrt(np.einsum("ij,ij->j", c, c, dtype=np.float64))


def _pearson_centred(pred: Any, yc: Any, ynorm: Any) -> np.ndarray:
    """Column-wise r of ``pred`` with centred responses ``yc`` of norms ``ynorm``; 0 where a column is constant.

    NumPy arrays or torch tensors in; a NumPy array out.
    """
    pc, pnorm = _centred_columns(pred)
    if isinstance(pc, np.ndarray):
        num = np.einsum("ij,ij->j", pc, yc, dtype=np.float64)
        den = pnorm * ynorm
    else:
        num = (pc.double() * yc.double()).sum(dim=0).cpu().numpy()
        den = (pnorm * ynorm).cpu().numpy()
    r = np.zeros(pred.shape[1])
    np.divide(num, den, out=r, where=den > 0)
    return np.clip(r, -1.0, 1.0)


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Pearson r in float64 accumulation; 0 where a column is constant."""
    return _pearson_centred(b, *_centred_columns(a))


def _test_side(Y: np.ndarray, folds: Sequence[Fold]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centred test-fold responses and their norms: fixed across permutations when the design is shifted."""
    return [_centred_columns(Y[te]) for _, te in folds]


def _cv_score(Y: np.ndarray, ops: FoldOperators, targets: np.ndarray, pooled: bool,
              test_side: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """The cross-validated score of every column of ``Y`` (``test_side``: :func:`_test_side` of ``Y``)."""
    preds = ops.fold_predictions(Y, targets, intercept=pooled)
    if pooled:
        tested = np.concatenate([te for _, te in ops.folds])
        joined = np.concatenate(preds) if isinstance(Y, np.ndarray) else _torch().cat(preds)
        return _pearson_columns(Y[tested], joined)
    test_side = _test_side(Y, ops.folds) if test_side is None else test_side
    return np.mean([_pearson_centred(p, yc, norm) for p, (yc, norm) in zip(preds, test_side)], axis=0)


def circular_shift_indices(
    runs: ArrayLike, n_permutations: int, min_shift: int = 1, random_state: None | int | np.random.Generator = None,
) -> np.ndarray:
    """Row indices that shift every run circularly by its own random amount.

    Parameters
    ----------
    runs : array-like of shape (n_samples,)
        Run label of each sample; each run's samples must be contiguous.
    n_permutations : int
    min_shift : int
        Smallest shift in samples; each run's shift is drawn uniformly from
        ``{m, ..., n_run - m}`` with ``m = min(min_shift, n_run // 2)``.
    random_state : None, int or numpy Generator

    Returns
    -------
    index : ndarray of int, shape (n_permutations, n_samples)
        ``X[index[b]]`` is permutation ``b`` of ``X``: in each run,
        ``X_b[t] = X[(t - s) mod n_run]``.
    """
    runs = np.asarray(runs)
    n_permutations = check_int("n_permutations", n_permutations, 1)
    min_shift = check_int("min_shift", min_shift, 1)
    rng = check_random_state(random_state)
    if runs.ndim != 1 or runs.size < 2:
        raise BrainalignError(f"'runs' must be a 1-D array of at least 2 labels, got shape {runs.shape}.")
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    if np.unique(runs).size != starts.size:
        raise BrainalignError("each run's samples must be contiguous in 'runs'.")
    stops = np.r_[starts[1:], runs.size]
    index = np.empty((n_permutations, runs.size), dtype=np.intp)
    for start, stop in zip(starts, stops):
        n = stop - start
        if n < 2:
            index[:, start:stop] = np.arange(start, stop)
            continue
        m = min(min_shift, n // 2)
        shifts = rng.integers(m, n - m, endpoint=True, size=n_permutations)
        index[:, start:stop] = start + (np.arange(n)[None, :] - shifts[:, None]) % n
    return index


def refit_shift_tests(
    Y: ArrayLike,
    designs: Mapping[str, tuple[ArrayLike, ArrayLike]],
    folds: Sequence[Fold],
    *,
    runs: ArrayLike | None = None,
    clean: Callable[[np.ndarray], np.ndarray] | None = None,
    shift: str = "design",
    pooled: bool = False,
    n_permutations: int = 1000,
    min_shift: int = 1,
    stop_after: int | None = None,
    random_state: None | int | np.random.Generator = None,
    n_targets_batch: int | None = None,
    dtype: Any = np.float32,
    progress: bool = False,
    backend: str | None = None,
) -> dict[str, RefitShiftResult]:
    """Refit circular-shift tests of several designs (layers) against the same responses.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_targets)
        Cleaned responses, in time order (never modified).
    designs : mapping of name -> (X_raw, alphas)
        Each design **before cleaning** (n_samples, n_features) and the
        penalties its folds chose (see :class:`FoldOperators`); ``clean(X_raw)``
        must be the design the encoders were fitted on.
    folds : sequence of (train, test) index arrays
        The outer folds of the observed score.
    runs : array-like of shape (n_samples,), optional
        Run labels (contiguous); each run of the design is shifted by its own
        amount. None: the whole series is one run.
    clean : callable, optional
        Maps a raw series (n_samples, k) to the cleaned one, e.g. a
        :class:`brainalign.preprocess.fmri.LinearCleaner`; applied to the
        observed design, and to every shifted design (``shift="design"``) or
        shifted responses (``shift="responses"``). None: the identity.
    shift : {"design", "responses"}
        What is shifted against what: the design, refitted in every fold
        (valid whatever the cleaning), or the responses through the observed
        operators (cheaper; calibrated when the cleaning regresses no
        confounds, liberal with many; see the module docstring).
    pooled : bool
        Score = r of all held-out predictions concatenated (else the mean of
        the per-fold r), as the observed score.
    n_permutations, min_shift, random_state
        See :func:`circular_shift_indices`; ``n_permutations`` is the most
        drawn for any target. The shifts are the same for every design and
        target.
    stop_after : int, optional
        Sequential stopping (Besag & Clifford 1991): a target's permutations
        stop once ``stop_after`` null scores have reached its observed score,
        after ``L`` permutations, and its p-value is ``stop_after / L``;
        targets that never get there use all permutations and the p-value
        below. The test stays valid and most null targets stop after a few
        dozen permutations. None: every permutation for every target.
    n_targets_batch : int, optional
        Targets processed at once; all if None.
    dtype : numpy dtype
        Precision of the products with the responses.
    progress : bool
        Show a progress bar over permutations.
    backend : {"numpy", "torch", "torch_cuda"}, optional
        Where the permutations run (:mod:`brainalign.backend`; ``torch_cuda``
        is the workflow's ``device: cuda``): the responses, the shifted and
        re-cleaned series, the decompositions (float64) and the products
        (``dtype``). ``clean`` runs there too when it is a
        :class:`~brainalign.preprocess.fmri.LinearCleaner` (its matrices are
        moved once); another callable runs on the host. The shifts are the
        same on every backend; the scores agree with NumPy's to rounding
        error. None: NumPy.

    Returns
    -------
    dict of name -> RefitShiftResult
        ``observed`` (n_targets,): the score recomputed through the
        operators (equal to the fitted encoders' score up to rounding); the
        one-sided p-values ``(1 + #{null >= observed}) / (1 + n_permutations)``
        (or ``stop_after / L``); the permutations drawn per target; and the
        null scores without sequential stopping.
    """
    Yf = check_2d(Y, "Y", "targets")
    n, n_targets = Yf.shape
    runs_arr = np.zeros(n, dtype=np.intp) if runs is None else np.asarray(runs)
    if runs_arr.shape != (n,):
        raise BrainalignError(f"'runs' must have one label per sample ({n}), got shape {runs_arr.shape}.")
    if shift not in ("design", "responses"):
        raise BrainalignError(f"'shift' must be 'design' or 'responses', got {shift!r}.")
    index = circular_shift_indices(runs_arr, n_permutations, min_shift, random_state)
    n_perm = index.shape[0]
    h = None if stop_after is None else check_int("stop_after", stop_after, 1)
    step = n_targets if n_targets_batch is None else check_int("n_targets_batch", n_targets_batch, 1)
    clean = clean if clean is not None else (lambda x: x)
    bk = None if backend is None or backend == "numpy" else get_backend(backend)
    raw, alphas = {}, {}
    for name, (X, a) in designs.items():
        raw[name] = check_2d(X, f"designs[{name!r}]", "features")
        if raw[name].shape[0] != n:
            raise BrainalignError(f"design {name!r} has {raw[name].shape[0]} samples but 'Y' has {n}.")
        alphas[name] = a
    # Shifting the responses applies the observed operators at every permutation.
    uses = n_perm + 1 if shift == "responses" else 1
    ops = {name: FoldOperators(clean(raw[name]), folds, alphas[name], min(step, n_targets), dtype, uses, bk)
           for name in raw}
    # The shifted series: gathered and cleaned where the scores are computed.
    if bk is None:
        def shifted_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return clean(a[rows])
    else:
        clean_there = clean.on(bk) if hasattr(clean, "on") else (
            lambda x: bk.asarray(clean(bk.to_numpy(x)), dtype="float64"))
        raw = {name: bk.asarray(x, dtype="float64") for name, x in raw.items()}

        def shifted_rows(a: Any, rows: np.ndarray) -> Any:
            return clean_there(bk.take(a, rows))
    for name, op in ops.items():
        if op.n_targets not in (1, n_targets):
            raise BrainalignError(f"design {name!r}: 'alphas' has {op.n_targets} columns for {n_targets} targets.")
    tables = {name: op._table for name, op in ops.items()}
    observed = {name: np.empty(n_targets) for name in ops}
    exceed = {name: np.zeros(n_targets, dtype=np.int64) for name in ops}
    drawn = {name: np.zeros(n_targets, dtype=np.int64) for name in ops}
    null = {name: np.full((n_perm, n_targets), np.nan) for name in ops} if h is None else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_perm * -(-n_targets // step), desc="refit shift test", unit="perm", leave=False)
    for start in range(0, n_targets, step):
        cols = np.arange(start, min(start + step, n_targets))
        block = np.ascontiguousarray(Yf[:, cols], dtype=dtype)
        if bk is not None:
            block = bk.asarray(block)
        side = None if pooled or shift == "responses" else _test_side(block, folds)
        for name, op in ops.items():
            observed[name][cols] = _cv_score(block, op, cols, pooled, side)
        active = {name: np.ones(cols.size, dtype=bool) for name in ops}
        # Shifting the design: each design scores a working set of the block's targets, gathered
        # again only when fewer than 70 % of it are still active (scoring a stopped target costs
        # less than gathering the active ones at every permutation).
        work = {name: (np.arange(cols.size), block, side) for name in ops}
        for b in range(n_perm):
            shifted = union = None
            if shift == "responses":
                union = np.flatnonzero(np.logical_or.reduce(list(active.values())))
                shifted = shifted_rows(block[:, union], index[b])
                shifted = np.asarray(shifted, dtype=dtype) if bk is None else bk.astype(shifted, dtype)
            for name in ops:
                loc = np.flatnonzero(active[name])
                if loc.size == 0:
                    continue
                if shift == "responses":
                    values = _cv_score(shifted[:, np.searchsorted(union, loc)], ops[name], cols[loc], pooled)
                else:
                    members, Yw, side_w = work[name]
                    if loc.size < 0.7 * members.size:
                        side_w = None if side is None else [(yc[:, loc], norm[loc]) for yc, norm in side]
                        members, Yw = loc, block[:, loc]
                        work[name] = (members, Yw, side_w)
                    op = FoldOperators(shifted_rows(raw[name], index[b]), folds, tables[name], members.size, dtype,
                                       backend=bk)
                    values = _cv_score(Yw, op, cols[members], pooled, side_w)
                    if members.size > loc.size:
                        values = values[active[name][members]]
                targets = cols[loc]
                if null is not None:
                    null[name][b, targets] = values
                exceed[name][targets] += values >= observed[name][targets]
                drawn[name][targets] += 1
                if h is not None:
                    active[name][loc[exceed[name][targets] >= h]] = False
            if bar is not None:
                bar.update(1)
            if not any(act.any() for act in active.values()):
                if bar is not None:
                    bar.update(n_perm - b - 1)
                break
    if bar is not None:
        bar.close()
    out = {}
    for name in ops:
        k, used = exceed[name], drawn[name]
        if h is None:
            p = (1.0 + k) / (1.0 + used)
        else:
            p = np.where(k >= h, k / np.maximum(used, 1), (1.0 + k) / (1.0 + used))
        out[name] = RefitShiftResult(observed[name], p, used, None if null is None else null[name])
    return out


def refit_shift_test(
    Y: ArrayLike, X: ArrayLike, folds: Sequence[Fold], alphas: ArrayLike, **kwargs: Any,
) -> RefitShiftResult:
    """Refit circular-shift test of one cross-validated ridge score per target.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_targets)
        Cleaned responses, in time order.
    X : array-like of shape (n_samples, n_features)
        The design **before cleaning**; ``clean(X)`` is the design the
        encoders were fitted on (``clean`` defaults to the identity).
    folds : sequence of (train, test) index arrays
        The outer folds of the observed score.
    alphas : array-like of shape (n_folds, n_targets), (n_folds,) or scalar
        Each fold's penalty per target (e.g. ``cross_validated_pearson``'s
        ``alphas``).
    **kwargs
        ``runs``, ``clean``, ``shift``, ``pooled``, ``n_permutations``,
        ``min_shift``, ``stop_after``, ``random_state``, ``n_targets_batch``,
        ``dtype``, ``progress``: see :func:`refit_shift_tests`.

    Returns
    -------
    RefitShiftResult
        ``observed``, one-sided ``pvalues``, permutations drawn per target
        and (without sequential stopping) the ``null`` scores.

    Examples
    --------
    >>> import numpy as np
    >>> from brainalign.encoders.ridge import cross_validated_pearson
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 5))
    >>> Y = X @ rng.standard_normal((5, 3)) + rng.standard_normal((200, 3))
    >>> res = cross_validated_pearson(X, Y, outer_cv=4, inner_cv=3, gap=2)
    >>> test = refit_shift_test(Y, X, res["folds"], res["alphas"], n_permutations=99, random_state=0)
    >>> bool(np.allclose(test.observed, res["score"], atol=1e-5)), float(test.pvalues.max())
    (True, 0.01)
    """
    return refit_shift_tests(Y, {"design": (X, alphas)}, folds, **kwargs)["design"]
