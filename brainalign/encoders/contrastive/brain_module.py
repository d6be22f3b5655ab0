"""The network of :class:`~brainalign.encoders.contrastive.ContrastiveEncoder`.

The brain module and its layers: spatial attention over 2-D sensor positions
(M/EEG) or a per-subject channel fusion (sEEG), the per-subject linear layer,
the residual dilated convolution blocks and the temporal head; see the
architecture in :mod:`brainalign.encoders.contrastive`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from brainalign._validation import BrainalignError

#: Margin of the Fourier features: positions in [0, 1] are embedded as if
#: they lay in [-margin, 1 + margin], so that the periodic features do not
#: identify the opposite edges of the layout (brainmagick's ``FourierEmb``).
FOURIER_MARGIN = 0.2


def _as_positions_tensor(positions: Any, name: str) -> torch.Tensor:
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float32))
    if pos.ndim != 3 or pos.shape[-1] != 2:
        raise BrainalignError(
            f"'{name}' must have shape (n_subjects_or_batch, n_channels, 2), got {tuple(pos.shape)}."
        )
    return pos


class SpatialAttention(nn.Module):
    """Softmax attention over sensors, driven by their 2-D positions.

    Each sensor position ``p = (x, y)`` in ``[0, 1]²`` is embedded by Fourier
    features on a ``n_freqs × n_freqs`` frequency grid::

        φ(p) = [cos(2π (f_x x' + f_y y') / w), sin(2π (f_x x' + f_y y') / w)]
        f_x, f_y ∈ {0, …, n_freqs - 1},  x' = x + m,  y' = y + m,  w = 1 + 2m

    with margin ``m = 0.2`` (dimension ``2 n_freqs²``). A learned linear map
    (no bias) turns ``φ`` into one logit per output head and sensor; a softmax
    over the sensors gives each head's weights, and head ``o`` outputs the
    weighted sum of the sensors' signals::

        w[b, o, c] = softmax_c(heads[o] · φ(p[b, c]))
        out[b, o, t] = Σ_c w[b, o, c] x[b, c, t]

    Because the weights are a function of the positions only, the same heads
    apply to any sensor layout (subjects, devices), and the output does not
    depend on the order of the channels.

    Channels whose position is not finite (NaN: padding or a missing sensor)
    or whose ``mask`` entry is False get weight exactly 0. During training,
    *spatial dropout* removes, for each window independently, every valid
    sensor within Euclidean distance ``spatial_dropout`` (position units, the
    layout's [0, 1] scale) of a center drawn uniformly in ``[0, 1]²``; if that
    would remove every sensor of a window, nothing is removed for it. The
    softmax renormalises over the remaining sensors. In eval mode nothing is
    dropped.

    Parameters
    ----------
    n_out : int
        Number of output heads (virtual channels).
    n_freqs : int
        Frequencies per axis of the Fourier features.
    spatial_dropout : float
        Radius of the dropped disc, in position units (0 disables it).
    positions : array-like of shape (n_subjects, n_channels, 2), optional
        Per-subject sensor positions (NaN rows for padding), kept as the buffer
        ``subject_positions`` so that :meth:`forward` can look them up by
        subject index.

    Notes
    -----
    Randomness (the dropped discs) comes from torch's global generator;
    :class:`ContrastiveEncoder` seeds it inside a forked RNG state.
    """

    def __init__(
        self,
        n_out: int,
        n_freqs: int = 8,
        spatial_dropout: float = 0.0,
        positions: ArrayLike | None = None,
    ):
        super().__init__()
        self.n_out = int(n_out)
        self.n_freqs = int(n_freqs)
        self.spatial_dropout = float(spatial_dropout)
        dim = 2 * self.n_freqs**2
        self.heads = nn.Parameter(torch.randn(self.n_out, dim) / math.sqrt(dim))
        width = 1.0 + 2.0 * FOURIER_MARGIN
        freqs = 2.0 * math.pi * torch.arange(self.n_freqs, dtype=torch.float32) / width
        self.register_buffer("freqs", freqs, persistent=False)
        if positions is not None:
            self.register_buffer(
                "subject_positions", _as_positions_tensor(positions, "positions")
            )
        else:
            self.subject_positions = None

    def fourier_features(self, positions: torch.Tensor) -> torch.Tensor:
        """Fourier features of positions ``(..., 2)`` → ``(..., 2 n_freqs²)``."""
        pos = positions + FOURIER_MARGIN
        fx = self.freqs[:, None]  # (F, 1)
        fy = self.freqs[None, :]  # (1, F)
        loc = pos[..., 0, None, None] * fx + pos[..., 1, None, None] * fy  # (..., F, F)
        loc = loc.flatten(-2)
        return torch.cat([torch.cos(loc), torch.sin(loc)], dim=-1)

    def _resolve_positions(
        self, positions: torch.Tensor | None, subjects: torch.Tensor | None
    ) -> torch.Tensor:
        if positions is not None:
            return positions
        if self.subject_positions is None or subjects is None:
            raise BrainalignError(
                "SpatialAttention needs 'positions' (batch, n_channels, 2), or 'subjects' "
                "together with per-subject positions given at construction."
            )
        return self.subject_positions[subjects]

    def weights(
        self,
        positions: torch.Tensor | None = None,
        subjects: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention weights over channels.

        Parameters
        ----------
        positions : tensor of shape (batch, n_channels, 2), optional
            Sensor positions in [0, 1]²; NaN marks a padded or missing channel.
        subjects : tensor of int64, shape (batch,), optional
            Subject indices, used to look up ``subject_positions`` when
            ``positions`` is None.
        mask : tensor of bool, shape (batch, n_channels), optional
            False marks channels to ignore.

        Returns
        -------
        weights : tensor of shape (batch, n_out, n_channels)
            Non-negative, summing to 1 over channels; 0 on invalid channels.
            Spatial dropout applies in training mode.
        """
        pos = self._resolve_positions(positions, subjects)
        valid = torch.isfinite(pos).all(dim=-1)
        if mask is not None:
            valid = valid & mask.to(torch.bool)
        pos = torch.where(valid[..., None], pos, torch.zeros_like(pos))
        emb = self.fourier_features(pos)  # (B, C, D)
        scores = torch.einsum("bcd,od->boc", emb, self.heads)
        if self.training and self.spatial_dropout > 0:
            center = torch.rand(pos.shape[0], 1, 2, device=pos.device, dtype=pos.dtype)
            banned = ((pos - center).norm(dim=-1) <= self.spatial_dropout) & valid
            kept = valid & ~banned
            # never drop every sensor of a window
            keep_all = ~kept.any(dim=1, keepdim=True)
            valid = torch.where(keep_all, valid, kept)
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor | None = None,
        subjects: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mix channels into ``n_out`` heads.

        Parameters
        ----------
        x : tensor of shape (batch, n_channels, n_times)
            Signals (padded channels may hold anything finite).
        positions, subjects, mask
            See :meth:`weights`.

        Returns
        -------
        out : tensor of shape (batch, n_out, n_times)
        """
        w = self.weights(positions, subjects, mask)
        return torch.einsum("bct,boc->bot", x, w)


class ChannelFusion(nn.Module):
    """Per-subject linear map of the channels, for sEEG (contacts differ).

    Subject ``s`` with ``n_channels[s]`` contacts gets its own weight matrix
    ``W_s`` of shape ``(n_channels[s], n_out)`` and bias ``b_s``::

        out[b, o, t] = Σ_{c < n_channels[s_b]} W_{s_b}[c, o] x[b, c, t] + b_{s_b}[o]

    Inputs are zero-padded to ``max(n_channels)``; padded channels are ignored
    (their weights are masked to 0).

    Parameters
    ----------
    n_channels : sequence of int
        Number of channels of each subject, indexed by subject index.
    n_out : int
        Number of output channels.
    """

    def __init__(self, n_channels: Sequence[int], n_out: int):
        super().__init__()
        counts = [int(c) for c in n_channels]
        if not counts or min(counts) < 1:
            raise BrainalignError(
                f"'n_channels' must be positive ints, got {counts!r}."
            )
        n_max = max(counts)
        weight = torch.zeros(len(counts), n_max, int(n_out))
        mask = torch.zeros(len(counts), n_max)
        for s, c in enumerate(counts):
            weight[s, :c] = torch.randn(c, int(n_out)) / math.sqrt(c)
            mask[s, :c] = 1.0
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(len(counts), int(n_out)))
        self.register_buffer("channel_mask", mask)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> torch.Tensor:
        """Map ``x (batch, max_channels, n_times)`` → ``(batch, n_out, n_times)``."""
        w = self.weight[subjects] * self.channel_mask[subjects][..., None]  # (B, C, O)
        return torch.einsum("bct,bco->bot", x, w) + self.bias[subjects][..., None]


class SubjectLayers(nn.Module):
    """Per-subject 1×1 linear map ``n_in → n_in``, initialised at the identity.

    ``out[b, :, t] = W_{s_b}ᵀ x[b, :, t]`` (no bias), one matrix per subject;
    at initialisation every ``W_s`` is the identity, so the layer starts as a
    no-op and learns subject-specific re-mixing.

    Parameters
    ----------
    n_in : int
        Number of channels.
    n_subjects : int
        Number of subjects.
    """

    def __init__(self, n_in: int, n_subjects: int):
        super().__init__()
        eye = torch.eye(int(n_in))[None].repeat(int(n_subjects), 1, 1)
        self.weight = nn.Parameter(eye)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> torch.Tensor:
        """Map ``x (batch, n_in, n_times)`` with each window's subject matrix."""
        return torch.einsum("bct,bcd->bdt", x, self.weight[subjects])


class _ConvBlock(nn.Module):
    """Conv1d (dilated) → BatchNorm → GELU → dropout, residual, optional 1×1 GLU."""

    def __init__(
        self,
        chin: int,
        chout: int,
        kernel_size: int,
        dilation: int,
        dropout: float,
        glu: bool,
    ):
        super().__init__()
        self.conv = nn.Conv1d(
            chin,
            chout,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
        )
        self.norm = nn.BatchNorm1d(chout)
        self.drop = nn.Dropout(dropout)
        self.residual = chin == chout
        self.glu = nn.Conv1d(chout, 2 * chout, 1) if glu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(F.gelu(self.norm(self.conv(x))))
        if self.residual:
            y = y + x
        if self.glu is not None:
            y = F.glu(self.glu(y), dim=1)
        return y


class BrainModule(nn.Module):
    """Front end → subject layers → dilated residual convolutions → one vector per window.

    Parameters
    ----------
    n_channels : sequence of int
        Channels of each subject (indexed by subject index); inputs are
        zero-padded to the maximum.
    n_times : int
        Samples per window.
    n_targets : int
        Dimension of the output embedding.
    front_end : {"spatial_attention", "channel_fusion"}
        :class:`SpatialAttention` (needs ``positions``) or
        :class:`ChannelFusion`.
    positions : array-like of shape (n_subjects, max_channels, 2), optional
        Sensor positions in [0, 1]² (NaN for padding), for the spatial
        attention.
    spatial_channels : int
        Output channels of the front end (attention heads).
    n_freqs : int
        Fourier frequencies per axis (spatial attention).
    spatial_dropout : float
        Spatial dropout radius, position units (spatial attention).
    hidden : int
        Channels of the convolutional stack.
    depth : int
        Number of convolutional blocks; block ``k`` has dilation
        ``2 ** (k % 5)`` (1, 2, 4, 8, 16, 1, …) and blocks 2, 4, … are
        followed by a 1×1 convolution to ``2 hidden`` channels and a GLU.
    kernel_size : int
        Odd kernel size of the convolutions.
    dropout : float
        Dropout after each block's activation and before the final linear map.
    n_time_bins : int or None
        The head averages its (batch, hidden, n_times) map over
        ``n_time_bins`` equal time bins before flattening (``None``: no
        pooling, flatten all ``n_times`` samples).

    Notes
    -----
    Each block is ``y = dropout(GELU(BN(conv(x)))) (+ x if the channel counts
    match)``, as brainmagick's ``ConvSequence`` with ``batch_norm``, ``gelu``
    and ``skip``. The head is ``Linear(flatten(pool(GELU(conv1x1(h)))))``:
    binning keeps the coarse time course (when after the onset the response
    happens) while keeping the final linear layer at ``hidden × n_time_bins ×
    n_targets`` weights instead of ``hidden × n_times × n_targets``.
    """

    def __init__(
        self,
        n_channels: Sequence[int],
        n_times: int,
        n_targets: int,
        *,
        front_end: str = "spatial_attention",
        positions: ArrayLike | None = None,
        spatial_channels: int = 64,
        n_freqs: int = 8,
        spatial_dropout: float = 0.1,
        hidden: int = 64,
        depth: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        n_time_bins: int | None = 12,
    ):
        super().__init__()
        n_channels = [int(c) for c in n_channels]
        self.front_end_name = front_end
        if front_end == "spatial_attention":
            if positions is None:
                raise BrainalignError(
                    "front_end='spatial_attention' needs 'positions'."
                )
            self.front_end = SpatialAttention(
                spatial_channels, n_freqs, spatial_dropout, positions
            )
        elif front_end == "channel_fusion":
            self.front_end = ChannelFusion(n_channels, spatial_channels)
        else:
            raise BrainalignError(
                f"Invalid value for the 'front_end' parameter: {front_end!r}. Allowed values are "
                "'spatial_attention', 'channel_fusion'."
            )
        self.subject_layers = SubjectLayers(spatial_channels, len(n_channels))
        blocks = []
        chin = spatial_channels
        for k in range(depth):
            blocks.append(
                _ConvBlock(
                    chin,
                    hidden,
                    kernel_size,
                    2 ** (k % 5),
                    dropout,
                    glu=(k + 1) % 2 == 0,
                )
            )
            chin = hidden
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = nn.Conv1d(hidden, hidden, 1)
        bins = n_times if n_time_bins is None else int(n_time_bins)
        self.pool = (
            nn.AdaptiveAvgPool1d(bins) if n_time_bins is not None else nn.Identity()
        )
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * bins, n_targets)

    def forward(
        self,
        x: torch.Tensor,
        subjects: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed windows.

        Parameters
        ----------
        x : tensor of shape (batch, max_channels, n_times)
        subjects : tensor of int64, shape (batch,)
            Subject index of each window.
        positions : tensor of shape (batch, max_channels, 2), optional
            Overrides the stored per-subject positions (spatial attention).

        Returns
        -------
        embedding : tensor of shape (batch, n_targets)
        """
        if isinstance(self.front_end, SpatialAttention):
            h = self.front_end(x, positions=positions, subjects=subjects)
        else:
            h = self.front_end(x, subjects)
        h = self.subject_layers(h, subjects)
        h = self.blocks(h)
        h = self.pool(F.gelu(self.head_conv(h)))
        return self.head(self.head_drop(h.flatten(1)))
