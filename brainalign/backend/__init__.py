"""Array backends: numpy (CPU), torch (CPU) and torch_cuda (GPU).

Compute code never names an array library: it calls ``get_backend()`` and uses
the module's functions (``asarray``, ``matmul``, ``eigh``, ``to_numpy``...),
which every backend defines with the same names and semantics. Inputs are
converted with ``backend.asarray`` and results come back with
``backend.to_numpy`` at the public boundary.

Examples
--------
>>> from brainalign.backend import set_backend, get_backend
>>> backend = set_backend("numpy")
>>> get_backend().name
'numpy'
"""

from ._utils import ALL_BACKENDS, get_backend, set_backend

__all__ = ["ALL_BACKENDS", "get_backend", "set_backend"]
