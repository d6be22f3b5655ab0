"""Head-wise recurrent-network kernels, installed as ``brainalign.kernels``.

This folder is mapped into the ``brainalign`` namespace by ``pyproject.toml``
(it must never be importable as a top-level ``kernels`` package, which would
clash with Hugging Face's ``kernels`` package that ``transformers`` probes for).

:func:`headwise_rnn` runs LSTM, GRU, sLSTM and Elman layers with block-diagonal
(per-head) recurrence, with FlashRNN's tensor layout; ``backend="torch"`` is the
reference implementation. The package imports only ``torch`` (and ``triton``
for fused kernels).
"""

from .cells import CELLS, CellSpec, cell_step
from .interface import BACKENDS, headwise_rnn, reference_headwise_rnn, register_backend, resolve_backend  # noqa: F401

__all__ = ["CELLS", "CellSpec", "cell_step", "headwise_rnn", "reference_headwise_rnn", "register_backend",
           "resolve_backend"]
