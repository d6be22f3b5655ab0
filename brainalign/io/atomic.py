"""Atomic writes: each output file appears whole or not at all, one writer at a time.

A file is written to a temporary file in the same directory, then renamed
(:func:`atomic_path`), under an exclusive lock per output; text files and the
JSON provenance sidecars of outputs (:func:`write_with_sidecar`) are written through it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._validation import BrainalignError


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, lock_timeout: float | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file (``.<name>.<random>.part``) lives in the same directory
    (so the final :func:`os.replace` is atomic on POSIX file systems) and is
    removed if the body raises; leftovers of a killed process are removed by
    the next write of the same path. A reader therefore sees either no file or the whole file,
    never a half-written one, even if the process is killed mid-write.

    One writer per output: the whole write holds an exclusive lock on
    ``.<name>.lock`` beside ``path`` (:func:`fcntl.flock`; the operating system
    releases it when its holder dies, however it dies, and the file is removed
    when the write ends). A second process writing the same output (a job left
    running by a Snakemake that was killed alone, and the same job started
    again by the resume) waits for the first to finish, saying so once on
    stderr, and then writes the output itself; it never deletes
    the other writer's temporary file. On a file system without file locks
    the write goes ahead unlocked.

    Parameters
    ----------
    path : str or path-like
        The final destination. Parent directories are created.
    lock_timeout : float or None
        Seconds to wait for another process's lock on ``path`` before raising
        :class:`OutputBusyError`. ``None`` (default): the environment variable
        ``BRAINALIGN_LOCK_TIMEOUT`` if set, else wait as long as the other
        writer lives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(path, lock_timeout):
        # Temporary files of a writer that was killed mid-write: the lock says
        # that no live process writes this output, so remove them (exactly this
        # output's: `.<name>.<8 random characters>.part`, not `.<name>.json.<...>.part`).
        own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.part")
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            if own.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        try:
            yield tmp
            os.chmod(tmp, 0o644)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class OutputBusyError(BrainalignError):
    """Another live process holds the lock of an output (:func:`atomic_path`) past ``lock_timeout``."""


#: Locks taken by this process, per thread: a nested write of the same output would wait for itself.
_HELD_LOCKS: set[tuple[int, str]] = set()
#: errno values of a file system that does not implement file locks.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _lock_holder(lock: Path) -> str:
    try:
        pid = lock.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def _output_lock(path: Path, timeout: float | None) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (``.<name>.lock`` beside it) for the body."""
    if timeout is None and os.environ.get("BRAINALIGN_LOCK_TIMEOUT"):
        timeout = float(os.environ["BRAINALIGN_LOCK_TIMEOUT"])
    lock = path.with_name(f".{path.name}.lock")
    key = (threading.get_ident(), os.path.abspath(lock))
    if key in _HELD_LOCKS:
        raise RuntimeError(f"{path}: atomic_path of this output is already open in this thread")
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not announced:  # on stderr, not a logger: a silent wait would look like a hang
                    print(f"brainalign: {path}: {_lock_holder(lock)} is writing this output (a job left running "
                          "by a killed Snakemake, or a second run of the same workflow); waiting for it to finish"
                          + ("" if deadline is None else f" (at most {timeout:g} s)"), file=sys.stderr, flush=True)
                    announced = True
                if deadline is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # wakes when the holder finishes or dies
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise OutputBusyError(
                            f"{path}: {_lock_holder(lock)} is still writing this output after {timeout:g} s "
                            f"(lock {lock.name}); let it finish or end it, then rerun") from None
                    os.close(fd)
                    fd = -1
                    time.sleep(min(0.2, remaining))
                    continue
            except OSError as err:
                if err.errno not in _NO_LOCKS:
                    raise
                os.close(fd)
                fd = -1
                break  # no file locks on this file system: write unlocked, as before
            # Its previous holder removes the lock file before releasing it: the
            # lock taken must be on the file that is there now, else try again.
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                current = None
            if current is None or not os.path.samestat(os.fstat(fd), current):
                os.close(fd)
                fd = -1
                continue
            with contextlib.suppress(OSError):  # who holds it, for the message of a waiting writer
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            break
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
    if fd < 0:
        with contextlib.suppress(OSError):
            lock.unlink()
        yield
        return
    _HELD_LOCKS.add(key)
    try:
        yield
    finally:
        _HELD_LOCKS.discard(key)
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


# --------------------------------------------------------------------------- text and sidecars
def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def write_provenance(path: str | os.PathLike, prov: Mapping[str, Any]) -> Path:
    """Atomically write the provenance of the output ``path`` as JSON (sorted keys) to ``<path>.json``."""
    path = Path(path)
    return write_text(path.with_name(path.name + ".json"), _json(dict(prov)) + "\n")


def write_with_sidecar(path: str | os.PathLike, write: Any, prov: Mapping[str, Any] | None) -> Path:
    """Atomically write ``path`` with ``write(tmp_path)``, then its provenance sidecar ``<path>.json``.

    The sidecar comes last: a failed write (disk full, say) leaves neither
    file behind, and an old sidecar is removed before the new file replaces
    the old one, so a sidecar never describes a file that is not there.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    with atomic_path(path) as tmp:
        write(tmp)
        if prov is not None:
            sidecar.unlink(missing_ok=True)
    if prov is not None:
        write_text(sidecar, _json(dict(prov)) + "\n")
    return path
