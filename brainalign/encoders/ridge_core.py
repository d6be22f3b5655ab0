"""The one place that solves ridge regression: decompositions reused for every penalty.

Every ridge estimator and test of brainalign (:class:`~brainalign.encoders.ridge.RidgeCVEncoder`,
:class:`~brainalign.encoders.ridge_cv.RidgeCV`, :class:`~brainalign.encoders.banded.BandedRidgeCV`,
Brain-Score's shared-alpha regression and the refit permutation test) solves

    W(alpha) = argmin_W ||Y - X W||^2 + alpha ||W||^2 = V diag(s / (s^2 + alpha)) U^T Y

(``X = U diag(s) V^T``, after centring when there is an intercept) with the
factorizations below, computed once per training set and reused for every
alpha. Two factorizations of the same solution, each where it is the better one:

* :class:`RidgeSVD`, a thin SVD of ``X`` in float64 on NumPy: the accurate one
  (no squared condition number), for the nested-CV encoders whose inner folds
  score every alpha's predictions (Pearson r or R²);
* :class:`Spectrum` and :class:`BatchedSolver`, the eigendecomposition of the
  smaller of ``X^T X`` and ``X X^T`` on an array backend (NumPy or torch, CPU
  or GPU): cheaper, and with the leverages ``H_ii`` at no cost, for leave-one-out
  and K-fold scores of many targets processed in batches (the whole-brain path);
* :func:`fold_eigendecomposition`, the same eigendecomposition for the permutation
  test's many small refits.

Components with eigenvalue at or below ``lam_max * max(shape) * eps`` are
dropped everywhere (:func:`eigen_floor`): ridge shrinks them to nothing. The
criterion that picks alpha belongs to each estimator and is recorded with its
scores (see ``docs/method.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from brainalign._validation import BrainalignError
from brainalign.backend import get_backend

__all__ = [
    "DEFAULT_ALPHAS",
    "TIE_TOLERANCE",
    "KFOLD_TIE_SLOPE",
    "ALPHA_CRITERIA",
    "eigen_floor",
    "shrinkage",
    "thin_svd",
    "RidgeSVD",
    "Spectrum",
    "BatchedSolver",
    "fold_eigendecomposition",
]

#: The default grid of ridge penalties, 1e-2 ... 1e6 in half-decade steps: every ridge estimator's, and the
#: config's ``encoder.alphas`` default (tests/test_ridge_cv.py checks the schema against it).
DEFAULT_ALPHAS: np.ndarray = np.logspace(-2, 6, 17)
DEFAULT_ALPHAS.flags.writeable = False

#: Two cross-validated scores closer than this are a tie (the smaller alpha wins).
#: Scores are correlations in [-1, 1]; for very small or very large alphas the
#: predictions are (nearly) proportional across alphas, so their correlations
#: agree up to rounding and would otherwise be ranked by floating-point noise.
TIE_TOLERANCE = 1e-10

#: How each estimator picks alpha: the name recorded with its scores (``alpha_criterion_``, and the
#: scores table's ``alpha_criterion`` column) -> its definition. Every criterion is maximised;
#: ``alpha_per_target=False`` maximises its mean over targets.
ALPHA_CRITERIA: dict[str, str] = {
    "inner_cv_pearson_r": "mean over inner folds of the held-out Pearson r (RidgeCVEncoder, scoring='pearson'; "
                          "the ROI path); ties within TIE_TOLERANCE go to the smaller alpha",
    "inner_cv_r2": "mean over inner folds of the held-out R^2 (RidgeCVEncoder and BandedRidgeCV, scoring='r2')",
    "kfold_neg_mse": "mean over folds of minus the held-out mean squared error (RidgeCV with K folds, as "
                     "himalaya; the whole-brain path); exact ties go to the larger alpha",
    "loo_neg_mse": "minus the mean squared leave-one-out error (RidgeCV with cv='loo', as scikit-learn; "
                   "Brain-Score's shared-alpha ridge); the first best alpha wins",
}

#: Slope added to K-fold scores before the arg-max, times log(alpha) (himalaya's tie-break).
KFOLD_TIE_SLOPE = 1e-10

#: Default batch on CPU backends: the (n_samples, n_targets_batch) work arrays stay
#: near this size, which keeps them in cache between the matrix products.
_CPU_BATCH_BYTES = 8 * 2**20
#: Default working-memory budget on a GPU when neither batch option is given.
_GPU_DEFAULT_GIB = 2.0



# --------------------------------------------------------------------------- #
# rank floor
# --------------------------------------------------------------------------- #
def eigen_floor(w: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Eigenvalues of a Gram matrix above its rounding level (the ridge shrinks the rest to nothing)."""
    return w > w.max(initial=0.0) * max(shape) * np.finfo(np.float64).eps



