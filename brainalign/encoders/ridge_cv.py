"""Voxel-wise ridge regression with the penalty chosen by efficient cross-validation.

:class:`RidgeCV` fits, for every target ``j`` (voxel, vertex, sensor, ROI),

    w_j = argmin_w ||y_j - X w||^2 + alpha_j ||w||^2      (+ an unpenalised intercept),

choosing ``alpha_j`` from a grid, one per target or one shared by all targets,
by leave-one-out (``cv="loo"``) or K-fold cross-validation. It reproduces
:class:`sklearn.linear_model.RidgeCV` (leave-one-out) and himalaya's
``RidgeCV`` (K-fold) exactly where their definitions apply, and is built for
many targets: 200 000 voxels with 2 000 samples and 768 features fit in a few
GiB.

Definitions
-----------
Let ``X_c`` be ``X`` centred on its (training) column means and ``y_c`` the
centred target (no centring with ``fit_intercept=False``), and
``H(alpha) = X_c (X_c^T X_c + alpha I)^-1 X_c^T`` the ridge hat matrix.

*Leave-one-out* (scikit-learn's ``RidgeCV`` with ``cv=None``, generalised
cross-validation mode): the leave-one-out residual of sample ``i`` is

    e_i(alpha) = (y_c - H y_c)_i / (1 - H_ii - 1/n)          (the 1/n is the intercept's leverage)

and the score of ``alpha`` for a target is ``-mean_i e_i(alpha)^2`` (minus the
mean squared leave-one-out error). The intercept is refit in every
leave-one-out fold, as in scikit-learn.

*K-fold* (himalaya's ``RidgeCV``, default ``score_func=l2_neg_loss``): on
each fold the model is fit on the training rows (centred on *their* means),
predicts the test rows, and scores ``-mean_i (y_i - yhat_i)^2`` over the test
rows (the target is centred on the training mean too, which leaves the error
unchanged). The score of ``alpha`` is the unweighted mean of the fold scores.

*Choice.* ``alpha_per_target=True`` maximises the score per target;
``alpha_per_target=False`` maximises its mean over targets (Brain-Score's
shared alpha). Ties: leave-one-out keeps the **first** best alpha in the order
given (scikit-learn); K-fold adds ``1e-10 * log(alpha)`` to the scores before
the arg-max (himalaya), so exact ties go to the **larger** alpha. A NaN score
never wins. The model is then refit on all samples with the chosen alpha(s).

Algorithm
---------
One eigendecomposition per training set, reused for every alpha and every
batch of targets: of the covariance ``X_c^T X_c`` (p x p) when ``p <= n``, else
of the Gram matrix ``X_c X_c^T`` (n x n), computed in float64 (cheap next to
the work over targets). Writing the hat matrix as ``L diag(g(alpha)) L^T``
(``L = X_c V``, ``g = 1/(lambda + alpha)`` for the covariance; ``L = U``,
``g = lambda/(lambda + alpha)`` for the Gram matrix), a batch of targets costs
one product ``Q = L^T Y`` and, per alpha, one product ``L (g * Q)`` plus an
element-wise pass; the leverages ``H_ii = sum_k L_ik^2 g_k`` come from the
decomposition alone. K-fold does the same per fold, predicting only the test
rows. Targets are processed in batches (``n_targets_batch``, or as many as
``memory_limit_gib`` allows) and each batch's results are copied to CPU, so no
``(n_alphas, n_samples, n_targets)`` array is ever built. Products over
targets run in the estimator's dtype (float32 uses float32 BLAS); scores are
accumulated in float64.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_option
from brainalign.backend import ALL_BACKENDS, get_backend
from brainalign.encoders._base import SklearnTags
from brainalign.encoders.cv import ContiguousKFold
from brainalign.encoders.ridge import DEFAULT_ALPHAS  # the one default grid (also the config's default)

__all__ = ["DEFAULT_ALPHAS", "RidgeCV"]

#: Slope added to K-fold scores before the arg-max, times log(alpha) (himalaya's tie-break).
KFOLD_TIE_SLOPE = 1e-10

#: Default batch on CPU backends: the (n_samples, n_targets_batch) work arrays stay
#: near this size, which keeps them in cache between the matrix products.
_CPU_BATCH_BYTES = 8 * 2**20
#: Default working-memory budget on a GPU when neither batch option is given.
_GPU_DEFAULT_GIB = 2.0

_EPS64 = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- #
# parameter and data validation
# --------------------------------------------------------------------------- #
def _check_alphas(alphas: Any) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    except (TypeError, ValueError):
        raise BrainalignError(
            f"'alphas' must be a number or a 1-D sequence of numbers > 0, got {alphas!r}."
        ) from None
    if arr.ndim != 1 or arr.size == 0:
        raise BrainalignError(
            f"'alphas' must be a non-empty 1-D sequence of numbers > 0, got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise BrainalignError(f"'alphas' must be finite and > 0, got {arr.tolist()!r}.")
    return arr


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise BrainalignError(f"'{name}' must be True or False, got {value!r}.")
    return bool(value)


def _check_dtype(dtype: Any) -> str | None:
    if dtype is None:
        return None
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise BrainalignError(
            f"Invalid value for the 'dtype' parameter: {dtype!r}. Allowed values are None, "
            "'float32', 'float64' (or the NumPy dtypes)."
        )
    return name


def _as_2d(a: Any, name: str, columns: str, keep_tensor: bool = False) -> tuple[Any, bool]:
    """``a`` as a 2-D numeric array (a 1-D array is one column), without copying.

    A torch tensor becomes a NumPy array (moved to CPU), unless ``keep_tensor``:
    then it stays where it is (targets already on the GPU are not copied back).
    """
    is_tensor = hasattr(a, "detach") and hasattr(a, "cpu")
    if is_tensor and keep_tensor:
        arr = a.detach()
        if arr.is_complex():
            raise BrainalignError(f"'{name}' must hold real numbers, got dtype {arr.dtype}.")
    else:
        if is_tensor:
            a = a.detach().cpu().numpy()
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiub":
            raise BrainalignError(f"'{name}' must hold real numbers, got dtype {arr.dtype}.")
    was_1d = arr.ndim == 1
    if was_1d:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BrainalignError(
            f"'{name}' must be 2-D (n_samples, n_{columns}) or 1-D (n_samples,) for a single "
            f"column, got shape {tuple(arr.shape)}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BrainalignError(f"'{name}' must not be empty, got shape {tuple(arr.shape)}.")
    return arr, was_1d


def _is_narrow_float(a: Any) -> bool:
    """float32 (or narrower) NumPy array or tensor."""
    if isinstance(a, np.ndarray):
        return a.dtype.kind == "f" and a.dtype.itemsize <= 4
    return bool(a.dtype.is_floating_point) and a.element_size() <= 4


def _raise_nonfinite(a: np.ndarray, name: str, col_offset: int = 0) -> None:
    bad = ~np.isfinite(a)
    row, col = np.argwhere(bad)[0]
    raise BrainalignError(
        f"'{name}' contains {int(bad.sum())} NaN or infinite value(s), the first at "
        f"row={int(row)}, column={int(col) + col_offset}."
    )


def _check_scale(a: np.ndarray, name: str, dtype: str) -> None:
    """Refuse values so large that the sums of their squares overflow ``dtype``.

    The covariance or Gram matrix sums ``n_samples * n_features`` products,
    and its eigenvalues' inverses must stay representable; beyond this bound
    the decomposition fails or its gains underflow to 0 (for features near
    1e200 in float64, or 1e19 in float32).
    """
    n, k = a.shape
    info = np.finfo(dtype)
    limit = math.sqrt(min(float(info.max), 1.0 / float(info.tiny)) / (n * k))
    biggest = float(np.max(np.abs(a)))
    if biggest > limit:
        raise BrainalignError(
            f"'{name}' holds values up to {biggest:.3g} in magnitude, too large for ridge in {dtype} with "
            f"shape {a.shape} (the sums of squares would overflow; at most {limit:.3g}): rescale it, e.g. "
            "standardize each column."
        )


def _batches(n_targets: int, batch: int) -> Iterator[slice]:
    for start in range(0, n_targets, batch):
        yield slice(start, min(start + batch, n_targets))


# --------------------------------------------------------------------------- #
# spectral decomposition of a (centred) training matrix
# --------------------------------------------------------------------------- #
class _Spectrum:
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
        top = float(lam_np.max()) if lam_np.size else 0.0
        keep = np.flatnonzero(lam_np > max(top, 0.0) * max(m, p) * _EPS64)
        if top <= 0.0:
            keep = keep[:0]
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


# --------------------------------------------------------------------------- #
# the estimator
# --------------------------------------------------------------------------- #
class RidgeCV(SklearnTags):
    """Ridge regression with efficient cross-validation over the penalty, for many targets.

    See the module docstring (:mod:`brainalign.encoders.ridge_cv`) for the exact
    definitions of the scores, the tie-breaking and the algorithm.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,), default=np.logspace(-2, 6, 17)
        Candidate penalties, each finite and > 0. Penalties act on the raw
        (unscaled) features: if the chosen alpha sits at an end of the grid for
        many targets, widen the grid.
    cv : "loo", int or splitter, default="loo"
        ``"loo"``: efficient leave-one-out (scikit-learn's ``RidgeCV``
        semantics). An int ``K >= 2``: ``K`` contiguous folds in sample order,
        without shuffling (as ``sklearn.model_selection.KFold(K)`` and himalaya's
        ``cv=K``); with ``groups`` passed to :meth:`fit` it becomes
        leave-one-group-out (:class:`~brainalign.encoders.cv.ContiguousKFold`).
        Any object with a scikit-learn-style ``split(X, y, groups)`` method
        (``GroupKFold`` by story or sentence, ``ContiguousKFold`` with a gap...)
        is used as is.
    alpha_per_target : bool, default=True
        One alpha per target (True), or one alpha shared by all targets,
        maximising the score averaged over targets (False; Brain-Score's choice).
    fit_intercept : bool, default=True
        Centre ``X`` and ``Y`` on the (training) means and fit an unpenalised
        intercept.
    n_targets_batch : int or None, default=None
        Number of targets processed at once. ``None`` derives it from
        ``memory_limit_gib``, or else picks a cache-friendly size on CPU and a
        2 GiB working set on a GPU.
    memory_limit_gib : float or None, default=None
        Bound, in GiB, on the working memory of the computation on the device
        (decompositions plus one batch of targets). It does not count ``X``,
        ``Y`` and the fitted attributes, which live on CPU (``coef_`` holds
        ``n_features * n_targets`` values).
    backend : {"numpy", "torch", "torch_cuda"} or None, default=None
        Array backend for the computation; ``None`` uses the current one
        (:func:`brainalign.backend.get_backend`). Fitted attributes are NumPy
        arrays whatever the backend.
    dtype : {"float32", "float64"} or None, default=None
        Precision of the products over targets and of ``coef_``. ``None`` uses
        float32 when both ``X`` and ``Y`` are float32 (or narrower floats),
        else float64. Decompositions are always computed in float64 and
        scores accumulated in float64.

    Attributes
    ----------
    alpha_ : ndarray of float64, shape (n_targets,)
        Chosen penalty of each target (all equal with ``alpha_per_target=False``).
    coef_ : ndarray of shape (n_features, n_targets)
        Weights refit on all samples with ``alpha_``, of dtype ``dtype_``.
    intercept_ : ndarray of shape (n_targets,)
        Intercepts (zeros with ``fit_intercept=False``), of dtype ``dtype_``.
    cv_scores_ : ndarray of float64, shape (n_alphas, n_targets)
        Score of every alpha (rows in the order of ``alphas``) for every
        target: minus the mean squared leave-one-out error, or the mean over
        folds of minus the test mean squared error. Higher is better.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    dtype_ : str
        ``"float32"`` or ``"float64"``.
    n_targets_batch_ : int
        Number of targets processed at once in this fit.

    Notes
    -----
    ``coef_`` is (n_features, n_targets), as in himalaya (scikit-learn stores
    the transpose). A 1-D ``Y`` is one target; :meth:`predict` then returns a
    1-D array.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 10)).astype(np.float32)
    >>> Y = X @ rng.standard_normal((10, 50)).astype(np.float32)
    >>> model = RidgeCV(alphas=np.logspace(-2, 5, 8)).fit(X, Y)
    >>> model.coef_.shape, model.alpha_.shape, model.dtype_
    ((10, 50), (50,), 'float32')
    """

    #: Allowed forms of each parameter (checked at the start of :meth:`fit`).
    _parameter_constraints: ClassVar[dict[str, str]] = {
        "alphas": "a non-empty 1-D array of finite numbers > 0",
        "cv": "'loo', an int >= 2, or an object with a split(X, y, groups) method",
        "alpha_per_target": "True or False",
        "fit_intercept": "True or False",
        "n_targets_batch": "None or an int >= 1",
        "memory_limit_gib": "None or a number > 0",
        "backend": f"None or one of {ALL_BACKENDS}",
        "dtype": "None, 'float32' or 'float64'",
    }

    def __init__(
        self,
        *,
        alphas: ArrayLike = DEFAULT_ALPHAS,
        cv: str | int | Any = "loo",
        alpha_per_target: bool = True,
        fit_intercept: bool = True,
        n_targets_batch: int | None = None,
        memory_limit_gib: float | None = None,
        backend: str | None = None,
        dtype: str | None = None,
    ):
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.n_targets_batch = n_targets_batch
        self.memory_limit_gib = memory_limit_gib
        self.backend = backend
        self.dtype = dtype

    # ------------------------------------------------------------------ sklearn plumbing
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> RidgeCV:
        """Set constructor parameters, as in scikit-learn; returns ``self``."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise BrainalignError(
                    f"Invalid parameter {key!r} for {type(self).__name__}; valid parameters are "
                    f"{', '.join(valid)}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        parts = []
        for name, value in self.get_params().items():
            default = defaults.get(name)
            if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
                if np.array_equal(np.asarray(value, dtype=object), np.asarray(default, dtype=object)):
                    continue
                parts.append(f"{name}=<{np.size(value)} values>")
            elif value is not default and value != default:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coef_")

    def _validate_params(self) -> dict[str, Any]:
        """Check every constructor parameter; return them normalised."""
        out: dict[str, Any] = {"alphas": _check_alphas(self.alphas)}
        cv = self.cv
        if isinstance(cv, str):
            check_option("cv", cv, ["loo"])
        elif (
            isinstance(cv, (bool, np.bool_))
            or (not isinstance(cv, (int, np.integer)) and not hasattr(cv, "split"))
            or (isinstance(cv, (int, np.integer)) and cv < 2)
        ):
            raise BrainalignError(
                f"Invalid value for the 'cv' parameter of {type(self).__name__}: {cv!r}. "
                f"Allowed: {self._parameter_constraints['cv']}."
            )
        out["cv"] = cv
        out["alpha_per_target"] = _check_bool("alpha_per_target", self.alpha_per_target)
        out["fit_intercept"] = _check_bool("fit_intercept", self.fit_intercept)
        batch = self.n_targets_batch
        if batch is not None and (
            isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)) or batch < 1
        ):
            raise BrainalignError(f"'n_targets_batch' must be None or an int >= 1, got {batch!r}.")
        out["n_targets_batch"] = None if batch is None else int(batch)
        limit = self.memory_limit_gib
        if limit is not None and (
            isinstance(limit, (bool, np.bool_))
            or not isinstance(limit, (int, float, np.integer, np.floating))
            or not math.isfinite(limit)
            or limit <= 0
        ):
            raise BrainalignError(f"'memory_limit_gib' must be None or a number > 0, got {limit!r}.")
        out["memory_limit_gib"] = None if limit is None else float(limit)
        if self.backend is not None:
            check_option("backend", self.backend, ALL_BACKENDS)
        out["backend"] = get_backend(self.backend)
        out["dtype"] = _check_dtype(self.dtype)
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise BrainalignError(
                f"This {type(self).__name__} instance is not fitted yet; call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _check_X(self, X: Any) -> np.ndarray:
        Xa, _ = _as_2d(X, "X", "features")
        if Xa.shape[1] != self.n_features_in_:
            raise BrainalignError(
                f"'X' has {Xa.shape[1]} features, but this {type(self).__name__} was fit with "
                f"n_features_in_={self.n_features_in_} (X.shape={Xa.shape})."
            )
        Xa = Xa.astype(self.dtype_, copy=False)
        if not np.isfinite(Xa).all():
            _raise_nonfinite(Xa, "X")
        return Xa

    # ------------------------------------------------------------------ fit
    def fit(self, X: ArrayLike, Y: ArrayLike, groups: ArrayLike | None = None) -> RidgeCV:
        """Choose the penalty of every target by cross-validation, then refit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
            Features; a 1-D array is one feature.
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Targets; a 1-D array is one target. Kept where it is (on CPU) and
            moved to the backend one batch of targets at a time.
        groups : array-like of shape (n_samples,), optional
            Group labels (story, sentence, run) passed to the splitter's
            ``split``. Not allowed with ``cv="loo"``.

        Returns
        -------
        self : RidgeCV
        """
        params = self._validate_params()
        backend = params["backend"]
        Xa, _ = _as_2d(X, "X", "features")
        Ya, y_1d = _as_2d(Y, "Y", "targets", keep_tensor=backend.name.startswith("torch"))
        if Xa.shape[0] != Ya.shape[0]:
            raise BrainalignError(
                f"'X' and 'Y' must have the same number of samples (rows), got "
                f"X.shape={Xa.shape} and Y.shape={Ya.shape}."
            )
        dtype = params["dtype"]
        if dtype is None:
            dtype = "float32" if _is_narrow_float(Xa) and _is_narrow_float(Ya) else "float64"
        Xa = Xa.astype(np.float64, copy=False)
        if not np.isfinite(Xa).all():
            _raise_nonfinite(Xa, "X")
        _check_scale(Xa, "X", dtype)
        alphas = params["alphas"]
        n_samples = Xa.shape[0]

        if isinstance(params["cv"], str):
            if groups is not None:
                raise BrainalignError(
                    "'groups' was given but cv='loo' does not use it; pass a splitter such as "
                    "sklearn.model_selection.GroupKFold as 'cv' to split by group."
                )
            if n_samples < 3:
                raise BrainalignError(
                    f"cv='loo' needs at least 3 samples, got n_samples={n_samples}."
                )
            folds = None
        else:
            folds = self._folds(params["cv"], Xa, Ya, groups)

        solver = _Solver(
            backend=backend,
            X=Xa,
            Y=Ya,
            alphas=alphas,
            folds=folds,
            per_target=params["alpha_per_target"],
            fit_intercept=params["fit_intercept"],
            dtype=dtype,
        )
        batch = solver.batch_size(params["n_targets_batch"], params["memory_limit_gib"])
        cv_scores, best, coef, intercept = solver.run(batch)

        self.alpha_ = alphas[best]
        self.coef_ = coef
        self.intercept_ = intercept
        self.cv_scores_ = cv_scores
        self.n_features_in_ = Xa.shape[1]
        self.dtype_ = dtype
        self.n_targets_batch_ = batch
        self._y_1d = y_1d
        return self

    def _folds(
        self, cv: Any, X: np.ndarray, Y: np.ndarray, groups: ArrayLike | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        n = X.shape[0]
        splitter = ContiguousKFold(n_splits=int(cv), gap=0) if not hasattr(cv, "split") else cv
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise BrainalignError(
                    f"'groups' must have shape (n_samples,) = ({n},), got {groups.shape}."
                )
        try:
            raw = list(splitter.split(X, Y, groups))
        except BrainalignError:
            raise
        except (TypeError, ValueError) as err:
            raise BrainalignError(f"'cv' ({splitter!r}) failed to split the data: {err}") from err
        folds = []
        for k, (train, test) in enumerate(raw):
            train = np.asarray(train)
            test = np.asarray(test)
            if train.dtype == bool:
                train = np.flatnonzero(train)
            if test.dtype == bool:
                test = np.flatnonzero(test)
            train = train.astype(np.intp, copy=False).ravel()
            test = test.astype(np.intp, copy=False).ravel()
            if train.size == 0 or test.size == 0:
                raise BrainalignError(
                    f"'cv' produced fold {k} with {train.size} training and {test.size} test "
                    "sample(s); every fold needs at least one of each."
                )
            for name, idx in (("training", train), ("test", test)):
                if idx.min() < 0 or idx.max() >= n:
                    raise BrainalignError(
                        f"'cv' produced fold {k} with {name} indices outside [0, {n - 1}] "
                        f"(min {idx.min()}, max {idx.max()})."
                    )
            folds.append((train, test))
        if not folds:
            raise BrainalignError(f"'cv' ({splitter!r}) produced no folds.")
        return folds

    # ------------------------------------------------------------------ predict / score
    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict the targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_targets), dtype ``dtype_``
            ``X @ coef_ + intercept_``; (n_samples,) if fit on a 1-D ``Y``.
        """
        self._check_fitted()
        Xa = self._check_X(X)
        pred = Xa @ self.coef_
        pred += self.intercept_
        return pred[:, 0] if self._y_1d else pred

    def score(self, X: ArrayLike, Y: ArrayLike) -> float:
        """Coefficient of determination R², averaged over targets (as scikit-learn).

        Per target, ``R² = 1 - sum (y - yhat)^2 / sum (y - mean(y))^2``
        accumulated in float64; a constant target scores 1.0 if predicted
        exactly, else 0.0 (scikit-learn's ``force_finite``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples,)
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        float
        """
        pred = self.predict(X)
        pred2 = pred[:, None] if pred.ndim == 1 else pred
        Ya, _ = _as_2d(Y, "Y", "targets")
        if Ya.shape != pred2.shape:
            raise BrainalignError(
                f"'Y' must have shape {pred2.shape} to match the predictions, got {Ya.shape}."
            )
        Ya = Ya.astype(np.float64, copy=False)
        if not np.isfinite(Ya).all():
            _raise_nonfinite(Ya, "Y")
        r2 = np.empty(Ya.shape[1])
        for sl in _batches(Ya.shape[1], 4096):
            y = Ya[:, sl]
            ss_res = np.sum((y - pred2[:, sl].astype(np.float64)) ** 2, axis=0)
            ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2_b = 1.0 - ss_res / ss_tot
            const = ss_tot == 0
            r2_b[const] = np.where(ss_res[const] == 0, 1.0, 0.0)
            r2[sl] = r2_b
        return float(np.mean(r2))


# --------------------------------------------------------------------------- #
# the computation
# --------------------------------------------------------------------------- #
def _argmax_first(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """Arg-max along ``axis``, first index on ties, NaN never chosen (unless all NaN)."""
    return np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=axis)


class _Solver:
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
        full = _Spectrum(B, Xc, "float64" if loo else dtype, cov=cov_all)
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
        spec = _Spectrum(B, Xtr, self.dtype, cov=cov)
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
                _raise_nonfinite(Y64, "Y", sl.start)
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
        return _argmax_first(scores, axis=0)

    def run(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        B = self.B
        v = self.Y.shape[1]
        na = len(self.alphas)
        cv_scores = np.empty((na, v))
        best = np.empty(v, dtype=np.intp)
        coef = np.empty((self.p, v), dtype=self.dtype)
        intercept = np.empty(v, dtype=self.dtype)
        for sl in _batches(v, batch):
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
            for sl in _batches(v, batch):
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
