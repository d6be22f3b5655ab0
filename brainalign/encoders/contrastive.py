"""Contrastive brain encoder after Défossez et al. (2023), "brainmagick".

A convolutional *brain module* maps a window of M/EEG or sEEG signals
``(n_channels, n_times)`` to one embedding per window, and is trained with a
CLIP-style contrastive loss to point at the embedding of the stimulus shown in
that window (e.g. the word at the window's onset), the other windows of the
batch serving as negatives. Evaluation ranks all unique held-out targets by
cosine similarity (top-k identification, :func:`~brainalign.metrics.
identification.identification_topk`).

Architecture (:class:`BrainModule`)::

    x (batch, n_channels_s, n_times)
      → front end:  SpatialAttention (M/EEG: softmax over sensors, driven by
                    Fourier features of their 2-D positions) or ChannelFusion
                    (sEEG: one linear map per subject, contacts differ)
                    → (batch, spatial_channels, n_times)
      → SubjectLayers: per-subject 1×1 linear map, identity at init
      → depth × residual dilated Conv1d blocks (kernel 3, dilation 1, 2, 4, 8,
        16, 1, …; BatchNorm → GELU → dropout; a 1×1 GLU after every second
        block) → (batch, hidden, n_times)
      → temporal head: 1×1 conv → GELU → average pooling into n_time_bins
        bins → flatten → dropout → linear → (batch, n_targets)

Differences from brainmagick, by design: the head returns one vector per
window (the targets are word embeddings, not a time series); the spatial
dropout draws one disc per window instead of one per batch; the GLU is a 1×1
convolution (brainmagick's ``glu_context=1`` uses kernel 3); the subject layer
starts at the exact identity (brainmagick also scales it by
``1/sqrt(n_channels)``); there is no ``initial_linear`` 1×1 layer between the
spatial attention and the subject layer. The loss has a learnable
temperature as in CLIP (brainmagick's clip loss has none).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from numbers import Integral, Real
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
    finite_or_none,
    history_from_json,
    history_to_json,
    write_checkpoint,
)
from brainalign.encoders._base import EstimatorMixin
from brainalign.metrics.identification import identification_topk

__all__ = [
    "BrainModule",
    "ChannelFusion",
    "ClipLoss",
    "ContrastiveEncoder",
    "SpatialAttention",
    "SubjectLayers",
]

logger = logging.getLogger("brainalign")

#: Margin of the Fourier features: positions in [0, 1] are embedded as if
#: they lay in [-margin, 1 + margin], so that the periodic features do not
#: identify the opposite edges of the layout (brainmagick's ``FourierEmb``).
FOURIER_MARGIN = 0.2

#: CLIP's cap on the logit scale (the inverse temperature).
MAX_LOGIT_SCALE = 100.0

#: CLIP's initial temperature (logit scale 1 / 0.07 ≈ 14.3).
INIT_TEMPERATURE = 0.07

_FORMAT = "brainalign.ContrastiveEncoder"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- #
# modules
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# parameter validation (constraints are data)
# --------------------------------------------------------------------------- #
def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_constraint(est: str, name: str, value: Any, spec: tuple) -> None:
    kind = spec[0]
    ok = True
    if kind == "options":
        ok = isinstance(value, str) and value in spec[1]
        allowed = ", ".join(repr(a) for a in spec[1])
    elif kind in ("int", "int_or_none"):
        low, high = spec[1], spec[2]
        if kind == "int_or_none" and value is None:
            return
        ok = _is_int(value) and value >= low and (high is None or value <= high)
        allowed = f"an int in [{low}, {high if high is not None else 'inf'}]"
        if kind == "int_or_none":
            allowed += " or None"
    elif kind == "odd_int":
        ok = _is_int(value) and value >= spec[1] and value % 2 == 1
        allowed = f"an odd int >= {spec[1]}"
    elif kind == "real":
        low, high, high_open = spec[1], spec[2], spec[3]
        ok = _is_real(value) and value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        allowed = f"a number in [{low}, {high if high is not None else 'inf'}{')' if high_open else ']'}"
    elif kind == "positive":
        ok = _is_real(value) and value > 0
        allowed = "a number > 0"
    elif kind == "bool":
        ok = isinstance(value, (bool, np.bool_))
        allowed = "True or False"
    elif kind == "random_state":
        ok = value is None or _is_int(value) or isinstance(value, np.random.Generator)
        allowed = "None, an int or a numpy Generator"
    elif kind == "device":
        try:
            dev = torch.device(value)
            ok = dev.type != "cuda" or torch.cuda.is_available()
        except (TypeError, RuntimeError, ValueError):
            ok = False
        allowed = "a torch device such as 'cpu' or 'cuda:0' (CUDA must be available)"
    else:  # pragma: no cover - programming error
        raise AssertionError(kind)
    if not ok:
        raise BrainalignError(
            f"The '{name}' parameter of {est} must be {allowed}; got {value!r}."
        )


# --------------------------------------------------------------------------- #
# data validation helpers
# --------------------------------------------------------------------------- #
def _python_label(v: Any) -> Hashable:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, str) or _is_int(v):
        return v
    raise BrainalignError(
        f"'subjects' labels must be ints or strings (they are saved as JSON), got "
        f"{type(v).__name__} ({v!r})."
    )


def _as_windows(X: Any, name: str = "X") -> tuple[list[np.ndarray] | np.ndarray, int]:
    """Validate windows; return (array (n, C, T) or list of (C_i, T) arrays, n_times)."""
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 3:
            raise BrainalignError(
                f"'{name}' must be an array of shape (n_windows, n_channels, n_times) or a list "
                f"of (n_channels, n_times) arrays, got shape {arr.shape}."
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
            raise BrainalignError(f"'{name}' must not be empty, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            idx = np.argwhere(~np.isfinite(arr))[0]
            raise BrainalignError(
                f"'{name}' contains NaN or infinite values, the first at window {idx[0]}, "
                f"channel {idx[1]}, sample {idx[2]}."
            )
        return arr, arr.shape[2]
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise BrainalignError(
            f"'{name}' must be an array (n_windows, n_channels, n_times) or a list of "
            f"(n_channels, n_times) arrays, got {type(X).__name__}."
        )
    if len(X) == 0:
        raise BrainalignError(f"'{name}' must not be empty.")
    out = []
    n_times = None
    for i, w in enumerate(X):
        a = np.asarray(w, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise BrainalignError(
                f"'{name}[{i}]' must be a non-empty 2-D array (n_channels, n_times), got shape "
                f"{a.shape}."
            )
        if n_times is None:
            n_times = a.shape[1]
        elif a.shape[1] != n_times:
            raise BrainalignError(
                f"All windows of '{name}' must have the same number of samples; '{name}[0]' has "
                f"{n_times} and '{name}[{i}]' has {a.shape[1]}."
            )
        if not np.all(np.isfinite(a)):
            raise BrainalignError(f"'{name}[{i}]' contains NaN or infinite values.")
        out.append(a)
    return out, int(n_times)


def _n_windows(X: list[np.ndarray] | np.ndarray) -> int:
    return len(X) if isinstance(X, list) else X.shape[0]


def _window_channels(X: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(X, list):
        return np.array([w.shape[0] for w in X], dtype=np.int64)
    return np.full(X.shape[0], X.shape[1], dtype=np.int64)


def _pad(X: list[np.ndarray] | np.ndarray, n_max: int) -> np.ndarray:
    """Zero-pad windows to (n, n_max, n_times), float32."""
    if isinstance(X, np.ndarray):
        if X.shape[1] == n_max:
            return np.ascontiguousarray(X, dtype=np.float32)
        out = np.zeros((X.shape[0], n_max, X.shape[2]), dtype=np.float32)
        out[:, : X.shape[1]] = X
        return out
    out = np.zeros((len(X), n_max, X[0].shape[1]), dtype=np.float32)
    for i, w in enumerate(X):
        out[i, : w.shape[0]] = w
    return out


def _subject_labels(subjects: Any, n: int) -> list[Hashable]:
    if subjects is None:
        return [None] * n
    arr = np.asarray(subjects, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise BrainalignError(
            f"'subjects' must have one label per window ({n}), got shape {arr.shape}."
        )
    return [_python_label(v) for v in arr]


def _sort_labels(labels: Sequence[Hashable]) -> list[Hashable]:
    unique = list(dict.fromkeys(labels))
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:
        return unique


def _fmt_subject(label: Hashable) -> str:
    return (
        "the (only) subject (subjects=None)" if label is None else f"subject {label!r}"
    )


def _train_val_split(
    n: int, groups: np.ndarray | None, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices; whole groups are held out when ``groups`` is given."""
    if val_fraction == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if groups is None:
        perm = rng.permutation(n)
        n_val = max(2, round(val_fraction * n))
        val = np.sort(perm[:n_val])
    else:
        uniq, inverse = np.unique(groups, return_inverse=True)
        inverse = inverse.reshape(-1)
        if uniq.size < 2:
            raise BrainalignError(
                f"'groups' has a single group ({uniq[0].item()!r}); holding out whole groups for "
                "validation needs at least 2 (or set val_fraction=0)."
            )
        counts = np.bincount(inverse, minlength=uniq.size)
        order = rng.permutation(uniq.size)
        target = val_fraction * n
        chosen: list[int] = []
        total = 0
        for g in order:
            if total >= target or len(chosen) == uniq.size - 1:
                break
            chosen.append(int(g))
            total += int(counts[g])
        val = np.flatnonzero(np.isin(inverse, chosen))
    train = np.setdiff1d(np.arange(n), val)
    if val.size < 2 or train.size < 2:
        raise BrainalignError(
            f"The validation split holds {val.size} window(s) and leaves {train.size} for "
            f"training (n_windows={n}, val_fraction={val_fraction}); each needs at least 2 "
            "(use more data, another val_fraction, or val_fraction=0)."
        )
    return train, val


