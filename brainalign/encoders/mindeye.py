"""MindEye2-style brain → embedding model (Scotti et al. 2023, 2024), sized for a CPU.

:class:`BrainToEmbedding` maps one fMRI response pattern (a vector of voxel
betas) to a target embedding, e.g. the CLIP image embedding of the stimulus,
in two forms: a *regression* output in target units (trained with MSE; this is
what drives a generator such as a diffusion prior or an image/caption
decoder) and a *projected* output trained contrastively for retrieval.

Architecture (:class:`BrainToEmbeddingModule`)::

    x (batch, n_voxels_s), z-scored per voxel with subject s's training statistics
      → per-subject Linear(n_voxels_s → shared_dim)       (MindEye2's "ridge" layer)
      → n_blocks × residual [LayerNorm → Linear → GELU → Dropout]
      → LayerNorm → regression head Linear(shared_dim → n_tokens · token_dim)
            = regression output (z-scored target units; MSE)
      → projector, per token: 3 × [LayerNorm → GELU → Linear], hidden shared_dim
            = projected output (contrastive loss, cosine retrieval)

As in MindEye1/2, the projector sits on top of the regression output (token by
token), so the contrastive loss also shapes the regression.

Losses (MindEye1's schedule, kept in MindEye2): for the first
``int(mixco_fraction · epochs)`` epochs, **BiMixCo** -- a random half of each
batch's inputs is mixed, ``x̃_i = λ_i x_i + (1 - λ_i) x_{π(i)}`` with
``λ_i ~ Beta(0.15, 0.15)`` and ``π`` a random permutation (within subject:
voxel spaces differ), and the contrastive loss uses the soft labels ``λ_i`` on
target ``i`` and ``1 - λ_i`` on target ``π(i)``, in both directions
(:func:`bimixco_loss`); then **SoftCLIP** -- soft labels from the targets'
own similarities (:func:`soft_clip_loss`). The total loss is
``contrastive + mse_weight · MSE(regression, target)``.

Differences from MindEye2, by design: far smaller widths (``shared_dim=256``
instead of 4096, projector hidden ``shared_dim`` instead of 2048); pre-norm
residual blocks with a final LayerNorm (MindEye2: Linear → LayerNorm → GELU →
Dropout, post-norm); constant learning rate with AdamW (MindEye2: one-cycle
schedule); a plain MSE regression head instead of the diffusion prior and the
low-level (blurry image) branch; targets z-scored per dimension; the MSE under
BiMixCo regresses the *mixed* target ``λ y_i + (1 - λ) y_π(i)`` (MindEye1's
prior saw the unmixed target); mixing stays within a subject (MindEye2 also
mixes within a subject, but concatenates the per-subject permutations without
offsetting them); and a sample paired with itself (``π(i) = i``) gets soft
label 1, not ``1 - λ`` as in MindEye1's ``mixco_nce``. Training stops early on
a validation loss (see :class:`BrainToEmbedding`); MindEye2 trains a fixed
number of epochs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from brainalign._validation import BrainalignError, check_random_state
from brainalign.checkpoints import (
    checkpoint_paths,
    history_from_json,
    history_to_json,
    write_checkpoint,
)
from brainalign.encoders._base import EstimatorMixin
from brainalign.encoders.contrastive import (
    MAX_LOGIT_SCALE,
    _check_constraint,
    _fmt_subject,
    _is_int,
    _python_label,
    _sort_labels,
)
from brainalign.metrics.identification import retrieval_top1

__all__ = [
    "BrainToEmbedding",
    "BrainToEmbeddingModule",
    "LogitScale",
    "ResidualMLPBlock",
    "bimixco_loss",
    "draw_mixco",
    "soft_clip_loss",
]

logger = logging.getLogger("brainalign")

#: Shape parameter ``a = b`` of the Beta distribution of the mixing weight λ
#: (MindEye1/2's ``mixco(beta=0.15)``: most λ close to 0 or 1).
MIXCO_BETA = 0.15

#: Probability that a sample of a batch is mixed at all (MindEye's ``s_thresh``).
MIXCO_SELECT = 0.5

#: Retrieval of :meth:`BrainToEmbedding.score`: candidates per draw and draws (MindEye2).
N_WAY = 300
N_DRAWS = 30

_FORMAT = "brainalign.BrainToEmbedding"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #
def _as_temperature(temperature: float | torch.Tensor) -> torch.Tensor | float:
    if torch.is_tensor(temperature):
        return temperature
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise BrainalignError(f"'temperature' must be a number > 0, got {temperature!r}.")
    return t


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 2 or pred.shape != target.shape or pred.shape[0] < 2:
        raise BrainalignError(
            "'pred' and 'target' must both have shape (batch, n_features) with batch >= 2, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}."
        )


def bimixco_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    perm: torch.Tensor,
    betas: torch.Tensor,
    temperature: float | torch.Tensor,
    bidirectional: bool = True,
) -> torch.Tensor:
    """BiMixCo: bidirectional contrastive loss with mixup soft labels (MindEye1 ``mixco_nce``).

    Row ``i`` of ``pred`` comes from the mixed input ``λ_i x_i + (1 - λ_i)
    x_{π(i)}``. With ``p̂``, ``t̂`` the L2-normalised rows, ``L = p̂ t̂ᵀ / τ``
    and the soft-label matrix ``P = diag(λ) + (1 - λ) e_π`` (row ``i`` holds
    ``λ_i`` at column ``i`` and ``1 - λ_i`` at column ``π(i)``, summed when
    ``π(i) = i``)::

        brain → target = -1/B Σ_i Σ_j P_ij log softmax_j(L_ij)
        target → brain = -1/B Σ_j Σ_i P_ij log softmax_i(L_ij)
        loss = ½ (brain → target + target → brain)      (bidirectional)

    An unmixed sample has ``λ_i = 1`` (hard label, the CLIP loss).

    Parameters
    ----------
    pred : tensor of shape (batch, n_features)
        Projected brain outputs of the mixed inputs.
    target : tensor of shape (batch, n_features)
        Unmixed target embeddings, row ``i`` paired with input ``i``.
    perm : tensor of int64, shape (batch,)
        The mixing partner ``π(i)`` of each row.
    betas : tensor of shape (batch,)
        The mixing weight ``λ_i`` in [0, 1] of each row.
    temperature : float or 0-d tensor
        ``τ > 0``.
    bidirectional : bool
        Average both directions (MindEye) instead of brain → target only.

    Returns
    -------
    loss : scalar tensor
    """
    _check_pair(pred, target)
    n = pred.shape[0]
    if perm.shape != (n,) or betas.shape != (n,):
        raise BrainalignError(
            f"'perm' and 'betas' must have shape ({n},), got {tuple(perm.shape)} and "
            f"{tuple(betas.shape)}."
        )
    tau = _as_temperature(temperature)
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / tau
    rows = torch.arange(n, device=pred.device)
    betas = betas.to(dtype=logits.dtype, device=logits.device)
    probs = torch.zeros(n, n, dtype=logits.dtype, device=logits.device)
    probs[rows, rows] = betas
    probs = probs.index_put((rows, perm.to(device=logits.device)), 1.0 - betas, accumulate=True)
    loss = -(logits.log_softmax(-1) * probs).sum(-1).mean()
    if bidirectional:
        loss2 = -(logits.T.log_softmax(-1) * probs.T).sum(-1).mean()
        loss = 0.5 * (loss + loss2)
    return loss


def soft_clip_loss(
    pred: torch.Tensor, target: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """SoftCLIP: contrastive loss with soft labels from target-target similarities (MindEye1).

    With ``p̂``, ``t̂`` the L2-normalised rows, ``L = p̂ t̂ᵀ / τ`` and the soft
    labels ``Q = softmax_row(t̂ t̂ᵀ / τ)`` (``Q`` is computed without gradient,
    also through a learnable ``τ``)::

        loss = ½ (-1/B Σ_i Σ_j Q_ij log softmax_j(L_ij)
                  -1/B Σ_j Σ_i Q_ji log softmax_i(L_ij))

    i.e. brain ``i`` should point to the targets in proportion to their
    similarity with target ``i``, and target ``j`` to the brains in proportion
    to the similarity of their targets with ``j``. Identical targets share
    their label mass, so repeated stimuli are not false negatives.

    Parameters
    ----------
    pred : tensor of shape (batch, n_features)
    target : tensor of shape (batch, n_features)
    temperature : float or 0-d tensor
        ``τ > 0``, shared by the logits and the soft labels (as in MindEye).

    Returns
    -------
    loss : scalar tensor
    """
    _check_pair(pred, target)
    tau = _as_temperature(temperature)
    t_hat = F.normalize(target, dim=-1)
    tau_q = tau.detach() if torch.is_tensor(tau) else tau
    with torch.no_grad():
        soft = (t_hat @ t_hat.T / tau_q).softmax(-1)
    logits = F.normalize(pred, dim=-1) @ t_hat.T / tau
    loss1 = -(logits.log_softmax(-1) * soft).sum(-1).mean()
    loss2 = -(logits.T.log_softmax(-1) * soft).sum(-1).mean()
    return 0.5 * (loss1 + loss2)


def draw_mixco(
    groups: np.ndarray,
    rng: np.random.Generator,
    beta: float = MIXCO_BETA,
    select_prob: float = MIXCO_SELECT,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw BiMixCo partners and weights for one batch (MindEye's ``mixco``).

    Parameters
    ----------
    groups : ndarray of int, shape (batch,)
        Group (subject index) of each row; partners are drawn within a group.
    rng : numpy Generator
    beta : float
        ``λ ~ Beta(beta, beta)`` for the mixed rows.
    select_prob : float
        Probability that a row is mixed; the others get ``λ = 1``.

    Returns
    -------
    perm : ndarray of int64, shape (batch,)
        Partner ``π(i)``: a random permutation of the rows of each group (a
        row alone in its group is its own partner).
    betas : ndarray of float32, shape (batch,)
        ``λ_i``; the mixed input is ``λ_i x_i + (1 - λ_i) x_{π(i)}``.
    """
    groups = np.asarray(groups)
    n = groups.shape[0]
    perm = np.arange(n, dtype=np.int64)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        perm[rows] = rows[rng.permutation(rows.size)]
    betas = rng.beta(beta, beta, size=n)
    select = rng.random(n) <= select_prob
    betas = np.where(select, betas, 1.0).astype(np.float32)
    return perm, betas


