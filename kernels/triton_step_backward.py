"""Tiled head-wise RNN backward in Triton: one launch per reverse time step (all four cells).

The backward counterpart of the per-step forward of
:mod:`brainalign.kernels.triton_rnn`, for the shapes whose fused backward does
not fit a GPU (``R`` and ``R^T`` resident: DH = 128 in float32 on an H200,
except Elman) and for head sizes above 128 (multiples of 64).

Each launch handles one step ``t``, in reverse order, on the grid
``(cdiv(B, BLOCK_B), NH, DH // 64)``: the program of (batch block, head ``h``,
output tile ``jt``)

1. sums the recurrent part of ``dh_t`` at its tile,
   ``sum_g DGR[:, t+1, g, h, :] @ R[g, h][:, jt-tile]`` over the head's
   64-wide input tiles, with ``R`` streamed from L2 (none at ``t = T-1``);
2. adds ``dOut`` of step ``t`` and the elementwise carries of step ``t+1``;
3. recomputes the gates of step ``t`` at its tile from ``h_{t-1}`` of the
   whole head, as the per-step forward does;
4. applies the pointwise backward of the cell and writes ``dWx`` and the
   gradients of the recurrent pre-activations (``DGR``) of step ``t`` at its
   tile, and its carries.

The launch is the grid-wide barrier between steps. ``DGR`` equals ``dWx`` for
the LSTM, sLSTM and Elman cells (same gates in the same order), so only the
GRU's ``d_g`` (the reset gate's recurrent term, which has no ``Wx`` gate) gets a
buffer of its own; its ``d_r`` and ``d_u`` are ``dWx`` gates 0 and 1. The
elementwise carries (``dc`` for the LSTM; ``dc``, ``dn``, ``dm`` for the
sLSTM; the direct term ``dh * u`` for the GRU) live in two ``[K, B, NH, DH]``
float32 buffers used alternately, so that a launch reads one and writes the
other: every launch is a pure function of its inputs, which autotuning (that
runs a launch several times) needs.

After the loop, ``dR`` (``DGR^T h_prev`` summed over batch and time), ``db``
(sums of ``DGR`` and, for the GRU's ``b_n``, of ``dWx`` gate 2) and the
initial-state gradients are a few batched float32 products and reductions in
PyTorch. Gate products in the kernel run in IEEE float32 on float32 loads,
whatever the inputs' dtype, like the fused backward.

The kernel is defined here without tuning: :mod:`brainalign.kernels.triton_rnn`,
which plans, tunes and launches every kernel, wraps it in ``triton.autotune``
with the candidates and resource pruning of the other kernels and passes the
wrapped kernel to :func:`step_backward`.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from .cells import CELLS
from .triton_common import _CELL_ID, _TILE, _gate_tile, _logsigmoid, _sigmoid, _slstm_grads, _tanh

__all__ = ["step_backward"]

#: Elementwise carries per cell (at least one buffer, so the kernel always gets a pointer).
_CARRIES = {"lstm": 1, "gru": 1, "slstm": 3, "elman": 1}


@triton.jit
def _dh_tile(SRC, row_off, m_row, R, g, h, jt, NH, DH: tl.constexpr, TILE: tl.constexpr, BLOCK_B: tl.constexpr):
    """``sum_k SRC[b, k] R[g, h, k, j]`` over the head's units ``k``, for the output tile ``j`` of ``jt``.

    ``row_off`` holds the offset of ``SRC[b, 0]`` per batch row; rows outside
    ``m_row`` count as zero.
    """
    rj = jt * TILE + tl.arange(0, TILE)
    acc = tl.zeros((BLOCK_B, TILE), tl.float32)
    for kt in range(DH // TILE):
        rk = kt * TILE + tl.arange(0, TILE)
        d = tl.load(SRC + row_off[:, None] + rk[None, :], mask=m_row[:, None], other=0.0)
        r = tl.load(R + ((g * NH + h) * DH + rk[:, None]) * DH + rj[None, :]).to(tl.float32)
        acc += tl.dot(d, r, input_precision="ieee")
    return acc


@triton.jit
def _dh_recurrent(DWX, DG, R, rb, m_b, t, T, h, jt, NH, CELL: tl.constexpr, GI: tl.constexpr, DH: tl.constexpr,
                  TILE: tl.constexpr, BLOCK_B: tl.constexpr):
    """``sum_g DGR[:, t + 1, g, h, :] @ R[g, h]`` at the output tile ``jt`` (the recurrent part of ``dh_t``)."""
    nx_row = ((rb * T + t + 1) * GI * NH + h) * DH  # dWx[b, t + 1, 0, h, 0]
    if CELL == 1:  # GRU: recurrent gates (g, r, u) = (d_g, dWx gate 0, dWx gate 1)
        ng_row = ((rb * T + t + 1) * NH + h) * DH
        acc = (_dh_tile(DG, ng_row, m_b, R, 0, h, jt, NH, DH, TILE, BLOCK_B)
               + _dh_tile(DWX, nx_row, m_b, R, 1, h, jt, NH, DH, TILE, BLOCK_B)
               + _dh_tile(DWX, nx_row + NH * DH, m_b, R, 2, h, jt, NH, DH, TILE, BLOCK_B))
    else:
        acc = _dh_tile(DWX, nx_row, m_b, R, 0, h, jt, NH, DH, TILE, BLOCK_B)
        if CELL != 3:
            acc += _dh_tile(DWX, nx_row + NH * DH, m_b, R, 1, h, jt, NH, DH, TILE, BLOCK_B)
            acc += _dh_tile(DWX, nx_row + 2 * NH * DH, m_b, R, 2, h, jt, NH, DH, TILE, BLOCK_B)
            acc += _dh_tile(DWX, nx_row + 3 * NH * DH, m_b, R, 3, h, jt, NH, DH, TILE, BLOCK_B)
    return acc


# A launch reads only its inputs (dWx and d_g of step t + 1, the carries CIN) and overwrites its
# outputs (dWx and d_g of step t, COUT): running it again, as autotuning does, changes nothing.
# One compilation for every step (t is not specialised on its value).
@triton.jit(do_not_specialize=["t"])
def _bw_step_kernel(WX, R, BIAS, PREV, OUT, DOUT, DWX, DG, CIN, COUT, t, B, T, NH,
                    prev_stride_s, prev_stride_b, prev_stride_h, carry_stride, out_stride_s,
                    CELL: tl.constexpr, DH: tl.constexpr, TILE: tl.constexpr, BLOCK_B: tl.constexpr,
                    GI: tl.constexpr, GB: tl.constexpr, S: tl.constexpr, RESET: tl.constexpr):
    """Reverse step ``t`` for one (batch block, head, output tile): dWx (and the GRU's d_g) and the carries."""
    pid_b = tl.program_id(0)
    h = tl.program_id(1)
    jt = tl.program_id(2)
    rb = (pid_b * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # 64-bit offsets: B * T * G * NH * DH may pass 2^31
    out_stride_s = out_stride_s.to(tl.int64)  # 3 * stride (the sLSTM's m) may pass 2^31
    m_b = rb < B
    rj = jt * TILE + tl.arange(0, TILE)
    m2 = m_b[:, None] & (rj < DH)[None, :]
    m_next = m_b & (rb * 0 + t + 1 < T)  # step t + 1 exists: its carries
    m2n = m_next[:, None] & (rj < DH)[None, :]

    # 1. dOut of step t, the recurrent part of dh_t at this tile from the gate gradients of step t + 1 (the
    # last step has none: a branch uniform over the grid), and the carries of step t + 1.
    o_off = ((rb[:, None] * T + t) * NH + h) * DH + rj[None, :]
    c_off = (rb[:, None] * NH + h) * DH + rj[None, :]
    dh = tl.load(DOUT + o_off, mask=m2, other=0.0)
    if t + 1 < T:
        dh += _dh_recurrent(DWX, DG, R, rb, m_b, t, T, h, jt, NH, CELL, GI, DH, TILE, BLOCK_B)
    if CELL == 1:
        dh += tl.load(CIN + c_off, mask=m2n, other=0.0)

    # 2. Step t's gates at this tile, recomputed from h_{t-1} of the whole head (PREV's first state).
    wx_off = ((rb[:, None] * T + t) * GI * NH + h) * DH + rj[None, :]
    prev_off = rb[:, None] * prev_stride_b + h * prev_stride_h + rj[None, :]
    if CELL != 3:
        x0 = tl.load(WX + wx_off, mask=m2, other=0.0).to(tl.float32)
        x1 = tl.load(WX + wx_off + NH * DH, mask=m2, other=0.0).to(tl.float32)
        x2 = tl.load(WX + wx_off + 2 * NH * DH, mask=m2, other=0.0).to(tl.float32)
        b0 = tl.load(BIAS + (0 * NH + h) * DH + rj).to(tl.float32)[None, :]
        b1 = tl.load(BIAS + (1 * NH + h) * DH + rj).to(tl.float32)[None, :]
        b2 = tl.load(BIAS + (2 * NH + h) * DH + rj).to(tl.float32)[None, :]
        b3 = tl.load(BIAS + (3 * NH + h) * DH + rj).to(tl.float32)[None, :]
        y0 = _gate_tile(PREV, R, 0, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B)
        y1 = _gate_tile(PREV, R, 1, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B)
        y2 = _gate_tile(PREV, R, 2, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B)
    if GI == 4:
        x3 = tl.load(WX + wx_off + 3 * NH * DH, mask=m2, other=0.0).to(tl.float32)
        y3 = _gate_tile(PREV, R, 3, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B)

    # 3. The pointwise backward (the fused backward's formulas), stores and carries.
    if CELL == 0:  # LSTM
        c_prev = tl.load(PREV + prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
        ig = _sigmoid(x0 + y0 + b0)
        fg = _sigmoid(x1 + y1 + b1)
        zg = _tanh(x2 + y2 + b2)
        og = _sigmoid(x3 + y3 + b3)
        c = fg * c_prev + ig * zg
        tc = _tanh(c)
        dc = (tl.load(DOUT + out_stride_s + o_off, mask=m2, other=0.0) + tl.load(CIN + c_off, mask=m2n, other=0.0)
              + dh * og * (1.0 - tc * tc))
        tl.store(DWX + wx_off, dc * zg * ig * (1.0 - ig), mask=m2)
        tl.store(DWX + wx_off + NH * DH, dc * c_prev * fg * (1.0 - fg), mask=m2)
        tl.store(DWX + wx_off + 2 * NH * DH, dc * ig * (1.0 - zg * zg), mask=m2)
        tl.store(DWX + wx_off + 3 * NH * DH, dh * tc * og * (1.0 - og), mask=m2)
        tl.store(COUT + c_off, dc * fg, mask=m2)
    elif CELL == 1:  # GRU: Wx (r, u, n), R (g, r, u), b (g, r, u, n)
        h_prev = tl.load(PREV + prev_off, mask=m2, other=0.0).to(tl.float32)
        gg = y0 + b0
        rg = _sigmoid(x0 + y1 + b1)
        ug = _sigmoid(x1 + y2 + b2)
        cand = _tanh(x2 + b3 + rg * gg)
        dpre = dh * (1.0 - ug) * (1.0 - cand * cand)
        tl.store(DG + o_off, dpre * rg, mask=m2)
        tl.store(DWX + wx_off, dpre * gg * rg * (1.0 - rg), mask=m2)
        tl.store(DWX + wx_off + NH * DH, dh * (h_prev - cand) * ug * (1.0 - ug), mask=m2)
        tl.store(DWX + wx_off + 2 * NH * DH, dpre, mask=m2)
        tl.store(COUT + c_off, dh * ug, mask=m2)
    elif CELL == 2:  # sLSTM; torch.maximum's gradient splits ties in half, as here
        c_prev = tl.load(PREV + prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
        n_prev = tl.load(PREV + 2 * prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
        m_prev = tl.load(PREV + 3 * prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
        i_raw = x0 + y0 + b0
        f_raw = x1 + y1 + b1
        z_raw = x2 + y2 + b2
        o_raw = x3 + y3 + b3
        lf = _logsigmoid(f_raw) + m_prev
        if RESET:  # first step from zero normalisers: m = i_raw
            m_new = i_raw
            w_i = tl.full(i_raw.shape, 1.0, tl.float32)
        else:
            m_new = tl.maximum(i_raw, lf)
            w_i = tl.where(i_raw > lf, 1.0, tl.where(i_raw == lf, 0.5, 0.0))
        dc = tl.load(DOUT + out_stride_s + o_off, mask=m2, other=0.0) + tl.load(CIN + c_off, mask=m2n, other=0.0)
        dn = (tl.load(DOUT + 2 * out_stride_s + o_off, mask=m2, other=0.0)
              + tl.load(CIN + carry_stride + c_off, mask=m2n, other=0.0))
        dm = (tl.load(DOUT + 3 * out_stride_s + o_off, mask=m2, other=0.0)
              + tl.load(CIN + 2 * carry_stride + c_off, mask=m2n, other=0.0))
        g0, g1, g2, g3, dc_prev, dn_prev, dm_prev = _slstm_grads(
            i_raw, f_raw, z_raw, o_raw, lf, m_new, w_i, c_prev, n_prev, dh, dc, dn, dm)
        tl.store(DWX + wx_off, g0, mask=m2)
        tl.store(DWX + wx_off + NH * DH, g1, mask=m2)
        tl.store(DWX + wx_off + 2 * NH * DH, g2, mask=m2)
        tl.store(DWX + wx_off + 3 * NH * DH, g3, mask=m2)
        tl.store(COUT + c_off, dc_prev, mask=m2)
        tl.store(COUT + carry_stride + c_off, dn_prev, mask=m2)
        tl.store(COUT + 2 * carry_stride + c_off, dm_prev, mask=m2)
    else:  # Elman: h_t = tanh(pre), so the saved output suffices
        hn = tl.load(OUT + o_off, mask=m2, other=0.0).to(tl.float32)
        tl.store(DWX + wx_off, dh * (1.0 - hn * hn), mask=m2)


def step_backward(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, out: torch.Tensor,
                  grad_out: torch.Tensor, cell: str, first_reset: bool, kernel: Any
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of one head-wise RNN call by one tiled kernel launch per reverse time step.

    Parameters
    ----------
    Wx : Tensor of shape (B, T, G_in, NH, DH)
    R : Tensor of shape (G_rec, NH, DH, DH)
    b : Tensor of shape (G_b, NH, DH)
    states : Tensor of shape (S, B, NH, DH)
        Initial states of the forward.
    out : Tensor of shape (S, B, T, NH, DH)
        Every state of every step, as the forward returned them.
    grad_out : Tensor of shape (S, B, T, NH, DH)
        Gradient of the loss with respect to ``out``.
    cell : {"lstm", "gru", "slstm", "elman"}
    first_reset : bool
        The sLSTM started from zero normalisers (``m = i_raw`` at its first step).
    kernel : triton autotuner
        :func:`_bw_step_kernel` wrapped in ``triton.autotune`` (which chooses
        ``BLOCK_B`` and the warps), as :mod:`brainalign.kernels.triton_rnn`
        passes it.

    Returns
    -------
    tuple of Tensor
        ``dWx``, ``dR``, ``db`` and ``dstates``, float32, of the shapes of
        ``Wx``, ``R``, ``b`` and ``states``. DH must be a multiple of 64.
    """
    spec = CELLS[cell]
    B, T, GI, NH, DH = Wx.shape
    if DH % _TILE:
        raise ValueError(f"the per-step backward needs DH to be a multiple of {_TILE}, got {DH}.")
    f32, device = torch.float32, Wx.device
    Wx, R, b, states, out = (x.contiguous() for x in (Wx, R, b, states, out))
    dout = grad_out.contiguous().to(f32)
    # Poisoned (NaN) rather than empty: an element the kernel fails to write shows up.
    dwx = torch.full(Wx.shape, float("nan"), dtype=f32, device=device)
    dg = torch.full((B, T, NH, DH), float("nan"), dtype=f32, device=device) if cell == "gru" else dwx
    carries = torch.zeros((2, _CARRIES[cell], B, NH, DH), dtype=f32, device=device)
    grid = lambda meta: (triton.cdiv(B, meta["BLOCK_B"]), NH, DH // _TILE)  # noqa: E731 (the batch block is tuned)
    for t in range(T - 1, -1, -1):
        prev = states if t == 0 else out[:, :, t - 1]
        kernel[grid](Wx, R, b, prev, out, dout, dwx, dg, carries[(t + 1) % 2], carries[t % 2], t, B, T, NH,
                     prev.stride(0), prev.stride(1), prev.stride(2), B * NH * DH, B * T * NH * DH,
                     CELL=_CELL_ID[cell], DH=DH, TILE=_TILE, GI=GI, GB=spec.gates_bias, S=spec.n_states,
                     RESET=first_reset and t == 0)
    carry = carries[0]  # written by step 0

    # dR[g, k] = sum over b, t of DGR[b, t, g, k, :]^T (outer) h_prev[b, t, k, :]; float32 products.
    h_prev = torch.cat((states[0].unsqueeze(1), out[0][:, :-1]), dim=1).to(f32)  # [B, T, NH, DH]
    Rf = R.to(f32)
    if cell == "gru":
        dr = torch.cat((torch.einsum("btkj,btki->kji", dg, h_prev).unsqueeze(0),
                        torch.einsum("btgkj,btki->gkji", dwx[:, :, :2], h_prev)))
        db = torch.cat((dg.sum((0, 1)).unsqueeze(0), dwx.sum((0, 1))))
        dgr0 = torch.cat((dg[:, 0].unsqueeze(1), dwx[:, 0, :2]), dim=1)  # [B, G_rec, NH, DH] at t = 0
    else:
        dr = torch.einsum("btgkj,btki->gkji", dwx, h_prev)
        db = dwx.sum((0, 1))
        dgr0 = dwx[:, 0]
    dstates = torch.zeros(states.shape, dtype=f32, device=device)
    dstates[0] = torch.einsum("bgkj,gkji->bki", dgr0, Rf)
    if cell == "gru":
        dstates[0] += carry[0]
    elif cell == "lstm":
        dstates[1] = carry[0]
    elif cell == "slstm":
        dstates[1:] = carry
    return dwx, dr, db, dstates
