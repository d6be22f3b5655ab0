"""The scikit-learn parameter protocol shared by the torch estimators (no scikit-learn import)."""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .._validation import BrainalignError, check_is_fitted, check_params

__all__ = ["EstimatorMixin", "SklearnTags"]


class SklearnTags:
    """scikit-learn's estimator tags, built only when scikit-learn asks (importing it costs about a second).

    ``estimator_type`` is ``"regressor"`` (multi-output targets) or
    ``"classifier"``. ``is_regressor``, ``Pipeline``, ``GridSearchCV``,
    ``cross_val_score`` and ``clone`` read these with scikit-learn >= 1.6
    (``__sklearn_tags__``) and before (``_estimator_type``).
    """

    _estimator_type = "regressor"
    #: X is (n_trials, n_channels, n_times), not a 2-D table: scikit-learn's
    #: ``check_estimator`` then runs none of its 2-D checks (its own rule).
    _three_d_input = False
    #: A 1-D target is refused (e.g. embeddings, always (n_samples, d)).
    _single_output = True
    #: Trained by stochastic gradient descent: a few epochs need not fit the training set well.
    _poor_score = False

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        classifier = self._estimator_type == "classifier"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True, multi_output=not classifier, single_output=self._single_output),
            classifier_tags=ClassifierTags(poor_score=self._poor_score) if classifier else None,
            regressor_tags=None if classifier else RegressorTags(poor_score=self._poor_score),
            input_tags=InputTags(two_d_array=not self._three_d_input, three_d_array=self._three_d_input),
        )


class EstimatorMixin(SklearnTags):
    """``get_params``/``set_params``/``repr`` read from ``__init__``'s keyword arguments, as scikit-learn does.

    Subclasses store every constructor argument unchanged under its own name and
    set ``_fitted_attribute`` to an attribute that only ``fit`` creates.
    """

    _fitted_attribute = "module_"
    _sample_noun = "sample"  # what one row of X is called in error messages

    @classmethod
    def _param_names(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Set constructor parameters, as in scikit-learn."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise BrainalignError(f"Invalid parameter {key!r} for {type(self).__name__}; valid parameters "
                                      f"are {', '.join(sorted(valid))}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def _from_checkpoint(cls, path: Any, fmt: str, version: int,
                         device: str | None = None) -> tuple[Any, dict[str, Any], dict[str, Any], Any, Any]:
        """An unfitted estimator with the parameters saved in a checkpoint, and the checkpoint.

        ``device`` (if given) overrides the saved one. Returns ``(estimator, state,
        meta, sidecar, weights)`` (see :func:`brainalign.checkpoints.read_checkpoint`).
        """
        from ..checkpoints import checkpoint_paths, read_checkpoint

        state, meta, sidecar = read_checkpoint(path, fmt, version, cls.__name__)
        params = dict(meta["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        est._validate_params()
        return est, state, meta, sidecar, checkpoint_paths(path)[0]

    #: Parameter name -> allowed kinds (:func:`brainalign._validation.check_params`).
    _parameter_constraints: dict[str, list] = {}

    def _validate_params(self) -> None:
        """Check every constructor parameter against ``_parameter_constraints``."""
        check_params(type(self).__name__, self.get_params(), self._parameter_constraints)

    def _check_fitted(self) -> None:
        check_is_fitted(self, self._fitted_attribute)

    def _subject_index(self, labels: Sequence[Hashable]) -> np.ndarray:
        """Indices into ``subjects_`` of per-row subject labels (all None: the only subject)."""
        lookup = {lab: i for i, lab in enumerate(self.subjects_)}
        if labels and all(lab is None for lab in labels) and None not in lookup:
            if len(self.subjects_) == 1:
                return np.zeros(len(labels), dtype=np.int64)
            raise BrainalignError(
                f"'subjects' is required: this {type(self).__name__} was fit on "
                f"{len(self.subjects_)} subjects ({self.subjects_!r})."
            )
        idx = np.empty(len(labels), dtype=np.int64)
        for i, lab in enumerate(labels):
            if lab not in lookup:
                raise BrainalignError(
                    f"'subjects' holds {lab!r} ({self._sample_noun} {i}), a subject not seen in fit; known "
                    f"subjects are {self.subjects_!r}."
                )
            idx[i] = lookup[lab]
        return idx