# --------------------------------------------------------------------------- #
# modules
# --------------------------------------------------------------------------- #
class LogitScale(nn.Module):
    """The contrastive temperature ``τ``, fixed or learnable (CLIP's ``logit_scale``).

    Stores ``log(1 / τ)``; when learnable it is a parameter, clamped after each
    optimiser step to ``log(max(MAX_LOGIT_SCALE, 1 / init_temperature))``.

    Parameters
    ----------
    init_temperature : float
        Initial (or fixed) temperature.
    learnable : bool
        Learn ``τ`` (a parameter) or keep it fixed (a buffer).
    """

    def __init__(self, init_temperature: float, learnable: bool = False):
        super().__init__()
        value = torch.tensor(math.log(1.0 / float(init_temperature)))
        self.learnable = bool(learnable)
        self.max_log = math.log(max(MAX_LOGIT_SCALE, 1.0 / float(init_temperature)))
        if self.learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> torch.Tensor:
        """The temperature ``τ = exp(-log_scale)`` as a 0-d tensor."""
        return (-self.log_scale).exp()

    @property
    def temperature(self) -> float:
        """``τ`` as a float."""
        return float(self().detach())

    @torch.no_grad()
    def clamp_(self) -> None:
        """Cap the scale ``1 / τ`` in place (after each step, as CLIP)."""
        self.log_scale.clamp_(max=self.max_log)


