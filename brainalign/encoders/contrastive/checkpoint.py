"""Saving and loading a fitted :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

The weights (brain module and temperature) go to safetensors and everything
else (parameters, subjects, positions, target statistics, history) to a JSON
sidecar, through :mod:`brainalign.checkpoints`; nothing is pickled. A mixin of
the estimator.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
import torch

from brainalign._validation import BrainalignError, is_int
from brainalign.checkpoints import (
    checkpoint_paths,
    finite_or_none,
    history_from_json,
    history_to_json,
    write_checkpoint,
)

if TYPE_CHECKING:  # the estimator that mixes this in (importing it at run time would loop)
    from brainalign.encoders.contrastive.estimator import ContrastiveEncoder

_FORMAT = "brainalign.ContrastiveEncoder"
_FORMAT_VERSION = 1


class _ContrastiveCheckpointMixin:
    """``save`` and ``load`` of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`."""

    @staticmethod
    def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
        return checkpoint_paths(path)

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write the weights (safetensors) and a JSON sidecar; never pickles.

        Parameters
        ----------
        path : str or path-like
            ``<base>``, ``<base>.safetensors`` or ``<base>.json``; writes
            ``<base>.safetensors`` (model and temperature) and ``<base>.json``
            (parameters, subjects, positions, channel counts, target
            statistics, history).

        Returns
        -------
        (weights_path, sidecar_path) : tuple of Path
        """
        self._check_fitted()
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in self.model_.state_dict().items()
        }
        state.update(
            {
                "loss." + k: v.detach().cpu().contiguous()
                for k, v in self.loss_.state_dict().items()
            }
        )
        params = self.get_params()
        if not (params["random_state"] is None or is_int(params["random_state"])):
            params["random_state"] = None  # a Generator is not serialisable
        elif params["random_state"] is not None:
            params["random_state"] = int(params["random_state"])
        params["device"] = str(params["device"])
        meta = {
            "params": params,
            "subjects": list(self.subjects_),
            "n_channels": [self.n_channels_[s] for s in self.subjects_],
            "positions": None
            if self.positions_ is None
            else [
                [[finite_or_none(v) for v in row] for row in self.positions_[s]]
                for s in self.subjects_
            ],
            "n_times": self.n_times_,
            "n_targets": self.n_targets_,
            "target_mean": [float(v) for v in self.target_mean_],
            "target_scale": [float(v) for v in self.target_scale_],
            "history": history_to_json(self.history_, labels=("epoch",)),
            "best_epoch": self.best_epoch_,
            "torch_version": torch.__version__,
        }
        return write_checkpoint(path, state, meta, _FORMAT, _FORMAT_VERSION)

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | None = None
    ) -> ContrastiveEncoder:
        """Load an encoder written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            As given to :meth:`save`.
        device : str, optional
            Overrides the saved ``device`` parameter.

        Returns
        -------
        ContrastiveEncoder
            Fitted, in eval mode; ``train_index_``/``val_index_`` are not saved.
        """
        est, state, meta, sidecar, weights = cls._from_checkpoint(path, _FORMAT, _FORMAT_VERSION, device)
        subjects = [s for s in meta["subjects"]]
        est.subjects_ = subjects
        est.n_channels_ = {s: int(c) for s, c in zip(subjects, meta["n_channels"])}
        if meta["positions"] is None:
            est.positions_ = None
        else:
            est.positions_ = {}
            for s, rows in zip(subjects, meta["positions"]):
                arr = np.array(
                    [[np.nan if v is None else v for v in row] for row in rows],
                    dtype=np.float64,
                ).reshape(-1, 2)
                arr.flags.writeable = False
                est.positions_[s] = arr
        est.n_times_ = int(meta["n_times"])
        est.n_targets_ = int(meta["n_targets"])
        est.target_mean_ = np.asarray(meta["target_mean"], dtype=np.float64)
        est.target_scale_ = np.asarray(meta["target_scale"], dtype=np.float64)
        est.history_ = history_from_json(meta["history"], labels=("epoch",))
        est.best_epoch_ = int(meta["best_epoch"])
        model, loss_fn = est._build_model()
        try:
            model.load_state_dict(
                {k: v for k, v in state.items() if not k.startswith("loss.")}
            )
            loss_fn.load_state_dict(
                {k[5:]: v for k, v in state.items() if k.startswith("loss.")}
            )
        except RuntimeError as err:
            raise BrainalignError(
                f"{weights}: the weights do not match the architecture in {sidecar.name} ({err})."
            ) from err
        dev = torch.device(est.device)
        est.model_ = model.to(dev).eval()
        est.loss_ = loss_fn.to(dev).eval()
        return est
