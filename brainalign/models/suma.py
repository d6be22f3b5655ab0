"""SUMA: the shallow untrained multi-head attention network (AlKhamissi et al., 2024).

Architecture as published (every number a parameter):

* token embedding, ``d_model = 4096``, weights N(0, ``init_std = 0.02``);
* one block: RMSNorm → causal multi-head attention (``n_heads = 512`` heads
  of dimension 8, q/k/v/o projections without bias, N(0, 0.02)) → residual;
  no MLP, no positional encoding;
* the block is applied ``num_cycles = 2`` times with shared weights;
* untrained; the units are the block's input normalisation and its attention
  output (``2 * d_model = 8192`` candidates), read from the last cycle.

The paper used the Llama-2 tokenizer (vocabulary 32,000); any tokenizer works
here (the vocabulary size sets the embedding), and the workflow defaults to
MiniLM's WordPiece, which is available offline (docs/activations.md).

Parameter count: ``vocab * d_model`` (embedding) ``+ d_model`` (RMSNorm gain)
``+ 4 * d_model**2`` (q, k, v, o).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SUMA", "suma_parameter_count"]


def suma_parameter_count(vocab_size: int, d_model: int = 4096) -> int:
    """Number of parameters of :class:`SUMA` for a vocabulary."""
    return vocab_size * d_model + d_model + 4 * d_model * d_model


class _RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


class SUMA(nn.Module):
    """Shallow untrained multi-head attention.

    Parameters
    ----------
    vocab_size : int
    d_model : int, default=4096
    n_heads : int, default=512
        Heads of dimension ``d_model // n_heads`` (8 by default).
    num_cycles : int, default=2
        Times the block is applied (shared weights).
    init_std : float, default=0.02
        Std of the normal initialisation of the embedding and projections.
    seed : int, default=42
        Seed of the initialisation (the paper averages seeds 10, 20, 30, 42, 50).
    head_chunk : int, default=32
        Heads whose attention matrices are formed at once: bounds memory on
        long stories (``head_chunk * T**2`` floats) without changing results.

    Notes
    -----
    :meth:`forward` returns the two hooked unit sets of the last cycle,
    ``"norm"`` (input of the attention) and ``"attn"`` (attention output after
    the o projection, before the residual), and the per-head outputs before the
    o projection (``"heads"``, ``[B, T, n_heads, head_dim]``).
    """

    def __init__(self, vocab_size: int, d_model: int = 4096, n_heads: int = 512, num_cycles: int = 2,
                 init_std: float = 0.02, seed: int = 42, head_chunk: int = 32):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads}).")
        if num_cycles < 1:
            raise ValueError(f"num_cycles must be >= 1, got {num_cycles}.")
        self.vocab_size, self.d_model, self.n_heads = int(vocab_size), int(d_model), int(n_heads)
        self.head_dim = d_model // n_heads
        self.num_cycles, self.init_std, self.seed, self.head_chunk = int(num_cycles), float(init_std), int(seed), int(head_chunk)
        gen = torch.Generator().manual_seed(self.seed)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.norm = _RMSNorm(d_model)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d_model, d_model, bias=False) for _ in range(4))
        with torch.no_grad():
            for weight in (self.embed.weight, self.q_proj.weight, self.k_proj.weight, self.v_proj.weight,
                           self.o_proj.weight):
                weight.copy_(torch.randn(weight.shape, generator=gen) * self.init_std)
        self.eval()

    def _attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Causal attention per head; returns head outputs [B, T, NH, Dh]."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None, None] & mask[:, None, None, :].bool()
        out = torch.empty_like(q)
        for h0 in range(0, self.n_heads, self.head_chunk):
            hs = slice(h0, h0 + self.head_chunk)
            scores = q[:, hs] @ k[:, hs].transpose(-1, -2) / math.sqrt(self.head_dim)
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            out[:, hs] = torch.softmax(scores, dim=-1) @ v[:, hs]
        return out.transpose(1, 2)

    def attention_probs(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities of every cycle, [B, n_heads, T, T] each (for head scores)."""
        B, T = input_ids.shape
        x = self.embed(input_ids)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        probs = []
        for _ in range(self.num_cycles):
            normed = self.norm(x)
            q = self.q_proj(normed).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
            k = self.k_proj(normed).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
            scores = (q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)).masked_fill(~causal, torch.finfo(q.dtype).min)
            probs.append(torch.softmax(scores, dim=-1))
            heads = self._attention(normed, torch.ones_like(input_ids))
            x = x + self.o_proj(heads.reshape(B, T, self.d_model))
        return probs

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Run the block ``num_cycles`` times.

        Parameters
        ----------
        input_ids : LongTensor of shape [B, T]
        attention_mask : Tensor of shape [B, T] or None
            1 for tokens, 0 for padding (right padding).

        Returns
        -------
        dict
            ``norm`` and ``attn`` of shape [B, T, d_model], ``heads`` of shape
            [B, T, n_heads, head_dim], all from the last cycle.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embed(input_ids)
        for _ in range(self.num_cycles):
            normed = self.norm(x)
            heads = self._attention(normed, attention_mask)
            attn = self.o_proj(heads.reshape(*heads.shape[:2], self.d_model))
            x = x + attn
        return {"norm": normed, "attn": attn, "heads": heads}
