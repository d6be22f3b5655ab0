"""The Triton kernels (fused and per-step, forward and backward; CPU interpreter, tiny shapes) against float64."""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
from brainalign.kernels import CELLS, headwise_rnn, reference_headwise_rnn
from brainalign.kernels.reference import reference_backward_at_states

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
                                reason="needs a GPU or TRITON_INTERPRET=1")


def _inputs(cell, B, T, NH, DH, dtype, seed, zero_states):
    spec = CELLS[cell]
    g = torch.Generator().manual_seed(seed)
    Wx = torch.randn(B, T, spec.gates_in, NH, DH, generator=g)
    R = torch.randn(spec.gates_rec, NH, DH, DH, generator=g) / DH**0.5
    b = torch.randn(spec.gates_bias, NH, DH, generator=g) * 0.5
    states = torch.zeros(spec.n_states, B, NH, DH) if zero_states else torch.randn(spec.n_states, B, NH, DH, generator=g)
    if cell == "slstm" and not zero_states:
        states[2] = states[2].abs() + 1.0
    return [t.to(dtype) for t in (Wx, R, b, states)]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("B,T,DH,zero", [(3, 5, 16, True), (1, 1, 32, False), (5, 3, 16, False)])
def test_forward_float32(cell, B, T, DH, zero):
    Wx, R, b, states = _inputs(cell, B, T, 2, DH, torch.float32, seed=B * 100 + T, zero_states=zero)
    out, last = headwise_rnn(Wx, R, b, states, cell=cell, backend="triton")
    ref, ref_last = reference_headwise_rnn(*(t.double() for t in (Wx, R, b, states)), cell=cell)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(last.double(), ref_last, rtol=1e-4, atol=1e-5)
    again, _ = headwise_rnn(Wx, R, b, states, cell=cell, backend="triton")
    assert torch.equal(out, again)  # deterministic


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_forward_half_precision(cell, dtype):
    Wx, R, b, states = _inputs(cell, 3, 4, 2, 16, dtype, seed=7, zero_states=True)
    out, _ = headwise_rnn(Wx, R, b, states, cell=cell, backend="triton")
    assert out.dtype == dtype
    ref, _ = reference_headwise_rnn(*(t.double() for t in (Wx, R, b, states)), cell=cell)
    scale = ref.abs().max()
    assert (out.double() - ref).abs().max() <= 1e-2 * scale


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("B,T,zero", [(2, 3, False), (17, 2, False), (1, 1, False), (3, 4, True)])
def test_gradients_through_the_triton_backend(cell, B, T, zero):
    Wx, R, b, states = _inputs(cell, B, T, 2, 16, torch.float32, seed=3, zero_states=zero)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    out, last = headwise_rnn(*leaves, cell=cell, backend="triton")
    (out.sum() + last[0].pow(2).sum()).backward()
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    rout, rlast = reference_headwise_rnn(*refs, cell=cell)
    (rout.sum() + rlast[0].pow(2).sum()).backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-5)


def test_unsupported_head_size_is_a_clear_error():
    Wx, R, b, states = _inputs("lstm", 1, 2, 1, 16, torch.float32, 0, True)
    with pytest.raises(ValueError, match="supports head sizes"):
        headwise_rnn(Wx[..., :12], R[..., :12, :12], b[..., :12], states[..., :12], cell="lstm", backend="triton")


@pytest.mark.parametrize("DH", [32, 64, 128])
def test_forward_every_head_size(DH):
    Wx, R, b, states = _inputs("lstm", 2, 2, 1, DH, torch.float32, seed=DH, zero_states=False)
    out, _ = headwise_rnn(Wx, R, b, states, cell="lstm", backend="triton")
    ref, _ = reference_headwise_rnn(*(t.double() for t in (Wx, R, b, states)), cell="lstm")
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_bfloat16(cell):
    Wx, R, b, states = _inputs(cell, 3, 3, 2, 16, torch.bfloat16, seed=11, zero_states=False)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    out, _ = headwise_rnn(*leaves, cell=cell, backend="triton")
    out.float().sum().backward()
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    rout, _ = reference_headwise_rnn(*refs, cell=cell)
    rout.sum().backward()
    for got, want in zip(leaves, refs):
        assert got.grad.dtype == torch.bfloat16
        assert (got.grad.double() - want.grad).abs().max() <= 1e-2 * want.grad.abs().max()


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("zero", [True, False])
def test_tiled_path_for_large_heads(cell, zero):
    """DH = 192 (> 128): one launch per step, 64-wide output tiles, forward and backward."""
    from brainalign.kernels.triton_rnn import launch_plan

    plan = launch_plan(cell, 192, 3, torch.float32, None)
    assert (plan.forward, plan.backward) == ("step", "step")
    Wx, R, b, states = _inputs(cell, 3, 3, 1, 192, torch.float32, seed=5, zero_states=zero)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    out, last = headwise_rnn(*leaves, cell=cell, backend="triton")
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    ref, _ = reference_headwise_rnn(*refs, cell=cell)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    ref.sum().backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-5)


