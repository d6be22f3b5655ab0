"""The reference head-wise RNN: a plain PyTorch loop over time, and the input checks every backend shares.

Every other backend (:mod:`brainalign.kernels.triton_rnn`) is tested against
:func:`reference_headwise_rnn`, and imports its checks from here, so that the
backends never import the dispatcher (:mod:`brainalign.kernels.interface`).
"""

from __future__ import annotations

import torch

from .cells import CELLS, cell_step

__all__ = ["reference_headwise_rnn", "reference_backward_at_states", "check_inputs"]


def check_inputs(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor | None,
                 cell: str) -> tuple[int, int, int, int, int]:
    """(B, T, G_in, NH, DH) of valid inputs of ``cell``; ValueError naming the tensor and shape otherwise."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}.")
    spec = CELLS[cell]
    if Wx.dim() != 5:
        raise ValueError(f"Wx must have shape [B, T, G_in, NH, DH], got {tuple(Wx.shape)}.")
    B, T, G, NH, DH = Wx.shape
    if T < 1 or B < 1:
        raise ValueError(f"Wx must have B >= 1 and T >= 1, got shape {tuple(Wx.shape)}.")
    expected = {"Wx": ((B, T, spec.gates_in, NH, DH), tuple(Wx.shape)),
                "R": ((spec.gates_rec, NH, DH, DH), tuple(R.shape)),
                "b": ((spec.gates_bias, NH, DH), tuple(b.shape))}
    if states is not None:
        expected["states"] = ((spec.n_states, B, NH, DH), tuple(states.shape))
    for name, (want, got) in expected.items():
        if want != got:
            raise ValueError(f"{cell}: {name} must have shape {list(want)} "
                             f"({'[B, T, G_in, NH, DH]' if name == 'Wx' else '[G_rec, NH, DH, DH]' if name == 'R' else '[G_b, NH, DH]' if name == 'b' else '[S, B, NH, DH]'}), got {list(got)}.")
    return B, T, G, NH, DH


def reference_headwise_rnn(
    Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor | None = None, cell: str = "lstm",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch loop over time (the reference every other backend is tested against).

    Recurrent products and gates are computed in the inputs' dtype; see
    :func:`headwise_rnn` for shapes.
    """
    B, T, _, NH, DH = check_inputs(Wx, R, b, states, cell)
    spec = CELLS[cell]
    if states is None:
        states = Wx.new_zeros((spec.n_states, B, NH, DH))
    # R as [NH, DH_from, G * DH_to]: one batched product per step gives every gate.
    R_heads = R.permute(1, 3, 0, 2).reshape(NH, DH, spec.gates_rec * DH)
    outputs = []
    current = states
    for t in range(T):
        h = current[0].transpose(0, 1)  # [NH, B, DH]
        ry = torch.bmm(h, R_heads).view(NH, B, spec.gates_rec, DH).permute(1, 2, 0, 3)
        current = cell_step(cell, Wx[:, t], ry, b, current)
        outputs.append(current)
    return torch.stack(outputs, dim=2), current


def reference_backward_at_states(
    Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, out: torch.Tensor,
    grad_out: torch.Tensor, cell: str = "lstm",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The float64 backward of a layer linearised at its saved states ``out`` (the kernels' backward).

    The fused and per-step backward kernels recompute each step's gates from
    the states the forward stored (in the inputs' dtype), as FlashRNN does.
    With half-precision states this is not the exact gradient of the
    float64 forward (a near tie of the sLSTM's ``max`` may round the other
    way), but it is exactly what a correct kernel computes: the reference
    for half-precision gradients.

    Parameters
    ----------
    Wx, R, b, states
        The layer's inputs (:func:`headwise_rnn`); ``states`` of shape [S, B, NH, DH].
    out : Tensor of shape [S, B, T, NH, DH]
        The states the forward stored.
    grad_out : Tensor of shape [S, B, T, NH, DH]
        Gradient of the loss with respect to ``out``.

    Returns
    -------
    dWx, dR, db, dstates : float64 tensors shaped as ``Wx``, ``R``, ``b`` and ``states``
    """
    Wx, R, b, states, out, grad_out = (t.detach().double() for t in (Wx, R, b, states, out, grad_out))
    dWx, dR, db, dprev = torch.zeros_like(Wx), torch.zeros_like(R), torch.zeros_like(b), torch.zeros_like(states)
    for t in reversed(range(Wx.shape[1])):
        leaves = [x.clone().requires_grad_(True) for x in (Wx[:, t], R, b, states if t == 0 else out[:, :, t - 1])]
        wx, r, bias, prev = leaves
        new = cell_step(cell, wx, torch.einsum("gkji,bki->bgkj", r, prev[0]), bias, prev)
        gwx, gr, gb, dprev = torch.autograd.grad(new, leaves, grad_out[:, :, t] + dprev)
        dWx[:, t] = gwx
        dR += gr
        db += gb
    return dWx, dR, db, dprev
