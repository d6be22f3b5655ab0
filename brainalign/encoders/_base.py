"""The scikit-learn parameter protocol shared by the torch estimators (no scikit-learn import)."""

from __future__ import annotations

import inspect
from typing import Any

from .._validation import BrainalignError

__all__ = ["EstimatorMixin"]


class EstimatorMixin:
    """``get_params``/``set_params``/``repr`` read from ``__init__``'s keyword arguments, as scikit-learn does.

    Subclasses store every constructor argument unchanged under its own name and
    set ``_fitted_attribute`` to an attribute that only ``fit`` creates.
    """

    _fitted_attribute = "module_"

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

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise BrainalignError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first.")