def test_autotuning_candidates(monkeypatch):
    from brainalign.kernels import triton_rnn

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    configs = triton_rnn._tuning_configs("forward")
    assert sorted((c.kwargs["BLOCK_B"], c.num_warps) for c in configs) == [
        (bb, w) for bb in (16, 32, 64) for w in (1, 2, 4, 8)]
    assert (configs[0].kwargs["BLOCK_B"], configs[0].num_warps) == (16, 4)  # the untuned default comes first
    # Without limits (the interpreter): B = 16 keeps only 16-row blocks; B = 17 also 32; B = 200 all of them.
    assert {bb for bb, _ in triton_rnn.fitting_candidates("forward", "lstm", 16, 16, 4, None)} == {16}
    assert {bb for bb, _ in triton_rnn.fitting_candidates("forward", "lstm", 16, 17, 4, None)} == {16, 32}
    assert len(triton_rnn.fitting_candidates("forward", "lstm", 16, 200, 4, None)) == 12
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    only = triton_rnn._tuning_configs("forward")
    assert [(c.kwargs["BLOCK_B"], c.num_warps) for c in only] == [(16, 4)]


class _Config:  # the two attributes of triton.Config the pruning reads
    def __init__(self, block_b, warps):
        self.kwargs, self.num_warps = {"BLOCK_B": block_b}, warps


def test_pruning_keeps_exactly_the_candidates_that_fit_an_h200(monkeypatch):
    from brainalign.kernels import triton_rnn
    from brainalign.kernels.resources import H200, fits, footprint

    monkeypatch.setattr(triton_rnn, "_device_limits", lambda device: H200)
    configs = [_Config(bb, w) for bb, w in triton_rnn.CANDIDATES["backward"]]
    named = {"WX": torch.empty(0), "B": 64}
    kept = triton_rnn._prune("backward")(configs, named, CELL=0, DH=64)
    # By hand: 2 * 4 gates * 64 * 64 * 4 bytes of weights and their transposes = 131072 bytes of shared memory;
    # dR accumulators 4 * 64 * 64 floats over 32 * warps threads: only 8 warps stay under 255 registers.
    assert [(c.kwargs["BLOCK_B"], c.num_warps) for c in kept] == [(16, 8), (32, 8)]
    for bb, w in triton_rnn.CANDIDATES["backward"]:
        need = footprint("backward", "lstm", 64, bb, w, 4)
        assert fits(need, H200) == ((bb, w) in [(16, 8), (32, 8)])
    # The per-step backward (LSTM, DH = 256): (2 * 2 states + 4 inputs + 2 * 4 gates) [BLOCK_B, 64] tiles,
    # 16 * BLOCK_B * 64 floats over 32 * warps threads + 40 must stay under 255 registers.
    step_configs = [_Config(bb, w) for bb, w in triton_rnn.CANDIDATES["step_backward"]]
    kept = triton_rnn._prune("step_backward")(step_configs, named, CELL=0, DH=256)
    assert [(c.kwargs["BLOCK_B"], c.num_warps) for c in kept] == [(16, 4), (16, 8), (32, 8)]
    monkeypatch.setenv("BRAINALIGN_TRITON_AUTOTUNE", "0")
    assert [(c.kwargs["BLOCK_B"], c.num_warps) for c in triton_rnn._prune("backward")(configs, named, CELL=0, DH=64)] \
        == [(16, 8)]  # untuned: the first that fits, never one that cannot