class ResidualMLPBlock(nn.Module):
    """``x + Dropout(GELU(Linear(LayerNorm(x))))``, width preserved.

    Parameters
    ----------
    dim : int
        Width.
    dropout : float
        Dropout probability.
    """

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, dim)`` → ``(batch, dim)``."""
        return x + self.net(x)


class BrainToEmbeddingModule(nn.Module):
    """Per-subject linear layers, a residual MLP backbone, a regression head and a projector.

    Parameters
    ----------
    n_voxels : sequence of int
        Voxel count of each subject, indexed by subject index.
    n_tokens : int
        Target tokens (1 for a single embedding vector).
    token_dim : int
        Dimension of each target token.
    shared_dim : int
        Width of the shared space and of the backbone.
    n_blocks : int
        Residual blocks (0: the subject layer feeds the heads directly).
    dropout : float
        Dropout in the residual blocks.
    projector_dim : int or None
        Hidden width of the projector (None: ``shared_dim``).
    """

    def __init__(
        self,
        n_voxels: Sequence[int],
        n_tokens: int,
        token_dim: int,
        shared_dim: int = 256,
        n_blocks: int = 2,
        dropout: float = 0.15,
        projector_dim: int | None = None,
    ):
        super().__init__()
        counts = [int(v) for v in n_voxels]
        if not counts or min(counts) < 1:
            raise BrainalignError(f"'n_voxels' must be positive ints, got {counts!r}.")
        self.n_tokens = int(n_tokens)
        self.token_dim = int(token_dim)
        h = int(shared_dim)
        p = int(projector_dim) if projector_dim is not None else h
        self.subject_layers = nn.ModuleList(nn.Linear(v, h) for v in counts)
        self.blocks = nn.Sequential(*(ResidualMLPBlock(h, dropout) for _ in range(int(n_blocks))))
        self.norm = nn.LayerNorm(h)
        self.regression_head = nn.Linear(h, self.n_tokens * self.token_dim)
        d = self.token_dim
        self.projector = nn.Sequential(
            nn.LayerNorm(d), nn.GELU(), nn.Linear(d, p),
            nn.LayerNorm(p), nn.GELU(), nn.Linear(p, p),
            nn.LayerNorm(p), nn.GELU(), nn.Linear(p, d),
        )

    def forward(
        self, xs: Sequence[torch.Tensor], subjects: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed the samples of one or more subjects.

        Parameters
        ----------
        xs : sequence of tensors of shape (n_s, n_voxels_s)
            One block of samples per entry, all from subject ``subjects[k]``.
        subjects : sequence of int
            Subject index of each block.

        Returns
        -------
        regression, projected : tensors of shape (Σ n_s, n_tokens · token_dim)
            Rows in the order of the blocks.
        """
        h = torch.cat([self.subject_layers[s](x) for x, s in zip(xs, subjects)], dim=0)
        h = self.norm(self.blocks(h))
        reg = self.regression_head(h)
        proj = self.projector(reg.view(-1, self.n_tokens, self.token_dim))
        return reg, proj.reshape(reg.shape)


