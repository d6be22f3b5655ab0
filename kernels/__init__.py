"""Recurrent-network kernels, installed as ``brainalign.kernels``.

This folder is mapped into the ``brainalign`` namespace by ``pyproject.toml``
(it must never be importable as a top-level ``kernels`` package, which would
clash with Hugging Face's ``kernels`` package that ``transformers`` probes for).
The head-wise RNN kernel interface and its implementations arrive with the
activations and kernels issues; nothing is exported yet.
"""

__all__: list[str] = []
