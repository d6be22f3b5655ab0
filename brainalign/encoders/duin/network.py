"""Du-IN's network: the torch modules, with no training or data handling.

``_SubjectFusion`` standardises a subject's channels and fuses them into
``d_model`` virtual channels; ``_DuINNet`` holds the convolutional patch
tokenizer, the positional embedding, the transformer encoder and the word
classifier, and optionally the VQ-VAE (projection, codebook, decoder, per-subject
reconstruction heads) and the masked-code head of the pre-training stages.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .params import _temporal_stride

#: Kernel (samples) of the depth-wise temporal convolution before patching.
TEMPORAL_KERNEL = 5
#: Standard deviation of the learned positional embeddings at initialisation.
POS_INIT_STD = 1.0


class _SubjectFusion(nn.Module):
    """Per-subject standardisation (fitted mean/std per channel) + channel fusion.

    The fusion has no bias: its input is standardised (zero mean per channel),
    and the shared temporal convolution that follows carries one.
    """

    def __init__(self, n_channels: int, d_model: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_channels, 1))
        self.register_buffer("std", torch.ones(n_channels, 1))
        self.linear = nn.Linear(n_channels, d_model, bias=False)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, C, T) -> (b, d, T)
        return torch.einsum("dc,bct->bdt", self.linear.weight, self.standardize(x))


class _DuINNet(nn.Module):
    """Encoder + classifier, and optionally the VQ-VAE and masked-code heads."""

    def __init__(
        self,
        n_channels: list[int],
        n_classes: int,
        patch_len: int,
        n_patches: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        codebook_size: int,
        codebook_dim: int,
        vq: bool,
    ):
        super().__init__()
        self.patch_len = patch_len
        self.n_patches = n_patches
        self.fusion = nn.ModuleList(_SubjectFusion(c, d_model) for c in n_channels)
        self.stride = _temporal_stride(patch_len)
        k = max(TEMPORAL_KERNEL, 2 * self.stride + 1)
        self.temporal = nn.Conv1d(
            d_model, d_model, k, stride=self.stride, padding=k // 2, groups=d_model
        )
        self.patchify = nn.Conv1d(
            d_model, d_model, patch_len // self.stride, stride=patch_len // self.stride
        )
        self.token_norm = nn.LayerNorm(d_model)
        self.pos = nn.Parameter(torch.randn(n_patches, d_model) * POS_INIT_STD)
        self.drop = nn.Dropout(dropout)
        self.transformer = self._stack(d_model, n_heads, dropout, n_layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))
        self.vq = vq
        if vq:
            self.vq_proj = nn.Linear(d_model, codebook_dim)
            self.codebook = nn.Parameter(torch.randn(codebook_size, codebook_dim))
            self.dec_in = nn.Linear(codebook_dim, d_model)
            self.dec_pos = nn.Parameter(torch.randn(n_patches, d_model) * POS_INIT_STD)
            self.decoder = self._stack(d_model, n_heads, dropout, 1)
            self.recon = nn.ModuleList(
                nn.Linear(d_model, c * patch_len) for c in n_channels
            )
            self.mask_token = nn.Parameter(torch.zeros(d_model))
            self.code_head = nn.Linear(d_model, codebook_size)

    @staticmethod
    def _stack(d_model: int, n_heads: int, dropout: float, n_layers: int) -> nn.Module:
        if n_layers == 0:
            return nn.LayerNorm(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        return nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    #: Parameters outside the encoder: the classifier and the pre-training parts.
    _NON_ENCODER = (
        "head.",
        "vq_proj.",
        "codebook",
        "dec_in.",
        "dec_pos",
        "decoder.",
        "recon.",
        "mask_token",
        "code_head.",
    )

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Fusion, tokenizer, positional embedding and transformer parameters."""
        return [
            p
            for name, p in self.named_parameters()
            if not name.startswith(self._NON_ENCODER)
        ]

    def tokens(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """Patch tokens (B, N, d) before the transformer; batch in ``groups`` order."""
        z = self.patchify(F.gelu(self.temporal_features(groups)))  # (B, d, N)
        return self.token_norm(z.transpose(1, 2))

    def subject_kernel(self, s: int) -> torch.Tensor:
        """Kernel (d, C_s, k) of the fusion followed by the depth-wise temporal conv.

        Both maps are linear and the fusion has no bias, so their composition is
        one convolution of the standardised input with the product kernel
        ``W[j, c] * w[j, t]`` (zero padding included); it is much cheaper than
        running the ``d_model``-channel fused signal through a depth-wise conv.
        """
        return self.fusion[s].linear.weight[:, :, None] * self.temporal.weight

    def temporal_features(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """Fused, temporally filtered signal (B, d, n_times / stride), before GELU."""
        out = [
            F.conv1d(
                self.fusion[s].standardize(x),
                self.subject_kernel(s),
                self.temporal.bias,
                stride=self.stride,
                padding=self.temporal.padding[0],
            )
            for s, x in groups
        ]
        return torch.cat(out, 0)

    def encode(
        self, groups: list[tuple[int, torch.Tensor]], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        tok = self.tokens(groups)
        if mask is not None:
            tok = torch.where(mask[..., None], self.mask_token.to(tok.dtype), tok)
        return self.transformer(self.drop(tok + self.pos))

    def forward(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        return self.head(self.encode(groups).mean(dim=1))

    # ---- VQ-VAE --------------------------------------------------------- #
    def quantize_input(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vq_proj(h), dim=-1)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest (cosine) code of each normalised token: ``(z_q, indices)``."""
        book = F.normalize(self.codebook, dim=-1)
        sim = z_e @ book.T  # (B, N, K); argmax of cosine = argmin of L2 on the sphere
        idx = sim.argmax(dim=-1)
        return book[idx], idx

    def reconstruct(
        self, z: torch.Tensor, subj: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """Per-subject reconstructions (b_s, N, C_s * patch_len) from quantised tokens."""
        h = self.decoder(self.drop(self.dec_in(z) + self.dec_pos))
        out, start = [], 0
        for s, b in subj:
            out.append(self.recon[s](h[start : start + b]))
            start += b
        return out
