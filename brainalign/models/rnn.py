"""Recurrent language models with head-wise recurrence (LSTM, GRU, sLSTM, Elman).

Each layer projects its input to the cell's gate pre-activations
(``Wx = x W``, shape ``[B, T, G_in, NH, DH]``) and runs the recurrence through
:func:`brainalign.kernels.headwise_rnn` with block-diagonal recurrent weights
``R [G_rec, NH, DH, DH]``: ``NH`` heads of ``DH`` units that recur only within
their head (FlashRNN's formulation). Untrained by default (seeded
initialisation); trainable like any ``nn.Module`` with the next-token head.
Every state of every layer and head can be read out (:meth:`HeadwiseRNNLM.forward`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..kernels import CELLS, headwise_rnn

__all__ = ["HeadwiseRNNLM"]


class HeadwiseRNNLM(nn.Module):
    """A stack of head-wise recurrent layers over token embeddings.

    Parameters
    ----------
    vocab_size : int
    cell : {"lstm", "gru", "slstm", "elman"}
    n_layers : int, default=2
    n_heads : int, default=4
    head_dim : int, default=64
        Hidden size per layer = ``n_heads * head_dim``.
    seed : int, default=0
        Seed of the initialisation.
    backend : {"auto", "torch", "triton", "cudnn"}
        Kernel backend passed to :func:`~brainalign.kernels.headwise_rnn`.

    Notes
    -----
    Initialisation: embeddings N(0, 1); input projections uniform
    ±1/sqrt(fan_in) (PyTorch's ``nn.Linear`` rule); recurrent weights uniform
    ±1/sqrt(head_dim) (``nn.LSTM``'s rule, per head); biases 0, except the LSTM
    and sLSTM forget gates (+1), which keeps an untrained network's memory from
    vanishing within a few tokens.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", n_layers: int = 2, n_heads: int = 4,
                 head_dim: int = 64, seed: int = 0, backend: str = "auto"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}.")
        self.cell, self.n_layers, self.n_heads, self.head_dim = cell, int(n_layers), int(n_heads), int(head_dim)
        self.hidden = self.n_heads * self.head_dim
        self.backend, self.seed = backend, int(seed)
        spec = CELLS[cell]
        gen = torch.Generator().manual_seed(self.seed)
        self.embed = nn.Embedding(vocab_size, self.hidden)
        self.inputs = nn.ModuleList(nn.Linear(self.hidden, spec.gates_in * self.hidden, bias=False)
                                    for _ in range(n_layers))
        self.R = nn.ParameterList(nn.Parameter(torch.empty(spec.gates_rec, n_heads, head_dim, head_dim))
                                  for _ in range(n_layers))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(spec.gates_bias, n_heads, head_dim))
                                  for _ in range(n_layers))
        self.lm_head = nn.Linear(self.hidden, vocab_size, bias=False)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=gen))
            bound_in = 1.0 / math.sqrt(self.hidden)
            bound_rec = 1.0 / math.sqrt(self.head_dim)
            for lin, R, b in zip(self.inputs, self.R, self.b):
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) * bound_in)
                R.copy_((torch.rand(R.shape, generator=gen) * 2 - 1) * bound_rec)
                if cell in ("lstm", "slstm"):
                    b[1].fill_(1.0)
            self.lm_head.weight.copy_((torch.rand(self.lm_head.weight.shape, generator=gen) * 2 - 1) * bound_in)
        self.eval()

    def forward(self, input_ids: torch.Tensor, states: list[torch.Tensor] | None = None,
                ) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        """Run the stack.

        Parameters
        ----------
        input_ids : LongTensor of shape [B, T]
        states : list of Tensor [S, B, NH, DH] per layer, or None
            Initial states (carry them across chunks of one long story).

        Returns
        -------
        dict
            ``states``: per layer, all states ``[S, B, T, NH, DH]``;
            ``last``: per layer, the last states ``[S, B, NH, DH]``;
            ``logits``: ``[B, T, vocab]``.
        """
        spec = CELLS[self.cell]
        x = self.embed(input_ids)
        B, T, _ = x.shape
        all_states, last_states = [], []
        for k in range(self.n_layers):
            wx = self.inputs[k](x).view(B, T, spec.gates_in, self.n_heads, self.head_dim)
            init = None if states is None else states[k]
            out, last = headwise_rnn(wx, self.R[k], self.b[k], init, cell=self.cell, backend=self.backend)
            all_states.append(out)
            last_states.append(last)
            x = out[0].reshape(B, T, self.hidden)
        return {"states": all_states, "last": last_states, "logits": self.lm_head(x)}
