"""The estimator :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

Its parameters and their constraints, the checks of windows, targets, subjects
and sensor positions, ``fit`` (standardised targets, the validation split, a
seeded torch generator, the optional refit on all windows), ``predict``,
``transform_targets`` and ``score``; the training loop and the checkpoints
come from mixins.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike

from brainalign._validation import (
    Boolean,
    BrainalignError,
    Constraint,
    Interval,
    NoneValue,
    OddInt,
    Options,
    RandomStateLike,
    TorchDevice,
    check_random_state,
)
from brainalign.encoders._base import EstimatorMixin
from brainalign.encoders.contrastive.brain_module import BrainModule
from brainalign.encoders.contrastive.checkpoint import _ContrastiveCheckpointMixin
from brainalign.encoders.contrastive.data import (
    _as_windows,
    _fmt_subject,
    _n_windows,
    _pad,
    _sort_labels,
    _subject_labels,
    _train_val_split,
    _window_channels,
)
from brainalign.encoders.contrastive.loss import ClipLoss
from brainalign.encoders.contrastive.training import _ContrastiveTrainingMixin
from brainalign.metrics.identification import identification_topk


class ContrastiveEncoder(_ContrastiveTrainingMixin, _ContrastiveCheckpointMixin, EstimatorMixin):
    """Contrastive brain → embedding decoder (Défossez et al. 2023).

    Trains a :class:`BrainModule` with :class:`ClipLoss` so that the output of
    each brain window points to the embedding of its stimulus, then ranks
    candidate embeddings by cosine similarity.

    Parameters
    ----------
    front_end : {"spatial_attention", "channel_fusion"}, default="spatial_attention"
        Spatial attention over 2-D sensor positions (M/EEG; needs
        ``positions`` in :meth:`fit`) or a per-subject linear channel fusion
        (sEEG, contacts differing across subjects).
    spatial_channels : int, default=64
        Output channels of the front end.
    n_freqs : int, default=8
        Fourier frequencies per axis of the spatial attention.
    spatial_dropout : float, default=0.1
        Radius, in position units (the [0, 1] layout scale), of the disc of
        sensors dropped per training window (0 disables it).
    hidden : int, default=64
        Channels of the convolutional stack.
    depth : int, default=4
        Number of residual dilated convolution blocks.
    kernel_size : int, default=3
        Odd kernel size of the convolutions.
    dropout : float in [0, 1), default=0.1
        Dropout in the blocks and the head.
    n_time_bins : int or None, default=12
        The head averages the window into this many time bins before its
        linear layer (None: no pooling). Must be <= n_times.
    epochs : int, default=40
        Maximum number of passes over the training windows.
    batch_size : int >= 2, default=64
        Windows per batch (also the number of in-batch candidates).
    lr : float, default=3e-4
        AdamW learning rate.
    weight_decay : float, default=0.0
        AdamW weight decay (not applied to the temperature).
    val_fraction : float in [0, 1), default=0.2
        Share of windows held out for early stopping; whole groups when
        ``groups`` is given. 0 trains for all ``epochs`` and keeps the last
        weights.
    patience : int or None, default=8
        Stop after this many epochs without a lower validation loss (None:
        never stop early; the best epoch's weights are still restored).
    refit : bool, default=False
        After early stopping has chosen the best epoch on the validation
        split, train again from the same initialisation on *all* windows
        (training and validation) for that many epochs, and keep those
        weights (the validation split then only chooses the number of epochs,
        as the inner cross-validation of a ridge chooses its penalty). No
        effect with ``val_fraction=0``.
    symmetric_loss : bool, default=False
        Use the symmetric CLIP loss instead of brain → target only.
    random_state : None, int or numpy Generator, default=0
        Seeds the split, the batch order, the weight initialisation and the
        dropouts. Same inputs and int seed → bit-identical predictions (on
        the same device, torch build and number of torch threads).
    verbose : bool, default=False
        Show a tqdm progress bar over epochs.
    device : str, default="cpu"
        Torch device for training and prediction.

    Attributes
    ----------
    model_ : BrainModule
        The trained brain module (best validation epoch), in eval mode.
    loss_ : ClipLoss
        The loss, with the learned temperature.
    subjects_ : list
        Subject labels (sorted), position = subject index in the model.
    n_channels_ : dict
        Subject label → number of channels.
    positions_ : dict or None
        Subject label → ndarray of shape (n_channels, 2) (spatial attention).
    n_times_ : int
        Samples per window.
    n_targets_ : int
        Dimension of the target embeddings.
    target_mean_, target_scale_ : ndarray of shape (n_targets,)
        Per-dimension mean and standard deviation of the training targets
        (scale 1 where the deviation is 0); targets are z-scored with them.
    history_ : dict of lists
        Per epoch: ``"epoch"`` (1-based), ``"train_loss"``, ``"val_loss"``
        and ``"val_top10"`` (NaN without validation), ``"temperature"``
        (``1 / logit scale``);
        with ``refit``, also ``"refit_loss"`` and ``"refit_temperature"``,
        the training loss and temperature of the refit on all windows (its
        ``best_epoch_`` epochs).
    best_epoch_ : int
        Epoch (1-based, as in ``history_["epoch"]``) whose weights were kept,
        or, with ``refit``, the number of epochs of the refit.
    train_index_, val_index_ : ndarray of int64
        Windows used for training and for validation (early stopping); with
        ``refit``, the final weights are trained on both.

    Notes
    -----
    ``X`` should be preprocessed per channel beforehand (Défossez et al.:
    baseline-corrected, robust-scaled, clamped at ±20); the estimator does
    not rescale it. Training runs inside :func:`torch.random.fork_rng`
    seeded from ``random_state``, so torch's global generator is left as it
    was.
    """

    _fitted_attribute = "model_"
    _sample_noun = "window"
    _three_d_input = True
    _single_output = False
    _poor_score = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "front_end": [Options("spatial_attention", "channel_fusion")],
        "spatial_channels": [Interval("int", 1, None)],
        "n_freqs": [Interval("int", 1, None)],
        "spatial_dropout": [Interval("real", 0.0, None, "both")],
        "hidden": [Interval("int", 1, None)],
        "depth": [Interval("int", 1, None)],
        "kernel_size": [OddInt(1)],
        "dropout": [Interval("real", 0.0, 1.0, "left")],
        "n_time_bins": [Interval("int", 1, None), NoneValue()],
        "epochs": [Interval("int", 1, None)],
        "batch_size": [Interval("int", 2, None)],
        "lr": [Interval("real", 0, None, "neither")],
        "weight_decay": [Interval("real", 0.0, None, "both")],
        "val_fraction": [Interval("real", 0.0, 1.0, "left")],
        "patience": [Interval("int", 1, None), NoneValue()],
        "refit": [Boolean()],
        "symmetric_loss": [Boolean()],
        "random_state": [RandomStateLike()],
        "verbose": [Boolean()],
        "device": [TorchDevice()],
    }

    def __init__(
        self,
        *,
        front_end: str = "spatial_attention",
        spatial_channels: int = 64,
        n_freqs: int = 8,
        spatial_dropout: float = 0.1,
        hidden: int = 64,
        depth: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        n_time_bins: int | None = 12,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        val_fraction: float = 0.2,
        patience: int | None = 8,
        refit: bool = False,
        symmetric_loss: bool = False,
        random_state: None | int | np.random.Generator = 0,
        verbose: bool = False,
        device: str = "cpu",
    ):
        self.front_end = front_end
        self.spatial_channels = spatial_channels
        self.n_freqs = n_freqs
        self.spatial_dropout = spatial_dropout
        self.hidden = hidden
        self.depth = depth
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.n_time_bins = n_time_bins
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.refit = refit
        self.symmetric_loss = symmetric_loss
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ data

    def _check_positions(
        self, positions: Any, subjects: list[Hashable], counts: dict[Hashable, int]
    ) -> dict[Hashable, np.ndarray]:
        if positions is None:
            raise BrainalignError(
                "front_end='spatial_attention' needs 'positions': a dict subject -> array of "
                "shape (n_channels, 2) with sensor positions in [0, 1]² (or one array shared by "
                "all subjects)."
            )
        out = {}
        for s in subjects:
            if isinstance(positions, Mapping):
                if s not in positions:
                    raise BrainalignError(
                        f"'positions' has no entry for {_fmt_subject(s)}; it has keys "
                        f"{list(positions)!r}."
                    )
                p = positions[s]
                where = f"'positions[{s!r}]'"
            else:
                p = positions
                where = "'positions'"
            try:
                arr = np.array(p, dtype=np.float64)
            except (TypeError, ValueError):
                raise BrainalignError(
                    f"{where} ({_fmt_subject(s)}) must be a numeric array of shape "
                    f"(n_channels, 2)."
                ) from None
            if arr.shape != (counts[s], 2):
                raise BrainalignError(
                    f"{where} ({_fmt_subject(s)}) must have shape ({counts[s]}, 2) to match its "
                    f"{counts[s]} channels, got {arr.shape}."
                )
            finite = np.isfinite(arr).all(axis=1)
            if not finite.any():
                raise BrainalignError(
                    f"{where} ({_fmt_subject(s)}) has no finite position; NaN rows mark missing "
                    "channels, at least one must remain."
                )
            vals = arr[finite]
            if vals.min() < -1e-6 or vals.max() > 1 + 1e-6:
                raise BrainalignError(
                    f"{where} ({_fmt_subject(s)}) must lie in [0, 1]² (normalise the layout, e.g. "
                    f"min-max per axis over the device), got range [{vals.min():g}, "
                    f"{vals.max():g}]."
                )
            arr[~finite] = np.nan
            arr.flags.writeable = False
            out[s] = arr
        return out

    def _positions_table(self) -> np.ndarray | None:
        if self.positions_ is None:
            return None
        n_max = max(self.n_channels_.values())
        table = np.full((len(self.subjects_), n_max, 2), np.nan, dtype=np.float32)
        for i, s in enumerate(self.subjects_):
            p = self.positions_[s]
            table[i, : p.shape[0]] = p
        return table

    def _build_model(self) -> tuple[BrainModule, ClipLoss]:
        model = BrainModule(
            [self.n_channels_[s] for s in self.subjects_],
            self.n_times_,
            self.n_targets_,
            front_end=self.front_end,
            positions=self._positions_table(),
            spatial_channels=self.spatial_channels,
            n_freqs=self.n_freqs,
            spatial_dropout=self.spatial_dropout,
            hidden=self.hidden,
            depth=self.depth,
            kernel_size=self.kernel_size,
            dropout=self.dropout,
            n_time_bins=self.n_time_bins,
        )
        return model, ClipLoss(symmetric=self.symmetric_loss)

    def _prepare_predict(
        self, X: Any, subjects: Any, name: str = "X"
    ) -> tuple[np.ndarray, np.ndarray]:
        Xv, n_times = _as_windows(X, name)
        if n_times != self.n_times_:
            raise BrainalignError(
                f"'{name}' windows have {n_times} samples, but this {type(self).__name__} was fit "
                f"with n_times_={self.n_times_}."
            )
        n = _n_windows(Xv)
        idx = self._subject_index(_subject_labels(subjects, n))
        chans = _window_channels(Xv)
        for i in range(n):
            s = self.subjects_[idx[i]]
            if chans[i] != self.n_channels_[s]:
                raise BrainalignError(
                    f"'{name}' window {i} has {chans[i]} channels, but {_fmt_subject(s)} had "
                    f"{self.n_channels_[s]} in fit."
                )
        return _pad(Xv, max(self.n_channels_.values())), idx

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        Y: ArrayLike,
        subjects: ArrayLike | None = None,
        groups: ArrayLike | None = None,
        positions: Mapping[Hashable, ArrayLike] | ArrayLike | None = None,
    ) -> ContrastiveEncoder:
        """Train the brain module.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_channels, n_times) or list of arrays (n_channels_i, n_times)
            Brain windows (e.g. −0.5…2.5 s around word onsets), preprocessed
            per channel. A list allows channel counts that differ across
            subjects (each subject's windows must share one count).
        Y : array-like of shape (n_windows, n_targets)
            Target embedding of each window (e.g. the word's speech or text
            embedding).
        subjects : array-like of shape (n_windows,), optional
            Subject label (int or str) of each window; None means one subject.
        groups : array-like of shape (n_windows,), optional
            Group labels (e.g. story or sentence ids). When given, the
            validation split holds out whole groups, never single windows.
        positions : dict or array-like, optional
            Required for ``front_end="spatial_attention"``: a dict subject →
            array of shape (n_channels, 2) of sensor positions in [0, 1]²
            (NaN rows mark missing sensors, which are ignored), or one such
            array shared by all subjects. Ignored by ``"channel_fusion"``.

        Returns
        -------
        self : ContrastiveEncoder
        """
        self._validate_params()
        for attr in [
            a for a in vars(self) if a.endswith("_") and not a.startswith("_")
        ]:
            delattr(self, attr)
        Xv, n_times = _as_windows(X, "X")
        n = _n_windows(Xv)
        Yf = np.asarray(Y, dtype=np.float64)
        if Yf.ndim != 2 or Yf.shape[1] == 0:
            raise BrainalignError(
                f"'Y' must be 2-D (n_windows, n_targets), got shape {Yf.shape}."
            )
        if Yf.shape[0] != n:
            raise BrainalignError(
                f"'X' and 'Y' must have the same number of windows, got {n} windows in 'X' and "
                f"{Yf.shape[0]} rows in 'Y'."
            )
        if not np.all(np.isfinite(Yf)):
            raise BrainalignError("'Y' contains NaN or infinite values.")
        if n < 4:
            raise BrainalignError(f"'X' must hold at least 4 windows, got {n}.")
        labels = _subject_labels(subjects, n)
        subject_list = _sort_labels(labels)
        grp = None
        if groups is not None:
            grp = np.asarray(groups)
            if grp.shape != (n,):
                raise BrainalignError(
                    f"'groups' must have one label per window ({n}), got shape {grp.shape}."
                )
        if self.n_time_bins is not None and self.n_time_bins > n_times:
            raise BrainalignError(
                f"'n_time_bins' ({self.n_time_bins}) must be <= the number of samples per window "
                f"({n_times})."
            )

        # channel counts per subject
        chans = _window_channels(Xv)
        counts: dict[Hashable, int] = {}
        for i, lab in enumerate(labels):
            c = int(chans[i])
            if counts.setdefault(lab, c) != c:
                raise BrainalignError(
                    f"'X' window {i} of {_fmt_subject(lab)} has {c} channels, but earlier windows "
                    f"of that subject have {counts[lab]}; a subject's windows must share one "
                    "channel layout."
                )
        pos = None
        if self.front_end == "spatial_attention":
            pos = self._check_positions(positions, subject_list, counts)

        rng = check_random_state(self.random_state)
        train, val = _train_val_split(n, grp, float(self.val_fraction), rng)
        mean = Yf[train].mean(axis=0)
        scale = Yf[train].std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        Yn = ((Yf - mean) / scale).astype(np.float32)
        _, target_ids = np.unique(Yf, axis=0, return_inverse=True)
        target_ids = target_ids.reshape(-1).astype(np.int64)

        self.subjects_ = subject_list
        self.n_channels_ = {s: counts[s] for s in subject_list}
        self.positions_ = pos
        self.n_times_ = int(n_times)
        self.n_targets_ = int(Yf.shape[1])
        self.target_mean_ = mean
        self.target_scale_ = scale
        self.train_index_ = train.astype(np.int64)
        self.val_index_ = val.astype(np.int64)

        Xp = torch.from_numpy(_pad(Xv, max(counts.values())))
        del Xv
        sidx = torch.from_numpy(self._subject_index(labels))
        Yt = torch.from_numpy(Yn)
        tid = torch.from_numpy(target_ids)
        device = torch.device(self.device)
        torch_seed = int(rng.integers(0, 2**63 - 1))
        if device.type == "cpu":
            fork = torch.random.fork_rng(devices=[])
        else:
            fork = torch.random.fork_rng(
                devices=[device.index or 0], device_type=device.type
            )
        with fork:
            torch.manual_seed(torch_seed)
            model, loss_fn = self._build_model()
            model.to(device)
            loss_fn.to(device)
            self._train(model, loss_fn, Xp, Yt, sidx, tid, train, val, rng, device)
            if self.refit and val.size:
                # Same initialisation, every window, the chosen number of epochs; no early stopping.
                history, best_epoch = self.history_, self.best_epoch_
                torch.manual_seed(torch_seed)
                model, loss_fn = self._build_model()
                model.to(device)
                loss_fn.to(device)
                self._train(model, loss_fn, Xp, Yt, sidx, tid, np.arange(n), np.zeros(0, dtype=np.int64), rng,
                            device, n_epochs=max(best_epoch, 1))
                history["refit_loss"] = self.history_["train_loss"]
                history["refit_temperature"] = self.history_["temperature"]
                self.history_, self.best_epoch_ = history, best_epoch
        return self

    # ------------------------------------------------------------------ predict
    def predict(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Embed brain windows.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_channels, n_times) or list of arrays
            Windows, with each subject's channel count as in :meth:`fit`.
        subjects : array-like of shape (n_windows,), optional
            Subject labels seen in :meth:`fit` (may be None if fit on one
            subject).

        Returns
        -------
        embeddings : ndarray of float64, shape (n_windows, n_targets)
            In the z-scored target space (compare with
            :meth:`transform_targets` of the candidates, by cosine).
        """
        self._check_fitted()
        Xp, idx = self._prepare_predict(X, subjects)
        device = next(self.model_.parameters()).device
        self.model_.eval()
        out = np.empty((Xp.shape[0], self.n_targets_), dtype=np.float64)
        step = max(int(self.batch_size), 256)
        with torch.no_grad():
            for start in range(0, Xp.shape[0], step):
                stop = min(start + step, Xp.shape[0])
                x = torch.from_numpy(Xp[start:stop]).to(device)
                s = torch.from_numpy(idx[start:stop]).to(device)
                out[start:stop] = self.model_(x, s).cpu().numpy()
        return out

    def transform_targets(self, Y: ArrayLike) -> np.ndarray:
        """Z-score target embeddings with the training statistics.

        Parameters
        ----------
        Y : array-like of shape (n_windows, n_targets)

        Returns
        -------
        ndarray of float64, shape (n_windows, n_targets)
        """
        self._check_fitted()
        Yf = np.asarray(Y, dtype=np.float64)
        if Yf.ndim != 2 or Yf.shape[1] != self.n_targets_:
            raise BrainalignError(
                f"'Y' must have shape (n_windows, {self.n_targets_}), got {Yf.shape}."
            )
        return (Yf - self.target_mean_) / self.target_scale_

    def score(
        self, X: ArrayLike | Sequence[ArrayLike], Y: ArrayLike, subjects: ArrayLike | None = None, k: int = 1,
    ) -> float:
        """Top-``k`` identification accuracy (top-1 by default), as a float for model selection.

        One entry of :meth:`identification_scores`.

        Parameters
        ----------
        X : array-like of shape (n_windows, n_channels, n_times) or list of arrays
        Y : array-like of shape (n_windows, n_targets)
        subjects : array-like of shape (n_windows,), optional
        k : int, default=1

        Returns
        -------
        float
            Fraction of windows whose target ranks in the top ``k``.
        """
        return float(self.identification_scores(X, Y, subjects, k=(int(k),))[int(k)])

    def identification_scores(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        Y: ArrayLike,
        subjects: ArrayLike | None = None,
        k: int | Sequence[int] = (1, 5, 10),
    ) -> dict[int, float]:
        """Top-k identification accuracy among the unique rows of ``Y``.

        Each window's prediction ranks all unique (z-scored) targets of ``Y``
        by cosine similarity, as in Défossez et al.; see
        :func:`~brainalign.metrics.identification.identification_topk` (call
        it on :meth:`predict` and :meth:`transform_targets` for ranks and the
        chance level).

        Parameters
        ----------
        X : array-like of shape (n_windows, n_channels, n_times) or list of arrays
        Y : array-like of shape (n_windows, n_targets)
            True target of each window.
        subjects : array-like of shape (n_windows,), optional
        k : int or sequence of int
            Top-k levels.

        Returns
        -------
        accuracy : dict
            ``{k: fraction of windows whose target ranks in the top k}``.
        """
        pred = self.predict(X, subjects)
        Yn = self.transform_targets(Y)
        if Yn.shape[0] != pred.shape[0]:
            raise BrainalignError(
                f"'X' and 'Y' must have the same number of windows, got {pred.shape[0]} and "
                f"{Yn.shape[0]}."
            )
        return identification_topk(pred, Yn, k=k, metric="cosine")["accuracy"]
