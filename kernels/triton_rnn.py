"""Fused head-wise RNN forward kernel in Triton (all four cells), behind :func:`headwise_rnn`.

One program handles one head and a block of ``BLOCK_B`` sequences: it keeps the
head's recurrent weights ``R[:, head]`` (``G_rec`` tiles of ``DH x DH``, in
shared memory as ``tl.dot`` operands) and the states (in registers) for the
whole sequence and loops over time, so each step costs one small matrix product
per gate (``tl.dot``) plus the pointwise cell, with no kernel launch and no
round trip of ``R`` through global memory per step — FlashRNN's fusion.
Products accumulate in float32: float32 inputs use IEEE float32 products (never
TF32), bfloat16/float16 inputs use operands of their own type (tensor cores,
half the shared memory). States are stored in the inputs' dtype.

Resources: the resident weights take ``G_rec * DH * DH`` operands of shared
memory per program (LSTM, DH = 128, float32: 256 KiB, more than an H200's 227
KiB per block). :func:`launch_plan` checks every candidate configuration with
the model of :mod:`brainalign.kernels.resources` before launching and moves a
shape that fits nowhere to the next path (docs/kernels.md).

The backward kernel runs one program per head over every batch block in
reverse time: it recomputes the gates from the saved states, writes ``dWx`` per
step, keeps ``dR`` and ``db`` in registers (summed over batch and time) and
returns the gradients of the initial states, for all four cells (the sLSTM's
running maximum and its ``max(n, 1)`` split tied gradients in half, as
``torch.maximum`` does). Where it does not fit (``R`` and ``R^T`` resident) or
DH > 128, the tiled one-launch-per-step backward of
:mod:`brainalign.kernels.triton_step_backward` runs instead.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .cells import CELLS
from .reference import check_inputs, reference_headwise_rnn
from .resources import DeviceLimits, device_limits, fits, footprint
from .triton_common import _CELL_ID, _TILE, _gate_tile, _logsigmoid, _sigmoid, _slstm_grads, _tanh
from .triton_step_backward import _bw_step_kernel, step_backward

__all__ = ["triton_headwise_rnn", "SUPPORTED_HEAD_DIMS", "LaunchPlan", "launch_plan"]

#: Head sizes of the fused kernel (``tl.dot`` needs tiles of at least 16); larger
#: multiples of 64 go through the tiled, one-launch-per-step path.
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
_CELL_NAME = {v: k for k, v in _CELL_ID.items()}


#: Autotuning candidates (batch block, warps) per kernel; the first that fits is the untuned default.
CANDIDATES = {
    "forward": [(16, 4)] + [(bb, w) for bb in (16, 32, 64) for w in (1, 2, 4, 8) if (bb, w) != (16, 4)],
    "backward": [(16, 4)] + [(bb, w) for bb in (16, 32) for w in (2, 4, 8) if (bb, w) != (16, 4)],
    "step": [(16, 4)] + [(bb, w) for bb in (16, 32, 64) for w in (2, 4, 8) if (bb, w) != (16, 4)],
    "step_backward": [(16, 4)] + [(bb, w) for bb in (16, 32, 64) for w in (2, 4, 8) if (bb, w) != (16, 4)],
}


def _tuning_configs(kernel: str) -> list[triton.Config]:
    """Candidate (batch block, warps) pairs of ``kernel`` for :func:`triton.autotune`.

    The interpreter (``TRITON_INTERPRET=1``) gets the single default (16
    sequences, 4 warps): it has no resource limits, and benchmarking candidates
    on a CPU is meaningless. On a GPU every candidate is kept here and
    :func:`_prune` drops those that cannot fit the device.
    """
    if os.environ.get("TRITON_INTERPRET") == "1":
        return [triton.Config({"BLOCK_B": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BLOCK_B": bb}, num_warps=w, num_stages=1) for bb, w in CANDIDATES[kernel]]


def fitting_candidates(kernel: str, cell: str, head_dim: int, batch: int, operand_bytes: int,
                       limits: DeviceLimits | None) -> list[tuple[int, int]]:
    """The (batch block, warps) candidates of ``kernel`` that fit ``limits``, in preference order.

    Batch blocks wider than the batch (rounded up to 16) are dropped first: they
    only add masked rows. ``limits=None`` (the interpreter) keeps every candidate.
    """
    widest = max(16, triton.next_power_of_2(int(batch)))
    kept = [(bb, w) for bb, w in CANDIDATES[kernel] if bb <= widest]
    if limits is None:
        return kept
    return [(bb, w) for bb, w in kept
            if fits(footprint(kernel, cell, head_dim, bb, w, operand_bytes, tile=_TILE), limits)]


def _prune(kernel: str):
    """An ``early_config_prune`` for ``kernel``: the fitting candidates (only the first without autotuning)."""

    def prune(configs, named_args, **kwargs):
        cell = _CELL_NAME[kwargs["CELL"]]
        operand_bytes = 4 if kwargs.get("OP", 0) == 0 else 2
        limits = _device_limits(named_args["WX"].device)
        keep = set(fitting_candidates(kernel, cell, kwargs["DH"], named_args["B"], operand_bytes, limits))
        kept = [c for c in configs if (c.kwargs["BLOCK_B"], c.num_warps) in keep]
        if os.environ.get("BRAINALIGN_TRITON_AUTOTUNE") == "0":
            kept = kept[:1]  # the first fitting candidate: no benchmarking, no timing noise
        return kept or configs[:1]  # never empty: launch_plan has already checked that one fits

    return prune


@functools.lru_cache(maxsize=None)
def _cuda_limits(index: int) -> DeviceLimits:
    return device_limits(index)


def _device_limits(device: torch.device) -> DeviceLimits | None:
    """The device's limits, or None under the interpreter (no per-block limits on a CPU)."""
    if device.type != "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return _cuda_limits(torch.cuda.current_device() if device.index is None else device.index)


