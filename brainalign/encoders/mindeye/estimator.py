"""The estimator :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

Its parameters and their constraints, the checks of voxel patterns, targets
and subjects, ``fit`` (per-subject voxel and per-dimension target
standardisation, the validation split, a seeded torch generator),
``predict``, ``predict_projected``, ``transform_targets`` and the MindEye2
retrieval ``score``; the training loop and the checkpoints come from mixins.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
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
    as_float64,
    check_array_input,
    check_n_features,
    check_random_state,
)
from brainalign.encoders._base import EstimatorMixin
from brainalign.encoders.contrastive.data import _fmt_subject, _sort_labels
from brainalign.encoders.mindeye.checkpoint import _BrainToEmbeddingCheckpointMixin
from brainalign.encoders.mindeye.data import _as_samples, _labels, _stack, _stratified_split, _widths
from brainalign.encoders.mindeye.network import BrainToEmbeddingModule, LogitScale
from brainalign.encoders.mindeye.training import _BrainToEmbeddingTrainingMixin
from brainalign.metrics.identification import retrieval_top1

#: Retrieval of :meth:`BrainToEmbedding.score`: candidates per draw and draws (MindEye2).
N_WAY = 300
N_DRAWS = 30


class BrainToEmbedding(
    _BrainToEmbeddingTrainingMixin, _BrainToEmbeddingCheckpointMixin, EstimatorMixin
):
    """MindEye2-style fMRI → embedding model with regression and contrastive heads.

    Parameters
    ----------
    shared_dim : int, default=256
        Width of the shared space (output of each subject's linear layer) and
        of the backbone; also the projector's hidden width.
    n_blocks : int, default=2
        Residual MLP blocks ``LayerNorm → Linear → GELU → Dropout`` (+ input).
    dropout : float in [0, 1), default=0.15
        Dropout in the residual blocks.
    epochs : int, default=60
        Maximum number of passes over the training samples.
    batch_size : int >= 2, default=64
        Samples per batch (also the number of in-batch contrastive candidates).
    lr : float, default=3e-4
        AdamW learning rate (constant).
    weight_decay : float, default=1e-2
        AdamW weight decay of the Linear weights (not of biases, LayerNorms or
        the temperature, as in MindEye2).
    mixco_fraction : float in [0, 1], default=0.33
        The first ``int(mixco_fraction · epochs)`` epochs use BiMixCo
        (:func:`bimixco_loss`), the rest SoftCLIP (:func:`soft_clip_loss`).
    mse_weight : float >= 0, default=1.0
        Weight of the regression head's MSE (z-scored target units) in the
        total loss ``contrastive + mse_weight · MSE``.
    temperature : float > 0, default=0.05
        Contrastive temperature ``τ`` (initial value if learnable).
    learn_temperature : bool, default=False
        Learn ``τ`` (CLIP-style; the scale ``1/τ`` is capped at
        ``max(100, 1 / temperature)``) or keep it fixed (MindEye).
    val_fraction : float in [0, 1), default=0.1
        Share of each subject's samples held out for early stopping. 0 trains
        for all ``epochs`` and keeps the last weights.
    patience : int or None, default=10
        Stop after this many epochs without a lower validation loss (None:
        never stop early; the best epoch's weights are still restored).
    random_state : None, int or numpy Generator, default=0
        Seeds the split, batch order, mixing, weight initialisation and
        dropout. Same inputs and int seed → bit-identical predictions (on the
        same device, torch build and number of torch threads).
    verbose : bool, default=False
        Show a tqdm progress bar over epochs.
    device : str, default="cpu"
        Torch device for training and prediction.

    Attributes
    ----------
    model_ : BrainToEmbeddingModule
        The trained network (best validation epoch), in eval mode.
    logit_scale_ : LogitScale
        The temperature module.
    temperature_ : float
        The final temperature ``τ``.
    subjects_ : list
        Subject labels (sorted), position = subject index in the model.
    n_voxels_ : dict
        Subject label → number of voxels.
    voxel_mean_, voxel_scale_ : dict
        Subject label → ndarray of shape (n_voxels_s,): mean and standard
        deviation of each voxel over that subject's training samples (scale 1
        where the deviation is 0); inputs are z-scored with them.
    target_shape_ : tuple of int
        ``(d,)`` for 2-D targets, ``(n_tokens, d)`` for 3-D targets.
    n_targets_ : int
        ``prod(target_shape_)``, the flattened target dimension.
    target_mean_, target_scale_ : ndarray of shape (n_targets_,)
        Per-dimension mean and standard deviation of the (flattened) training
        targets; the network works on targets z-scored with them.
    n_mixco_epochs_ : int
        ``int(mixco_fraction · epochs)``.
    history_ : dict of lists
        Per epoch: ``"epoch"`` (1-based), ``"phase"`` (``"bimixco"`` or
        ``"softclip"``), ``"train_loss"`` (the phase's total loss),
        ``"val_loss"``, ``"val_mse"``, ``"val_retrieval"`` (mean top-1 of
        both directions among all validation samples, projected outputs),
        ``"temperature"``; NaN without validation.
    best_epoch_ : int
        Epoch (1-based) whose weights were kept.
    train_index_, val_index_ : ndarray of int64
        Samples used for training and for validation.

    Notes
    -----
    Early stopping monitors one criterion through both phases, so that the
    loss switch does not reset it: the SoftCLIP loss at the *fixed* initial
    ``temperature`` over the whole validation set (projected outputs) plus
    ``mse_weight`` × the validation MSE of the regression head.

    Training runs inside :func:`torch.random.fork_rng` seeded from
    ``random_state``, so torch's global generator is left as it was.

    Inputs should be the usual single-trial betas (e.g. GLMsingle), one row
    per trial; the estimator z-scores every voxel per subject itself.
    """

    _fitted_attribute = "model_"
    _single_output = False
    _poor_score = True

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "shared_dim": [Interval("int", 1, None)],
        "n_blocks": [Interval("int", 0, None)],
        "dropout": [Interval("real", 0.0, 1.0, "left")],
        "epochs": [Interval("int", 1, None)],
        "batch_size": [Interval("int", 2, None)],
        "lr": [Interval("real", 0, None, "neither")],
        "weight_decay": [Interval("real", 0.0, None, "both")],
        "mixco_fraction": [Interval("real", 0.0, 1.0, "both")],
        "mse_weight": [Interval("real", 0.0, None, "both")],
        "temperature": [Interval("real", 0, None, "neither")],
        "learn_temperature": [Boolean()],
        "val_fraction": [Interval("real", 0.0, 1.0, "left")],
        "patience": [Interval("int", 1, None), NoneValue()],
        "random_state": [RandomStateLike()],
        "verbose": [Boolean()],
        "device": [TorchDevice()],
    }

    def __init__(
        self,
        *,
        shared_dim: int = 256,
        n_blocks: int = 2,
        dropout: float = 0.15,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 3e-4,
        weight_decay: float = 1e-2,
        mixco_fraction: float = 0.33,
        mse_weight: float = 1.0,
        temperature: float = 0.05,
        learn_temperature: bool = False,
        val_fraction: float = 0.1,
        patience: int | None = 10,
        random_state: None | int | np.random.Generator = 0,
        verbose: bool = False,
        device: str = "cpu",
    ):
        self.shared_dim = shared_dim
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.mixco_fraction = mixco_fraction
        self.mse_weight = mse_weight
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.val_fraction = val_fraction
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ data

    def _check_targets(self, Y: ArrayLike, n: int | None, name: str = "Y") -> np.ndarray:
        """Check targets against ``target_shape_``; return them flat, float64 (n, n_targets_)."""
        check_array_input(Y, name)
        Yf = as_float64(Y, name)
        if Yf.shape[1:] != tuple(self.target_shape_) or Yf.shape[0] == 0:
            raise BrainalignError(
                f"'{name}' must have shape (n_samples, {', '.join(map(str, self.target_shape_))}) "
                f"as in fit, got {Yf.shape}."
            )
        if n is not None and Yf.shape[0] != n:
            raise BrainalignError(
                f"'X' and '{name}' must have the same number of samples, got {n} and "
                f"{Yf.shape[0]}."
            )
        if not np.all(np.isfinite(Yf)):
            raise BrainalignError(f"'{name}' contains NaN or infinite values.")
        return Yf.reshape(Yf.shape[0], -1)

    def _prepare(self, X: Any, subjects: Any, name: str = "X") -> tuple[list, np.ndarray]:
        """Validate and z-score inputs; return (per-subject blocks, sample order)."""
        Xv = _as_samples(X, name)
        n = _widths(Xv).shape[0]
        idx = self._subject_index(_labels(subjects, n))
        widths = _widths(Xv)
        if isinstance(Xv, np.ndarray) and hasattr(self, "n_features_in_"):
            check_n_features(self, Xv, Xv.shape[1])
        blocks, order = [], []
        for si, s in enumerate(self.subjects_):
            rows = np.flatnonzero(idx == si)
            if rows.size == 0:
                continue
            bad = rows[widths[rows] != self.n_voxels_[s]]
            if bad.size:
                raise BrainalignError(
                    f"'{name}' sample {bad[0]} has {widths[bad[0]]} voxels, but "
                    f"{_fmt_subject(s)} had {self.n_voxels_[s]} in fit."
                )
            x = (_stack(Xv, rows) - self.voxel_mean_[s]) / self.voxel_scale_[s]
            blocks.append((si, torch.from_numpy(x.astype(np.float32))))
            order.append(rows)
        return blocks, np.concatenate(order)

    def _forward_all(self, X: Any, subjects: Any) -> tuple[np.ndarray, np.ndarray]:
        """Regression and projected outputs (z-scored target units), shape (n, n_targets_)."""
        self._check_fitted()
        blocks, order = self._prepare(X, subjects)
        device = next(self.model_.parameters()).device
        self.model_.eval()
        n = order.shape[0]
        reg = np.empty((n, self.n_targets_), dtype=np.float64)
        proj = np.empty((n, self.n_targets_), dtype=np.float64)
        step = max(int(self.batch_size), 256)
        pos = 0
        with torch.no_grad():
            for si, x in blocks:
                for start in range(0, x.shape[0], step):
                    xb = x[start : start + step].to(device)
                    r, p = self.model_([xb], [si])
                    rows = order[pos : pos + xb.shape[0]]
                    reg[rows] = r.cpu().numpy()
                    proj[rows] = p.cpu().numpy()
                    pos += xb.shape[0]
        return reg, proj

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        Y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> BrainToEmbedding:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels) or list of 1-D arrays (n_voxels_i,)
            One voxel pattern per sample (trial). A list allows voxel counts
            that differ across subjects (each subject's samples share one
            count).
        Y : array-like of shape (n_samples, d) or (n_samples, n_tokens, d)
            Target embedding of each sample (e.g. the stimulus's CLIP image
            embedding, or its token embeddings).
        subjects : array-like of shape (n_samples,), optional
            Subject label (int or str) of each sample; None means one subject.

        Returns
        -------
        self : BrainToEmbedding
        """
        self._validate_params()
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        Xv = _as_samples(X, "X")
        widths = _widths(Xv)
        n = widths.shape[0]
        check_array_input(Y, "Y")
        Yf = as_float64(Y, "Y")
        if Yf.ndim not in (2, 3) or 0 in Yf.shape[1:]:
            raise BrainalignError(
                f"'Y' must be 2-D (n_samples, d) or 3-D (n_samples, n_tokens, d), got shape "
                f"{Yf.shape}."
            )
        if Yf.shape[0] != n:
            raise BrainalignError(
                f"'X' and 'Y' must have the same number of samples, got {n} in 'X' and "
                f"{Yf.shape[0]} in 'Y'."
            )
        if not np.all(np.isfinite(Yf)):
            raise BrainalignError("'Y' contains NaN or infinite values.")
        if n < 4:
            raise BrainalignError(f"'X' must hold at least 4 samples, got n_samples={n}.")
        labels = _labels(subjects, n)
        subject_list = _sort_labels(labels)
        counts: dict[Hashable, int] = {}
        for i, lab in enumerate(labels):
            if counts.setdefault(lab, int(widths[i])) != widths[i]:
                raise BrainalignError(
                    f"'X' sample {i} of {_fmt_subject(lab)} has {widths[i]} voxels, but earlier "
                    f"samples of that subject have {counts[lab]}; a subject's samples must share "
                    "one voxel set."
                )
        self.subjects_ = subject_list
        self.n_voxels_ = {s: counts[s] for s in subject_list}
        if len(set(self.n_voxels_.values())) == 1:  # one width: scikit-learn's n_features_in_
            self.n_features_in_ = int(widths[0])
        sidx = self._subject_index(labels)

        rng = check_random_state(self.random_state)
        train, val = _stratified_split(sidx, float(self.val_fraction), rng)
        self.voxel_mean_, self.voxel_scale_ = {}, {}
        per_subject: list[torch.Tensor] = []
        row_in_subject = np.empty(n, dtype=np.int64)
        for si, s in enumerate(subject_list):
            rows = np.flatnonzero(sidx == si)
            row_in_subject[rows] = np.arange(rows.size)
            xs = _stack(Xv, rows).astype(np.float64)
            tr = np.isin(rows, train)
            if tr.sum() < 2:
                raise BrainalignError(
                    f"{_fmt_subject(s)} has {int(tr.sum())} training sample(s); at least 2 are "
                    "needed to standardise its voxels."
                )
            mean = xs[tr].mean(axis=0)
            scale = xs[tr].std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            self.voxel_mean_[s], self.voxel_scale_[s] = mean, scale
            per_subject.append(torch.from_numpy(((xs - mean) / scale).astype(np.float32)))
        del Xv

        self.target_shape_ = tuple(int(v) for v in Yf.shape[1:])
        Y2 = Yf.reshape(n, -1)
        self.n_targets_ = int(Y2.shape[1])
        mean = Y2[train].mean(axis=0)
        scale = Y2[train].std(axis=0)
        self.target_mean_ = mean
        self.target_scale_ = np.where(scale > 0, scale, 1.0)
        Yt = torch.from_numpy(((Y2 - mean) / self.target_scale_).astype(np.float32))
        self.n_mixco_epochs_ = int(float(self.mixco_fraction) * int(self.epochs))
        self.train_index_ = train
        self.val_index_ = val

        device = torch.device(self.device)
        torch_seed = int(rng.integers(0, 2**63 - 1))
        if device.type == "cpu":
            fork = torch.random.fork_rng(devices=[])
        else:
            fork = torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)
        with fork:
            torch.manual_seed(torch_seed)
            model, scale_mod = self._build_model()
            model.to(device)
            scale_mod.to(device)
            data = (per_subject, row_in_subject, sidx, Yt)
            self._train(model, scale_mod, data, train, val, rng, device)
        return self

    def _build_model(self) -> tuple[BrainToEmbeddingModule, LogitScale]:
        n_tokens = self.target_shape_[0] if len(self.target_shape_) == 2 else 1
        model = BrainToEmbeddingModule(
            [self.n_voxels_[s] for s in self.subjects_],
            n_tokens=n_tokens,
            token_dim=self.target_shape_[-1],
            shared_dim=int(self.shared_dim),
            n_blocks=int(self.n_blocks),
            dropout=float(self.dropout),
        )
        return model, LogitScale(float(self.temperature), bool(self.learn_temperature))

    # ------------------------------------------------------------------ predict
    def _unflatten(self, A: np.ndarray) -> np.ndarray:
        return A.reshape((A.shape[0], *self.target_shape_))

    def predict(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Regression-head embeddings in target units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels) or list of 1-D arrays
            Voxel patterns, with each subject's voxel count as in :meth:`fit`.
        subjects : array-like of shape (n_samples,), optional
            Subject labels seen in :meth:`fit` (may be None if fit on one
            subject).

        Returns
        -------
        embeddings : ndarray of float64, shape (n_samples, d) or (n_samples, n_tokens, d)
            As the targets of :meth:`fit`, de-standardised (``target_mean_``
            and ``target_scale_`` undone): the input for a generator.
        """
        reg, _ = self._forward_all(X, subjects)
        return self._unflatten(reg * self.target_scale_ + self.target_mean_)

    def predict_projected(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Projector outputs, for retrieval.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels) or list of 1-D arrays
        subjects : array-like of shape (n_samples,), optional

        Returns
        -------
        projected : ndarray of float64, shape (n_samples, d) or (n_samples, n_tokens, d)
            Trained to point (by cosine, after flattening) at the z-scored
            targets (:meth:`transform_targets`); the scale is arbitrary.
        """
        _, proj = self._forward_all(X, subjects)
        return self._unflatten(proj)

    def transform_targets(self, Y: ArrayLike) -> np.ndarray:
        """Z-score targets with the training statistics (the space of the losses).

        Parameters
        ----------
        Y : array-like of shape (n_samples, d) or (n_samples, n_tokens, d)

        Returns
        -------
        ndarray of float64, same shape as ``Y``
        """
        self._check_fitted()
        Yf = self._check_targets(Y, None)
        return self._unflatten((Yf - self.target_mean_) / self.target_scale_)

    def score(self, X: ArrayLike | Sequence[ArrayLike], Y: ArrayLike, subjects: ArrayLike | None = None) -> float:
        """Top-1 brain → target retrieval accuracy (MindEye2's protocol; higher is better).

        The ``"brain_to_target"`` entry of :meth:`retrieval_scores` (seed 0), as a
        float, so that scikit-learn's model selection can rank fits by it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels) or list of 1-D arrays
        Y : array-like of shape (n_samples, d) or (n_samples, n_tokens, d)
        subjects : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return float(self.retrieval_scores(X, Y, subjects)["brain_to_target"])

    def retrieval_scores(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        Y: ArrayLike,
        subjects: ArrayLike | None = None,
        random_state: None | int | np.random.Generator = 0,
    ) -> dict[str, float]:
        """MindEye2 retrieval (both directions) and cosine similarity of the predictions.

        Retrieval compares the flattened projected outputs
        (:meth:`predict_projected`) with the flattened z-scored targets
        (:meth:`transform_targets`) by cosine similarity, top-1 in both
        directions. With ``n_samples >= 300`` this is MindEye2's protocol:
        300 random pairs, averaged over 30 draws
        (:func:`~brainalign.metrics.identification.retrieval_top1`). With
        fewer samples, one n-way retrieval among all ``n_samples`` (chance
        ``1 / n_samples``), so small test sets are not comparable with the
        published 300-way numbers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_voxels) or list of 1-D arrays
        Y : array-like of shape (n_samples, d) or (n_samples, n_tokens, d)
            True target of each sample.
        subjects : array-like of shape (n_samples,), optional
        random_state : None, int or numpy Generator, default=0
            Seed of the 300-way draws.

        Returns
        -------
        scores : dict
            ``"brain_to_target"``, ``"target_to_brain"``: top-1 retrieval
            accuracy (brain → image and image → brain in MindEye2's terms);
            ``"chance"``: ``1 / n_way``; ``"n_way"``, ``"n_draws"``: int;
            ``"cosine"``: mean over samples of the cosine similarity between
            the flattened :meth:`predict` output and the flattened ``Y``, in
            target units (for embeddings with a large common mean, such as
            CLIP's, this is high even for unrelated pairs).
        """
        reg, proj = self._forward_all(X, subjects)
        n = reg.shape[0]
        Yf = self._check_targets(Y, n)
        if n < 2:
            raise BrainalignError(f"Scoring needs at least 2 samples, got {n}.")
        n_way, n_draws = (N_WAY, N_DRAWS) if n >= N_WAY else (n, 1)
        r = retrieval_top1(
            proj, (Yf - self.target_mean_) / self.target_scale_, n_way=n_way, n_draws=n_draws,
            random_state=random_state,
        )
        pred = reg * self.target_scale_ + self.target_mean_
        num = np.einsum("ij,ij->i", pred, Yf)
        den = np.linalg.norm(pred, axis=1) * np.linalg.norm(Yf, axis=1)
        cos = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return {
            "brain_to_target": r["a_to_b"],
            "target_to_brain": r["b_to_a"],
            "chance": r["chance"],
            "n_way": int(n_way),
            "n_draws": int(n_draws),
            "cosine": float(cos.mean()),
        }
