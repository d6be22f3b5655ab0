"""Resume in one command: the Snakemake lock of a run that was killed hard is removed.

Snakemake locks its working folder (``.snakemake/locks``) while it runs and
removes the lock when it ends, also after Ctrl-C. A run killed hard (SIGKILL,
out of memory, a lost node) leaves the lock behind, and every later run stops
with "Directory cannot be locked" until ``--unlock``. Snakemake's lock files
name no process, so Snakemake cannot tell a stale lock from a live one.

The Snakefile calls :func:`hold_workflow_folder` while it is parsed, before
Snakemake takes its lock: every brainalign Snakemake process (not the job
processes it starts) holds a shared :func:`fcntl.flock` on
``.snakemake/brainalign-run.lock`` for its whole life, and the operating system
releases it when the process dies, however it dies. A process that can take
that lock *exclusively* is the only one in the folder, so any Snakemake lock
there is stale and is removed. The lock of a live run is never touched:
Snakemake then reports the folder locked, as it should. A dry run removes
nothing. On a file system without file locks nothing is removed (``--unlock``
is then still needed after a hard kill).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Any

from .._validation import BrainalignError

__all__ = ["hold_workflow_folder", "claim_dataset_config", "claimed_config_path", "write_claimed_config",
           "DatasetInUseError"]

#: The file every live brainalign Snakemake process holds a shared lock on, in ``.snakemake/``.
RUN_LOCK = "brainalign-run.lock"

#: Open descriptors of the run locks this process holds (kept open until it exits).
_HELD: dict[str, int] = {}


def hold_workflow_folder(workflow: Any = None, folder: str | os.PathLike = ".snakemake") -> list[Path]:
    """Hold this folder's run lock for the life of the process; remove stale Snakemake locks.

    Parameters
    ----------
    workflow : snakemake.workflow.Workflow or None
        The workflow being parsed (the Snakefile's ``workflow``). Job processes
        (Snakemake's subprocess and remote modes) do nothing; a dry run holds
        the lock but removes nothing. ``None``: a main, non-dry run.
    folder : str or path-like
        Snakemake's metadata folder (``.snakemake`` in the working directory).

    Returns
    -------
    list of Path
        The stale Snakemake lock files removed (empty if none, or if another
        Snakemake process uses the folder).
    """
    if workflow is not None and not getattr(workflow, "is_main_process", True):
        return []
    dry_run = workflow is not None and bool(getattr(getattr(workflow, "output_settings", None), "dryrun", False))
    folder = Path(folder)
    key = os.path.abspath(folder)
    if key in _HELD:
        return []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / RUN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return []  # a read-only folder: Snakemake reports what it can or cannot do
    removed: list[Path] = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False  # another brainalign Snakemake process is alive here
        if alone and not dry_run:
            removed = _remove_stale_locks(folder / "locks")
        # Converting to shared lets the next process in see that this one lives.
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)  # no file locks on this file system
        return removed
    _HELD[key] = fd
    if removed:
        print("brainalign: removed the Snakemake lock left by a run that was killed "
              f"(no other Snakemake process uses this folder): {', '.join(p.name for p in removed)}",
              file=sys.stderr)
    return removed


def _remove_stale_locks(locks: Path) -> list[Path]:
    removed = []
    for lock in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
            removed.append(lock)
    return removed


# --------------------------------------------------------------------------- one config per dataset name
class DatasetInUseError(BrainalignError):
    """A running workflow uses this dataset name with another config."""


#: Descriptors of the dataset claims this process holds (kept open until it exits).
_CLAIMS: dict[str, int] = {}


def claim_dataset_config(workflow: Any, config_file: str | os.PathLike, resolved: str, *,
                         source: str | os.PathLike | None = None,
                         folder: str | os.PathLike = ".snakemake") -> bool:
    """Claim a dataset name for this run's config, or refuse if a live run uses it with another config.

    Every rule reads the resolved config from ``config_file``
    (``results/<name>/config.yaml``), so a second Snakemake invocation that
    rewrote it while a first one runs would make the first run's later jobs use
    the second config. Each brainalign Snakemake process that runs jobs holds a
    shared lock on ``.snakemake/brainalign/<name>.users`` for its whole life
    (released by the operating system when it dies, however it dies), and the
    first of them records its resolved config in ``<name>.yaml`` beside it;
    decisions are taken one at a time under ``<name>.gate``. A process that
    finds a live user proceeds only with an identical config and raises
    otherwise. One that finds none claims the name and removes a
    ``config_file`` that differs from its config (the workflow's
    ``resolved_config`` rule writes it again, and everything that reads it
    reruns). A dry run neither writes nor removes anything.

    Parameters
    ----------
    workflow : snakemake.workflow.Workflow or None
        The workflow being parsed. Job processes (remote and subprocess modes)
        neither claim nor remove. ``None``: a main, non-dry run.
    config_file : str or path-like
        ``results/<dataset.name>/config.yaml``.
    resolved : str
        The validated config as YAML text (:func:`brainalign.config.dump_config`).
    source : str or path-like or None
        The config file given by the user, for the message.
    folder : str or path-like
        Snakemake's metadata folder (``.snakemake`` in the working directory).

    Returns
    -------
    bool
        True if ``config_file`` differs from ``resolved`` (or is missing), i.e.
        the workflow (re)writes it.

    Raises
    ------
    DatasetInUseError
        Another live Snakemake process runs this dataset with another config.
    """
    config_file = Path(config_file)
    current = config_file.read_text(encoding="utf-8") if config_file.is_file() else None
    if workflow is not None and not getattr(workflow, "is_main_process", True):
        return current != resolved
    dry_run = workflow is not None and bool(getattr(getattr(workflow, "output_settings", None), "dryrun", False))
    held = _CLAIMS.pop(str(config_file.resolve()), None)
    if held is not None:
        os.close(held)  # this process claims again (a new decision replaces its earlier one)
    name = config_file.parent.name
    locks = Path(folder) / "brainalign"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        gate = os.open(locks / f"{name}.gate", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        gate = None  # a read-only folder: nothing can be written below either
    users = None
    try:
        if gate is not None:
            fcntl.flock(gate, fcntl.LOCK_EX)
            users = os.open(locks / f"{name}.users", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            claim = locks / f"{name}.yaml"
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            if not alone:
                claimed = claim.read_text(encoding="utf-8") if claim.is_file() else None
                if claimed != resolved:
                    raise DatasetInUseError(
                        f"{source or config_file}: field 'dataset.name': the dataset {name!r} is being analysed "
                        f"by another running workflow in this folder with a different config; its jobs read "
                        f"{config_file}, so that file is left unchanged. Wait for that run to end, or give "
                        "this config another dataset.name.")
            elif not dry_run:
                from ..io import write_text

                write_text(claim, resolved)  # the resolved_config rule copies it to config_file
        current = config_file.read_text(encoding="utf-8") if config_file.is_file() else None
        if dry_run:
            if current is not None and current != resolved:
                print(f"brainalign: dry run: the config differs from {config_file}, which a run would write "
                      "again (and rerun what reads it); nothing is written.", file=sys.stderr)
            return current != resolved
        if current is not None and current != resolved:
            config_file.unlink()  # the resolved_config rule writes it again, with Snakemake's metadata
        if users is not None:
            fcntl.flock(users, fcntl.LOCK_SH)  # under the gate: no other process decides meanwhile
            _CLAIMS[str(config_file.resolve())] = users
            users = None
        return current != resolved
    finally:
        if users is not None:
            os.close(users)
        if gate is not None:
            os.close(gate)  # closing releases the gate


def claimed_config_path(config_file: str | os.PathLike, folder: str | os.PathLike = ".snakemake") -> Path:
    """Where :func:`claim_dataset_config` records the config of the run that holds a dataset name."""
    return Path(folder) / "brainalign" / f"{Path(config_file).parent.name}.yaml"


def write_claimed_config(claim: str | os.PathLike, sha256: str, out: str | os.PathLike) -> Path:
    """Copy the claimed config to ``out`` atomically, after checking that it is the expected one.

    The ``resolved_config`` rule's job (a shell command, so that Snakemake does
    not parse the whole workflow again in a subprocess, as it does for ``run:``
    jobs).

    Parameters
    ----------
    claim : str or path-like
        :func:`claimed_config_path`.
    sha256 : str
        The hex SHA-256 of the resolved config text this run validated.
    out : str or path-like
        ``results/<dataset.name>/config.yaml``.

    Returns
    -------
    Path
        ``out``.
    """
    import hashlib

    from ..io import write_text

    text = Path(claim).read_text(encoding="utf-8")
    if hashlib.sha256(text.encode()).hexdigest() != sha256:
        raise DatasetInUseError(f"{claim}: the recorded config is not the one this run validated (another run "
                                "claimed the dataset name meanwhile?); rerun.")
    return write_text(out, text)