@dataclass(frozen=True)
class LaunchPlan:
    """Which kernel runs each direction of one shape.

    Attributes
    ----------
    forward : {"fused", "step", "reference"}
        ``"fused"``: weights resident for the whole sequence (DH <= 128);
        ``"step"``: one launch per step with 64-wide tiles (multiples of 64);
        ``"reference"``: nothing fits, the PyTorch loop runs instead.
    backward : {"fused", "step", "reference"}
        ``"fused"``: the reverse-time kernel with ``R`` and ``R^T`` resident
        (DH <= 128); ``"step"``: one launch per reverse step with 64-wide tiles
        (:mod:`brainalign.kernels.triton_step_backward`, multiples of 64);
        ``"reference"``: the PyTorch loop recomputed under autograd.
    operand_bytes : int
        Bytes per matrix-product operand of the forward (4: IEEE float32; 2: bfloat16/float16).
    """

    forward: str
    backward: str
    operand_bytes: int


def launch_plan(cell: str, head_dim: int, batch: int, dtype: torch.dtype,
                limits: DeviceLimits | None) -> LaunchPlan:
    """Choose the kernels for one shape so that nothing is launched that cannot fit ``limits``.

    Parameters
    ----------
    cell : {"lstm", "gru", "slstm", "elman"}
    head_dim : int
        DH.
    batch : int
        B.
    dtype : torch.dtype
        The inputs' dtype: float32 products run in IEEE float32 (4-byte
        operands), bfloat16/float16 products on the tensor cores (2 bytes).
    limits : DeviceLimits or None
        The GPU's limits (:func:`brainalign.kernels.resources.device_limits`);
        None under the interpreter.
    """
    operand_bytes = 4 if dtype == torch.float32 else 2
    if head_dim in SUPPORTED_HEAD_DIMS and fitting_candidates("forward", cell, head_dim, batch, operand_bytes, limits):
        forward = "fused"
    elif head_dim % _TILE == 0 and fitting_candidates("step", cell, head_dim, batch, 4, limits):
        forward = "step"
    else:
        forward = "reference"
    # The backward's products always run in IEEE float32 (4-byte operands).
    if head_dim in SUPPORTED_HEAD_DIMS and fitting_candidates("backward", cell, head_dim, batch, 4, limits):
        backward = "fused"
    elif head_dim % _TILE == 0 and fitting_candidates("step_backward", cell, head_dim, batch, 4, limits):
        backward = "step"
    else:
        backward = "reference"
    return LaunchPlan(forward, backward, operand_bytes)


_WARNED: set[tuple] = set()


def _warn_fallback(direction: str, cell: str, head_dim: int, dtype: torch.dtype, used: str,
                   limits: DeviceLimits | None) -> None:
    """One warning per (direction, cell, DH, dtype) when a direction leaves its expected kernel.

    That is: a fused kernel (DH <= 128) that does not fit, or any shape that
    falls to the reference; the message names the kernels that did not fit.
    """
    key = (direction, cell, head_dim, dtype, used)
    if key in _WARNED:
        return
    _WARNED.add(key)
    if limits is None:
        where = "this device"
    else:
        where = (f"{limits.name or 'this GPU'} ({limits.max_shared_mem} bytes of shared memory per block, "
                 f"{limits.max_registers_per_thread} registers per thread)")
    tried = (["fused"] if head_dim in SUPPORTED_HEAD_DIMS else []) \
        + (["per-step"] if used == "reference" and head_dim % _TILE == 0 else [])
    warnings.warn(f"brainalign.kernels: no {' or '.join(tried)} Triton {direction} configuration for {cell} "
                  f"with DH = {head_dim} "
                  f"in {str(dtype).removeprefix('torch.')} fits {where}; the {direction} runs on the {used} path "
                  "instead.", RuntimeWarning, stacklevel=4)


@triton.jit
def _load_rt(R, g, h, NH, DH: tl.constexpr):
    """R[g, h] transposed (``Rt[i, j] = R[g, h, j, i]``), float32."""
    rd = tl.arange(0, DH)
    return tl.load(R + ((g * NH + h) * DH + rd[None, :]) * DH + rd[:, None]).to(tl.float32)


@triton.jit
def _as_operand(x, OP: tl.constexpr):
    """A matrix-product operand: float32 (``OP`` 0), bfloat16 (1), float16 (2), or bfloat16 values in float32 (3)."""
    if OP == 1:
        return x.to(tl.bfloat16)
    elif OP == 2:
        return x.to(tl.float16)
    elif OP == 3:
        return x.to(tl.bfloat16).to(tl.float32)
    else:
        return x


