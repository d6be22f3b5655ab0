"""The head-wise RNN interface and its PyTorch reference.

References: ``torch.nn.LSTM`` / ``torch.nn.GRU`` (one head), FlashRNN 1.0.8's
CPU ``vanilla`` backend (every cell, several heads), and float64 autograd.
"""

from __future__ import annotations

import pytest
import torch
from brainalign.kernels import CELLS, headwise_rnn, reference_headwise_rnn

GATES = {name: (spec.gates_in, spec.gates_rec, spec.gates_bias, spec.n_states) for name, spec in CELLS.items()}


def _inputs(cell, B=3, T=7, NH=2, DH=5, dtype=torch.float64, seed=0, with_states=True):
    g_in, g_rec, g_b, S = GATES[cell]
    gen = torch.Generator().manual_seed(seed)
    Wx = torch.randn(B, T, g_in, NH, DH, generator=gen, dtype=dtype)
    R = torch.randn(g_rec, NH, DH, DH, generator=gen, dtype=dtype) * 0.4
    b = torch.randn(g_b, NH, DH, generator=gen, dtype=dtype) * 0.5
    states = torch.randn(S, B, NH, DH, generator=gen, dtype=dtype) * 0.5 if with_states else None
    if cell == "slstm" and states is not None:
        states[2] = states[2].abs() + 1.0  # normaliser n >= 1 once running
    return Wx, R, b, states


def test_lstm_one_head_matches_torch_nn_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 4, batch_first=True).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    h0, c0 = torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    ref, (h_n, c_n) = lstm(x, (h0, c0))
    H = 4
    Wx = (x @ lstm.weight_ih_l0.T).view(2, 9, 4, 1, H)  # gates i, f, g(z), o
    R = lstm.weight_hh_l0.view(4, 1, H, H)  # [gate, head, to, from]
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).view(4, 1, H)
    states = torch.stack([h0[0], c0[0]]).view(2, 2, 1, H)
    out, last = headwise_rnn(Wx, R, b, states, cell="lstm", backend="torch")
    torch.testing.assert_close(out[0, :, :, 0], ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last[1, :, 0], c_n[0], rtol=1e-12, atol=1e-12)


