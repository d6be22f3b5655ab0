"""Triton helpers shared by the head-wise RNN kernels (activations, the tiled gate product, constants).

Imported by :mod:`brainalign.kernels.triton_rnn` (fused kernels and the
per-step forward) and :mod:`brainalign.kernels.triton_step_backward`; imports
only Triton.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: The ``CELL`` constant of every kernel.
_CELL_ID = {"lstm": 0, "gru": 1, "slstm": 2, "elman": 3}
#: Output tile width of the one-launch-per-step kernels (DH > 128, or what does not fit fused).
_TILE = 64


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
def _gate_tile(PREV_H, R, g, h, rb, m_b, jt, sb, sh, NH, DH: tl.constexpr, TILE: tl.constexpr,
               BLOCK_B: tl.constexpr):
    """(R[g, h] @ h_prev)[:, jt*TILE:(jt+1)*TILE] for a batch block, summed over input tiles."""
    rj = jt * TILE + tl.arange(0, TILE)
    acc = tl.zeros((BLOCK_B, TILE), tl.float32)
    for kt in range(DH // TILE):
        rk = kt * TILE + tl.arange(0, TILE)
        hk = tl.load(PREV_H + rb[:, None] * sb + h * sh + rk[None, :], mask=m_b[:, None], other=0.0).to(tl.float32)
        rt = tl.load(R + ((g * NH + h) * DH + rj[None, :]) * DH + rk[:, None]).to(tl.float32)
        acc += tl.dot(hk, rt, input_precision="ieee")
    return acc
