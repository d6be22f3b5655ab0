"""The contrastive losses of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

BiMixCo (:func:`bimixco_loss`, with the mixing drawn by :func:`draw_mixco`)
for the first epochs and SoftCLIP (:func:`soft_clip_loss`) after, as in
MindEye1/2; see :mod:`brainalign.encoders.mindeye`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from brainalign._validation import BrainalignError

#: Shape parameter ``a = b`` of the Beta distribution of the mixing weight λ
#: (MindEye1/2's ``mixco(beta=0.15)``: most λ close to 0 or 1).
MIXCO_BETA = 0.15

#: Probability that a sample of a batch is mixed at all (MindEye's ``s_thresh``).
MIXCO_SELECT = 0.5


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
