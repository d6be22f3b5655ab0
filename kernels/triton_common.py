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


@triton.jit
def _slstm_grads(i_raw, f_raw, z_raw, o_raw, lf, m_new, w_i, c_prev, n_prev, dh, dc, dn, dm):
    """The sLSTM step's pointwise backward (every backward kernel's; float32 tiles).

    ``lf`` is ``log σ(f_raw) + m_prev``, ``m_new`` the step's stabiliser and
    ``w_i`` its derivative with respect to ``i_raw`` (1 at a reset step, else
    1, 0, or 0.5 at a tie, as ``torch.maximum``'s gradient splits ties);
    ``dh``, ``dc``, ``dn``, ``dm`` are the gradients reaching the step's new
    states. Returns the gradients of the gate pre-activations (i, f, z, o) and
    those of the previous ``c``, ``n`` and ``m`` (the elementwise carries).
    """
    ig = tl.exp(i_raw - m_new)
    fg = tl.exp(lf - m_new)
    zt = _tanh(z_raw)
    c = fg * c_prev + ig * zt
    nn = fg * n_prev + ig
    n = tl.maximum(nn, 1.0)
    og = _sigmoid(o_raw)
    g3 = dh * c / n * og * (1.0 - og)
    dc = dc + dh * og / n
    dn = dn - dh * og * c / (n * n)
    dnn = dn * tl.where(nn > 1.0, 1.0, tl.where(nn == 1.0, 0.5, 0.0))
    di = dc * zt + dnn
    df = dc * c_prev + dnn * n_prev
    g2 = dc * ig * (1.0 - zt * zt)
    dm_tot = dm - di * ig - df * fg
    g0 = di * ig + dm_tot * w_i
    dlf = df * fg + dm_tot * (1.0 - w_i)
    g1 = dlf * (1.0 - _sigmoid(f_raw))
    return g0, g1, g2, g3, dc * fg, dnn * fg, dlf
