"""ClipCap's mapping networks (an MLP or a small transformer), from one embedding to the
decoder prefix ``(n, prefix_length, d_model)``."""

from __future__ import annotations

import torch
from torch import nn


class _MLPMapping(nn.Module):
    """ClipCap's MLP mapping: ``Linear → tanh → Linear`` to ``prefix_length × d_model``."""

    def __init__(self, embed_dim: int, prefix_length: int, d_model: int, hidden_size: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.d_model = d_model
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, prefix_length * d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0], self.prefix_length, self.d_model)


class _TransformerMapping(nn.Module):
    """ClipCap's transformer mapping.

    The embedding is linearly expanded to ``prefix_length`` tokens,
    concatenated with ``prefix_length`` learned constant tokens, passed
    through a transformer encoder, and the outputs at the constant tokens
    form the prefix.
    """

    def __init__(self, embed_dim: int, prefix_length: int, d_model: int, n_layers: int, n_heads: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.d_model = d_model
        self.linear = nn.Linear(embed_dim, prefix_length * d_model)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=0.0, activation="relu",
            batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = self.linear(x).view(n, self.prefix_length, self.d_model)
        h = torch.cat([h, self.prefix_const.unsqueeze(0).expand(n, -1, -1)], dim=1)
        return self.transformer(h)[:, self.prefix_length:]
