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
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from brainalign._validation import (
    Boolean,
    BrainalignError,
    Constraint,
    HasMethods,
    Interval,
    NoneValue,
    Options,
    check_params,
    as_float64,
    check_array_input,
    check_is_fitted,
    check_n_features,
    check_not_empty,
)
from brainalign.backend import ALL_BACKENDS, get_backend
from brainalign.encoders._base import SklearnTags
from brainalign.encoders.cv import ContiguousKFold
from brainalign.encoders.ridge_core import (  # the one place that solves, and the one default grid
    DEFAULT_ALPHAS,
    BatchedSolver,
    raise_nonfinite,
    target_batches,
)
from brainalign.metrics.correlation import pearsonr_columns

__all__ = ["DEFAULT_ALPHAS", "RidgeCV", "nested_cv_pearson"]

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
        check_array_input(a, name)
        arr = np.asarray(a)
        if arr.dtype.kind == "O":  # e.g. a list of mixed ints and floats, or pandas' object columns
            arr = as_float64(arr, name)
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
    check_not_empty(arr, name, columns)
    return arr, was_1d


def _is_narrow_float(a: Any) -> bool:
    """float32 (or narrower) NumPy array or tensor."""
    if isinstance(a, np.ndarray):
        return a.dtype.kind == "f" and a.dtype.itemsize <= 4
    return bool(a.dtype.is_floating_point) and a.element_size() <= 4


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
    alpha_criterion_ : str
        ``"loo_neg_mse"`` or ``"kfold_neg_mse"``: the name of the criterion
        (:data:`brainalign.encoders.ridge_core.ALPHA_CRITERIA`).
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
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "cv": [Options("loo"), Interval("int", 2, None), HasMethods("split")],
        "alpha_per_target": [Boolean()],
        "fit_intercept": [Boolean()],
        "n_targets_batch": [Interval("int", 1, None), NoneValue()],
        "memory_limit_gib": [Interval("real", 0, None, "neither"), NoneValue()],
        "backend": [Options(*ALL_BACKENDS), NoneValue()],
    }  # alphas and dtype have their own checks (_check_alphas, _check_dtype)

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
        check_params(type(self).__name__, self.get_params(), self._parameter_constraints)
        out: dict[str, Any] = {"alphas": _check_alphas(self.alphas), "cv": self.cv}
        out["alpha_per_target"] = bool(self.alpha_per_target)
        out["fit_intercept"] = bool(self.fit_intercept)
        out["n_targets_batch"] = None if self.n_targets_batch is None else int(self.n_targets_batch)
        out["memory_limit_gib"] = None if self.memory_limit_gib is None else float(self.memory_limit_gib)
        out["backend"] = get_backend(self.backend)
        out["dtype"] = _check_dtype(self.dtype)
        return out

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_")

    def _check_X(self, X: Any) -> np.ndarray:
        Xa, was_1d = _as_2d(X, "X", "features")
        check_n_features(self, Xa, Xa.shape[1], was_1d=was_1d)
        Xa = Xa.astype(self.dtype_, copy=False)
        if not np.isfinite(Xa).all():
            raise_nonfinite(Xa, "X")
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
            raise_nonfinite(Xa, "X")
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

        solver = BatchedSolver(
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
        self.alpha_criterion_ = "loo_neg_mse" if folds is None else "kfold_neg_mse"
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
            raise_nonfinite(Ya, "Y")
        r2 = np.empty(Ya.shape[1])
        for sl in target_batches(Ya.shape[1], 4096):
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
# nested cross-validation
# --------------------------------------------------------------------------- #
def nested_cv_pearson(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    outer_cv: int = 5,
    gap: int = 5,
    inner_cv: int = 5,
    alphas: ArrayLike = DEFAULT_ALPHAS,
    alpha_per_target: bool = True,
    pooled: bool = False,
    groups: ArrayLike | None = None,
    backend: str = "numpy",
) -> dict[str, Any]:
    """Nested cross-validated Pearson r of many targets with :class:`RidgeCV` as the inner loop.

    The folds are those of :func:`brainalign.encoders.ridge.cross_validated_pearson`
    (leave-one-run-out with ``groups``, else contiguous K-fold with a gap,
    outer and inner alike), but the inner loop is the batched :class:`RidgeCV`:
    alphas chosen by held-out squared error (``"kfold_neg_mse"``, as
    scikit-learn and himalaya choose them), products in the responses' dtype
    (float32 responses use float32 BLAS), decompositions in float64. At
    whole-brain scale this is several times faster than the ROI path's
    float64 Pearson-criterion encoder; the two criteria can pick different
    alphas for the same target.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Stimulus features, in time order; cast to the dtype of ``Y``.
    Y : array-like of shape (n_samples, n_targets)
        Responses, in time order (float32 in the workflow).
    outer_cv, inner_cv : int, default=5
        Number of contiguous outer and inner folds (ignored for the outer loop
        with ``groups``; the inner loop is leave-one-run-out when at least two
        training runs remain).
    gap : int, default=5
        Samples dropped on each side of every test block.
    alphas : array-like of shape (n_alphas,), default=DEFAULT_ALPHAS
    alpha_per_target : bool, default=True
    pooled : bool, default=False
        ``score`` is the mean over outer folds of the within-fold r, or (True)
        the r of all held-out predictions concatenated.
    groups : array-like of shape (n_samples,), optional
        Run labels for leave-one-run-out.
    backend : {"numpy", "torch", "torch_cuda"}, default="numpy"
        Array backend of the inner :class:`RidgeCV` (``torch_cuda``: the
        workflow's ``device: cuda``).

    Returns
    -------
    result : dict
        ``fold_scores`` (n_folds, n_targets), ``score`` (n_targets,),
        ``alphas`` (n_folds, n_targets), ``predictions`` (n_samples,
        n_targets; NaN outside every test fold), the outer ``folds`` and
        ``alpha_criterion``, as :func:`~brainalign.encoders.ridge.cross_validated_pearson`.
    """
    y = np.asarray(Y)
    x = np.asarray(X)
    groups = None if groups is None else np.asarray(groups)
    outer = list(ContiguousKFold(outer_cv, gap).split(x, groups=groups))
    n, n_targets = y.shape
    predictions = np.full((n, n_targets), np.nan, dtype=np.float32)
    fold_scores = np.empty((len(outer), n_targets))
    fold_alphas = np.empty((len(outer), n_targets))
    model = None
    for k, (train, test) in enumerate(outer):
        inner_groups = groups[train] if groups is not None and np.unique(groups[train]).size >= 2 else None
        model = RidgeCV(alphas=np.asarray(alphas), cv=ContiguousKFold(inner_cv, gap),
                        alpha_per_target=alpha_per_target, backend=backend)
        model.fit(x[train].astype(y.dtype), y[train], groups=inner_groups)
        pred = model.predict(x[test].astype(y.dtype))
        predictions[test] = pred
        fold_scores[k] = pearsonr_columns(y[test], pred)
        fold_alphas[k] = model.alpha_
    tested = ~np.isnan(predictions[:, 0])
    score = pearsonr_columns(y[tested], predictions[tested]) if pooled else fold_scores.mean(axis=0)
    return {"fold_scores": fold_scores, "score": score, "alphas": fold_alphas, "predictions": predictions,
            "folds": outer, "alpha_criterion": model.alpha_criterion_ if model is not None else "kfold_neg_mse"}
