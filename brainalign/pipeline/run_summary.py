"""What a finished workflow run tells the terminal: where the results are, or why jobs failed.

Called from the Snakefile's ``onsuccess``/``onerror`` handlers. A job's own
error goes to its log file (every rule redirects stderr there), so without
this the terminal shows only Snakemake's ``CalledProcessError``; here the end
of each failed job's log is printed, with the log's path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["failed_job_logs", "failure_summary", "success_summary"]

_ERROR_BLOCK = re.compile(r"^Error in rule (?P<rule>[\w-]+):\s*$")
_JOBID_LINE = re.compile(r"^\s+jobid: (?P<jobid>\d+)\s*$")
_RESTART = re.compile(r"^Trying to restart job (?P<jobid>\d+)\.\s*$")
_LOG_LINE = re.compile(r"^\s+log: (?P<paths>.+?)(?: \(check log file\(s\) for error details\))?\s*$")


def failed_job_logs(snakemake_log: str) -> list[tuple[str, list[str]]]:
    """The (rule, log files) of each failed job named in a Snakemake log, in order, each once.

    A failed attempt that Snakemake then restarted (``retries`` in a profile:
    ``Trying to restart job N.``) is not counted, unless a later attempt
    fails too.

    Parameters
    ----------
    snakemake_log : str
        The text of Snakemake's own log (``.snakemake/log/*.snakemake.log``),
        which repeats every ``Error in rule …`` block.
    """
    found: dict[tuple[str, tuple[str, ...]], str | None] = {}
    rule = jobid = None
    for line in snakemake_log.splitlines():
        restart = _RESTART.match(line)
        if restart:
            for key, job in list(found.items()):
                if job == restart["jobid"]:
                    del found[key]
            continue
        start = _ERROR_BLOCK.match(line)
        if start:
            rule, jobid = start["rule"], None
            continue
        if rule is not None:
            job = _JOBID_LINE.match(line)
            logs = _LOG_LINE.match(line)
            if job:
                jobid = job["jobid"]
            elif logs:
                key = (rule, tuple(p.strip() for p in logs["paths"].split(",") if p.strip()))
                found[key] = jobid  # a repeated block keeps its first place
                rule = None
            elif line and not line.startswith((" ", "\t")):
                found.setdefault((rule, ()), jobid)
                rule = None
    return [(rule, list(paths)) for rule, paths in found]


def _tail(path: Path, n_lines: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [f"(log file {path} cannot be read)"]
    kept = [line for line in lines if line.strip()]
    return kept[-n_lines:] if kept else ["(log file is empty)"]


def failure_summary(snakemake_logs: str | os.PathLike | Sequence[str | os.PathLike] | None,
                    n_lines: int = 12) -> str:
    """The last lines of each failed job's log, ready to print.

    Parameters
    ----------
    snakemake_logs : path-like, sequence of path-like or None
        Snakemake's log file(s), as the ``onerror`` handler receives them (a
        list in Snakemake 9, one path or None in Snakemake 8).
    n_lines : int
        Non-empty lines shown from the end of each job's log.
    """
    if snakemake_logs is None:
        snakemake_logs = []
    elif isinstance(snakemake_logs, (str, os.PathLike)):
        snakemake_logs = [snakemake_logs]
    text = ""
    for path in snakemake_logs:
        try:
            text += Path(path).read_text(encoding="utf-8", errors="replace") + "\n"
        except OSError:
            continue
    failed = failed_job_logs(text)
    if not failed:
        return "brainalign: the workflow stopped before any job failed; Snakemake's message is above."
    out = [f"brainalign: {len(failed)} job(s) failed. The end of each job's log:"]
    for rule, paths in failed:
        if not paths:
            out.append(f"\n--- rule {rule}: no log file (Snakemake's message above)")
        for log in paths:
            out.append(f"\n--- rule {rule}: {log}")
            out.extend(f"    {line}" for line in _tail(Path(log), n_lines))
    out.append("\nFix the cause and run the same command again: finished steps are not redone.")
    return "\n".join(out)


def _best_per_roi(summary_csv: Path) -> list[str]:
    table = pd.read_csv(summary_csv)
    lines = []
    for roi, grp in table.groupby("roi", sort=False):
        top = grp.loc[grp["mean"].idxmax()]
        spread = f" ± {top['sem']:.3f} (SEM)" if pd.notna(top.get("sem")) else ""
        norm = top.get("normalized_mean")
        normalized = f", normalized {norm:.2f}" if pd.notna(norm) else ", no usable ceiling"
        lines.append(f"    {roi}: {top['model']} (layer {top['modal_layer']} most often), r = {top['mean']:.3f}"
                     f"{spread}{normalized}, {int(top['n_subjects'])} subjects")
    return lines


def success_summary(results_dir: str | os.PathLike, targets: Sequence[str | os.PathLike]) -> str:
    """Where the report and tables are and, for fMRI scores, the best model per ROI.

    Parameters
    ----------
    results_dir : path-like
        ``results/<dataset>``.
    targets : sequence of path-like
        The workflow's final targets (score table and report).
    """
    results_dir = Path(results_dir)
    out = ["brainalign: done."]
    for target in targets:
        path = Path(target)
        if path.exists():
            what = "report" if path.suffix == ".html" else "scores"
            out.append(f"  {what}: {path}")
    best = results_dir / "best_layer_summary.csv"
    if best.is_file():
        try:
            lines = _best_per_roi(best)
        except (KeyError, ValueError, pd.errors.ParserError):
            lines = []
        if lines:
            out.append("  best model per ROI (nested best layer, mean over subjects):")
            out.extend(lines)
    return "\n".join(out)