# --------------------------------------------------------------------------- #
# data helpers
# --------------------------------------------------------------------------- #
def _as_samples(X: Any, name: str) -> list[np.ndarray] | np.ndarray:
    """Validate voxel patterns: a (n, n_voxels) float32 array or a list of 1-D float32 arrays."""
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise BrainalignError(
                f"'{name}' must be a non-empty array of shape (n_samples, n_voxels) or a list of "
                f"1-D (n_voxels,) arrays, got shape {arr.shape}."
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise BrainalignError(
                f"'{name}' contains NaN or infinite values, the first at sample {i}, voxel {j}."
            )
        return arr
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise BrainalignError(
            f"'{name}' must be an array (n_samples, n_voxels) or a list of 1-D (n_voxels,) "
            f"arrays, got {type(X).__name__}."
        )
    if len(X) == 0:
        raise BrainalignError(f"'{name}' must not be empty.")
    out = []
    for i, x in enumerate(X):
        a = np.asarray(x, dtype=np.float32)
        if a.ndim != 1 or a.shape[0] == 0:
            raise BrainalignError(
                f"'{name}[{i}]' must be a non-empty 1-D array (n_voxels,), got shape {a.shape}."
            )
        if not np.all(np.isfinite(a)):
            raise BrainalignError(f"'{name}[{i}]' contains NaN or infinite values.")
        out.append(a)
    return out


def _widths(X: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(X, list):
        return np.array([x.shape[0] for x in X], dtype=np.int64)
    return np.full(X.shape[0], X.shape[1], dtype=np.int64)


def _stack(X: list[np.ndarray] | np.ndarray, rows: np.ndarray) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X[rows]
    return np.stack([X[i] for i in rows]) if rows.size else np.zeros((0, 0), np.float32)


def _labels(subjects: Any, n: int) -> list[Hashable]:
    if subjects is None:
        return [None] * n
    arr = np.asarray(subjects, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise BrainalignError(
            f"'subjects' must have one label per sample ({n}), got shape {arr.shape}."
        )
    return [_python_label(v) for v in arr]


def _stratified_split(
    subject_idx: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``round(val_fraction · n_s)`` random samples of every subject."""
    n = subject_idx.shape[0]
    if val_fraction == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    val = []
    for s in np.unique(subject_idx):
        rows = np.flatnonzero(subject_idx == s)
        k = min(round(val_fraction * rows.size), rows.size - 2)
        val.append(rows[rng.permutation(rows.size)[: max(k, 0)]])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train = np.setdiff1d(np.arange(n), val_idx).astype(np.int64)
    if val_idx.size < 2:
        raise BrainalignError(
            f"The validation split holds {val_idx.size} sample(s) (n_samples={n}, "
            f"val_fraction={val_fraction}); it needs at least 2 (use more data, a larger "
            "val_fraction, or val_fraction=0)."
        )
    return train, val_idx


# --------------------------------------------------------------------------- #
# estimator
# --------------------------------------------------------------------------- #
class BrainToEmbedding(EstimatorMixin):
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

    _parameter_constraints: ClassVar[dict[str, tuple]] = {
        "shared_dim": ("int", 1, None),
        "n_blocks": ("int", 0, None),
        "dropout": ("real", 0.0, 1.0, True),
        "epochs": ("int", 1, None),
        "batch_size": ("int", 2, None),
        "lr": ("positive",),
        "weight_decay": ("real", 0.0, None, False),
        "mixco_fraction": ("real", 0.0, 1.0, False),
        "mse_weight": ("real", 0.0, None, False),
        "temperature": ("positive",),
        "learn_temperature": ("bool",),
        "val_fraction": ("real", 0.0, 1.0, True),
        "patience": ("int_or_none", 1, None),
        "random_state": ("random_state",),
        "verbose": ("bool",),
        "device": ("device",),
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

    def _validate_params(self) -> None:
        name = type(self).__name__
        for key, spec in self._parameter_constraints.items():
            _check_constraint(name, key, getattr(self, key), spec)

    # ------------------------------------------------------------------ data

    def _check_targets(self, Y: ArrayLike, n: int | None, name: str = "Y") -> np.ndarray:
        """Check targets against ``target_shape_``; return them flat, float64 (n, n_targets_)."""
        Yf = np.asarray(Y, dtype=np.float64)
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
        Yf = np.asarray(Y, dtype=np.float64)
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
            raise BrainalignError(f"'X' must hold at least 4 samples, got {n}.")
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

    @staticmethod
    def _gather(
        batch: np.ndarray, data: tuple, device: torch.device
    ) -> tuple[np.ndarray, list[tuple[int, torch.Tensor]], torch.Tensor]:
        """Sort a batch by subject; return (sorted indices, per-subject input blocks, targets)."""
        per_subject, row_in_subject, sidx, Yt = data
        batch = batch[np.argsort(sidx[batch], kind="stable")]
        blocks = []
        for si in np.unique(sidx[batch]):
            rows = batch[sidx[batch] == si]
            x = per_subject[si][torch.from_numpy(row_in_subject[rows])]
            blocks.append((int(si), x.to(device)))
        return batch, blocks, Yt[torch.from_numpy(batch)].to(device)

    def _val_metrics(
        self, model: BrainToEmbeddingModule, data: tuple, val: np.ndarray, device: torch.device
    ) -> tuple[float, float, float]:
        model.eval()
        with torch.no_grad():
            _, blocks, y = self._gather(val, data, device)
            reg, proj = model([b for _, b in blocks], [s for s, _ in blocks])
            mse = float(F.mse_loss(reg, y))
            con = float(soft_clip_loss(proj, y, float(self.temperature)))
        r = retrieval_top1(proj.cpu().numpy(), y.cpu().numpy(), n_way=val.size, n_draws=1)
        return con + float(self.mse_weight) * mse, mse, 0.5 * (r["a_to_b"] + r["b_to_a"])

    def _train(
        self,
        model: BrainToEmbeddingModule,
        scale_mod: LogitScale,
        data: tuple,
        train: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        from tqdm.auto import tqdm

        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (decay if name.endswith("weight") and p.ndim == 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": float(self.weight_decay)},
            {"params": no_decay + list(scale_mod.parameters()), "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=float(self.lr))
        sidx = data[2]
        n_batches = max(1, math.ceil(train.size / int(self.batch_size)))
        mse_weight = float(self.mse_weight)
        history: dict[str, list] = {
            k: []
            for k in ("epoch", "phase", "train_loss", "val_loss", "val_mse", "val_retrieval",
                      "temperature")
        }
        best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
        bar = tqdm(
            range(1, int(self.epochs) + 1),
            desc="BrainToEmbedding",
            unit="epoch",
            disable=not self.verbose,
        )
        for epoch in bar:
            phase = "bimixco" if epoch <= self.n_mixco_epochs_ else "softclip"
            model.train()
            order = train[rng.permutation(train.size)]
            batches = [b for b in np.array_split(order, n_batches) if b.size >= 2]
            total, count = 0.0, 0
            for b in batches:
                b, blocks, y = self._gather(b, data, device)
                tau = scale_mod()
                if phase == "bimixco":
                    perm_np, betas_np = draw_mixco(sidx[b], rng)
                    perm = torch.from_numpy(perm_np).to(device)
                    betas = torch.from_numpy(betas_np).to(device)
                    xs, start = [], 0
                    for _, x in blocks:  # partners are in the same subject block
                        stop = start + x.shape[0]
                        lam = betas[start:stop, None]
                        xs.append(lam * x + (1 - lam) * x[perm[start:stop] - start])
                        start = stop
                    reg, proj = model(xs, [s for s, _ in blocks])
                    contrastive = bimixco_loss(proj, y, perm, betas, tau)
                    y_reg = betas[:, None] * y + (1 - betas[:, None]) * y[perm]
                else:
                    reg, proj = model([x for _, x in blocks], [s for s, _ in blocks])
                    contrastive = soft_clip_loss(proj, y, tau)
                    y_reg = y
                loss = contrastive + mse_weight * F.mse_loss(reg, y_reg)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scale_mod.learnable:
                    scale_mod.clamp_()
                total += float(loss.detach()) * b.size
                count += b.size
            train_loss = total / count
            if val.size:
                val_loss, val_mse, val_ret = self._val_metrics(model, data, val, device)
            else:
                val_loss = val_mse = val_ret = math.nan
            for k, v in (("epoch", epoch), ("phase", phase), ("train_loss", train_loss),
                         ("val_loss", val_loss), ("val_mse", val_mse),
                         ("val_retrieval", val_ret), ("temperature", scale_mod.temperature)):
                history[k].append(v)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if not val.size:
                best_epoch = epoch
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = (
                    {k: v.detach().clone() for k, v in model.state_dict().items()},
                    {k: v.detach().clone() for k, v in scale_mod.state_dict().items()},
                )
            else:
                since_best += 1
                if self.patience is not None and since_best >= self.patience:
                    logger.info(
                        "BrainToEmbedding: early stop at epoch %d (best %d, val loss %.4f).",
                        epoch, best_epoch, best_loss,
                    )
                    break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state[0])
            scale_mod.load_state_dict(best_state[1])
        model.eval()
        self.model_ = model
        self.logit_scale_ = scale_mod
        self.temperature_ = scale_mod.temperature
        self.history_ = history
        self.best_epoch_ = int(best_epoch)

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

    def score(
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

    # ------------------------------------------------------------------ persistence
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
        params["random_state"] = int(rs) if _is_int(rs) else None  # a Generator is not serialisable
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
