"""The network of :class:`~brainalign.encoders.mindeye.BrainToEmbedding`.

Per-subject linear layers into a shared space, residual MLP blocks, the
regression head and the contrastive projector
(:class:`BrainToEmbeddingModule`), and the temperature (:class:`LogitScale`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from brainalign._validation import BrainalignError
from brainalign.encoders.contrastive.loss import MAX_LOGIT_SCALE


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
