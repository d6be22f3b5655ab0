"""Fault injection for the kill-and-resume tests: stall inside an HDF5 write.

Put this folder on ``PYTHONPATH`` and set ``BRAINALIGN_STALL_WRITE`` to the
name of an output file (e.g. ``minilm.h5``) and ``BRAINALIGN_STALL_MARKER`` to
a path. Every Python process started with that environment (Snakemake and the
``brainalign`` jobs it runs) then patches :class:`h5py.File` so that, when it is
about to close the temporary file of that output (``.<name>.<random>.part``,
see :func:`brainalign.io.atomic_path`) with its datasets written but the file
not yet closed, it flushes what it has, writes the temporary file's path to the
marker (written beside it, then renamed, so the test never reads it half-written)
and sleeps. The test then SIGKILLs the whole process group: the kill lands in
the middle of an HDF5 write, deterministically.

Nothing here is imported by brainalign itself.
"""

from __future__ import annotations

import os

_TARGET = os.environ.get("BRAINALIGN_STALL_WRITE")
_MARKER = os.environ.get("BRAINALIGN_STALL_MARKER")

if _TARGET and _MARKER:
    import time
    from pathlib import Path

    import h5py

    _close_on_exit = h5py.File.__exit__

    def _stalling_exit(self, *exc_info):
        name = Path(self.filename).name
        if exc_info[0] is None and name.startswith(f".{_TARGET}.") and name.endswith(".part"):
            self.flush()
            # Written whole, then renamed: the test reads the marker as soon as it exists.
            partial = Path(f"{_MARKER}.{os.getpid()}.tmp")
            partial.write_text(self.filename, encoding="utf-8")
            os.replace(partial, _MARKER)
            time.sleep(3600)
        return _close_on_exit(self, *exc_info)

    h5py.File.__exit__ = _stalling_exit