def test_resource_model_reproduces_the_h200_failure_and_plans_every_table_shape():
    from brainalign.kernels.resources import H200, fits, footprint
    from brainalign.kernels.triton_rnn import launch_plan

    # The launch that crashed on an H200: LSTM, DH = 128, float32, 16 sequences, 4 warps.
    need = footprint("forward", "lstm", 128, 16, 4, 4)
    assert need.shared_mem == 270336 and not fits(need, H200)
    # In bfloat16 the same kernel needs half: 4 * 128 * 128 * 2 + 16 * 128 * 2 bytes.
    assert footprint("forward", "lstm", 128, 16, 4, 2).shared_mem == 135168
    # Its fused backward (R and R^T resident) cannot fit either: 2 * 4 * 128^2 * 4 + 5 * 16 * 128 * 4 bytes.
    assert footprint("backward", "lstm", 128, 16, 4, 4).shared_mem == 565248
    # The per-step backward: two products of a [16, 64] and a [64, 64] float32 operand, and
    # (2 * 2 states + 4 inputs + 2 * 4 gates) [16, 64] tiles over 128 threads, plus 40 registers.
    need = footprint("step_backward", "lstm", 256, 16, 4, 4)
    assert need.shared_mem == 2 * (16 * 64 + 64 * 64) * 4 == 40960
    assert need.registers_per_thread == 16 * 16 * 64 // 128 + 40 == 168 and fits(need, H200)
    assert footprint("step_backward", "elman", 768, 16, 4, 4).shared_mem == (16 * 64 + 64 * 64) * 4  # no gates
    for cell in sorted(CELLS):
        for DH in (16, 32, 64, 128, 256, 768):
            for dtype in (torch.bfloat16, torch.float16, torch.float32):
                plan = launch_plan(cell, DH, 16, dtype, H200)
                assert plan.forward in ("fused", "step"), (cell, DH, dtype, plan)
                assert plan.backward in ("fused", "step"), (cell, DH, dtype, plan)  # never the reference
                assert plan.backward == ("fused" if DH <= 64 or (DH == 128 and cell == "elman") else "step")
                if DH <= 64:
                    assert plan == launch_plan(cell, DH, 16, dtype, None)  # everything fused, as without limits
    assert launch_plan("lstm", 128, 16, torch.bfloat16, H200).forward == "fused"
    assert launch_plan("lstm", 128, 16, torch.float32, H200).forward == "step"


