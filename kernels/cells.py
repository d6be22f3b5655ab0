"""The four head-wise recurrent cells: gate and state counts and one time step.

Conventions follow FlashRNN 1.0.8's reference (``vanilla``) backend, so that a
model written for it runs here unchanged:

=======  ====================  =========================  =========================
cell     gates (Wx, R, b)      states (S)                 update
=======  ====================  =========================  =========================
lstm     4, 4, 4: i, f, z, o   2: h, c                    c' = σ(f)c + σ(i)tanh(z); h' = σ(o)tanh(c')
gru      3, 3, 4               1: h                       r, u = σ(·); h' = u h + (1-u) tanh(n + r·g)
slstm    4, 4, 4: i, f, z, o   4: h, c, n, m              exponential gating, stabilised by m
elman    1, 1, 1               1: h                       h' = tanh(Wx + R h + b)
=======  ====================  =========================  =========================

GRU gate layout: ``Wx`` holds (r, u, n) for the input, ``R h`` gives
(g, r, u) and ``b`` is (g, r, u, n); the reset gate multiplies ``g = R_g h +
b_g`` *after* the recurrent product, as cuDNN and ``torch.nn.GRU`` do.

sLSTM (Beck et al. 2024): ``m' = max(i_raw, logσ(f_raw) + m)`` (``m' = i_raw``
while the normaliser ``n`` of every sequence is still 0, i.e. at the first step
from zero states), ``i = exp(i_raw - m')``, ``f = exp(logσ(f_raw) + m - m')``,
``c' = f c + i tanh(z)``, ``n' = max(f n + i, 1)``, ``h' = σ(o) c' / n'``.

Recurrent products are head-wise: for head ``k`` and gate ``g``,
``(R h)[g, k, j] = sum_i R[g, k, j, i] h[k, i]`` (``R`` indexed
``[gate, head, to, from]``, FlashRNN's layout: ``R[g, k] @ h[k]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CellSpec", "CELLS", "cell_step"]


@dataclass(frozen=True)
class CellSpec:
    """Gate counts of ``Wx`` (``gates_in``), ``R`` (``gates_rec``), ``b`` (``gates_bias``) and states."""

    name: str
    gates_in: int
    gates_rec: int
    gates_bias: int
    n_states: int
    state_names: tuple[str, ...]


#: The supported cells by name.
CELLS: dict[str, CellSpec] = {
    "lstm": CellSpec("lstm", 4, 4, 4, 2, ("h", "c")),
    "gru": CellSpec("gru", 3, 3, 4, 1, ("h",)),
    "slstm": CellSpec("slstm", 4, 4, 4, 4, ("h", "c", "n", "m")),
    "elman": CellSpec("elman", 1, 1, 1, 1, ("h",)),
}


def cell_step(cell: str, wx: torch.Tensor, ry: torch.Tensor, b: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """One time step of ``cell``.

    Parameters
    ----------
    cell : {"lstm", "gru", "slstm", "elman"}
    wx : Tensor of shape (B, G_in, NH, DH)
        Input projections at this step.
    ry : Tensor of shape (B, G_rec, NH, DH)
        Recurrent products ``R h`` of the previous hidden state.
    b : Tensor of shape (G_b, NH, DH)
    states : Tensor of shape (S, B, NH, DH)
        Previous states.

    Returns
    -------
    Tensor of shape (S, B, NH, DH)
        New states.
    """
    if cell == "lstm":
        raw = wx + ry + b
        i, f, z, o = raw.unbind(dim=1)
        c = torch.sigmoid(f) * states[1] + torch.sigmoid(i) * torch.tanh(z)
        h = torch.sigmoid(o) * torch.tanh(c)
        return torch.stack((h, c))
    if cell == "gru":
        g = ry[:, 0] + b[0]
        r = torch.sigmoid(wx[:, 0] + ry[:, 1] + b[1])
        u = torch.sigmoid(wx[:, 1] + ry[:, 2] + b[2])
        n = wx[:, 2] + b[3]
        h = u * states[0] + (1 - u) * torch.tanh(n + r * g)
        return h.unsqueeze(0)
    if cell == "slstm":
        raw = wx + ry + b
        i_raw, f_raw, z_raw, o_raw = raw.unbind(dim=1)
        _, c, n, m = states.unbind(0)
        log_f_m = torch.nn.functional.logsigmoid(f_raw) + m
        # FlashRNN's reference tests the normaliser of the whole batch at once.
        m_new = i_raw if bool(torch.all(n == 0.0)) else torch.maximum(i_raw, log_f_m)
        i = torch.exp(i_raw - m_new)
        f = torch.exp(log_f_m - m_new)
        c_new = f * c + i * torch.tanh(z_raw)
        n_new = torch.maximum(f * n + i, torch.ones_like(n))
        h = torch.sigmoid(o_raw) * c_new / n_new
        return torch.stack((h, c_new, n_new, m_new))
    if cell == "elman":
        return torch.tanh(wx[:, 0] + ry[:, 0] + b[0]).unsqueeze(0)
    raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(CELLS)}.")
