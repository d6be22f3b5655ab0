"""Pin the thread counts of the BLAS/OpenMP libraries, loaded now or later.

``threadpoolctl.threadpool_limits`` only reaches libraries already loaded in
the process. scipy ships its own OpenBLAS, loaded on the first
``import scipy.linalg``, which is usually *after* a command has started: left
alone it starts one thread per core, so a stage asked for one thread ran
``scipy.linalg.eigh`` on every core (results then depend on the machine's core
count, and a busy machine is oversubscribed). The environment variables cover
the libraries that load later; each reads them once, when it loads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THREAD_VARIABLES", "pin_threads", "limited_threads"]

#: Read by OpenBLAS (numpy's, scipy's), OpenMP and MKL when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(n_threads: int) -> None:
    """Use ``n_threads`` threads in every BLAS/OpenMP library and in torch.

    Parameters
    ----------
    n_threads : int
        Thread count, at least 1 (smaller values are raised to 1).

    Notes
    -----
    Sets :data:`THREAD_VARIABLES` in ``os.environ`` (inherited by child
    processes too), limits the libraries already loaded with threadpoolctl,
    and calls ``torch.set_num_threads`` if torch is imported.
    """
    from threadpoolctl import threadpool_limits

    n_threads = max(1, int(n_threads))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(n_threads)
    threadpool_limits(n_threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n_threads)


@contextmanager
def limited_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with ``n_threads`` BLAS/OpenMP and torch threads, then restore the previous limits.

    For library calls from a notebook: unlike :func:`pin_threads` (for a
    command's whole process) nothing outlives the block.

    Parameters
    ----------
    n_threads : int or None
        Thread count, at least 1 (smaller values are raised to 1); None
        leaves every library as it is.
    """
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    n_threads = max(1, int(n_threads))
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    try:
        with threadpool_limits(n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_before)