# --------------------------------------------------------------------------- #
# thin SVD (NumPy, float64)
# --------------------------------------------------------------------------- #
def thin_svd(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``U, s, Vt`` of ``X`` (thin, LAPACK ``gesdd``, ``gesvd`` if it fails to converge): the NumPy backend's SVD."""
    return get_backend("numpy").svd(X)


def shrinkage(s: np.ndarray, alpha: float, shape: tuple[int, int]) -> np.ndarray:
    """``s / (s**2 + alpha)``; for ``alpha == 0`` the pseudo-inverse ``1/s`` (0 for tiny s)."""
    if alpha > 0:
        return s / (s**2 + alpha)
    tol = (s.max() if s.size else 0.0) * max(shape) * np.finfo(np.float64).eps
    out = np.zeros_like(s)
    big = s > tol
    out[big] = 1.0 / s[big]
    return out


class RidgeSVD:
    """One SVD of a training matrix, reused for every alpha.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
    Y_train : ndarray of shape (n_train, n_targets)
    backend : module, optional
        The array backend (:func:`brainalign.backend.get_backend`) of the SVD
        and the products, in the inputs' dtype (float64 from every caller; a
        GPU with ``torch_cuda``). None: NumPy, i.e. LAPACK's ``gesdd``
        through SciPy (:func:`thin_svd`). Results come back as NumPy arrays
        either way; backends agree to rounding error (about 1e-12 relative).
    """

    def __init__(self, X_train: np.ndarray, Y_train: np.ndarray, backend: Any = None):
        self.shape = X_train.shape
        self._xp = backend if backend is not None else get_backend("numpy")
        xp = self._xp
        U, s, Vt = xp.svd(xp.asarray(X_train))
        self.s = xp.to_numpy(s)  # the gains are computed on the host (a few hundred values)
        self.V = Vt.T  # (n_features, k)
        self.UtY = xp.matmul(U.T, xp.asarray(Y_train))  # (k, n_targets)

    def _gains(self, alpha: float) -> Any:
        """``shrinkage`` of the singular values as a column, on the backend."""
        return self._xp.asarray(shrinkage(self.s, float(alpha), self.shape)[:, None])

    def predictions(self, X_test: np.ndarray, alphas: Iterable[float]) -> Iterator[np.ndarray]:
        """Yield test predictions (n_test, n_targets) for each alpha in turn (NumPy arrays)."""
        xp = self._xp
        XV = xp.matmul(xp.asarray(X_test), self.V)  # (n_test, k)
        for alpha in alphas:
            yield xp.to_numpy(xp.matmul(XV, self._gains(alpha) * self.UtY))

    def coefs(self, alpha_per_target: np.ndarray) -> np.ndarray:
        """Coefficients (n_features, n_targets), column j with ``alpha_per_target[j]`` (a NumPy array)."""
        xp = self._xp
        coef = np.empty((self.V.shape[0], self.UtY.shape[1]))
        for alpha in np.unique(alpha_per_target):
            cols = alpha_per_target == alpha
            coef[:, cols] = xp.to_numpy(xp.matmul(self.V, self._gains(alpha) * self.UtY[:, cols]))
        return coef


def raise_nonfinite(a: np.ndarray, name: str, col_offset: int = 0) -> None:
    """Raise a :class:`BrainalignError` naming the first NaN or infinite value of ``a``."""
    bad = ~np.isfinite(a)
    row, col = np.argwhere(bad)[0]
    raise BrainalignError(
        f"'{name}' contains {int(bad.sum())} NaN or infinite value(s), the first at "
        f"row={int(row)}, column={int(col) + col_offset}."
    )


def target_batches(n_targets: int, batch: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch`` targets covering ``range(n_targets)``."""
    for start in range(0, n_targets, batch):
        yield slice(start, min(start + batch, n_targets))


# --------------------------------------------------------------------------- #
# spectral decomposition of a (centred) training matrix
# --------------------------------------------------------------------------- #
class Spectrum:
    """Hat matrix ``L diag(fit_gain) L^T`` and coefficient map ``P diag(coef_gain) L^T``.

    ``Xc`` (m, p) is the centred training matrix, float64 on the backend. With
    ``p <= m`` the covariance ``Xc^T Xc = V diag(lam) V^T`` (passed as ``cov``
    when the caller already has it) gives ``L = Xc V``, ``P = V`` and
    ``fit_gain = coef_gain = 1/(lam + alpha)``. Otherwise the Gram matrix
    ``Xc Xc^T = U diag(lam) U^T`` gives ``L = U``, ``P = Xc^T U``,
    ``fit_gain = lam/(lam + alpha)``, ``coef_gain = 1/(lam + alpha)``.
    Components with eigenvalue <= ``lam_max * max(m, p) * eps`` (the null
    space, e.g. the constant direction removed by centring) are dropped: they
    contribute nothing to the fit. The decomposition is float64; ``L`` and
    ``P`` are returned in ``dtype`` (``L = Xc V`` is computed in that dtype).
    """

    def __init__(self, backend: Any, Xc: Any, dtype: str, cov: Any = None):
        B = backend
        m, p = Xc.shape
        self.mode = "cov" if p <= m else "gram"
        if self.mode == "cov":
            lam, vecs = B.eigh(B.matmul(Xc.T, Xc) if cov is None else cov)
        else:
            lam, vecs = B.eigh(B.matmul(Xc, Xc.T))
        lam_np = B.to_numpy(lam)
        keep = np.flatnonzero(eigen_floor(lam_np, (m, p)))
        self.lam = B.take(lam, keep, axis=0)  # (r,) float64
        vecs = B.take(vecs, keep, axis=1)
        self.rank = int(keep.size)
        if self.mode == "cov":
            self.P = B.astype(vecs, dtype)  # (p, r)
            Xd = Xc if dtype == "float64" else B.astype(Xc, dtype)
            self.L = B.matmul(Xd, self.P)  # (m, r)
        else:
            self.L = B.astype(vecs, dtype)
            self.P = B.astype(B.matmul(Xc.T, vecs), dtype)

    def coef_gain(self, alphas: Any) -> Any:
        """(n_alphas, r) float64: ``1 / (lam + alpha)``."""
        return 1.0 / (self.lam[None, :] + alphas[:, None])

    def fit_gain(self, alphas: Any) -> Any:
        """(n_alphas, r) float64: ``g`` in ``H(alpha) = L diag(g) L^T``."""
        gain = self.coef_gain(alphas)
        return gain if self.mode == "cov" else gain * self.lam[None, :]


def argmax_first(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """Arg-max along ``axis``, first index on ties, NaN never chosen (unless all NaN)."""
    return np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=axis)


class BatchedSolver:
    """Leave-one-out or K-fold scores, choice and refit, batched over targets."""

    def __init__(
        self,
        *,
        backend: Any,
        X: np.ndarray,
        Y: np.ndarray,
        alphas: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]] | None,
        per_target: bool,
        fit_intercept: bool,
        dtype: str,
    ):
        self.B = backend
        self.Y = Y
        self.alphas = alphas
        self.folds = folds
        self.per_target = per_target
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.item = np.dtype(dtype).itemsize
        B = backend
        n, p = X.shape
        self.n, self.p = n, p
        self.x_mean = X.mean(axis=0) if fit_intercept else np.zeros(p)
        X64 = B.asarray(X, "float64")
        alphas_b = B.asarray(alphas, "float64")

        # One decomposition of all samples: the refit (and the leave-one-out scores).
        Xc = X64 - B.asarray(self.x_mean, "float64") if fit_intercept else X64
        cov_all = B.matmul(Xc.T, Xc) if p <= n else None
        loo = folds is None
        full = Spectrum(B, Xc, "float64" if loo else dtype, cov=cov_all)
        self.full_L = B.astype(full.L, dtype)
        self.full_P = full.P if loo and dtype == "float64" else B.astype(full.P, dtype)
        self.full_coef_gain = B.astype(full.coef_gain(alphas_b), dtype)  # (n_alphas, r)
        self.x_mean_d = B.asarray(self.x_mean, dtype)
        self.rank = full.rank
        fixed = (n + p) * full.rank * self.item + 2 * n * p * 8

        if loo:
            fit_gain = full.fit_gain(alphas_b)  # (n_alphas, r) float64
            lev = B.matmul(fit_gain, B.square(full.L).T)  # (n_alphas, n): H_ii per alpha
            if fit_intercept:
                lev = lev + 1.0 / n
            # Weights 1 / (1 - H_ii)^2 of the squared residuals.
            self.loo_weights = B.astype(1.0 / B.square(1.0 - lev), dtype)
            if full.mode == "cov":
                # Residuals as Yc - L (g * Q).
                self.loo_gain = B.astype(fit_gain, dtype)
                self.loo_complement = False
            else:
                # L = U is orthonormal: residuals as (I - U U^T) Yc + U (alpha / (lam + alpha) * Q),
                # which avoids the cancellation of Yc - fit when the fit nearly interpolates
                # (p >= n, small alpha). (I - U U^T) Yc is zero unless X is rank-deficient.
                resid_gain = alphas_b[:, None] / (full.lam[None, :] + alphas_b[:, None])
                self.loo_gain = B.astype(resid_gain, dtype)
                self.loo_complement = True
                self.loo_need_perp = full.rank < n - (1 if fit_intercept else 0)
            fixed += 2 * len(alphas) * (n + full.rank) * self.item
        else:
            del full
            self.fold_data = []
            for train, test in folds:
                spec, T = self._fold_spectrum(Xc, cov_all, train, test)
                gain = B.astype(spec.coef_gain(alphas_b), dtype)  # (n_alphas, r)
                # Test rows times each alpha's gains, stacked: (n_alphas * n_test, r).
                T_alphas = B.multiply(T[None, :, :], gain[:, None, :]).reshape(-1, spec.rank)
                self.fold_data.append(
                    {"train": train, "test": test, "L": spec.L, "T_alphas": T_alphas}
                )
                fixed += (train.size + len(alphas) * test.size) * spec.rank * self.item
            self.max_train = max(tr.size for tr, _ in folds)
            self.max_test = max(te.size for _, te in folds)
            self.max_rank = max(fd["L"].shape[1] for fd in self.fold_data)
        self.fixed_bytes = fixed

    def _fold_spectrum(self, Xc: Any, cov_all: Any, train: np.ndarray, test: np.ndarray):
        """Decomposition of one fold's training rows, and its test rows mapped by ``P``.

        ``Xc`` is ``X`` centred on all samples (float64). Re-centring on the
        training mean is a rank-one update; when fewer rows are left out than
        kept, the training covariance is the full one minus the left-out rows'
        (float64, so the subtraction loses nothing that matters).
        """
        B = self.B
        n, p = Xc.shape
        Xtr = B.take(Xc, train, axis=0)
        Xte = B.take(Xc, test, axis=0)
        mean = B.mean_float64(Xtr, axis=0) if self.fit_intercept else None
        cov = None
        if p <= train.size and cov_all is not None:
            out = np.setdiff1d(np.arange(n), train, assume_unique=False)
            if out.size < train.size:
                Xout = B.take(Xc, out, axis=0)
                cov = cov_all - B.matmul(Xout.T, Xout)
                if mean is not None:
                    cov = cov - train.size * (mean[:, None] * mean[None, :])
        if mean is not None:
            Xtr = Xtr - mean
            Xte = Xte - mean
        spec = Spectrum(B, Xtr, self.dtype, cov=cov)
        Xte_d = Xte if self.dtype == "float64" else B.astype(Xte, self.dtype)
        return spec, B.matmul(Xte_d, spec.P)

    # ------------------------------------------------------------------ memory
    def bytes_per_target(self) -> int:
        n, p, na, r = self.n, self.p, len(self.alphas), self.rank
        if self.folds is None:
            # Y batch (a cast copy and the centred one), residuals, Q, scaled Q, refit
            # gains and coefficients; float64 scores.
            return self.item * (3 * n + 3 * r + p) + 8 * 2 * na
        tr, te, rf = self.max_train, self.max_test, self.max_rank
        # Y batch (two), training and test rows, Q, stacked test predictions, refit Q,
        # gains and coefficients; float64 scores.
        return self.item * (2 * n + tr + te + rf + na * te + 2 * r + p) + 8 * 3 * na

    def batch_size(self, n_targets_batch: int | None, memory_limit_gib: float | None) -> int:
        v = self.Y.shape[1]
        if n_targets_batch is not None:
            return min(n_targets_batch, v)
        # 25 % headroom for temporaries and allocator slack not modelled per array.
        per = int(1.25 * self.bytes_per_target())
        if memory_limit_gib is None:
            if self.B.device == "cpu":
                b = max(64, min(4096, _CPU_BATCH_BYTES // (self.item * self.n)))
                return int(min(b, v))
            memory_limit_gib = _GPU_DEFAULT_GIB
        budget = memory_limit_gib * 2**30 - self.fixed_bytes
        if budget < per:
            need = (self.fixed_bytes + per) / 2**30
            raise BrainalignError(
                f"'memory_limit_gib'={memory_limit_gib} is too small: the decompositions and a "
                f"single target already need {need:.3g} GiB."
            )
        return int(min(v, budget // per))

    # ------------------------------------------------------------------ batches
    def _load(self, sl: slice) -> tuple[Any, np.ndarray]:
        """Targets ``sl`` on the backend, centred if fitting an intercept; and their means."""
        B = self.B
        Yb = B.asarray(self.Y[:, sl], self.dtype)
        if self.fit_intercept:
            mean = B.mean_float64(Yb, axis=0)
        else:
            mean = B.sum_float64(Yb, axis=0)  # only to detect NaN/inf cheaply
        mean_np = B.to_numpy(mean)
        if not np.isfinite(mean_np).all():
            Y64 = B.to_numpy(B.asarray(self.Y[:, sl], "float64"))
            if not np.isfinite(Y64).all():
                raise_nonfinite(Y64, "Y", sl.start)
            raise BrainalignError(
                f"'Y' holds values up to {float(np.max(np.abs(Y64))):.3g} in magnitude, which overflow "
                f"{self.dtype}: rescale it (e.g. standardize each target), or fit in float64."
            )
        if self.fit_intercept:
            Yb = B.subtract(Yb, B.astype(mean, self.dtype)[None, :])
            return Yb, mean_np
        return Yb, np.zeros(mean_np.shape)

    def _refit(self, Yc: Any, y_mean: np.ndarray, best: np.ndarray, Q: Any = None):
        """Coefficients and intercepts of targets ``Yc`` (centred) with alpha indices ``best``.

        ``Q = L^T Yc`` may be passed in (it is then overwritten).
        """
        B = self.B
        if Q is None:
            Q = B.matmul(self.full_L.T, Yc)  # (r, b)
        gains = B.take(self.full_coef_gain, best, axis=0).T  # (r, b)
        coef = B.matmul(self.full_P, B.multiply(Q, gains, out=Q))  # (p, b)
        del gains
        if self.fit_intercept:
            offset = B.to_numpy(B.einsum("i,ij->j", self.x_mean_d, coef)).astype(np.float64)
            intercept = (y_mean - offset).astype(self.dtype)
        else:
            intercept = np.zeros(coef.shape[1], dtype=self.dtype)
        return B.to_numpy(coef), intercept

    def _loo_scores(self, Yc: Any) -> tuple[np.ndarray, Any]:
        """(n_alphas, b) minus mean squared leave-one-out errors; and Q = L^T Yc."""
        B = self.B
        L = self.full_L
        n, b = Yc.shape
        Q = B.matmul(L.T, Yc)  # (r, b)
        QD = B.empty(Q.shape, self.dtype)
        E = B.empty((n, b), self.dtype)
        sse = B.empty((len(self.alphas), b), "float64")
        perp = None
        if self.loo_complement and self.loo_need_perp:
            perp = B.subtract(Yc, B.matmul(L, Q))  # part of Yc outside the span of U
        for a in range(len(self.alphas)):
            B.multiply(Q, self.loo_gain[a][:, None], out=QD)
            B.matmul(L, QD, out=E)
            if not self.loo_complement:
                B.subtract(Yc, E, out=E)  # residuals = Yc - fitted values
            elif perp is not None:
                B.add(E, perp, out=E)
            B.square(E, out=E)
            sse[a] = B.astype(B.einsum("i,ij->j", self.loo_weights[a], E), "float64")
        return -B.to_numpy(sse) / n, Q

    def _kfold_scores(self, Yc: Any) -> np.ndarray:
        """(n_alphas, b) mean over folds of minus the test mean squared error."""
        B = self.B
        na = len(self.alphas)
        b = Yc.shape[1]
        total = np.zeros((na, b))
        for fd in self.fold_data:
            Ytr = B.take(Yc, fd["train"], axis=0)
            Yte = B.take(Yc, fd["test"], axis=0)
            if self.fit_intercept:
                mean = B.astype(B.mean_float64(Ytr, axis=0), self.dtype)[None, :]
                B.subtract(Ytr, mean, out=Ytr)
                B.subtract(Yte, mean, out=Yte)
            n_test = Yte.shape[0]
            Q = B.matmul(fd["L"].T, Ytr)  # (r, b)
            pred = B.matmul(fd["T_alphas"], Q)  # (n_alphas * n_test, b): all alphas at once
            ones = B.asarray(np.ones(n_test), self.dtype)
            sse = B.empty((na, b), "float64")
            for a in range(na):
                err = pred[a * n_test : (a + 1) * n_test]
                B.subtract(err, Yte, out=err)
                B.square(err, out=err)
                sse[a] = B.astype(B.einsum("i,ij->j", ones, err), "float64")
            total -= B.to_numpy(sse) / n_test
        return total / len(self.fold_data)

    def _select(self, scores: np.ndarray) -> np.ndarray:
        """Best alpha index per column of ``scores`` (n_alphas, n) under the CV's tie rule."""
        if self.folds is not None:
            scores = scores + KFOLD_TIE_SLOPE * np.log(self.alphas)[:, None]
        return argmax_first(scores, axis=0)

    def run(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        B = self.B
        v = self.Y.shape[1]
        na = len(self.alphas)
        cv_scores = np.empty((na, v))
        best = np.empty(v, dtype=np.intp)
        coef = np.empty((self.p, v), dtype=self.dtype)
        intercept = np.empty(v, dtype=self.dtype)
        for sl in target_batches(v, batch):
            Yc, y_mean = self._load(sl)
            if self.folds is None:
                scores, Q = self._loo_scores(Yc)
            else:
                scores, Q = self._kfold_scores(Yc), None
            self._check_overflow(scores, sl, "cross-validation errors")
            cv_scores[:, sl] = scores
            if self.per_target:
                best[sl] = self._select(scores)
                coef[:, sl], intercept[sl] = self._refit(Yc, y_mean, best[sl], Q)
                self._check_overflow(coef[:, sl], sl, "coefficients")
            del Yc, Q
        if not self.per_target:
            mean_scores = np.mean(cv_scores, axis=1, keepdims=True)
            best[:] = self._select(mean_scores)[0]
            for sl in target_batches(v, batch):
                Yc, y_mean = self._load(sl)
                coef[:, sl], intercept[sl] = self._refit(Yc, y_mean, best[sl])
                self._check_overflow(coef[:, sl], sl, "coefficients")
        B.synchronize()
        return cv_scores, best, coef, intercept

    def _check_overflow(self, values: np.ndarray, sl: slice, what: str) -> None:
        """Raise if ``values`` (columns = targets ``sl``) overflowed: else the choice of alpha would be arbitrary."""
        bad = ~np.isfinite(values)
        if bad.any():
            col = sl.start + int(np.argwhere(bad)[0][1])
            raise BrainalignError(
                f"The {what} of target {col} overflow {self.dtype}: the values of 'Y' (or 'X') are too large "
                "for ridge; rescale them, e.g. standardize each column."
            )


def fold_eigendecomposition(X: Any, train: np.ndarray, test: np.ndarray, gram: Any | None, backend: Any = None
                            ) -> tuple[Any, Any, Any]:
    """``U``, ``s`` and ``(X_test − m) V`` of the centred training design ``X_train − m = U diag(s) Vᵀ``.

    Through the eigendecomposition of the smaller Gram matrix, several times
    faster than an SVD for the permutations' many small decompositions. For
    wide designs the centred kernels are read off ``gram = X Xᵀ`` (computed
    once for all folds): ``(X_a − m)(X_b − m)ᵀ = K_ab − K_a· 1/n − 1/n K_·b + mean(K_tt)``.

    With a torch ``backend``, ``X`` and ``gram`` are float64 tensors of that
    backend and so are the results (the GPU's ``eigh``); None or ``numpy``:
    NumPy arrays and LAPACK.
    """
    if backend is not None and backend.name != "numpy":
        return _fold_eigendecomposition_on(backend, X, train, test, gram)
    n_tr = train.size
    if gram is not None:
        Ktt = gram[np.ix_(train, train)]
        row = Ktt.mean(axis=1)
        total = row.mean()
        Kc = Ktt - row[:, None] - row[None, :] + total
        Kst = gram[np.ix_(test, train)]
        Kst_c = Kst - Kst.mean(axis=1)[:, None] - row[None, :] + total
        w, U = np.linalg.eigh(Kc)
        keep = eigen_floor(w, (n_tr, X.shape[1]))
        w, U = w[keep], U[:, keep]
        s = np.sqrt(w)
        return U, s, Kst_c @ (U / s)
    Xtr = X[train]
    mean = Xtr.mean(axis=0)
    Xc = Xtr - mean
    w, V = np.linalg.eigh(Xc.T @ Xc)
    keep = eigen_floor(w, Xc.shape)
    w, V = w[keep], V[:, keep]
    s = np.sqrt(w)
    return (Xc @ V) / s, s, (X[test] - mean) @ V


def _fold_eigendecomposition_on(bk: Any, X: Any, train: np.ndarray, test: np.ndarray, gram: Any | None
                                ) -> tuple[Any, Any, Any]:
    """:func:`fold_eigendecomposition` on a torch backend (float64 tensors in and out)."""
    if gram is not None:
        Ktt = bk.take(bk.take(gram, train, axis=0), train, axis=1)
        row = bk.mean_float64(Ktt, axis=1)
        total = bk.mean_float64(row)
        Kc = Ktt - row[:, None] - row[None, :] + total
        Kst = bk.take(bk.take(gram, test, axis=0), train, axis=1)
        Kst_c = Kst - bk.mean_float64(Kst, axis=1)[:, None] - row[None, :] + total
        w, U = bk.eigh(Kc)
        keep = np.flatnonzero(eigen_floor(bk.to_numpy(w), (train.size, X.shape[1])))
        U, s = bk.take(U, keep, axis=1), bk.take(w, keep) ** 0.5
        return U, s, bk.matmul(Kst_c, U / s)
    Xtr = bk.take(X, train)
    mean = bk.mean_float64(Xtr, axis=0)
    Xc = Xtr - mean
    w, V = bk.eigh(bk.matmul(Xc.T, Xc))
    keep = np.flatnonzero(eigen_floor(bk.to_numpy(w), tuple(Xc.shape)))
    V, s = bk.take(V, keep, axis=1), bk.take(w, keep) ** 0.5
    return bk.matmul(Xc, V) / s, s, bk.matmul(bk.take(X, test) - mean, V)
