"""Saving and loading a fitted :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

The weights, the temperature and the voxel and target statistics go to
safetensors and everything else (parameters, subjects, voxel counts, target
shape, history) to a JSON sidecar, through :mod:`brainalign.checkpoints`;
nothing is pickled. A mixin of the estimator.
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
    history_from_json,
    history_to_json,
    write_checkpoint,
)

if TYPE_CHECKING:  # the estimator that mixes this in (importing it at run time would loop)
    from brainalign.encoders.mindeye.estimator import BrainToEmbedding

_FORMAT = "brainalign.BrainToEmbedding"
_FORMAT_VERSION = 1


class _BrainToEmbeddingCheckpointMixin:
    """``save`` and ``load`` of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`."""

    @staticmethod
    def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
        return checkpoint_paths(path)

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write the weights and statistics (safetensors) and a JSON sidecar; never pickles.

        Parameters
        ----------
        path : str or path-like
            ``<base>``, ``<base>.safetensors`` or ``<base>.json``; writes
            ``<base>.safetensors`` (network, temperature, voxel and target
            statistics, float64 for the statistics) and ``<base>.json``
            (parameters, subjects, voxel counts, target shape, history).

        Returns
        -------
        (weights_path, sidecar_path) : tuple of Path
        """
        self._check_fitted()
        state = {
            f"{prefix}.{k}": v.detach().cpu().contiguous()
            for prefix, mod in (("model", self.model_), ("scale", self.logit_scale_))
            for k, v in mod.state_dict().items()
        }
        for i, s in enumerate(self.subjects_):
            state[f"voxel_mean.{i}"] = torch.from_numpy(np.ascontiguousarray(self.voxel_mean_[s]))
            state[f"voxel_scale.{i}"] = torch.from_numpy(np.ascontiguousarray(self.voxel_scale_[s]))
        state["target_mean"] = torch.from_numpy(np.ascontiguousarray(self.target_mean_))
        state["target_scale"] = torch.from_numpy(np.ascontiguousarray(self.target_scale_))
        params = self.get_params()
        rs = params["random_state"]
        params["random_state"] = int(rs) if is_int(rs) else None  # a Generator is not serialisable
        params["device"] = str(params["device"])
        meta = {
            "params": params,
            "subjects": list(self.subjects_),
            "n_voxels": [self.n_voxels_[s] for s in self.subjects_],
            "target_shape": list(self.target_shape_),
            "n_mixco_epochs": self.n_mixco_epochs_,
            "history": history_to_json(self.history_, labels=("epoch", "phase")),
            "best_epoch": self.best_epoch_,
            "torch_version": torch.__version__,
        }
        return write_checkpoint(path, state, meta, _FORMAT, _FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> BrainToEmbedding:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            As given to :meth:`save`.
        device : str, optional
            Overrides the saved ``device`` parameter.

        Returns
        -------
        BrainToEmbedding
            Fitted, in eval mode; ``train_index_``/``val_index_`` are not saved.
        """
        est, state, meta, sidecar, weights = cls._from_checkpoint(path, _FORMAT, _FORMAT_VERSION, device)
        subjects = list(meta["subjects"])
        est.subjects_ = subjects
        est.n_voxels_ = {s: int(v) for s, v in zip(subjects, meta["n_voxels"])}
        try:
            est.voxel_mean_ = {s: state[f"voxel_mean.{i}"].numpy() for i, s in enumerate(subjects)}
            est.voxel_scale_ = {
                s: state[f"voxel_scale.{i}"].numpy() for i, s in enumerate(subjects)
            }
            est.target_mean_ = state["target_mean"].numpy()
            est.target_scale_ = state["target_scale"].numpy()
        except KeyError as err:
            raise BrainalignError(f"{weights}: tensor {err} is missing.") from err
        est.target_shape_ = tuple(int(v) for v in meta["target_shape"])
        est.n_targets_ = int(np.prod(est.target_shape_))
        est.n_mixco_epochs_ = int(meta["n_mixco_epochs"])
        est.history_ = history_from_json(meta["history"], labels=("epoch", "phase"))
        est.best_epoch_ = int(meta["best_epoch"])
        model, scale_mod = est._build_model()
        try:
            for prefix, mod in (("model.", model), ("scale.", scale_mod)):
                mod.load_state_dict(
                    {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                )
        except RuntimeError as err:
            raise BrainalignError(
                f"{weights}: the weights do not match the architecture in {sidecar.name} ({err})."
            ) from err
        dev = torch.device(est.device)
        est.model_ = model.to(dev).eval()
        est.logit_scale_ = scale_mod.to(dev).eval()
        est.temperature_ = scale_mod.temperature
        return est
