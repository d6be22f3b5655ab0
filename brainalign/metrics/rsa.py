"""Representational similarity analysis: dissimilarity matrices and their comparison.

An RDM (representational dissimilarity matrix) holds one dissimilarity per
pair of conditions (stimuli). Here an RDM is always the **condensed vector**
of its strict upper triangle, in row-major order::

    d = [D[0, 1], D[0, 2], ..., D[0, C-1], D[1, 2], ..., D[C-2, C-1]],

of length ``C (C - 1) / 2`` for ``C`` conditions -- the order of
:func:`scipy.spatial.distance.squareform` and of rsatoolbox's
``RDMs.get_vectors()``. :func:`squareform` converts between the vector and the
symmetric (C, C) matrix.

The distances and comparison methods reproduce rsatoolbox 0.3's definitions
(``rsatoolbox.rdm.calc`` and ``rsatoolbox.rdm.compare``); note in particular
that its "euclidean" RDM is the **squared** Euclidean distance divided by the
number of channels. Brain-Score's RDM metric is ``rdm(X, "correlation")``
compared with ``compare_rdms(..., method="spearman")``; :func:`rsa_score`
computes it in one call.

This module imports only numpy and scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d, check_option

__all__ = ["COMPARE_METHODS", "RDM_METRICS", "compare_rdms", "rdm", "rsa_score", "squareform"]

RDM_METRICS = ("correlation", "euclidean", "mahalanobis", "crossnobis")
COMPARE_METHODS = ("spearman", "kendall_tau_a", "pearson", "cosine")


# --------------------------------------------------------------------------- helpers
def _n_from_length(n_pairs: int) -> int:
    """Number of conditions C with C (C - 1) / 2 == n_pairs, else raise."""
    c = round((1 + np.sqrt(1 + 8 * n_pairs)) / 2)
    if c * (c - 1) // 2 != n_pairs:
        raise BrainalignError(
            f"A condensed RDM must have length C (C - 1) / 2 for some number of conditions C, "
            f"got length {n_pairs}."
        )
    return c


def _upper(D: np.ndarray) -> np.ndarray:
    """Strict upper triangle of a square matrix, row-major."""
    i, j = np.triu_indices(D.shape[0], k=1)
    return D[i, j]


def squareform(rdm_or_matrix: ArrayLike) -> np.ndarray:
    """Convert between a condensed RDM vector and its symmetric square matrix.

    Parameters
    ----------
    rdm_or_matrix : array-like of shape (n_pairs,) or (n_conditions, n_conditions)
        A condensed upper-triangle vector (``n_pairs = C (C - 1) / 2``), or a
        square matrix.

    Returns
    -------
    ndarray of float64
        For a vector: the (C, C) matrix ``D`` with ``D[i, j] = D[j, i] =
        d[k(i, j)]`` for ``i < j`` (row-major order) and a zero diagonal. For a
        square matrix: its strict upper triangle, row-major, shape (n_pairs,)
        -- the diagonal and lower triangle are ignored (no symmetry check,
        since e.g. a single cross-validated fold need not be symmetric).

    Notes
    -----
    Unlike :func:`scipy.spatial.distance.squareform`, no check of symmetry or
    of a zero diagonal is made, and NaN entries are allowed.
    """
    a = np.asarray(rdm_or_matrix, dtype=np.float64)
    if a.ndim == 1:
        c = _n_from_length(a.shape[0])
        D = np.zeros((c, c))
        i, j = np.triu_indices(c, k=1)
        D[i, j] = a
        D[j, i] = a
        return D
    if a.ndim == 2 and a.shape[0] == a.shape[1]:
        return _upper(a)
    raise BrainalignError(
        f"'rdm_or_matrix' must be a condensed vector (n_pairs,) or a square matrix "
        f"(n_conditions, n_conditions), got shape {a.shape}."
    )


def _labels(values: Any, n: int, name: str) -> np.ndarray:
    lab = np.asarray(values)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise BrainalignError(
            f"'{name}' must be a 1-D sequence with one label per row of 'X' ({n}), got shape "
            f"{lab.shape}."
        )
    return lab


def _average_by(X: np.ndarray, labels: np.ndarray, uniq: np.ndarray) -> np.ndarray:
    """Mean of the rows of X per label, in the order of ``uniq``; NaN rows where absent."""
    index = np.searchsorted(uniq, labels)
    counts = np.bincount(index, minlength=uniq.shape[0]).astype(np.float64)
    sums = np.zeros((uniq.shape[0], X.shape[1]))
    np.add.at(sums, index, X)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def _as_float(noise: ArrayLike, name: str) -> np.ndarray:
    P = np.asarray(noise)
    if P.dtype.kind not in "fiu":
        raise BrainalignError(f"'{name}' must hold real numbers, got dtype {P.dtype}.")
    return P.astype(np.float64)


def _check_positive_definite(P: np.ndarray, name: str) -> None:
    """Raise unless ``P`` is a finite, symmetric, positive-definite matrix.

    A zero, singular or indefinite precision gives zero or negative squared
    distances that look like valid RDMs; a NaN makes every distance NaN.
    """
    if not np.all(np.isfinite(P)):
        raise BrainalignError(f"'{name}' contains NaN or infinite values; a noise precision matrix must be finite.")
    scale = float(np.abs(P).max())
    if not np.allclose(P, P.T, rtol=1e-7, atol=1e-10 * scale):
        raise BrainalignError(f"'{name}' is not symmetric; a noise precision matrix (an inverse covariance) is.")
    try:
        np.linalg.cholesky((P + P.T) / 2.0)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh((P + P.T) / 2.0).min())
        raise BrainalignError(
            f"'{name}' is not positive definite (smallest eigenvalue {smallest:.3g}); a noise precision "
            "matrix, the inverse of a noise covariance, must be. Shrink a singular covariance before "
            "inverting it (e.g. sklearn.covariance.LedoitWolf)."
        ) from None


def _check_precision(noise: ArrayLike, n_channels: int, name: str = "noise") -> np.ndarray:
    P = _as_float(noise, name)
    if P.shape != (n_channels, n_channels):
        raise BrainalignError(
            f"'{name}' must be a precision matrix of shape (n_channels, n_channels) = "
            f"({n_channels}, {n_channels}), got shape {P.shape}."
        )
    _check_positive_definite(P, name)
    return P


def _cross_distances(A: np.ndarray, B: np.ndarray, P: np.ndarray | None) -> np.ndarray:
    """(a_i - a_j)^T P (b_i - b_j) / n_channels over the upper triangle."""
    K = A @ B.T if P is None else A @ P @ B.T
    dK = np.diag(K)
    D = dK[:, None] + dK[None, :] - K - K.T
    return _upper(D) / A.shape[1]


# --------------------------------------------------------------------------- RDMs
def rdm(
    X: ArrayLike,
    metric: str = "correlation",
    *,
    conditions: ArrayLike | Sequence[Any] | None = None,
    runs: ArrayLike | Sequence[Any] | None = None,
    noise: ArrayLike | Sequence[ArrayLike] | None = None,
    remove_mean: bool = False,
) -> np.ndarray:
    """Representational dissimilarity matrix as a condensed upper-triangle vector.

    Parameters
    ----------
    X : array-like of shape (n_observations, n_channels)
        Response patterns (one row per stimulus presentation; channels are
        voxels, sensors or model units).
    metric : {"correlation", "euclidean", "mahalanobis", "crossnobis"}
        Dissimilarity between condition patterns ``x_i, x_j`` of ``P =
        n_channels`` channels (``Σ⁻¹`` is ``noise``, the identity if ``None``):

        - ``"correlation"``: ``1 - r(x_i, x_j)``, with ``r`` the Pearson
          correlation across channels (each pattern centered over its
          channels, then normalized to unit length).
        - ``"euclidean"``: ``||x_i - x_j||² / P`` -- the *squared* distance
          divided by the number of channels (rsatoolbox's definition).
        - ``"mahalanobis"``: ``(x_i - x_j)ᵀ Σ⁻¹ (x_i - x_j) / P``.
        - ``"crossnobis"``: cross-validated Mahalanobis over ``runs``
          (leave-one-run-out; unbiased, so it can be negative). For each run
          ``f``, ``a`` are the condition means over all observations *not* in
          run ``f`` and ``b`` the condition means within run ``f``::

              d_f(i, j) = (a_i - a_j)ᵀ Σ⁻¹ (b_i - b_j) / P,
              d(i, j) = mean over runs f of d_f(i, j).

          With one precision per run (``noise`` of shape (n_runs, P, P)), the
          estimate instead averages over all pairs of runs ``f < g`` of
          ``(m_fi - m_fj)ᵀ W_fg (m_gi - m_gj) / P`` with ``m_f`` the condition
          means in run ``f`` and ``W_fg = ((Σ_f + Σ_g) / 2)⁻¹``, ``Σ_f =
          inv(noise[f])`` (rsatoolbox's per-fold-noise branch).
    conditions : array-like of shape (n_observations,), optional
        Condition label of each row. Rows with the same label are averaged
        (for crossnobis: within each training/test split) and the RDM's
        conditions are the **sorted unique labels** (``np.unique(conditions)``),
        as rsatoolbox orders them. Without labels each row is its own
        condition, in row order. Required for ``"crossnobis"``.
    runs : array-like of shape (n_observations,), optional
        Run (cross-validation fold) of each row, for ``"crossnobis"``; runs are
        taken in sorted order. Every condition must occur in every run. If
        ``None``, the k-th occurrence of each condition is put in run ``k``
        (rsatoolbox's default; every condition must then occur equally often).
    noise : array-like of shape (n_channels, n_channels), optional
        Noise *precision* matrix ``Σ⁻¹`` (e.g. the inverse of a shrunk
        residual covariance) for ``"mahalanobis"`` and ``"crossnobis"``; the
        identity if ``None``. A stack of shape (n_runs, n_channels,
        n_channels), one precision per (sorted) run, is accepted for
        ``"crossnobis"`` only.
    remove_mean : bool
        Subtract each condition pattern's mean over channels before computing
        euclidean, mahalanobis or crossnobis distances (after averaging). No
        effect on ``"correlation"``, which always removes it.

    Returns
    -------
    d : ndarray of float64, shape (n_conditions * (n_conditions - 1) / 2,)
        The strict upper triangle of the RDM, row-major (see :func:`squareform`).

    Raises
    ------
    BrainalignError
        For an unknown metric, labels of the wrong length, a crossnobis call
        without conditions or with a condition missing from a run, a single
        run, or a noise matrix of the wrong shape or that is not a precision
        matrix (finite, symmetric and positive definite).

    Notes
    -----
    Matches ``rsatoolbox.rdm.calc_rdm(dataset, method=metric,
    descriptor="conditions", cv_descriptor="runs", noise=noise,
    remove_mean=remove_mean).get_vectors()[0]`` (rsatoolbox 0.3) to rounding.
    A constant pattern has an undefined correlation distance (NaN), as in
    rsatoolbox.
    """
    check_option("metric", metric, RDM_METRICS)
    Xa = check_2d(X, "X", "channels")
    n_obs, n_channels = Xa.shape
    if noise is not None and metric in ("correlation", "euclidean"):
        raise BrainalignError(
            f"'noise' is used only by metric='mahalanobis' or 'crossnobis', got metric={metric!r}."
        )
    if runs is not None and metric != "crossnobis":
        raise BrainalignError(f"'runs' is used only by metric='crossnobis', got metric={metric!r}.")

    if metric == "crossnobis":
        if conditions is None:
            raise BrainalignError(
                "metric='crossnobis' needs 'conditions': cross-validation compares condition "
                "means estimated from different runs, so repeated measurements must be labelled."
            )
        return _crossnobis(Xa, conditions, runs, noise, remove_mean)

    if conditions is not None:
        lab = _labels(conditions, n_obs, "conditions")
        uniq = np.unique(lab)
        M = _average_by(Xa, lab, uniq)
    else:
        M = Xa
    if M.shape[0] < 2:
        raise BrainalignError(f"An RDM needs at least 2 conditions, got {M.shape[0]}.")

    if metric == "correlation":
        Mc = M - M.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            Mc = Mc / np.sqrt(np.einsum("ij,ij->i", Mc, Mc))[:, None]
        return 1.0 - _upper(Mc @ Mc.T)

    if remove_mean:
        M = M - M.mean(axis=1, keepdims=True)
    if metric == "euclidean":
        return _cross_distances(M, M, None)
    P = None if noise is None else _check_precision(noise, n_channels)
    return _cross_distances(M, M, P)


def _crossnobis(
    X: np.ndarray,
    conditions: Any,
    runs: Any,
    noise: Any,
    remove_mean: bool,
) -> np.ndarray:
    n_obs, n_channels = X.shape
    lab = _labels(conditions, n_obs, "conditions")
    uniq, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    if uniq.shape[0] < 2:
        raise BrainalignError(f"An RDM needs at least 2 conditions, got {uniq.shape[0]}.")
    if runs is None:
        if not np.all(counts == counts[0]):
            raise BrainalignError(
                "metric='crossnobis' without 'runs' assigns the k-th repetition of each condition "
                "to run k, which needs every condition repeated equally often; got counts "
                f"{dict(zip(uniq.tolist(), counts.tolist(), strict=True))}. Pass 'runs'."
            )
        run_lab = np.empty(n_obs, dtype=np.int64)
        for c in range(uniq.shape[0]):
            run_lab[inverse == c] = np.arange(counts[c])
    else:
        run_lab = _labels(runs, n_obs, "runs")
    folds = np.unique(run_lab)
    if folds.shape[0] < 2:
        raise BrainalignError(
            f"metric='crossnobis' needs at least 2 runs to cross-validate, got {folds.shape[0]} "
            f"({folds.tolist()!r})."
        )
    for f in folds:
        missing = np.setdiff1d(uniq, lab[run_lab == f])
        if missing.size:
            raise BrainalignError(
                f"metric='crossnobis': run {f!r} has no observation of condition(s) "
                f"{missing.tolist()!r}; every condition must occur in every run."
            )

    def means(mask: np.ndarray) -> np.ndarray:
        M = _average_by(X[mask], lab[mask], uniq)
        if remove_mean:
            M = M - M.mean(axis=1, keepdims=True)
        return M

    P_stack = None if noise is None else _as_float(noise, "noise")
    if P_stack is not None and P_stack.ndim == 3:
        if P_stack.shape != (folds.shape[0], n_channels, n_channels):
            raise BrainalignError(
                f"'noise' as one precision per run must have shape (n_runs, n_channels, "
                f"n_channels) = ({folds.shape[0]}, {n_channels}, {n_channels}), got "
                f"{P_stack.shape}."
            )
        for k, P in enumerate(P_stack):
            _check_positive_definite(P, f"noise[{k}]")
        run_means = [means(run_lab == f) for f in folds]
        covs = [np.linalg.inv(P) for P in P_stack]
        parts = []
        for i in range(folds.shape[0]):
            for j in range(i + 1, folds.shape[0]):
                W = np.linalg.inv((covs[i] + covs[j]) / 2.0)
                parts.append(_cross_distances(run_means[i], run_means[j], W))
        return np.mean(parts, axis=0)

    P = None if P_stack is None else _check_precision(P_stack, n_channels)
    parts = []
    for f in folds:
        test = run_lab == f
        parts.append(_cross_distances(means(~test), means(test), P))
    return np.mean(parts, axis=0)


# --------------------------------------------------------------------------- comparisons
def _as_vectors(a: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] == 0:
        raise BrainalignError(
            f"'{name}' must be a condensed RDM (n_pairs,) or a stack of them (n_rdms, n_pairs), "
            f"got shape {v.shape}. Convert square matrices with brainalign.metrics.rsa.squareform."
        )
    return v


def _cosine_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    na = np.sqrt(np.einsum("ij,ij->i", A, A))
    nb = np.sqrt(np.einsum("ij,ij->i", B, B))
    num = A @ B.T
    out = np.zeros_like(num)
    den = na[:, None] * nb[None, :]
    np.divide(num, den, out=out, where=den > 0)
    return out


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-a: (concordant - discordant) / (n (n - 1) / 2); tied pairs count 0."""
    n = x.shape[0]
    n0 = n * (n - 1) // 2
    if n0 == 0:
        return float("nan")

    def tied_pairs(v: np.ndarray) -> int:
        _, c = np.unique(v, return_counts=True)
        return int((c * (c - 1) // 2).sum())

    tx, ty = tied_pairs(x), tied_pairs(y)
    if tx == n0 or ty == n0:  # one vector constant: every pair tied, C - D = 0
        return 0.0
    # scipy's tau-b is (C - D) / sqrt((n0 - tx)(n0 - ty)); C - D is an integer.
    tau_b = scipy.stats.kendalltau(x, y, variant="b").statistic
    c_minus_d = np.rint(tau_b * np.sqrt(float(n0 - tx) * float(n0 - ty)))
    return float(np.clip(c_minus_d / n0, -1.0, 1.0))


def compare_rdms(a: ArrayLike, b: ArrayLike, method: str = "spearman") -> float | np.ndarray:
    """Similarity between RDMs (condensed vectors).

    Parameters
    ----------
    a : array-like of shape (n_pairs,) or (n_rdms_a, n_pairs)
        One condensed RDM, or a stack of them (see :func:`rdm`).
    b : array-like of shape (n_pairs,) or (n_rdms_b, n_pairs)
        Same number of pairs as ``a``.
    method : {"spearman", "kendall_tau_a", "pearson", "cosine"}
        For two vectors ``u, v`` of length ``m`` (after dropping NaN pairs):

        - ``"spearman"``: Pearson correlation of the ranks ``rank(u)``,
          ``rank(v)`` (ties get their average rank, as
          :func:`scipy.stats.rankdata`); rsatoolbox's ``compare_spearman``.
        - ``"kendall_tau_a"``: ``τ_a = (n_c - n_d) / (m (m - 1) / 2)`` with
          ``n_c``/``n_d`` the numbers of concordant/discordant pairs; pairs
          tied in either vector count in neither (no tie correction in the
          denominator, unlike τ-b); rsatoolbox's ``compare_kendall_tau_a``.
        - ``"pearson"``: ``Σ (u - ū)(v - v̄) / (||u - ū|| ||v - v̄||)``;
          rsatoolbox's ``compare_correlation``.
        - ``"cosine"``: ``uᵀv / (||u|| ||v||)`` (no centering);
          rsatoolbox's ``compare_cosine``.

    Returns
    -------
    similarity : float or ndarray of float64, shape (n_rdms_a, n_rdms_b)
        A float when both inputs are 1-D; otherwise the matrix of
        similarities between every RDM of ``a`` and every RDM of ``b``.

    Raises
    ------
    BrainalignError
        If the numbers of pairs differ, or the NaN positions differ between
        the RDMs.

    Notes
    -----
    As in rsatoolbox: a pair that is NaN in any of the RDMs is excluded from
    all comparisons (the NaN positions must agree between ``a`` and ``b``),
    and a zero-norm vector (e.g. a constant RDM for spearman/pearson) gives a
    similarity of ``0.0`` rather than NaN.
    """
    check_option("method", method, COMPARE_METHODS)
    scalar = np.ndim(a) == 1 and np.ndim(b) == 1
    A = _as_vectors(a, "a")
    B = _as_vectors(b, "b")
    if A.shape[1] != B.shape[1]:
        raise BrainalignError(
            f"'a' and 'b' must have the same number of pairs, got {A.shape[1]} and {B.shape[1]}."
        )
    ok_a = ~np.isnan(A).any(axis=0)
    ok_b = ~np.isnan(B).any(axis=0)
    if not np.array_equal(ok_a, ok_b):
        raise BrainalignError(
            "'a' and 'b' have NaN at different pairs; NaN pairs must be the same in both "
            f"(NaN in a at {np.flatnonzero(~ok_a).tolist()[:10]}, in b at "
            f"{np.flatnonzero(~ok_b).tolist()[:10]})."
        )
    A = A[:, ok_a]
    B = B[:, ok_a]
    if method == "kendall_tau_a":
        out = np.array([[_tau_a(u, v) for v in B] for u in A])
    else:
        if method == "spearman":
            A = scipy.stats.rankdata(A, axis=1)
            B = scipy.stats.rankdata(B, axis=1)
        if method in ("spearman", "pearson"):
            A = A - A.mean(axis=1, keepdims=True)
            B = B - B.mean(axis=1, keepdims=True)
        out = _cosine_matrix(A, B)
    return float(out[0, 0]) if scalar else out


def rsa_score(
    X: ArrayLike,
    Y: ArrayLike,
    metric: str = "correlation",
    method: str = "spearman",
) -> float:
    """RSA similarity of two representations of the same stimuli.

    ``compare_rdms(rdm(X, metric), rdm(Y, metric), method)``. With the
    defaults this is Brain-Score's RDM metric on one split: ``1 - Pearson r``
    between stimulus rows, compared by Spearman over the upper triangles.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_features_x)
        E.g. model activations.
    Y : array-like of shape (n_stimuli, n_features_y)
        E.g. brain responses; rows paired with ``X``.
    metric : {"correlation", "euclidean"}
        RDM dissimilarity (see :func:`rdm`).
    method : {"spearman", "kendall_tau_a", "pearson", "cosine"}
        RDM comparison (see :func:`compare_rdms`).

    Returns
    -------
    score : float
    """
    check_option("metric", metric, ("correlation", "euclidean"))
    Xa = check_2d(X, "X", "features")
    Ya = check_2d(Y, "Y", "features")
    if Xa.shape[0] != Ya.shape[0]:
        raise BrainalignError(
            f"'X' and 'Y' must have the same number of stimuli (rows), got {Xa.shape[0]} and "
            f"{Ya.shape[0]}."
        )
    return compare_rdms(rdm(Xa, metric), rdm(Ya, metric), method)
