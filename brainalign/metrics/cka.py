"""Linear centered kernel alignment (CKA), biased and debiased.

For representations ``X`` (n × p) and ``Y`` (n × q) of the same ``n``
stimuli, with linear kernels ``K = X Xᵀ`` and ``L = Y Yᵀ``::

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

The biased estimator (Kornblith et al. 2019; Brain-Score's ``cka``) uses
``HSIC(K, L) = tr(H K H H L H) / (n - 1)²`` with the centering matrix ``H = I -
11ᵀ/n``; the ``(n - 1)²`` cancels in the ratio. For linear kernels it equals
the feature-space form on column-centered ``X̃ = HX``, ``Ỹ = HY``::

    tr(HKH HLH) = ||Ỹᵀ X̃||²_F,    CKA = ||Ỹᵀ X̃||²_F / (||X̃ᵀ X̃||_F ||Ỹᵀ Ỹ||_F),

which costs O(n p q) instead of O(n² (p + q)); :func:`linear_cka` picks the
cheaper form.

The debiased estimator replaces HSIC by the unbiased U-statistic of Song et
al. (2012, JMLR 13, eq. 5), as used by Kornblith et al. (2019)::

    HSIC_u(K, L) = [ tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n - 1)(n - 2))
                     - 2 / (n - 2) · 1ᵀ K̃ L̃ 1 ] / (n (n - 3)),

where ``K̃``, ``L̃`` are ``K``, ``L`` with their diagonals set to zero. It needs
``n >= 4``. Debiased CKA is close to 0 for independent representations even
when ``p, q`` are large relative to ``n``, whereas biased CKA is then
inflated towards 1.

This module imports only numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_2d

__all__ = ["hsic_linear", "linear_cka"]


def _check_pair(X: ArrayLike, Y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    Xa = check_2d(X, "X", "features")
    Ya = check_2d(Y, "Y", "features")
    if Xa.shape[0] != Ya.shape[0]:
        raise BrainalignError(
            f"'X' and 'Y' must have the same number of samples (rows), got {Xa.shape[0]} and "
            f"{Ya.shape[0]}."
        )
    return Xa, Ya


def _hsic_terms_biased(Xc: np.ndarray, Yc: np.ndarray) -> tuple[float, float, float]:
    """(tr(K̃L̃), tr(K̃K̃), tr(L̃L̃)) for column-centered X, Y (biased HSIC × (n-1)²)."""
    n, p = Xc.shape
    q = Yc.shape[1]
    if p * q + p * p + q * q <= n * (p + q):  # feature space is cheaper
        kl = float(np.sum((Yc.T @ Xc) ** 2))
        kk = float(np.sum((Xc.T @ Xc) ** 2))
        ll = float(np.sum((Yc.T @ Yc) ** 2))
    else:  # sample space
        K = Xc @ Xc.T
        L = Yc @ Yc.T
        kl = float(np.sum(K * L))
        kk = float(np.sum(K * K))
        ll = float(np.sum(L * L))
    return kl, kk, ll


def _cross_trace(Xc: np.ndarray, Yc: np.ndarray) -> float:
    """tr(K L) = ||Yᵀ X||²_F for K = X Xᵀ, L = Y Yᵀ, in the cheaper space."""
    n, p = Xc.shape
    q = Yc.shape[1]
    if p * q <= n * (p + q) / 2:
        return float(np.sum((Yc.T @ Xc) ** 2))
    return float(np.sum((Xc @ Xc.T) * (Yc @ Yc.T)))


def _hsic_unbiased(A: np.ndarray, B: np.ndarray, cross: float) -> float:
    """Song et al.'s U-statistic HSIC for K = A Aᵀ, L = B Bᵀ, with ``cross = tr(K L)``.

    Every term is formed in feature space: ``diag(K) = rownorms(A)²``,
    ``K1 = A (Aᵀ1)``, ``tr(K̃L̃) = tr(KL) - Σ diag(K) diag(L)``,
    ``1ᵀK̃1 = ||Aᵀ1||² - Σ diag(K)`` and ``K̃1 = K1 - diag(K)``.
    """
    n = A.shape[0]
    dK = np.einsum("ij,ij->i", A, A)
    dL = np.einsum("ij,ij->i", B, B)
    k1 = A @ A.sum(axis=0) - dK  # K̃ 1
    l1 = B @ B.sum(axis=0) - dL  # L̃ 1
    tr = cross - float(dK @ dL)
    sum_k = float(k1.sum())
    sum_l = float(l1.sum())
    return (tr + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)) / (
        n * (n - 3)
    )


def hsic_linear(X: ArrayLike, Y: ArrayLike, debiased: bool = False) -> float:
    """HSIC between the linear kernels of ``X`` and ``Y``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features_x)
    Y : array-like of shape (n_samples, n_features_y)
    debiased : bool
        If False, the biased estimator ``tr(HKH HLH) / (n - 1)²``; if True,
        Song et al.'s unbiased U-statistic (see the module docstring),
        which needs ``n_samples >= 4``.

    Returns
    -------
    hsic : float
    """
    Xa, Ya = _check_pair(X, Y)
    n = Xa.shape[0]
    Xc = Xa - Xa.mean(axis=0)
    Yc = Ya - Ya.mean(axis=0)
    if not debiased:
        if n < 2:
            raise BrainalignError(f"HSIC needs at least 2 samples, got {n}.")
        return _hsic_terms_biased(Xc, Yc)[0] / (n - 1) ** 2
    if n < 4:
        raise BrainalignError(f"The debiased HSIC needs at least 4 samples, got {n}.")
    return _hsic_unbiased(Xc, Yc, _cross_trace(Xc, Yc))


def linear_cka(X: ArrayLike, Y: ArrayLike, debiased: bool = False) -> float:
    """Linear centered kernel alignment between two representations.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features_x)
        E.g. model activations, one row per stimulus.
    Y : array-like of shape (n_samples, n_features_y)
        E.g. brain responses to the same stimuli, rows paired with ``X``.
    debiased : bool
        If False (Brain-Score's and Kornblith et al.'s default)::

            CKA = ||Ỹᵀ X̃||²_F / (||X̃ᵀ X̃||_F ||Ỹᵀ Ỹ||_F)
                = tr(HKH HLH) / sqrt(tr(HKH HKH) tr(HLH HLH)),

        with ``X̃``, ``Ỹ`` the column-centered inputs, ``K = XXᵀ``,
        ``L = YYᵀ`` and ``H = I - 11ᵀ/n``. If True, each HSIC is replaced
        by Song et al. (2012)'s unbiased estimator ``HSIC_u`` (module
        docstring): ``CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))``.

    Returns
    -------
    cka : float
        In [0, 1] for the biased estimator; the debiased one can be slightly
        negative (or, rarely, above 1) from sampling noise. NaN if a
        representation is constant (zero HSIC with itself), or, debiased, if
        ``HSIC_u(K, K)`` or ``HSIC_u(L, L)`` is not positive.

    Raises
    ------
    BrainalignError
        If the numbers of rows differ, or there are fewer than 2 samples
        (4 when debiased).

    Notes
    -----
    Invariant to orthogonal transforms and isotropic scaling of either
    representation and to adding a constant to any feature (the inputs are
    column-centered first, which leaves both estimators unchanged and avoids
    cancellation). Computed in float64, in feature space (O(n p q)) or sample
    space (O(n² (p + q))), whichever is cheaper.
    """
    Xa, Ya = _check_pair(X, Y)
    n = Xa.shape[0]
    Xc = Xa - Xa.mean(axis=0)
    Yc = Ya - Ya.mean(axis=0)
    if not debiased:
        if n < 2:
            raise BrainalignError(f"CKA needs at least 2 samples, got {n}.")
        kl, kk, ll = _hsic_terms_biased(Xc, Yc)
        den = np.sqrt(kk) * np.sqrt(ll)
        if den == 0:
            return float("nan")
        return float(kl / den)
    if n < 4:
        raise BrainalignError(f"The debiased CKA needs at least 4 samples, got {n}.")
    kl, kk, ll = _hsic_terms_biased(Xc, Yc)
    h_kl = _hsic_unbiased(Xc, Yc, kl)
    h_kk = _hsic_unbiased(Xc, Xc, kk)
    h_ll = _hsic_unbiased(Yc, Yc, ll)
    if not (h_kk > 0 and h_ll > 0):
        return float("nan")
    return float(h_kl / np.sqrt(h_kk * h_ll))
