"""Fused head-wise RNN forward kernel in Triton (all four cells), behind :func:`headwise_rnn`.

One program handles one head and a block of ``BLOCK_B`` sequences: it keeps the
head's recurrent weights ``R[:, head]`` (``G_rec`` tiles of ``DH x DH``) and the
states in registers for the whole sequence and loops over time, so each step
costs one small matrix product per gate (``tl.dot``) plus the pointwise cell,
with no kernel launch and no round trip of ``R`` through memory per step —
FlashRNN's fusion. Products accumulate in float32 (float32 inputs use IEEE
float32 products, never TF32); states are stored in the inputs' dtype.

Register budget: ``G_rec * DH * DH`` weights per program (LSTM, DH = 64: 16,384
floats) must fit a streaming multiprocessor's register file with the states;
beyond DH = 128 the weights would spill, which is why FlashRNN limits its fused
kernel to small heads (see docs/kernels.md).

The backward pass is, for now, the PyTorch reference recomputed under autograd
(correct gradients for every cell; a fused backward kernel is the next step of
the kernels issue).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .cells import CELLS

__all__ = ["triton_headwise_rnn", "SUPPORTED_HEAD_DIMS"]

#: Head sizes of the fused kernel (``tl.dot`` needs tiles of at least 16).
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
_CELL_ID = {"lstm": 0, "gru": 1, "slstm": 2, "elman": 3}


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 * _sigmoid(2.0 * x) - 1.0


@triton.jit
def _logsigmoid(x):
    # log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), stable for large |x|.
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _load_rt(R, g, h, NH, DH: tl.constexpr):
    """R[g, h] transposed (``Rt[i, j] = R[g, h, j, i]``), float32."""
    rd = tl.arange(0, DH)
    return tl.load(R + ((g * NH + h) * DH + rd[None, :]) * DH + rd[:, None]).to(tl.float32)


@triton.jit
def _dot(x, rt, IEEE: tl.constexpr):
    if IEEE:
        return tl.dot(x, rt, input_precision="ieee")
    else:
        return tl.dot(x.to(tl.bfloat16), rt.to(tl.bfloat16))


@triton.jit
def _fw_kernel(WX, R, BIAS, S0, OUT, B, T, NH,
               CELL: tl.constexpr, DH: tl.constexpr, BLOCK_B: tl.constexpr, GI: tl.constexpr,
               GB: tl.constexpr, S: tl.constexpr, FIRST_RESET: tl.constexpr, IEEE: tl.constexpr):
    pid_b = tl.program_id(0)
    h = tl.program_id(1)
    rb = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    rd = tl.arange(0, DH)
    m2 = (rb < B)[:, None] & (rd < DH)[None, :]
    # Offsets of a [BLOCK_B, DH] tile in a [*, B, NH, DH] state tensor.
    s_off = (rb[:, None] * NH + h) * DH + rd[None, :]
    state_stride = B * NH * DH
    out_stride_s = B * T * NH * DH

    hs = tl.load(S0 + s_off, mask=m2, other=0.0).to(tl.float32)
    if S >= 2:
        cs = tl.load(S0 + state_stride + s_off, mask=m2, other=0.0).to(tl.float32)
    if S == 4:
        ns = tl.load(S0 + 2 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32)
        ms = tl.load(S0 + 3 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32)

    rt0 = _load_rt(R, 0, h, NH, DH)
    if CELL != 3:
        rt1 = _load_rt(R, 1, h, NH, DH)
        rt2 = _load_rt(R, 2, h, NH, DH)
    if CELL == 0 or CELL == 2:
        rt3 = _load_rt(R, 3, h, NH, DH)
    b0 = tl.load(BIAS + (0 * NH + h) * DH + rd).to(tl.float32)[None, :]
    if GB >= 3:
        b1 = tl.load(BIAS + (1 * NH + h) * DH + rd).to(tl.float32)[None, :]
        b2 = tl.load(BIAS + (2 * NH + h) * DH + rd).to(tl.float32)[None, :]
    if GB == 4:
        b3 = tl.load(BIAS + (3 * NH + h) * DH + rd).to(tl.float32)[None, :]

    for t in range(T):
        # Wx[b, t, g, h, :] of a contiguous [B, T, GI, NH, DH] tensor.
        wx_off = ((rb[:, None] * T + t) * GI * NH + h) * DH + rd[None, :]
        x0 = tl.load(WX + wx_off, mask=m2, other=0.0).to(tl.float32)
        if GI >= 3:
            x1 = tl.load(WX + wx_off + NH * DH, mask=m2, other=0.0).to(tl.float32)
            x2 = tl.load(WX + wx_off + 2 * NH * DH, mask=m2, other=0.0).to(tl.float32)
        if GI == 4:
            x3 = tl.load(WX + wx_off + 3 * NH * DH, mask=m2, other=0.0).to(tl.float32)
        y0 = _dot(hs, rt0, IEEE)
        if CELL == 0:  # LSTM: gates i, f, z, o
            ig = _sigmoid(x0 + y0 + b0)
            fg = _sigmoid(x1 + _dot(hs, rt1, IEEE) + b1)
            zg = _tanh(x2 + _dot(hs, rt2, IEEE) + b2)
            og = _sigmoid(x3 + _dot(hs, rt3, IEEE) + b3)
            cs = fg * cs + ig * zg
            hs = og * _tanh(cs)
        elif CELL == 1:  # GRU: Wx (r, u, n), R (g, r, u), b (g, r, u, n)
            gg = y0 + b0
            rg = _sigmoid(x0 + _dot(hs, rt1, IEEE) + b1)
            ug = _sigmoid(x1 + _dot(hs, rt2, IEEE) + b2)
            cand = _tanh(x2 + b3 + rg * gg)
            hs = ug * hs + (1.0 - ug) * cand
        elif CELL == 2:  # sLSTM
            i_raw = x0 + y0 + b0
            f_raw = x1 + _dot(hs, rt1, IEEE) + b1
            z_raw = x2 + _dot(hs, rt2, IEEE) + b2
            o_raw = x3 + _dot(hs, rt3, IEEE) + b3
            log_f_m = _logsigmoid(f_raw) + ms
            if FIRST_RESET:
                m_new = tl.where(t == 0, i_raw, tl.maximum(i_raw, log_f_m))
            else:
                m_new = tl.maximum(i_raw, log_f_m)
            ig = tl.exp(i_raw - m_new)
            fg = tl.exp(log_f_m - m_new)
            cs = fg * cs + ig * _tanh(z_raw)
            ns = tl.maximum(fg * ns + ig, 1.0)
            ms = m_new
            hs = _sigmoid(o_raw) * cs / ns
        else:  # Elman
            hs = _tanh(x0 + y0 + b0)
        o_off = ((rb[:, None] * T + t) * NH + h) * DH + rd[None, :]
        tl.store(OUT + o_off, hs.to(OUT.dtype.element_ty), mask=m2)
        if S >= 2:
            tl.store(OUT + out_stride_s + o_off, cs.to(OUT.dtype.element_ty), mask=m2)
        if S == 4:
            tl.store(OUT + 2 * out_stride_s + o_off, ns.to(OUT.dtype.element_ty), mask=m2)
            tl.store(OUT + 3 * out_stride_s + o_off, ms.to(OUT.dtype.element_ty), mask=m2)


def _forward(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, cell: str) -> torch.Tensor:
    spec = CELLS[cell]
    B, T, GI, NH, DH = Wx.shape
    out = torch.empty((spec.n_states, B, T, NH, DH), dtype=Wx.dtype, device=Wx.device)
    block_b = 16 if B <= 16 else 32
    grid = (triton.cdiv(B, block_b), NH)
    first_reset = cell == "slstm" and bool((states[2] == 0).all())
    _fw_kernel[grid](Wx.contiguous(), R.contiguous(), b.contiguous(), states.contiguous(), out, B, T, NH,
                     CELL=_CELL_ID[cell], DH=DH, BLOCK_B=block_b, GI=GI, GB=spec.gates_bias, S=spec.n_states,
                     FIRST_RESET=first_reset, IEEE=True)
    return out


class _HeadwiseRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, Wx, R, b, states, cell):
        out = _forward(Wx, R, b, states, cell)
        ctx.save_for_backward(Wx, R, b, states)
        ctx.cell = cell
        return out

    @staticmethod
    def backward(ctx, grad_out):
        from .interface import reference_headwise_rnn

        Wx, R, b, states = (t.detach().requires_grad_(True) for t in ctx.saved_tensors)
        with torch.enable_grad():
            out, _ = reference_headwise_rnn(Wx.float(), R.float(), b.float(), states.float(), ctx.cell)
            grads = torch.autograd.grad(out, (Wx, R, b, states), grad_out.float())
        return (*(g.to(t.dtype) for g, t in zip(grads, (Wx, R, b, states))), None)


def triton_headwise_rnn(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor | None,
                        cell: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"triton"`` backend of :func:`~brainalign.kernels.headwise_rnn` (same signature and results)."""
    from .interface import _check

    _, _, _, _, DH = _check(Wx, R, b, states, cell)
    if DH not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"the Triton kernel supports head sizes {SUPPORTED_HEAD_DIMS}, got DH = {DH}; "
                         "use backend='torch'.")
    if states is None:
        states = Wx.new_zeros((CELLS[cell].n_states, Wx.shape[0], Wx.shape[3], DH))
    out = _HeadwiseRNN.apply(Wx, R, b, states, cell)
    return out, out[:, :, -1]
