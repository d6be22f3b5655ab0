"""The head-wise recurrent kernel interface and its PyTorch reference implementation.

:func:`headwise_rnn` is the one entry point every RNN model calls. Backends
plug in behind it without changing it: ``"torch"`` is the plain PyTorch loop
below (any device, any dtype, autograd through the loop); ``"triton"`` is
the fused kernels of :mod:`brainalign.kernels.triton_rnn` (a GPU, or the CPU
interpreter with ``TRITON_INTERPRET=1``); ``"auto"`` picks Triton for CUDA
tensors with a supported head size and the reference otherwise.

This module imports only ``torch`` (and, for the Triton backend, ``triton``),
so it runs on a bare GPU machine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .cudnn_lstm import cudnn_headwise_rnn
from .reference import reference_headwise_rnn

__all__ = ["headwise_rnn", "reference_headwise_rnn", "register_backend", "resolve_backend"]

#: Backends by name: ``fn(Wx, R, b, states, cell) -> (all_states, last_states)``.
BACKENDS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {}


def register_backend(name: str, fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Make ``fn`` available as ``backend=name`` (same signature as :func:`reference_headwise_rnn`)."""
    BACKENDS[name] = fn


register_backend("torch", reference_headwise_rnn)
register_backend("cudnn", cudnn_headwise_rnn)


def _register_triton() -> None:
    """Make the fused Triton kernels available as ``backend="triton"`` when Triton imports."""
    try:
        from .triton_rnn import triton_headwise_rnn
    except ImportError:  # no Triton on this machine: the reference stays available
        return
    register_backend("triton", triton_headwise_rnn)


_register_triton()


def resolve_backend(device: torch.device | str, head_dim: int, backend: str = "auto", *, cell: str = "lstm",
                    n_heads: int | None = None) -> str:
    """The backend :func:`headwise_rnn` runs for tensors on ``device`` with heads of ``head_dim`` units.

    ``"auto"`` is, for CUDA tensors: ``"cudnn"`` for a dense LSTM (one head,
    where cuDNN's equations are ours), ``"triton"`` (the fused kernels) for the
    head sizes they cover; ``"torch"`` (the reference loop) otherwise and on
    the CPU. Any other name is returned as given. Recorded in the RNN feature
    files' provenance, so that a file says which kernels computed it.
    """
    if backend != "auto":
        return backend
    if torch.device(device).type != "cuda":
        return "torch"
    if cell == "lstm" and n_heads == 1:
        return "cudnn"
    return "triton" if "triton" in BACKENDS and head_dim in (16, 32, 64, 128) else "torch"


def headwise_rnn(
    Wx: torch.Tensor,
    R: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    *,
    cell: str = "lstm",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a head-wise (block-diagonal) recurrent layer over a sequence.

    Parameters
    ----------
    Wx : Tensor of shape [B, T, G_in, NH, DH]
        Input projections, pre-computed for every step (``x_t W`` plus nothing
        else: the bias is ``b``).
    R : Tensor of shape [G_rec, NH, DH, DH]
        Recurrent weights per gate and head, ``[gate, head, to, from]``: gate
        ``g`` of head ``k`` receives ``R[g, k] @ h[k]`` (FlashRNN's layout).
    b : Tensor of shape [G_b, NH, DH]
        Biases.
    states : Tensor of shape [S, B, NH, DH] or None
        Initial states (zeros when None); ``S`` and the gate counts per cell in
        :data:`brainalign.kernels.CELLS`.
    cell : {"lstm", "gru", "slstm", "elman"}
    backend : {"auto", "torch", "triton", "cudnn"}
        ``"torch"``: the reference loop; ``"triton"``: fused kernels (a GPU, or
        ``TRITON_INTERPRET=1``); ``"cudnn"``: PyTorch's fused LSTM for one
        dense LSTM head; ``"auto"``: :func:`resolve_backend`.

    Returns
    -------
    all_states : Tensor of shape [S, B, T, NH, DH]
        Every state after every step (``all_states[0]`` is the hidden state h).
    last_states : Tensor of shape [S, B, NH, DH]
        The states after the last step (``all_states[:, :, -1]``).

    Gradients flow to ``Wx``, ``R``, ``b`` and ``states``.
    """
    backend = resolve_backend(Wx.device, Wx.shape[-1], backend, cell=cell, n_heads=Wx.shape[3])
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not available; available: {sorted(BACKENDS)} (or 'auto').")
    return BACKENDS[backend](Wx, R, b, states, cell)
