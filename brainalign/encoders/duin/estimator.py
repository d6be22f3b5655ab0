"""Du-IN's estimator: :class:`DuINWordDecoder`, its fit, prediction and persistence.

The scikit-learn-style word decoder: constructor parameters, ``fit`` (input
checks, the network, then the training stages of the ``_DuINTraining``
mixin), ``predict_proba``, ``predict``, ``score``, ``confusion_matrix``,
``encode_codes``, and ``save``/``load`` (safetensors weights and a JSON
sidecar).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError
from brainalign.encoders._base import EstimatorMixin
from brainalign.io import atomic_path

from .data import _as_labels, _as_trials, _json_labels, _Packed, _py, _unique
from .network import _DuINNet
from .params import PARAMETER_CONSTRAINTS, _check_params, _patch_len
from .training import _HISTORY_KEYS, _DuINTraining

__all__ = ["DuINWordDecoder"]

#: Version of the ``save`` format (JSON sidecar + safetensors weights).
_FORMAT_VERSION = 1


class DuINWordDecoder(_DuINTraining, EstimatorMixin):
    """Du-IN-style word classifier for sEEG epochs (per-subject fusion + transformer).

    Parameters
    ----------
    sfreq : float, default=200.0
        Sampling rate of the input, in Hz.
    patch_ms : float, default=100.0
        Patch (token) length in ms; ``round(sfreq * patch_ms / 1000)`` samples.
        Trials are cropped at the end to a whole number of patches (the
        remainder, less than one patch, is discarded); a trial shorter than one
        patch is an error.
    d_model : int, default=64
        Width of the virtual channels (channel fusion output), tokens and
        transformer.
    n_layers : int, default=2
        Transformer encoder layers (0: tokens go straight to pooling).
    n_heads : int, default=4
        Attention heads; must divide ``d_model``.
    dropout : float, default=0.1
        Dropout in the transformer, on the tokens and before the classifier.
    codebook_size : int, default=0
        Number of VQ codes; 0 disables the VQ stages.
    codebook_dim : int, default=32
        Dimension of a code vector.
    pretrain_epochs : int, default=0
        Epochs of *each* pre-training stage (VQ-VAE, then masked code
        prediction); they run only when ``codebook_size > 0`` and this is > 0.
    mask_ratio : float, default=0.5
        Fraction of each trial's tokens masked in stage 2, in (0, 1).
    epochs : int, default=60
        Maximum epochs of supervised training (stage 3).
    batch_size : int, default=64
        Trials per mini-batch (all stages).
    lr : float, default=1e-3
        AdamW learning rate (all stages).
    weight_decay : float, default=1e-2
        AdamW weight decay.
    val_fraction : float, default=0.15
        Fraction of each class held out (stratified) for early stopping, in
        [0, 1); 0 trains for ``epochs`` epochs and keeps the last weights.
    patience : int, default=10
        Stop after this many epochs without a better validation accuracy
        (equal accuracy with lower validation loss counts as better); the best
        weights are restored.
    random_state : int or None, default=0
        Seed of the split, the initialisation, the batches, the masks and
        dropout. The same seed and inputs give bit-identical predictions on the
        same machine and thread count. ``None`` draws a fresh seed.
    verbose : bool, default=False
        Show tqdm progress bars.
    device : str, default="cpu"
        Torch device for training and inference.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted unique labels.
    subjects_ : ndarray of shape (n_subjects,)
        Sorted unique subject labels (``[0]`` when ``subjects=None`` in ``fit``).
    n_channels_ : dict
        Subject label -> number of channels.
    module_ : torch.nn.Module
        The network (in eval mode after ``fit``).
    history_ : dict of str -> list of float
        Per-epoch curves: ``vq_recon_loss``, ``vq_codebook_loss``,
        ``vq_commit_loss``, ``vq_perplexity`` (stage 1), ``mask_loss``,
        ``mask_acc`` (stage 2; on masked tokens), ``train_loss``, ``train_acc``,
        ``val_loss``, ``val_acc`` (stage 3). Lists of stages that did not run
        are empty.
    best_epoch_ : int
        0-based stage-3 epoch whose weights were kept.
    patch_len_ : int
        Patch length in samples.
    n_patches_ : int
        Tokens per trial.

    Notes
    -----
    Inputs should be in consistent units per channel; each subject's channels
    are standardised with the mean and standard deviation (over trials and
    time) of the trials given to ``fit`` (labels are not used), and these
    statistics are part of the saved model. All trials must have the same
    number of whole patches.
    """

    _estimator_type = "classifier"
    _parameter_constraints = PARAMETER_CONSTRAINTS
    _three_d_input = True
    _poor_score = True

    def __init__(
        self,
        *,
        sfreq: float = 200.0,
        patch_ms: float = 100.0,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.1,
        codebook_size: int = 0,
        codebook_dim: int = 32,
        pretrain_epochs: int = 0,
        mask_ratio: float = 0.5,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        val_fraction: float = 0.15,
        patience: int = 10,
        random_state: int | None = 0,
        verbose: bool = False,
        device: str = "cpu",
    ):
        self.sfreq = sfreq
        self.patch_ms = patch_ms
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.pretrain_epochs = pretrain_epochs
        self.mask_ratio = mask_ratio
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ #
    # scikit-learn protocol
    # ------------------------------------------------------------------ #
    def _subject_index(self, subjects: Any, n: int) -> np.ndarray:
        """Map subject labels of ``n`` trials to indices into ``subjects_``."""
        if subjects is None:
            if len(self.subjects_) != 1:
                raise BrainalignError(
                    f"'subjects' is required: this {type(self).__name__} was fit on "
                    f"{len(self.subjects_)} subjects ({list(map(_py, self.subjects_))})."
                )
            return np.zeros(n, dtype=np.int64)
        arr = _as_labels(subjects, "subjects", n)
        lookup = {_py(s): i for i, s in enumerate(self.subjects_)}
        out = np.empty(n, dtype=np.int64)
        for i, s in enumerate(arr):
            key = _py(s)
            if key not in lookup:
                raise BrainalignError(
                    f"'subjects' entry {i} is subject {key!r}, which was not seen in 'fit' "
                    f"(known subjects: {list(lookup)})."
                )
            out[i] = lookup[key]
        return out

    def _prepare(self, X: Any, subjects: Any) -> _Packed:
        """Validate prediction inputs against the fitted shapes and pack them."""
        trials = _as_trials(X)
        sidx = self._subject_index(subjects, len(trials))
        for i, (t, s) in enumerate(zip(trials, sidx)):
            label = _py(self.subjects_[s])
            expected = self.n_channels_[label]
            if t.shape[0] != expected:
                raise BrainalignError(
                    f"'X' trial {i} of subject {label!r} has {t.shape[0]} channels, but that "
                    f"subject was fit with {expected} (n_channels_)."
                )
            n_p = t.shape[1] // self.patch_len_
            if n_p != self.n_patches_:
                raise BrainalignError(
                    f"'X' trial {i} has {t.shape[1]} samples = {n_p} whole patches of "
                    f"{self.patch_len_} samples, but the model was fit on "
                    f"{self.n_patches_} patches ({self.n_patches_ * self.patch_len_} samples)."
                )
        return _Packed(
            trials, sidx, len(self.subjects_), self.n_patches_ * self.patch_len_
        )

    # ------------------------------------------------------------------ #
    # fit
    # ------------------------------------------------------------------ #
    def fit(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> DuINWordDecoder:
        """Train the decoder (optionally with VQ-VAE and masked-code pre-training).

        Parameters
        ----------
        X : array-like of shape (n_trials, n_channels, n_times) or list of arrays
            sEEG epochs sampled at ``sfreq`` Hz. With subjects of different
            channel counts, a list of per-trial (n_channels_i, n_times) arrays;
            channel counts must agree within a subject.
        y : array-like of shape (n_trials,)
            Word labels (any sortable hashable type).
        subjects : array-like of shape (n_trials,), optional
            Subject label of each trial; ``None`` means one subject (label 0).

        Returns
        -------
        self : DuINWordDecoder
        """
        p = _check_params(self.get_params())
        trials = _as_trials(X)
        n = len(trials)
        y_arr = _as_labels(y, "y", n)
        classes = _unique(y_arr, "y")
        if classes.size < 2:
            raise BrainalignError(
                f"'y' must contain at least 2 classes, got {classes.tolist()!r}."
            )
        y_idx = np.searchsorted(classes, y_arr).astype(np.int64)

        if subjects is None:
            subj_arr = np.zeros(n, dtype=np.int64)
        else:
            subj_arr = _as_labels(subjects, "subjects", n)
        subjects_ = _unique(subj_arr, "subjects")
        s_idx = np.searchsorted(subjects_, subj_arr).astype(np.int64)
        n_channels: dict[Any, int] = {}
        for i, (t, s) in enumerate(zip(trials, s_idx)):
            label = _py(subjects_[s])
            if label not in n_channels:
                n_channels[label] = t.shape[0]
            elif t.shape[0] != n_channels[label]:
                raise BrainalignError(
                    f"'X' trial {i} of subject {label!r} has {t.shape[0]} channels, but earlier "
                    f"trials of subject {label!r} have {n_channels[label]}; channels must match "
                    "within a subject."
                )

        patch_len = _patch_len(p["sfreq"], p["patch_ms"])
        n_times = np.array([t.shape[1] for t in trials])
        short = np.flatnonzero(n_times < patch_len)
        if short.size:
            i = int(short[0])
            raise BrainalignError(
                f"'X' trial {i} has {n_times[i]} samples, fewer than one patch "
                f"({patch_len} samples = {p['patch_ms']} ms at {p['sfreq']} Hz)."
            )
        n_patches_all = n_times // patch_len
        if np.any(n_patches_all != n_patches_all[0]):
            i = int(np.flatnonzero(n_patches_all != n_patches_all[0])[0])
            raise BrainalignError(
                f"'X' trial {i} has {n_patches_all[i]} whole patches but trial 0 has "
                f"{n_patches_all[0]}; all trials must have the same number of "
                f"{patch_len}-sample patches."
            )
        n_patches = int(n_patches_all[0])
        packed = _Packed(trials, s_idx, len(subjects_), n_patches * patch_len)

        train_idx, val_idx = self._split(y_idx, p["val_fraction"], p["random_state"])
        vq = p["codebook_size"] > 0 and p["pretrain_epochs"] > 0
        device = p["device"]
        fork_devices = [] if device.type != "cuda" else [device.index or 0]
        history: dict[str, list[float]] = {k: [] for k in _HISTORY_KEYS}
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(p["random_state"])
            gen = torch.Generator().manual_seed(p["random_state"])
            net = _DuINNet(
                [n_channels[_py(s)] for s in subjects_],
                classes.size,
                patch_len,
                n_patches,
                p["d_model"],
                p["n_layers"],
                p["n_heads"],
                p["dropout"],
                p["codebook_size"],
                p["codebook_dim"],
                vq,
            )
            self._set_standardization(net, packed)
            net.to(device)
            if vq:
                self._stage_vqvae(net, packed, train_idx, p, gen, history, device)
                codes = self._codes(net, packed, np.arange(n), p["batch_size"], device)
                self._stage_masked(
                    net, packed, train_idx, codes, p, gen, history, device
                )
            best_epoch = self._stage_classify(
                net, packed, y_idx, train_idx, val_idx, p, gen, history, device
            )
        net.eval()
        self.classes_ = classes
        self.subjects_ = subjects_
        self.n_channels_ = n_channels
        self.patch_len_ = patch_len
        self.n_patches_ = n_patches
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.module_ = net
        return self

    # ------------------------------------------------------------------ #
    # prediction
    # ------------------------------------------------------------------ #
    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    def predict_proba(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_trials, n_channels, n_times) or list of arrays
            As in :meth:`fit`; channel counts must match each subject's
            ``n_channels_`` and trials must have ``n_patches_`` whole patches.
        subjects : array-like of shape (n_trials,), optional
            Subject of each trial (required if fit on several subjects).

        Returns
        -------
        proba : ndarray of shape (n_trials, n_classes)
            Softmax probabilities (float64) in ``classes_`` order.
        """
        self._check_fitted()
        packed = self._prepare(X, subjects)
        idx = np.arange(len(packed))
        bs = (
            int(self.batch_size)
            if isinstance(self.batch_size, (int, np.integer)) and self.batch_size > 0
            else 64
        )
        logits = self._logits(self.module_, packed, idx, bs, self._device())
        return torch.softmax(logits.double(), dim=-1).numpy()

    def predict(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Most probable label of each trial.

        Returns
        -------
        labels : ndarray of shape (n_trials,)
            Entries of ``classes_``.
        """
        self._check_fitted()
        return self.classes_[np.argmax(self.predict_proba(X, subjects), axis=1)]

    def _true_labels(self, y: ArrayLike, n: int) -> np.ndarray:
        y_arr = _as_labels(y, "y", n)
        lookup = {_py(c): i for i, c in enumerate(self.classes_)}
        out = np.empty(n, dtype=np.int64)
        for i, v in enumerate(y_arr):
            key = _py(v)
            if key not in lookup:
                raise BrainalignError(
                    f"'y' entry {i} is {key!r}, which is not one of the fitted classes_."
                )
            out[i] = lookup[key]
        return out

    def score(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> float:
        """Accuracy (fraction of trials whose predicted label equals ``y``)."""
        pred = self.predict(X, subjects)
        y_arr = _as_labels(y, "y", pred.shape[0])
        return float(np.mean([_py(a) == _py(b) for a, b in zip(pred, y_arr)]))

    def confusion_matrix(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> np.ndarray:
        """Counts of (true, predicted) label pairs.

        Returns
        -------
        cm : ndarray of shape (n_classes, n_classes), int64
            ``cm[i, j]`` = number of trials of class ``classes_[i]`` predicted as
            ``classes_[j]``. Every entry of ``y`` must be one of ``classes_``.
        """
        self._check_fitted()
        proba = self.predict_proba(X, subjects)
        true = self._true_labels(y, proba.shape[0])
        pred = np.argmax(proba, axis=1)
        K = self.classes_.size
        return (
            np.bincount(true * K + pred, minlength=K * K).reshape(K, K).astype(np.int64)
        )

    def encode_codes(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """VQ code index of every patch (needs a model fit with the VQ stages).

        Returns
        -------
        codes : ndarray of shape (n_trials, n_patches_), int64
            Values in ``[0, codebook_size)``.
        """
        self._check_fitted()
        if not self.module_.vq:
            raise BrainalignError(
                "'encode_codes' needs a model fit with the VQ stages (codebook_size > 0 and "
                "pretrain_epochs > 0)."
            )
        packed = self._prepare(X, subjects)
        return self._codes(
            self.module_, packed, np.arange(len(packed)), 64, self._device()
        )

    # ------------------------------------------------------------------ #
    # persistence
    # ------------------------------------------------------------------ #
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights to ``path`` (safetensors) and metadata to ``<path>.json``.

        The JSON sidecar holds the constructor parameters, ``classes_``,
        ``subjects_``, ``n_channels_``, patch geometry, ``history_`` and
        ``best_epoch_``; nothing is pickled. Labels must be JSON scalars.

        Returns
        -------
        path : pathlib.Path
            The weights file.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        path = Path(path)
        params = self.get_params()
        params["device"] = str(params["device"])
        meta = {
            "format": "brainalign.DuINWordDecoder",
            "version": _FORMAT_VERSION,
            "params": params,
            "classes": _json_labels(self.classes_, "classes_"),
            "classes_dtype": self.classes_.dtype.str,
            "subjects": _json_labels(self.subjects_, "subjects_"),
            "subjects_dtype": self.subjects_.dtype.str,
            "n_channels": [self.n_channels_[_py(s)] for s in self.subjects_],
            "patch_len": self.patch_len_,
            "n_patches": self.n_patches_,
            "vq": bool(self.module_.vq),
            "history": self.history_,
            "best_epoch": self.best_epoch_,
        }
        try:
            text = json.dumps(meta, indent=1)
        except (TypeError, ValueError) as err:
            raise BrainalignError(
                f"Cannot save: parameters are not JSON-serialisable ({err})."
            ) from None
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in self.module_.state_dict().items()
        }
        # Atomic: a killed process leaves the previous checkpoint, never half of one.
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
        with atomic_path(self._sidecar(path)) as tmp:
            tmp.write_text(text)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | None = None
    ) -> DuINWordDecoder:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The weights file; ``<path>.json`` must sit beside it.
        device : str, optional
            Overrides the saved ``device`` parameter.
        """
        from safetensors.torch import load_file

        from brainalign._validation import InputFileError

        path = Path(path)
        side = cls._sidecar(path)
        for f in (path, side):
            if not f.is_file():
                raise InputFileError(
                    f, "model file does not exist (DuINWordDecoder.save writes both)."
                )
        try:
            meta = json.loads(side.read_text())
        except json.JSONDecodeError as err:
            raise InputFileError(side, f"is not valid JSON ({err}).") from None
        if meta.get("format") != "brainalign.DuINWordDecoder":
            raise InputFileError(
                side, "field 'format' is not 'brainalign.DuINWordDecoder'."
            )
        params = dict(meta["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        p = _check_params(est.get_params())
        classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        subjects_ = np.asarray(meta["subjects"], dtype=np.dtype(meta["subjects_dtype"]))
        net = _DuINNet(
            list(meta["n_channels"]),
            classes.size,
            int(meta["patch_len"]),
            int(meta["n_patches"]),
            p["d_model"],
            p["n_layers"],
            p["n_heads"],
            p["dropout"],
            p["codebook_size"],
            p["codebook_dim"],
            bool(meta["vq"]),
        )
        try:
            net.load_state_dict(load_file(str(path)))
        except RuntimeError as err:
            raise InputFileError(
                path, f"weights do not match the sidecar's architecture ({err})."
            ) from None
        net.to(p["device"]).eval()
        est.classes_ = classes
        est.subjects_ = subjects_
        est.n_channels_ = {
            _py(s): int(c) for s, c in zip(subjects_, meta["n_channels"])
        }
        est.patch_len_ = int(meta["patch_len"])
        est.n_patches_ = int(meta["n_patches"])
        est.history_ = {k: list(v) for k, v in meta["history"].items()}
        est.best_epoch_ = int(meta["best_epoch"])
        est.module_ = net
        return est
