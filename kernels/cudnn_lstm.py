"""The ``"cudnn"`` backend: one dense LSTM head (NH = 1) through PyTorch's fused LSTM (cuDNN on a GPU).

cuDNN's LSTM equations are ours (gates i, f, z, o; ``c' = σ(f) c + σ(i) tanh(z)``,
``h' = σ(o) tanh(c')``), so a head-wise LSTM layer with a single head is a
dense LSTM: ``R[:, 0]`` is ``weight_hh`` in PyTorch's gate order and the bias
goes to ``bias_ih``. The inputs arrive already projected (``Wx``), so the input
weights are the identity. cuDNN's GRU applies the reset gate after the
recurrent product like ours, but its gate layout and bias split differ, and it
has no sLSTM: those cells never come here.

PyTorch's LSTM returns the hidden state of every step but the cell state of
the last step only. The cell states of every step are recomputed from the
hidden states in parallel: the gates of all steps in one matrix product, then
``c_t = σ(f_t) c_{t-1} + σ(i_t) tanh(z_t)`` as a parallel prefix scan over time
(``log2 T`` elementwise passes), so gradients flow through both as autograd
composes them. On CPU tensors the same call runs PyTorch's CPU LSTM, which is
how the tests check this backend against the reference.
"""

from __future__ import annotations

import torch

from .reference import check_inputs

__all__ = ["cudnn_headwise_rnn", "linear_scan"]


def linear_scan(a: torch.Tensor, u: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """All ``c_t = a_t * c_{t-1} + u_t`` for ``t = 0..T-1`` from ``c_{-1} = c0``, by a parallel prefix scan.

    Parameters
    ----------
    a, u : Tensor of shape [B, T, D]
    c0 : Tensor of shape [B, D]

    Returns
    -------
    Tensor of shape [B, T, D]
    """
    T = a.shape[1]
    u = torch.cat([a[:, :1] * c0[:, None] + u[:, :1], u[:, 1:]], dim=1)
    shift = 1
    while shift < T:  # Hillis-Steele: after the pass with ``shift``, each step holds 2 * shift terms
        u = torch.cat([u[:, :shift], a[:, shift:] * u[:, :-shift] + u[:, shift:]], dim=1)
        a = torch.cat([a[:, :shift], a[:, shift:] * a[:, :-shift]], dim=1)
        shift *= 2
    return u


def cudnn_headwise_rnn(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor | None,
                       cell: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"cudnn"`` backend of :func:`~brainalign.kernels.headwise_rnn`: LSTM with one head only."""
    B, T, _, NH, DH = check_inputs(Wx, R, b, states, cell)
    if cell != "lstm" or NH != 1:
        raise ValueError(f"the cudnn backend runs one dense LSTM head (cell 'lstm', NH = 1), got cell {cell!r} "
                         f"with NH = {NH}; use backend='triton' or 'torch'.")
    if states is None:
        states = Wx.new_zeros((2, B, 1, DH))
    x = Wx.reshape(B, T, 4 * DH)
    w_ih = torch.eye(4 * DH, dtype=Wx.dtype, device=Wx.device)
    w_hh = R.reshape(4 * DH, DH)  # [gate * DH + to, from]: PyTorch's weight_hh, gate order i, f, g (= z), o
    b_ih = b.reshape(4 * DH)
    b_hh = torch.zeros_like(b_ih)
    h0, c0 = states[0, :, 0], states[1, :, 0]
    h = torch._VF.lstm(x, (h0[None], c0[None]), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0,
                       torch.is_grad_enabled(), False, True)[0]
    # Cell states of every step, recomputed in float32 (or wider) from the hidden states.
    work = torch.promote_types(Wx.dtype, torch.float32)
    h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1).to(work)
    pre = (x.to(work) + h_prev @ w_hh.to(work).T + b_ih.to(work)).view(B, T, 4, DH)
    i, f, z = torch.sigmoid(pre[:, :, 0]), torch.sigmoid(pre[:, :, 1]), torch.tanh(pre[:, :, 2])
    c = linear_scan(f, i * z, c0.to(work)).to(Wx.dtype)
    out = torch.stack([h, c]).view(2, B, T, 1, DH)
    return out, out[:, :, -1]