def test_a_shape_that_fits_nowhere_runs_on_the_next_path_with_one_warning(monkeypatch):
    """Limits that fit the per-step forward but no fused kernel nor the per-step backward: the reference backward."""
    from brainalign.kernels import triton_rnn
    from brainalign.kernels.resources import DeviceLimits

    small = DeviceLimits(max_shared_mem=30000, name="a small GPU")
    monkeypatch.setattr(triton_rnn, "_device_limits", lambda device: small)
    monkeypatch.setattr(triton_rnn, "_WARNED", set())
    Wx, R, b, states = _inputs("lstm", 2, 3, 1, 64, torch.float32, seed=4, zero_states=False)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = headwise_rnn(*leaves, cell="lstm", backend="triton")
    messages = sorted(str(w.message) for w in caught if w.category is RuntimeWarning)
    assert len(messages) == 2, messages
    assert re.search("no fused Triton forward .* a small GPU .* step path", messages[0])
    assert re.search("no fused or per-step Triton backward .* a small GPU .* reference path", messages[1])
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    ref, _ = reference_headwise_rnn(*refs, cell="lstm")
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    ref.sum().backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per shape: the second call is silent
        headwise_rnn(Wx, R, b, states, cell="lstm", backend="triton")
    # A GPU too small for any fused kernel: DH = 16 has no per-step kernel (tiles of 64), so the reference runs.
    monkeypatch.setattr(triton_rnn, "_device_limits", lambda device: DeviceLimits(max_shared_mem=1024))
    Wx, R, b, states = _inputs("gru", 2, 3, 1, 16, torch.float32, seed=5, zero_states=True)
    with pytest.warns(RuntimeWarning, match="reference path"):
        out, _ = headwise_rnn(Wx, R, b, states, cell="gru", backend="triton")
    torch.testing.assert_close(out, reference_headwise_rnn(Wx, R, b, states, cell="gru")[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("DH", [16, 32, 64, 128, 256, 768])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_cell_head_size_and_dtype(cell, DH, dtype):
    """The issue's whole matrix in the interpreter: forward and every gradient against float64 on the same inputs.

    Above DH = 128 both directions run the per-step kernels, interpreted slowly: one step there (several
    steps are covered at DH = 192 and by the forced per-step backward at DH = 64 and 128). In half precision
    a second step would compare against float64 states the kernels never see: they recompute each step from
    the saved half-precision states, so a near-tie of the sLSTM's max(i, log f + m) or max(n, 1) can fall
    the other way (test_step_backward_half_precision checks that case against the right reference).
    """
    from brainalign.kernels.triton_rnn import launch_plan

    plan = launch_plan(cell, DH, 2, dtype, None)
    assert plan.backward == ("fused" if DH <= 128 else "step"), plan
    Wx, R, b, states = _inputs(cell, 2, 2 if DH <= 128 else 1, 1, DH, dtype, seed=DH + 1, zero_states=False)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    out, _ = headwise_rnn(*leaves, cell=cell, backend="triton")
    assert out.dtype == dtype
    out.float().sum().backward()
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    ref, _ = reference_headwise_rnn(*refs, cell=cell)
    ref.sum().backward()
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    assert (out.double() - ref).abs().max() <= tol * ref.abs().max()
    for got, want in zip(leaves, refs):
        assert (got.grad.double() - want.grad).abs().max() <= tol * want.grad.abs().max().clamp_min(1e-12)


def test_a_gpu_that_fits_the_step_backward_but_not_the_fused_one(monkeypatch):
    """100,000 bytes: LSTM at DH = 64 keeps its fused forward (69,632) and runs the per-step backward (40,960)."""
    from brainalign.kernels import triton_rnn
    from brainalign.kernels.resources import DeviceLimits

    limits = DeviceLimits(max_shared_mem=100000, name="a mid GPU")
    monkeypatch.setattr(triton_rnn, "_device_limits", lambda device: limits)
    monkeypatch.setattr(triton_rnn, "_WARNED", set())
    plan = triton_rnn.launch_plan("lstm", 64, 2, torch.float32, limits)
    assert (plan.forward, plan.backward) == ("fused", "step")
    Wx, R, b, states = _inputs("lstm", 2, 3, 1, 64, torch.float32, seed=6, zero_states=False)
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = headwise_rnn(*leaves, cell="lstm", backend="triton")
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(messages) == 1 and re.search("no fused Triton backward .* a mid GPU .* step path", messages[0])
    out.sum().backward()
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    reference_headwise_rnn(*refs, cell="lstm")[0].sum().backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("DH,B,T,zero", [(64, 5, 3, False), (64, 17, 1, False), (64, 5, 4, True), (128, 17, 2, False)])
def test_step_backward_against_float64(cell, DH, B, T, zero, monkeypatch):
    """The per-step backward forced at DH = 64 and 128 (no fused candidate): every gradient against float64.

    Odd batches (one and two batch blocks), T = 1, two heads, random initial states, the sLSTM from zero
    states (its first step takes m = i_raw), and a loss on every state of every step and on the last h.
    """
    from brainalign.kernels import triton_rnn

    monkeypatch.setitem(triton_rnn.CANDIDATES, "backward", [])
    monkeypatch.setattr(triton_rnn, "_WARNED", set())
    assert triton_rnn.launch_plan(cell, DH, B, torch.float32, None).backward == "step"
    NH = 2
    Wx, R, b, states = _inputs(cell, B, T, NH, DH, torch.float32, seed=DH + B + T, zero_states=zero)
    weights = torch.randn(CELLS[cell].n_states, B, T, NH, DH, generator=torch.Generator().manual_seed(T))
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    with pytest.warns(RuntimeWarning, match="no fused Triton backward .* step path"):
        out, last = headwise_rnn(*leaves, cell=cell, backend="triton")
    ((out * weights).sum() + last[0].pow(2).sum()).backward()
    refs = [t.double().clone().requires_grad_(True) for t in (Wx, R, b, states)]
    rout, rlast = reference_headwise_rnn(*refs, cell=cell)
    ((rout * weights.double()).sum() + rlast[0].pow(2).sum()).backward()
    for name, got, want in zip(("Wx", "R", "b", "states"), leaves, refs):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_step_backward_half_precision(cell, dtype, monkeypatch):
    """Half-precision inputs and states through the per-step backward (float32 inside), three steps.

    The reference is float64 linearised at the saved half-precision states, the states the backward
    recomputes its gates from; the gradients are returned in the inputs' dtype.
    """
    from brainalign.kernels import triton_rnn

    monkeypatch.setitem(triton_rnn.CANDIDATES, "backward", [])
    Wx, R, b, states = _inputs(cell, 5, 3, 1, 64, dtype, seed=9, zero_states=cell == "slstm")
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out, _ = headwise_rnn(*leaves, cell=cell, backend="triton")
    out.float().sum().backward()
    wants = reference_backward_at_states(Wx, R, b, states, out, torch.ones(out.shape), cell)
    for got, want in zip(leaves, wants):
        assert got.grad.dtype == dtype
        assert (got.grad.double() - want).abs().max() <= 1e-2 * want.abs().max().clamp_min(1e-12)