@triton.jit
def _dot(x, rt, OP: tl.constexpr):
    """``x @ rt`` accumulated in float32; ``rt`` is already an operand of type ``OP``.

    ``OP`` 3 is for the CPU interpreter, whose bfloat16 ``tl.dot`` is wrong: the
    operands are rounded to bfloat16 and multiplied in IEEE float32, which gives
    the same products (a product of two bfloat16 values is exact in float32).
    """
    if OP == 0 or OP == 3:
        return tl.dot(_as_operand(x, OP), rt, input_precision="ieee")
    else:
        return tl.dot(_as_operand(x, OP), rt, out_dtype=tl.float32)


# Every output element is overwritten by each candidate run, so tuning needs no
# reset of the outputs; the key separates cells, head sizes, batch and head counts.
@triton.autotune(configs=_tuning_configs("forward"), key=["B", "NH", "CELL", "DH", "OP"],
                 prune_configs_by={"early_config_prune": _prune("forward")}, cache_results=True)
@triton.jit
def _fw_kernel(WX, R, BIAS, S0, OUT, B, T, NH, out_stride_s,
               CELL: tl.constexpr, DH: tl.constexpr, BLOCK_B: tl.constexpr, GI: tl.constexpr,
               GB: tl.constexpr, S: tl.constexpr, FIRST_RESET: tl.constexpr, OP: tl.constexpr):
    pid_b = tl.program_id(0)
    h = tl.program_id(1)
    rb = (pid_b * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # 64-bit offsets: B*T*G*NH*DH may pass 2^31
    out_stride_s = out_stride_s.to(tl.int64)  # 3 * stride (the sLSTM's m) may pass 2^31
    rd = tl.arange(0, DH)
    m2 = (rb < B)[:, None] & (rd < DH)[None, :]
    # Offsets of a [BLOCK_B, DH] tile in a [*, B, NH, DH] state tensor.
    s_off = (rb[:, None] * NH + h) * DH + rd[None, :]
    state_stride = B * NH * DH

    hs = tl.load(S0 + s_off, mask=m2, other=0.0).to(tl.float32)
    if S >= 2:
        cs = tl.load(S0 + state_stride + s_off, mask=m2, other=0.0).to(tl.float32)
    if S == 4:
        ns = tl.load(S0 + 2 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32)
        ms = tl.load(S0 + 3 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32)

    rt0 = _as_operand(_load_rt(R, 0, h, NH, DH), OP)
    if CELL != 3:
        rt1 = _as_operand(_load_rt(R, 1, h, NH, DH), OP)
        rt2 = _as_operand(_load_rt(R, 2, h, NH, DH), OP)
    if CELL == 0 or CELL == 2:
        rt3 = _as_operand(_load_rt(R, 3, h, NH, DH), OP)
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
        y0 = _dot(hs, rt0, OP)
        if CELL == 0:  # LSTM: gates i, f, z, o
            ig = _sigmoid(x0 + y0 + b0)
            fg = _sigmoid(x1 + _dot(hs, rt1, OP) + b1)
            zg = _tanh(x2 + _dot(hs, rt2, OP) + b2)
            og = _sigmoid(x3 + _dot(hs, rt3, OP) + b3)
            cs = fg * cs + ig * zg
            hs = og * _tanh(cs)
        elif CELL == 1:  # GRU: Wx (r, u, n), R (g, r, u), b (g, r, u, n)
            gg = y0 + b0
            rg = _sigmoid(x0 + _dot(hs, rt1, OP) + b1)
            ug = _sigmoid(x1 + _dot(hs, rt2, OP) + b2)
            cand = _tanh(x2 + b3 + rg * gg)
            hs = ug * hs + (1.0 - ug) * cand
        elif CELL == 2:  # sLSTM
            i_raw = x0 + y0 + b0
            f_raw = x1 + _dot(hs, rt1, OP) + b1
            z_raw = x2 + _dot(hs, rt2, OP) + b2
            o_raw = x3 + _dot(hs, rt3, OP) + b3
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


@triton.jit
def _load_r(R, g, h, NH, DH: tl.constexpr):
    """R[g, h] as stored (``[to, from]``), float32."""
    rd = tl.arange(0, DH)
    return tl.load(R + ((g * NH + h) * DH + rd[:, None]) * DH + rd[None, :]).to(tl.float32)


@triton.jit
def _acc_dr(DR, g, h, NH, acc, DH: tl.constexpr):
    rd = tl.arange(0, DH)
    tl.store(DR + ((g * NH + h) * DH + rd[:, None]) * DH + rd[None, :], acc)


@triton.autotune(configs=_tuning_configs("backward"), key=["B", "NH", "CELL", "DH"],
                 prune_configs_by={"early_config_prune": _prune("backward")}, cache_results=True)
@triton.jit
def _bw_kernel(WX, R, BIAS, S0, OUT, DOUT, DWX, DR, DB, DS0, B, T, NH, out_stride_s,
               CELL: tl.constexpr, DH: tl.constexpr, BLOCK_B: tl.constexpr, GI: tl.constexpr,
               GB: tl.constexpr, S: tl.constexpr, FIRST_RESET: tl.constexpr):
    """Reverse-time loop of one head over every batch block: dWx per step, dR and db summed, dStates0."""
    h = tl.program_id(0)
    out_stride_s = out_stride_s.to(tl.int64)  # 3 * stride (the sLSTM's m) may pass 2^31
    rd = tl.arange(0, DH)
    state_stride = B * NH * DH
    rt0 = _load_rt(R, 0, h, NH, DH)
    r0 = _load_r(R, 0, h, NH, DH)
    if CELL != 3:
        rt1 = _load_rt(R, 1, h, NH, DH)
        rt2 = _load_rt(R, 2, h, NH, DH)
        r1 = _load_r(R, 1, h, NH, DH)
        r2 = _load_r(R, 2, h, NH, DH)
    if CELL == 0 or CELL == 2:
        rt3 = _load_rt(R, 3, h, NH, DH)
        r3 = _load_r(R, 3, h, NH, DH)
    b0 = tl.load(BIAS + (0 * NH + h) * DH + rd).to(tl.float32)[None, :]
    if GB >= 3:
        b1 = tl.load(BIAS + (1 * NH + h) * DH + rd).to(tl.float32)[None, :]
        b2 = tl.load(BIAS + (2 * NH + h) * DH + rd).to(tl.float32)[None, :]
    if GB == 4:
        b3 = tl.load(BIAS + (3 * NH + h) * DH + rd).to(tl.float32)[None, :]
    dr0 = tl.zeros((DH, DH), tl.float32)
    dr1 = tl.zeros((DH, DH), tl.float32)
    dr2 = tl.zeros((DH, DH), tl.float32)
    dr3 = tl.zeros((DH, DH), tl.float32)
    db0 = tl.zeros((DH,), tl.float32)
    db1 = tl.zeros((DH,), tl.float32)
    db2 = tl.zeros((DH,), tl.float32)
    db3 = tl.zeros((DH,), tl.float32)
    for b_start in range(0, B, BLOCK_B):
        rb = (b_start + tl.arange(0, BLOCK_B)).to(tl.int64)  # 64-bit offsets
        m2 = (rb < B)[:, None] & (rd < DH)[None, :]
        s_off = (rb[:, None] * NH + h) * DH + rd[None, :]
        dh_next = tl.zeros((BLOCK_B, DH), tl.float32)
        dc_next = tl.zeros((BLOCK_B, DH), tl.float32)
        dn_next = tl.zeros((BLOCK_B, DH), tl.float32)
        dm_next = tl.zeros((BLOCK_B, DH), tl.float32)
        for k in range(T):
            t = T - 1 - k
            o_off = ((rb[:, None] * T + t) * NH + h) * DH + rd[None, :]
            # The previous step's states (clamped at t = 0, where S0 is used instead).
            p_off = ((rb[:, None] * T + tl.maximum(t - 1, 0)) * NH + h) * DH + rd[None, :]
            first = t == 0
            h_prev = tl.where(first, tl.load(S0 + s_off, mask=m2, other=0.0).to(tl.float32),
                              tl.load(OUT + p_off, mask=m2, other=0.0).to(tl.float32))
            wx_off = ((rb[:, None] * T + t) * GI * NH + h) * DH + rd[None, :]
            x0 = tl.load(WX + wx_off, mask=m2, other=0.0).to(tl.float32)
            if GI >= 3:
                x1 = tl.load(WX + wx_off + NH * DH, mask=m2, other=0.0).to(tl.float32)
                x2 = tl.load(WX + wx_off + 2 * NH * DH, mask=m2, other=0.0).to(tl.float32)
            if GI == 4:
                x3 = tl.load(WX + wx_off + 3 * NH * DH, mask=m2, other=0.0).to(tl.float32)
            dh = tl.load(DOUT + o_off, mask=m2, other=0.0).to(tl.float32) + dh_next
            if CELL == 0:
                c_prev = tl.where(first, tl.load(S0 + state_stride + s_off, mask=m2, other=0.0).to(tl.float32),
                                  tl.load(OUT + out_stride_s + p_off, mask=m2, other=0.0).to(tl.float32))
                ig = _sigmoid(x0 + tl.dot(h_prev, rt0, input_precision="ieee") + b0)
                fg = _sigmoid(x1 + tl.dot(h_prev, rt1, input_precision="ieee") + b1)
                zg = _tanh(x2 + tl.dot(h_prev, rt2, input_precision="ieee") + b2)
                og = _sigmoid(x3 + tl.dot(h_prev, rt3, input_precision="ieee") + b3)
                c = fg * c_prev + ig * zg
                tc = _tanh(c)
                dc = tl.load(DOUT + out_stride_s + o_off, mask=m2, other=0.0).to(tl.float32) + dc_next
                dc = dc + dh * og * (1.0 - tc * tc)
                g0 = dc * zg * ig * (1.0 - ig)
                g1 = dc * c_prev * fg * (1.0 - fg)
                g2 = dc * ig * (1.0 - zg * zg)
                g3 = dh * tc * og * (1.0 - og)
                dc_next = dc * fg
                tl.store(DWX + wx_off, g0, mask=m2)
                tl.store(DWX + wx_off + NH * DH, g1, mask=m2)
                tl.store(DWX + wx_off + 2 * NH * DH, g2, mask=m2)
                tl.store(DWX + wx_off + 3 * NH * DH, g3, mask=m2)
                dr0 += tl.dot(tl.trans(g0), h_prev, input_precision="ieee")
                dr1 += tl.dot(tl.trans(g1), h_prev, input_precision="ieee")
                dr2 += tl.dot(tl.trans(g2), h_prev, input_precision="ieee")
                dr3 += tl.dot(tl.trans(g3), h_prev, input_precision="ieee")
                db0 += tl.sum(g0, axis=0)
                db1 += tl.sum(g1, axis=0)
                db2 += tl.sum(g2, axis=0)
                db3 += tl.sum(g3, axis=0)
                dh_next = (tl.dot(g0, r0, input_precision="ieee") + tl.dot(g1, r1, input_precision="ieee")
                           + tl.dot(g2, r2, input_precision="ieee") + tl.dot(g3, r3, input_precision="ieee"))
            elif CELL == 1:
                gg = tl.dot(h_prev, rt0, input_precision="ieee") + b0
                rg = _sigmoid(x0 + tl.dot(h_prev, rt1, input_precision="ieee") + b1)
                ug = _sigmoid(x1 + tl.dot(h_prev, rt2, input_precision="ieee") + b2)
                cand = _tanh(x2 + b3 + rg * gg)
                du = dh * (h_prev - cand)
                dpre = dh * (1.0 - ug) * (1.0 - cand * cand)
                d_g = dpre * rg
                d_r = dpre * gg * rg * (1.0 - rg)
                d_u = du * ug * (1.0 - ug)
                tl.store(DWX + wx_off, d_r, mask=m2)
                tl.store(DWX + wx_off + NH * DH, d_u, mask=m2)
                tl.store(DWX + wx_off + 2 * NH * DH, dpre, mask=m2)
                dr0 += tl.dot(tl.trans(d_g), h_prev, input_precision="ieee")
                dr1 += tl.dot(tl.trans(d_r), h_prev, input_precision="ieee")
                dr2 += tl.dot(tl.trans(d_u), h_prev, input_precision="ieee")
                db0 += tl.sum(d_g, axis=0)
                db1 += tl.sum(d_r, axis=0)
                db2 += tl.sum(d_u, axis=0)
                db3 += tl.sum(dpre, axis=0)
                dh_next = (dh * ug + tl.dot(d_g, r0, input_precision="ieee")
                           + tl.dot(d_r, r1, input_precision="ieee") + tl.dot(d_u, r2, input_precision="ieee"))
            elif CELL == 2:  # sLSTM; torch.maximum's gradient splits ties in half, as here
                c_prev = tl.where(first, tl.load(S0 + state_stride + s_off, mask=m2, other=0.0).to(tl.float32),
                                  tl.load(OUT + out_stride_s + p_off, mask=m2, other=0.0).to(tl.float32))
                n_prev = tl.where(first, tl.load(S0 + 2 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32),
                                  tl.load(OUT + 2 * out_stride_s + p_off, mask=m2, other=0.0).to(tl.float32))
                m_prev = tl.where(first, tl.load(S0 + 3 * state_stride + s_off, mask=m2, other=0.0).to(tl.float32),
                                  tl.load(OUT + 3 * out_stride_s + p_off, mask=m2, other=0.0).to(tl.float32))
                i_raw = x0 + tl.dot(h_prev, rt0, input_precision="ieee") + b0
                f_raw = x1 + tl.dot(h_prev, rt1, input_precision="ieee") + b1
                z_raw = x2 + tl.dot(h_prev, rt2, input_precision="ieee") + b2
                o_raw = x3 + tl.dot(h_prev, rt3, input_precision="ieee") + b3
                lf = _logsigmoid(f_raw) + m_prev
                reset = first & FIRST_RESET
                m_new = tl.where(reset, i_raw, tl.maximum(i_raw, lf))
                w_i = tl.where(reset, 1.0, tl.where(i_raw > lf, 1.0, tl.where(i_raw == lf, 0.5, 0.0)))
                dc = tl.load(DOUT + out_stride_s + o_off, mask=m2, other=0.0).to(tl.float32) + dc_next
                dn = tl.load(DOUT + 2 * out_stride_s + o_off, mask=m2, other=0.0).to(tl.float32) + dn_next
                dm = tl.load(DOUT + 3 * out_stride_s + o_off, mask=m2, other=0.0).to(tl.float32) + dm_next
                g0, g1, g2, g3, dc_next, dn_next, dm_next = _slstm_grads(
                    i_raw, f_raw, z_raw, o_raw, lf, m_new, w_i, c_prev, n_prev, dh, dc, dn, dm)
                tl.store(DWX + wx_off, g0, mask=m2)
                tl.store(DWX + wx_off + NH * DH, g1, mask=m2)
                tl.store(DWX + wx_off + 2 * NH * DH, g2, mask=m2)
                tl.store(DWX + wx_off + 3 * NH * DH, g3, mask=m2)
                dr0 += tl.dot(tl.trans(g0), h_prev, input_precision="ieee")
                dr1 += tl.dot(tl.trans(g1), h_prev, input_precision="ieee")
                dr2 += tl.dot(tl.trans(g2), h_prev, input_precision="ieee")
                dr3 += tl.dot(tl.trans(g3), h_prev, input_precision="ieee")
                db0 += tl.sum(g0, axis=0)
                db1 += tl.sum(g1, axis=0)
                db2 += tl.sum(g2, axis=0)
                db3 += tl.sum(g3, axis=0)
                dh_next = (tl.dot(g0, r0, input_precision="ieee") + tl.dot(g1, r1, input_precision="ieee")
                           + tl.dot(g2, r2, input_precision="ieee") + tl.dot(g3, r3, input_precision="ieee"))
            else:  # Elman
                hn = tl.load(OUT + o_off, mask=m2, other=0.0).to(tl.float32)
                g0 = dh * (1.0 - hn * hn)
                tl.store(DWX + wx_off, g0, mask=m2)
                dr0 += tl.dot(tl.trans(g0), h_prev, input_precision="ieee")
                db0 += tl.sum(g0, axis=0)
                dh_next = tl.dot(g0, r0, input_precision="ieee")
        tl.store(DS0 + s_off, dh_next, mask=m2)
        if CELL == 0 or CELL == 2:
            tl.store(DS0 + state_stride + s_off, dc_next, mask=m2)
        if CELL == 2:
            tl.store(DS0 + 2 * state_stride + s_off, dn_next, mask=m2)
            tl.store(DS0 + 3 * state_stride + s_off, dm_next, mask=m2)
    _acc_dr(DR, 0, h, NH, dr0, DH)
    tl.store(DB + (0 * NH + h) * DH + rd, db0)
    if CELL != 3:
        _acc_dr(DR, 1, h, NH, dr1, DH)
        _acc_dr(DR, 2, h, NH, dr2, DH)
        tl.store(DB + (1 * NH + h) * DH + rd, db1)
        tl.store(DB + (2 * NH + h) * DH + rd, db2)
    if CELL == 0 or CELL == 2:
        _acc_dr(DR, 3, h, NH, dr3, DH)
    if GB == 4:
        tl.store(DB + (3 * NH + h) * DH + rd, db3)


def _first_reset(cell: str, states: torch.Tensor) -> bool:
    """sLSTM from zero normalisers: its first step takes ``m = i_raw`` (FlashRNN's reference rule).

    One host-device synchronisation per call, so it is computed once per
    forward and kept for the backward.
    """
    return cell == "slstm" and bool((states[2] == 0).all())


def _backward(Wx, R, b, states, out, grad_out, cell, first_reset):
    spec = CELLS[cell]
    B, T, GI, NH, DH = Wx.shape
    f32 = torch.float32
    dwx = torch.full(Wx.shape, float("nan"), dtype=f32, device=Wx.device)
    dr = torch.full(R.shape, float("nan"), dtype=f32, device=Wx.device)
    db = torch.full(b.shape, float("nan"), dtype=f32, device=Wx.device)
    ds0 = torch.zeros(states.shape, dtype=f32, device=Wx.device)
    _bw_kernel[(NH,)](Wx.contiguous(), R.contiguous(), b.contiguous(), states.contiguous(), out.contiguous(),
                      grad_out.contiguous().to(f32), dwx, dr, db, ds0, B, T, NH, B * T * NH * DH,
                      CELL=_CELL_ID[cell], DH=DH,
                      GI=GI, GB=spec.gates_bias, S=spec.n_states, FIRST_RESET=first_reset)
    return dwx, dr, db, ds0


# --------------------------------------------------------------------------- tiled path (DH > 128)
# The per-step backward (kernel and launch loop in triton_step_backward), tuned here like every kernel.
# Autotuning runs a launch several times: each reads only its inputs (the gate gradients of step t + 1 and one
# carry buffer) and overwrites its outputs (those of step t and the other carry buffer), so candidates need no
# reset. The first launch, which is timed, is the last step (t = T - 1): it has no products with R for a step
# t + 1, so it does the gate half of a step's work, on the same tiles as every other step.
_bw_step_tuned = triton.autotune(configs=_tuning_configs("step_backward"), key=["B", "NH", "CELL", "DH"],
                                 prune_configs_by={"early_config_prune": _prune("step_backward")},
                                 cache_results=True)(_bw_step_kernel)


@triton.autotune(configs=_tuning_configs("step"), key=["B", "NH", "CELL", "DH"],
                 prune_configs_by={"early_config_prune": _prune("step")}, cache_results=True)
@triton.jit
def _fw_step_kernel(WX, R, BIAS, PREV, OUT, t, B, T, NH, out_stride_s, prev_stride_s, prev_stride_b, prev_stride_h,
                    CELL: tl.constexpr, DH: tl.constexpr, TILE: tl.constexpr, BLOCK_B: tl.constexpr,
                    GI: tl.constexpr, GB: tl.constexpr, S: tl.constexpr, RESET: tl.constexpr):
    """One time step for one (batch block, head, output tile); launched once per step (grid-wide sync)."""
    pid_b = tl.program_id(0)
    h = tl.program_id(1)
    jt = tl.program_id(2)
    rb = (pid_b * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # 64-bit offsets: B*T*G*NH*DH may pass 2^31
    out_stride_s = out_stride_s.to(tl.int64)  # 3 * stride (the sLSTM's m) may pass 2^31
    m_b = rb < B
    rj = jt * TILE + tl.arange(0, TILE)
    m2 = m_b[:, None] & (rj < DH)[None, :]
    prev_off = rb[:, None] * prev_stride_b + h * prev_stride_h + rj[None, :]
    hs = tl.load(PREV + prev_off, mask=m2, other=0.0).to(tl.float32)
    if S >= 2:
        cs = tl.load(PREV + prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
    if S == 4:
        ns = tl.load(PREV + 2 * prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
        ms = tl.load(PREV + 3 * prev_stride_s + prev_off, mask=m2, other=0.0).to(tl.float32)
    wx_off = ((rb[:, None] * T + t) * GI * NH + h) * DH + rj[None, :]
    x0 = tl.load(WX + wx_off, mask=m2, other=0.0).to(tl.float32)
    if GI >= 3:
        x1 = tl.load(WX + wx_off + NH * DH, mask=m2, other=0.0).to(tl.float32)
        x2 = tl.load(WX + wx_off + 2 * NH * DH, mask=m2, other=0.0).to(tl.float32)
    if GI == 4:
        x3 = tl.load(WX + wx_off + 3 * NH * DH, mask=m2, other=0.0).to(tl.float32)
    b0 = tl.load(BIAS + (0 * NH + h) * DH + rj).to(tl.float32)[None, :]
    if GB >= 3:
        b1 = tl.load(BIAS + (1 * NH + h) * DH + rj).to(tl.float32)[None, :]
        b2 = tl.load(BIAS + (2 * NH + h) * DH + rj).to(tl.float32)[None, :]
    if GB == 4:
        b3 = tl.load(BIAS + (3 * NH + h) * DH + rj).to(tl.float32)[None, :]
    # h_prev of the whole head (all input tiles): PREV's first state.
    y0 = _gate_tile(PREV, R, 0, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B)
    if CELL == 0:
        ig = _sigmoid(x0 + y0 + b0)
        fg = _sigmoid(x1 + _gate_tile(PREV, R, 1, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b1)
        zg = _tanh(x2 + _gate_tile(PREV, R, 2, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b2)
        og = _sigmoid(x3 + _gate_tile(PREV, R, 3, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b3)
        cs = fg * cs + ig * zg
        hs = og * _tanh(cs)
    elif CELL == 1:
        gg = y0 + b0
        rg = _sigmoid(x0 + _gate_tile(PREV, R, 1, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b1)
        ug = _sigmoid(x1 + _gate_tile(PREV, R, 2, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b2)
        cand = _tanh(x2 + b3 + rg * gg)
        hs = ug * hs + (1.0 - ug) * cand
    elif CELL == 2:
        i_raw = x0 + y0 + b0
        f_raw = x1 + _gate_tile(PREV, R, 1, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b1
        z_raw = x2 + _gate_tile(PREV, R, 2, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b2
        o_raw = x3 + _gate_tile(PREV, R, 3, h, rb, m_b, jt, prev_stride_b, prev_stride_h, NH, DH, TILE, BLOCK_B) + b3
        log_f_m = _logsigmoid(f_raw) + ms
        if RESET:
            m_new = i_raw
        else:
            m_new = tl.maximum(i_raw, log_f_m)
        ig = tl.exp(i_raw - m_new)
        fg = tl.exp(log_f_m - m_new)
        cs = fg * cs + ig * _tanh(z_raw)
        ns = tl.maximum(fg * ns + ig, 1.0)
        ms = m_new
        hs = _sigmoid(o_raw) * cs / ns
    else:
        hs = _tanh(x0 + y0 + b0)
    o_off = ((rb[:, None] * T + t) * NH + h) * DH + rj[None, :]
    tl.store(OUT + o_off, hs.to(OUT.dtype.element_ty), mask=m2)
    if S >= 2:
        tl.store(OUT + out_stride_s + o_off, cs.to(OUT.dtype.element_ty), mask=m2)
    if S == 4:
        tl.store(OUT + 2 * out_stride_s + o_off, ns.to(OUT.dtype.element_ty), mask=m2)
        tl.store(OUT + 3 * out_stride_s + o_off, ms.to(OUT.dtype.element_ty), mask=m2)


def _forward_tiled(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, cell: str,
                   reset: bool) -> torch.Tensor:
    """DH > 128: one launch per step, each program computing a 64-wide output tile of one head.

    The recurrent weights no longer fit in registers, so they stream from memory
    (L2) each step, and the steps synchronise through kernel launches: FlashRNN's
    "alternating" scheme, fused per step.
    """
    spec = CELLS[cell]
    B, T, GI, NH, DH = Wx.shape
    out = torch.full((spec.n_states, B, T, NH, DH), float("nan"), dtype=Wx.dtype, device=Wx.device)
    grid = lambda meta: (triton.cdiv(B, meta["BLOCK_B"]), NH, DH // _TILE)  # noqa: E731
    Wx, R, b, states = Wx.contiguous(), R.contiguous(), b.contiguous(), states.contiguous()
    for t in range(T):
        prev = states if t == 0 else out[:, :, t - 1]
        _fw_step_kernel[grid](Wx, R, b, prev, out, t, B, T, NH, B * T * NH * DH, prev.stride(0), prev.stride(1),
                              prev.stride(2),
                              CELL=_CELL_ID[cell], DH=DH, TILE=_TILE, GI=GI, GB=spec.gates_bias,
                              S=spec.n_states, RESET=reset and t == 0)
    return out


_OPERAND = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def _operand_code(dtype: torch.dtype, plan: LaunchPlan) -> int:
    """``OP`` of the fused forward: IEEE float32, or the inputs' half type (emulated bfloat16 when interpreted)."""
    if plan.operand_bytes == 4:
        return 0
    if dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        return 3
    return _OPERAND[dtype]


def _forward(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, cell: str,
             first_reset: bool, plan: LaunchPlan) -> torch.Tensor:
    if plan.forward == "step":
        return _forward_tiled(Wx, R, b, states, cell, first_reset)
    spec = CELLS[cell]
    B, T, GI, NH, DH = Wx.shape
    # Poisoned (NaN) rather than empty: an element the kernel fails to write shows up.
    out = torch.full((spec.n_states, B, T, NH, DH), float("nan"), dtype=Wx.dtype, device=Wx.device)
    grid = lambda meta: (triton.cdiv(B, meta["BLOCK_B"]), NH)  # noqa: E731 (the batch block is tuned)
    _fw_kernel[grid](Wx.contiguous(), R.contiguous(), b.contiguous(), states.contiguous(), out, B, T, NH,
                     B * T * NH * DH, CELL=_CELL_ID[cell], DH=DH, GI=GI, GB=spec.gates_bias, S=spec.n_states,
                     FIRST_RESET=first_reset, OP=_operand_code(Wx.dtype, plan))
    return out


class _HeadwiseRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, Wx, R, b, states, cell, plan):
        ctx.first_reset = _first_reset(cell, states)
        out = _forward(Wx, R, b, states, cell, ctx.first_reset, plan)
        ctx.save_for_backward(Wx, R, b, states, out)
        ctx.cell, ctx.plan = cell, plan
        return out

    @staticmethod
    def backward(ctx, grad_out):
        Wx, R, b, states, out = ctx.saved_tensors
        if ctx.plan.backward == "step":
            grads = step_backward(Wx, R, b, states, out, grad_out, ctx.cell, ctx.first_reset, _bw_step_tuned)
        elif ctx.plan.backward == "reference":
            # No Triton backward fits: recompute the reference in float32 under autograd.
            leaves = [t.detach().float().requires_grad_(True) for t in (Wx, R, b, states)]
            with torch.enable_grad():
                ref, _ = reference_headwise_rnn(*leaves, ctx.cell)
                grads = torch.autograd.grad(ref, leaves, grad_out.float())
        else:
            grads = _backward(Wx, R, b, states, out, grad_out, ctx.cell, ctx.first_reset)
        return (*(g.to(t.dtype) for g, t in zip(grads, (Wx, R, b, states))), None, None)


def triton_headwise_rnn(Wx: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor | None,
                        cell: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"triton"`` backend of :func:`~brainalign.kernels.headwise_rnn` (same signature and results).

    Before launching, :func:`launch_plan` checks every candidate configuration
    against the device's shared memory and registers; a direction with none
    that fits runs on the next path (the per-step kernels, else the reference),
    with one ``RuntimeWarning`` per shape.
    """
    B, _, _, _, DH = check_inputs(Wx, R, b, states, cell)
    if DH not in SUPPORTED_HEAD_DIMS and not (DH > 128 and DH % _TILE == 0):
        raise ValueError(f"the Triton kernel supports head sizes {SUPPORTED_HEAD_DIMS} and multiples of {_TILE} "
                         f"above 128, got DH = {DH}; use backend='torch'.")
    if Wx.dtype not in _OPERAND:
        raise ValueError(f"the Triton kernel runs float32, bfloat16 and float16, got {Wx.dtype}; "
                         "use backend='torch'.")
    limits = _device_limits(Wx.device)
    plan = launch_plan(cell, DH, B, Wx.dtype, limits)
    # Warn when a fused kernel (DH <= 128) does not fit, or when anything falls to the reference.
    if plan.forward == "reference" or (plan.forward != "fused" and DH in SUPPORTED_HEAD_DIMS):
        _warn_fallback("forward", cell, DH, Wx.dtype, plan.forward, limits)
    if (plan.backward == "reference" or (plan.backward != "fused" and DH in SUPPORTED_HEAD_DIMS)) \
            and any(t is not None and t.requires_grad for t in (Wx, R, b, states)):
        _warn_fallback("backward", cell, DH, Wx.dtype, plan.backward, limits)
    if plan.forward == "reference":
        return reference_headwise_rnn(Wx, R, b, states, cell)
    if states is None:
        states = Wx.new_zeros((CELLS[cell].n_states, Wx.shape[0], Wx.shape[3], DH))
    out = _HeadwiseRNN.apply(Wx, R, b, states, cell, plan)
    return out, out[:, :, -1]
