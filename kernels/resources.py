"""What a fused-kernel configuration needs from a GPU, checked before it is launched.

A Triton launch whose shared memory exceeds the device's per-block limit fails
with ``OutOfResources`` (on an H200, LSTM with 128-wide heads in float32:
"Required: 270336, Hardware limit: 232448"). This module estimates the shared
memory and registers of each candidate configuration of the fused kernels in
:mod:`brainalign.kernels.triton_rnn`, so that candidates that cannot fit are
dropped before autotuning and a shape with no candidate left runs on the next
backend instead of crashing.

The model
---------
``tl.dot`` reads both operands from shared memory, and the fused kernels keep
loop-invariant operands there for the whole sequence:

* forward: the ``G_rec`` recurrent tiles ``R[g, head]`` (``DH x DH`` each) plus
  the hidden-state operand (``BLOCK_B x DH``);
* backward: ``R[g, head]`` and its transpose for every gate, plus the gate and
  state operands of the per-step products.

The per-step kernels (one launch per time step, 64-wide output tiles) stream
``R`` instead and stage one ``[BLOCK_B, 64]`` and one ``64 x 64`` operand per
product: the forward one pair (the gate products), the backward two (the gate
products it recomputes and the products with ``R`` that carry ``dh`` back),
which the model counts as live together (Elman's backward recomputes no gate:
one pair).

Operands take 4 bytes in IEEE float32 and 2 bytes when the products run in
bfloat16/float16 (tensor cores). The forward estimate reproduces the H200
failure above exactly: ``4 * 128 * 128 * 4 + 16 * 128 * 4 = 270336`` bytes.

Registers are the live float32 tiles per thread (states, inputs and gates of a
``BLOCK_B x DH`` block; in the fused backward also the ``G_rec`` accumulators of
``dR``, ``DH x DH`` each; ``BLOCK_B x 64`` tiles in the per-step kernels) plus a
fixed allowance for addresses and loop state;
a configuration over the per-thread maximum would spill to local memory, so it
is dropped as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cells import CELLS

__all__ = ["DeviceLimits", "H100", "H200", "KernelFootprint", "device_limits", "fits", "footprint"]

#: Registers every program needs beside its data tiles (pointers, offsets, masks, loop counters).
REGISTER_ALLOWANCE = 40


@dataclass(frozen=True)
class DeviceLimits:
    """Per-block resources of one GPU.

    Attributes
    ----------
    max_shared_mem : int
        Shared memory one program (thread block) may use, bytes.
    max_registers_per_block : int
        32-bit registers of a streaming multiprocessor available to one block.
    max_registers_per_thread : int
        32-bit registers one thread may use before spilling (255 on NVIDIA GPUs).
    name : str
    """

    max_shared_mem: int
    max_registers_per_block: int = 65536
    max_registers_per_thread: int = 255
    name: str = ""


#: NVIDIA H200 and H100 (SXM): 227 KB of shared memory per block, 64 K registers, 255 per thread.
H200 = DeviceLimits(232448, 65536, 255, "NVIDIA H200")
H100 = DeviceLimits(232448, 65536, 255, "NVIDIA H100")


@dataclass(frozen=True)
class KernelFootprint:
    """Estimated resources of one launch configuration.

    Attributes
    ----------
    shared_mem : int
        Bytes of shared memory per program.
    registers_per_thread : int
        32-bit registers per thread.
    threads : int
        Threads per program (``32 * num_warps``).
    """

    shared_mem: int
    registers_per_thread: int
    threads: int


def footprint(kernel: str, cell: str, head_dim: int, block_b: int, num_warps: int, operand_bytes: int,
              tile: int | None = None) -> KernelFootprint:
    """Estimate the resources of one configuration of a fused kernel.

    Parameters
    ----------
    kernel : {"forward", "backward", "step", "step_backward"}
        The fused forward (weights resident for the whole sequence), the fused
        backward, or the tiled one-launch-per-step forward and backward (above
        128, or where a fused kernel does not fit).
    cell : {"lstm", "gru", "slstm", "elman"}
    head_dim : int
        DH, units per head.
    block_b : int
        Sequences per program (``BLOCK_B``).
    num_warps : int
    operand_bytes : {2, 4}
        Bytes per matrix-product operand: 4 for IEEE float32, 2 for bfloat16/float16.
    tile : int, optional
        Output tile width of the ``"step"`` and ``"step_backward"`` kernels (64).

    Returns
    -------
    KernelFootprint
    """
    if kernel not in ("forward", "backward", "step", "step_backward"):
        raise ValueError(f"kernel must be 'forward', 'backward', 'step' or 'step_backward', got {kernel!r}.")
    if operand_bytes not in (2, 4):
        raise ValueError(f"operand_bytes must be 2 or 4, got {operand_bytes}.")
    spec = CELLS[cell]
    g, dh, bb = spec.gates_rec, head_dim, block_b
    threads = 32 * num_warps
    if kernel == "forward":
        shared = g * dh * dh * operand_bytes + bb * dh * operand_bytes
        live = (spec.n_states + spec.gates_in + g) * bb * dh
    elif kernel == "backward":
        # R and R^T per gate; gate gradients (transposed) and h_prev as operands of the dR and dh products.
        shared = 2 * g * dh * dh * operand_bytes + (g + 1) * bb * dh * operand_bytes
        live = g * dh * dh + (2 * spec.n_states + spec.gates_in + 2 * g) * bb * dh
    elif kernel == "step":
        t = tile or 64
        shared = (bb * t + t * t) * operand_bytes
        live = (spec.n_states + spec.gates_in + g) * bb * t
    else:
        # The operands of two products (the gates recomputed from h_prev; dh through R; Elman only needs
        # the second, its gradient comes from the saved output); states and their gradients, inputs,
        # gates and gate gradients of a [BLOCK_B, tile] tile.
        t = tile or 64
        products = 1 if cell == "elman" else 2
        shared = products * (bb * t + t * t) * operand_bytes
        live = (2 * spec.n_states + spec.gates_in + 2 * g) * bb * t
    return KernelFootprint(shared, math.ceil(live / threads) + REGISTER_ALLOWANCE, threads)


def fits(need: KernelFootprint, limits: DeviceLimits) -> bool:
    """Whether a configuration fits ``limits`` (shared memory, registers per thread and per block)."""
    return (need.shared_mem <= limits.max_shared_mem
            and need.registers_per_thread <= limits.max_registers_per_thread
            and need.registers_per_thread * need.threads <= limits.max_registers_per_block)


def device_limits(device: int | None = None) -> DeviceLimits:
    """The limits of a CUDA device, as Triton's driver reports them.

    Parameters
    ----------
    device : int, optional
        CUDA device index (default: the current device).
    """
    import torch
    import triton

    index = torch.cuda.current_device() if device is None else int(device)
    props = triton.runtime.driver.active.utils.get_device_properties(index)
    return DeviceLimits(int(props["max_shared_mem"]), int(props.get("max_num_regs", 65536)), 255,
                        torch.cuda.get_device_name(index))
