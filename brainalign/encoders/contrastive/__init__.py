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

# The constants are not in __all__ but stay importable from here, as before the split.
from .brain_module import (  # noqa: F401
    FOURIER_MARGIN,
    BrainModule,
    ChannelFusion,
    SpatialAttention,
    SubjectLayers,
)
from .estimator import ContrastiveEncoder
from .loss import INIT_TEMPERATURE, MAX_LOGIT_SCALE, ClipLoss  # noqa: F401

__all__ = [
    "BrainModule",
    "ChannelFusion",
    "ClipLoss",
    "ContrastiveEncoder",
    "SpatialAttention",
    "SubjectLayers",
]
