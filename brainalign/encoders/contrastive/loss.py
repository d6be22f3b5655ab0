"""The contrastive loss of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

:class:`ClipLoss`, CLIP's in-batch contrastive loss with a learnable
temperature, and CLIP's constants for that temperature (also used by
:mod:`brainalign.encoders.mindeye`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from brainalign._validation import BrainalignError

#: CLIP's cap on the logit scale (the inverse temperature).
MAX_LOGIT_SCALE = 100.0

#: CLIP's initial temperature (logit scale 1 / 0.07 ≈ 14.3).
INIT_TEMPERATURE = 0.07


class ClipLoss(nn.Module):
    """CLIP-style contrastive loss with in-batch negatives and a learnable temperature.

    With ``b̂_i`` and ``ŷ_j`` the L2-normalised brain outputs and targets of a
    batch of ``B`` windows and ``s = min(exp(logit_scale), 100)``::

        L_ij = s · b̂_i · ŷ_j
        loss = -1/B Σ_i log softmax_j(L_ij)[j = i]            (brain → target)
        symmetric: ½ (brain → target + target → brain, i.e. the softmax over i)

    The brain → target direction is Défossez et al.'s (each brain window must
    pick its stimulus among the batch's). ``logit_scale`` starts at
    ``log(1 / 0.07)`` as in CLIP.

    Parameters
    ----------
    symmetric : bool
        Average both directions (CLIP) instead of brain → target only.
    init_temperature : float
        Initial temperature ``1 / s``.
    max_logit_scale : float
        Cap on ``s`` (CLIP: 100).
    """

    def __init__(
        self,
        symmetric: bool = False,
        init_temperature: float = INIT_TEMPERATURE,
        max_logit_scale: float = MAX_LOGIT_SCALE,
    ):
        super().__init__()
        self.symmetric = bool(symmetric)
        self.max_logit_scale = float(max_logit_scale)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    @property
    def scale(self) -> torch.Tensor:
        """The multiplier ``s = min(exp(logit_scale), max_logit_scale)``."""
        return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    @property
    def temperature(self) -> float:
        """``1 / s``."""
        return float(1.0 / self.scale.detach())

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp ``logit_scale`` in place to ``log(max_logit_scale)`` (after each step, as CLIP)."""
        self.logit_scale.clamp_(max=math.log(self.max_logit_scale))

    def logits(self, brain: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities, shape (batch, batch), rows = brain, columns = targets."""
        return self.scale * F.normalize(brain, dim=-1) @ F.normalize(target, dim=-1).T

    def forward(
        self,
        brain: torch.Tensor,
        target: torch.Tensor,
        target_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a batch.

        Parameters
        ----------
        brain : tensor of shape (batch, n_targets)
            Brain-module outputs.
        target : tensor of shape (batch, n_targets)
            Target embeddings, row ``i`` paired with ``brain[i]``.
        target_ids : tensor of int64, shape (batch,), optional
            Identity of each target (e.g. the word); another window of the
            batch with the same id is not used as a negative (its logit is
            masked out), so that repeated stimuli do not count against each
            other.

        Returns
        -------
        loss : scalar tensor
        """
        if brain.shape != target.shape or brain.ndim != 2:
            raise BrainalignError(
                f"'brain' and 'target' must both have shape (batch, n_targets), got "
                f"{tuple(brain.shape)} and {tuple(target.shape)}."
            )
        logits = self.logits(brain, target)
        n = logits.shape[0]
        labels = torch.arange(n, device=logits.device)
        if target_ids is not None:
            same = target_ids[:, None] == target_ids[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
        loss = F.cross_entropy(logits, labels)
        if self.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
        return loss