def test_gru_one_head_matches_torch_nn_gru():
    torch.manual_seed(1)
    gru = torch.nn.GRU(5, 3, batch_first=True).double()
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    h0 = torch.randn(1, 4, 3, dtype=torch.float64)
    ref, _ = gru(x, h0)
    H = 3
    w_r, w_z, w_n = (x @ gru.weight_ih_l0.T).split(H, dim=-1)
    Wx = torch.stack([w_r, w_z, w_n], dim=2).unsqueeze(3)  # (r, u, n)
    hr, hz, hn = gru.weight_hh_l0.split(H, dim=0)
    R = torch.stack([hn, hr, hz]).unsqueeze(1)  # (g, r, u)
    bir, biz, bin_ = gru.bias_ih_l0.split(H)
    bhr, bhz, bhn = gru.bias_hh_l0.split(H)
    b = torch.stack([bhn, bir + bhr, biz + bhz, bin_]).unsqueeze(1)  # (g, r, u, n)
    out, _ = headwise_rnn(Wx, R, b, h0.view(1, 4, 1, H), cell="gru", backend="torch")
    torch.testing.assert_close(out[0, :, :, 0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("with_states", [True, False])
def test_every_cell_matches_flashrnn_vanilla(cell, with_states):
    flashrnn = pytest.importorskip("flashrnn").flashrnn
    Wx, R, b, states = _inputs(cell, dtype=torch.float32, with_states=with_states)
    kwargs = {} if states is None else {"states": states.unsqueeze(2)}
    ref, ref_last = flashrnn(Wx, R, b, function=cell, backend="vanilla", dtype="float32", **kwargs)
    out, last = headwise_rnn(Wx, R, b, states, cell=cell, backend="torch")
    assert out.shape == ref.shape == (GATES[cell][3], 3, 7, 2, 5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(last, ref_last[:, :, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_flow_to_every_input(cell):
    Wx, R, b, states = _inputs(cell, B=2, T=3, NH=2, DH=3)
    for t in (Wx, R, b, states):
        t.requires_grad_(True)

    def f(Wx, R, b, states):
        out, last = headwise_rnn(Wx, R, b, states, cell=cell, backend="torch")
        return out.sum() + last[0].pow(2).sum()

    assert torch.autograd.gradcheck(f, (Wx, R, b, states), eps=1e-6, atol=1e-5)


def test_shapes_t1_last_states_and_errors():
    Wx, R, b, states = _inputs("lstm", B=1, T=1)
    out, last = headwise_rnn(Wx, R, b, states, cell="lstm")
    torch.testing.assert_close(out[:, :, -1], last)
    with pytest.raises(ValueError, match=r"R must have shape \[4, 2, 5, 5\]"):
        headwise_rnn(Wx, R[:, :, :4], b, states, cell="lstm")
    with pytest.raises(ValueError, match="cell must be one of"):
        headwise_rnn(Wx, R, b, states, cell="lru")
    with pytest.raises(ValueError, match="backend 'cuda_fused' is not available"):
        headwise_rnn(Wx, R, b, states, cell="lstm", backend="cuda_fused")
    with pytest.raises(ValueError, match=r"states must have shape \[2, 1, 2, 5\]"):
        headwise_rnn(Wx, R, b, states[:1], cell="lstm")


def test_kernels_import_only_torch_and_triton():
    """brainalign.kernels must run on a bare GPU machine: no other brainalign module, no scientific stack."""
    import subprocess
    import sys

    code = ("import sys, brainalign.kernels; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'scipy', 'h5py', 'sklearn', "
            "'nilearn', 'transformers') or (m.startswith('brainalign.') and not m.startswith('brainalign.kernels'))); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# --------------------------------------------------------------------------- the cudnn backend (NH = 1 LSTM)
def test_cudnn_backend_equals_the_reference_for_one_lstm_head():
    """PyTorch's fused LSTM (cuDNN on a GPU; its CPU kernel here) with identity input weights: every h and c."""
    from brainalign.kernels.interface import BACKENDS

    gen = torch.Generator().manual_seed(3)
    B, T, DH = 3, 37, 8  # T not a power of two: the scan's last pass is partial
    Wx = torch.randn(B, T, 4, 1, DH, generator=gen, dtype=torch.float64)
    R = torch.randn(4, 1, DH, DH, generator=gen, dtype=torch.float64) * 0.4
    b = torch.randn(4, 1, DH, generator=gen, dtype=torch.float64) * 0.5
    states = torch.randn(2, B, 1, DH, generator=gen, dtype=torch.float64) * 0.5
    leaves = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    out, last = BACKENDS["cudnn"](*leaves, "lstm")
    refs = [t.clone().requires_grad_(True) for t in (Wx, R, b, states)]
    ref, ref_last = reference_headwise_rnn(*refs, cell="lstm")
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)  # h and c at every step
    torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-10)
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)  # a loss that reads h and c
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-9, atol=1e-10)


def test_linear_scan_matches_the_sequential_recurrence():
    from brainalign.kernels.cudnn_lstm import linear_scan

    gen = torch.Generator().manual_seed(0)
    a, u = torch.rand(2, 100, 5, generator=gen, dtype=torch.float64), torch.randn(2, 100, 5, generator=gen,
                                                                                   dtype=torch.float64)
    c0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    c, want = c0, []
    for t in range(100):
        c = a[:, t] * c + u[:, t]
        want.append(c)
    torch.testing.assert_close(linear_scan(a, u, c0), torch.stack(want, dim=1), rtol=1e-12, atol=1e-12)


def test_auto_picks_cudnn_for_one_lstm_head_on_a_gpu_only():
    from brainalign.kernels import resolve_backend

    assert resolve_backend("cpu", 768, cell="lstm", n_heads=1) == "torch"  # CPU tensors: the reference
    assert resolve_backend("cuda", 768, cell="lstm", n_heads=1) == "cudnn"
    assert resolve_backend("cuda", 768, cell="gru", n_heads=1) == "torch"  # cuDNN's GRU is not ours
    assert resolve_backend("cuda", 64, cell="slstm", n_heads=12) in ("triton", "torch")
    assert resolve_backend("cuda", 64, "cudnn", cell="lstm", n_heads=1) == "cudnn"
    with pytest.raises(ValueError, match="one dense LSTM head"):
        headwise_rnn(torch.zeros(1, 2, 3, 2, 4), torch.zeros(3, 2, 4, 4), torch.zeros(4, 2, 4), cell="gru",
                     backend="cudnn")
