"""Per-rule wall time and peak memory of a finished workflow run, as a Markdown table.

Usage::

    snakemake --cores 2 --configfile workflows/configs/brennan2016.yaml   # fills results/brennan2016/benchmarks/
    python benchmarks/workflow_rules.py results/brennan2016 > table.md

Reads Snakemake's ``benchmark:`` files (one TSV per job: ``s`` wall seconds,
``max_rss`` MB) and prints, per rule, the number of jobs, total and mean wall
time and the largest peak RSS, followed by the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pandas as pd


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def rule_table(results_dir: Path) -> pd.DataFrame:
    rows = []
    bench = results_dir / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent != bench else tsv.stem
        t = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "s": float(t["s"].iloc[-1]), "max_rss": float(t["max_rss"].iloc[-1])})
    jobs = pd.DataFrame(rows)
    return (jobs.groupby("rule", sort=False)
            .agg(jobs=("s", "size"), total_s=("s", "sum"), mean_s=("s", "mean"), max_s=("s", "max"),
                 peak_rss_mb=("max_rss", "max")).reset_index())


def main(results_dir: str) -> None:
    table = rule_table(Path(results_dir))
    print("| rule | jobs | total (s) | mean per job (s) | slowest job (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for _, r in table.iterrows():
        print(f"| {r.rule} | {r.jobs} | {r.total_s:.1f} | {r.mean_s:.2f} | {r.max_s:.2f} | {r.peak_rss_mb:.0f} |")
    print(f"\nMachine: {machine()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/brennan2016")