# --------------------------------------------------------------------------- #
# estimator
# --------------------------------------------------------------------------- #
class ContrastiveEncoder(EstimatorMixin):
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
    _parameter_constraints: ClassVar[dict[str, tuple]] = {
        "front_end": ("options", ("spatial_attention", "channel_fusion")),
        "spatial_channels": ("int", 1, None),
        "n_freqs": ("int", 1, None),
        "spatial_dropout": ("real", 0.0, None, False),
        "hidden": ("int", 1, None),
        "depth": ("int", 1, None),
        "kernel_size": ("odd_int", 1),
        "dropout": ("real", 0.0, 1.0, True),
        "n_time_bins": ("int_or_none", 1, None),
        "epochs": ("int", 1, None),
        "batch_size": ("int", 2, None),
        "lr": ("positive",),
        "weight_decay": ("real", 0.0, None, False),
        "val_fraction": ("real", 0.0, 1.0, True),
        "patience": ("int_or_none", 1, None),
        "refit": ("bool",),
        "symmetric_loss": ("bool",),
        "random_state": ("random_state",),
        "verbose": ("bool",),
        "device": ("device",),
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

    def _validate_params(self) -> None:
        name = type(self).__name__
        for key, spec in self._parameter_constraints.items():
            _check_constraint(name, key, getattr(self, key), spec)

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

    def _run_batches(
        self,
        model: BrainModule,
        loss_fn: ClipLoss,
        batches: list[np.ndarray],
        tensors: tuple[torch.Tensor, ...],
        device: torch.device,
        optimizer: torch.optim.Optimizer | None,
        outputs: list[np.ndarray] | None = None,
    ) -> float:
        Xp, Yt, sidx, tid = tensors
        total, count = 0.0, 0
        for b in batches:
            bt = torch.from_numpy(b)
            x = Xp[bt].to(device)
            y = Yt[bt].to(device)
            s = sidx[bt].to(device)
            t = tid[bt].to(device)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x, s), y, t)
                loss.backward()
                optimizer.step()
                loss_fn.clamp_()
            else:
                with torch.no_grad():
                    out = model(x, s)
                    loss = loss_fn(out, y, t)
                if outputs is not None:
                    outputs.append(out.cpu().numpy().astype(np.float64))
            total += float(loss.detach()) * len(b)
            count += len(b)
        return total / count

    def _train(
        self,
        model: BrainModule,
        loss_fn: ClipLoss,
        Xp: torch.Tensor,
        Yt: torch.Tensor,
        sidx: torch.Tensor,
        tid: torch.Tensor,
        train: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
        device: torch.device,
        n_epochs: int | None = None,
    ) -> None:
        from tqdm.auto import tqdm

        optimizer = torch.optim.AdamW(
            [
                {
                    "params": list(model.parameters()),
                    "weight_decay": float(self.weight_decay),
                },
                {"params": list(loss_fn.parameters()), "weight_decay": 0.0},
            ],
            lr=float(self.lr),
        )
        bs = int(self.batch_size)
        n_val_batches = max(1, math.ceil(val.size / bs))
        val_batches = (
            [b.astype(np.int64) for b in np.array_split(val, n_val_batches)]
            if val.size
            else []
        )
        n_train_batches = max(1, math.ceil(train.size / bs))
        tensors = (Xp, Yt, sidx, tid)
        history: dict[str, list] = {
            "epoch": [],
            "train_loss": [],
            "val_loss": [],
            "val_top10": [],
            "temperature": [],
        }
        val_targets = Yt[torch.from_numpy(val.astype(np.int64))].numpy().astype(np.float64) if val.size else None
        best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
        bar = tqdm(
            range(1, int(self.epochs if n_epochs is None else n_epochs) + 1),
            desc="ContrastiveEncoder" if n_epochs is None else "ContrastiveEncoder (refit)",
            unit="epoch",
            disable=not self.verbose,
        )
        for epoch in bar:
            model.train()
            loss_fn.train()
            order = train[rng.permutation(train.size)].astype(np.int64)
            batches = [b for b in np.array_split(order, n_train_batches) if b.size >= 2]
            train_loss = self._run_batches(
                model, loss_fn, batches, tensors, device, optimizer
            )
            model.eval()
            loss_fn.eval()
            outputs: list[np.ndarray] = []
            val_loss = (
                self._run_batches(model, loss_fn, val_batches, tensors, device, None, outputs)
                if val_batches
                else math.nan
            )
            # Recorded, not monitored: top-10 of the validation windows among their unique segments (as at test
            # time). On small validation sets it is noisier than the loss and stops training too early.
            val_top10 = (
                identification_topk(np.concatenate(outputs), val_targets, k=10)["accuracy"][10]
                if val_batches and len(np.unique(val_targets, axis=0)) >= 2
                else math.nan
            )
            history["epoch"].append(epoch)
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["val_top10"].append(val_top10)
            history["temperature"].append(loss_fn.temperature)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if not val_batches:
                best_epoch = epoch
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = {
                    k: v.detach().clone()
                    for k, v in [
                        *model.state_dict().items(),
                        *(("loss." + k, v) for k, v in loss_fn.state_dict().items()),
                    ]
                }
            else:
                since_best += 1
                if self.patience is not None and since_best >= self.patience:
                    logger.info(
                        "ContrastiveEncoder: early stop at epoch %d (best %d, val loss %.4f).",
                        epoch,
                        best_epoch,
                        best_loss,
                    )
                    break
        bar.close()
        if best_state is not None:
            model.load_state_dict(
                {k: v for k, v in best_state.items() if not k.startswith("loss.")}
            )
            loss_fn.load_state_dict(
                {k[5:]: v for k, v in best_state.items() if k.startswith("loss.")}
            )
        model.eval()
        loss_fn.eval()
        self.model_ = model
        self.loss_ = loss_fn
        self.history_ = history
        self.best_epoch_ = int(best_epoch)

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

    # ------------------------------------------------------------------ persistence
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
        if not (params["random_state"] is None or _is_int(params["random_state"])):
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
