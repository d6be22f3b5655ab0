"""Language models that give next-token logits: SUMA with a trained decoder, a small GPT-2, and one call for all.

Every model here, :class:`~brainalign.models.rnn.HeadwiseRNNLM` and any
``transformers`` causal LM answer :func:`next_token_logits`, which is all the
surprisal code and the trainer need.

:class:`SUMALanguageModel` follows AlKhamissi et al. (2024): SUMA's core
(embedding and the shared attention block) stays frozen at its untrained
initialisation and only a decoder is trained. The paper does not pin the
decoder here, so it is a parameter: ``decoder_hidden = 0`` is a linear readout
(RMS-normalised residual stream → vocabulary); ``> 0`` adds one GELU hidden layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .suma import SUMA

__all__ = ["SUMALanguageModel", "gpt2_language_model", "next_token_logits", "build_language_model", "LM_ARCHITECTURES"]

#: Architectures :func:`build_language_model` knows.
LM_ARCHITECTURES = ("lstm", "gru", "slstm", "elman", "suma", "gpt2")


def next_token_logits(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, T, vocab]`` of the token after each position.

    Parameters
    ----------
    model : nn.Module
        Returns a mapping (or ``transformers`` output) with ``logits``.
    input_ids : LongTensor of shape [B, T]
    """
    out = model(input_ids)
    if isinstance(out, torch.Tensor):
        return out
    if "logits" not in out:
        raise TypeError(f"{type(model).__name__} returns no 'logits'; it is not a language model.")
    return out["logits"]


class SUMALanguageModel(nn.Module):
    """Frozen untrained SUMA with a trained next-token decoder.

    Parameters
    ----------
    vocab_size : int
    d_model, n_heads, num_cycles, init_std, seed
        The core (:class:`~brainalign.models.suma.SUMA`).
    decoder_hidden : int, default=0
        0: linear readout; otherwise the width of one GELU hidden layer.
    decoder_seed : int, default=0
        Seed of the decoder's initialisation.

    Notes
    -----
    The decoder reads the last cycle's residual stream (embedding plus the
    attention outputs of every cycle), RMS-normalised. Only ``decoder``
    parameters require gradients.
    """

    def __init__(self, vocab_size: int, d_model: int = 4096, n_heads: int = 512, num_cycles: int = 2,
                 init_std: float = 0.02, seed: int = 42, decoder_hidden: int = 0, decoder_seed: int = 0):
        super().__init__()
        self.core = SUMA(vocab_size, d_model=d_model, n_heads=n_heads, num_cycles=num_cycles,
                         init_std=init_std, seed=seed)
        self.core.requires_grad_(False)
        gen = torch.Generator().manual_seed(int(decoder_seed))
        layers: list[nn.Module] = []
        width = d_model
        if decoder_hidden:
            layers += [nn.Linear(d_model, decoder_hidden), nn.GELU()]
            width = decoder_hidden
        layers.append(nn.Linear(width, vocab_size))
        self.decoder = nn.Sequential(*layers)
        with torch.no_grad():
            for layer in self.decoder:
                if isinstance(layer, nn.Linear):
                    bound = layer.in_features ** -0.5
                    layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
                    layer.bias.zero_()
        self.decoder_hidden = int(decoder_hidden)

    def train(self, mode: bool = True) -> SUMALanguageModel:
        """Train the decoder; the core stays in eval mode (it is frozen)."""
        super().train(mode)
        self.core.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``logits`` [B, T, vocab] and the core's ``heads`` [B, T, n_heads, head_dim] (last cycle)."""
        core = self.core
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        with torch.no_grad():
            x = core.embed(input_ids)
            for _ in range(core.num_cycles):
                heads = core._attention(core.norm(x), mask)
                x = x + core.o_proj(heads.reshape(*heads.shape[:2], core.d_model))
            stream = core.norm(x)
        return {"logits": self.decoder(stream), "heads": heads}


def gpt2_language_model(vocab_size: int, n_layer: int = 2, n_head: int = 4, n_embd: int = 128,
                        n_positions: int = 256, seed: int = 0) -> nn.Module:
    """A randomly initialised ``transformers`` GPT-2 (eager attention) to train here.

    Parameters
    ----------
    vocab_size, n_layer, n_head, n_embd, n_positions : int
        GPT-2 configuration (``n_positions`` bounds the training context).
    seed : int
        Seed of the initialisation.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                        n_positions=n_positions, bos_token_id=1, eos_token_id=1, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0)
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config).eval()


def build_language_model(architecture: str, vocab_size: int, **params: Any) -> nn.Module:
    """A language model by name (``LM_ARCHITECTURES``) with its parameters.

    ``lstm``/``gru``/``slstm``/``elman``: :class:`~brainalign.models.rnn.HeadwiseRNNLM`
    (``n_layers``, ``n_heads``, ``head_dim``, ``seed``, ``backend``); ``suma``:
    :class:`SUMALanguageModel`; ``gpt2``: :func:`gpt2_language_model`.
    """
    if architecture in ("lstm", "gru", "slstm", "elman"):
        from .rnn import HeadwiseRNNLM

        return HeadwiseRNNLM(vocab_size, cell=architecture, **params)
    if architecture == "suma":
        return SUMALanguageModel(vocab_size, **params)
    if architecture == "gpt2":
        return gpt2_language_model(vocab_size, **params)
    raise ValueError(f"architecture must be one of {list(LM_ARCHITECTURES)}, got {architecture!r}.")
