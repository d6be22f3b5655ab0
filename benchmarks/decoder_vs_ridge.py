"""The contrastive brain module against its linear baseline (issue #15): top-k identification per seed.

For each seed, the simulated MEG/EEG recordings of a config are simulated
again (``simulation.seed``: a new planted map, new sensor patterns and noise)
on the word table and features of one workflow run, epoched, and decoded by
:func:`brainalign.pipeline.electro.run_contrastive` with ``contrastive.seed``
set to the same seed; its ``scores.csv`` holds both decoders (``decoder``:
``brain_module`` and ``ridge``), scored among the same unique test segments.
The table gives top-1/5/10 per seed, subject and pooled, and the ratio of the
brain module's top-10 to the ridge baseline's (the acceptance criterion of
issue #15: >= 0.9 everywhere).

``--before`` runs the brain module with the settings it had before issue #15
(``depth: 3``, ``n_time_bins: 6``, ``epochs: 60``, ``weight_decay: 0.05``, no
refit) for the before/after comparison; the ridge baseline is the same in
both.

Usage::

    python benchmarks/decoder_vs_ridge.py [--config workflows/configs/simulated_meg_ci.yaml]
        [--seeds 0 1 2] [--before] [--workdir DIR]

The word table and features come from a Snakemake run of the config in
``--workdir`` (made on first use; the features need the config's model).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent

#: The brain module's settings before issue #15 (the others did not change).
BEFORE = {"depth": 3, "n_time_bins": 6, "epochs": 60, "weight_decay": 0.05, "refit": False}


def _prepare(config: Path, workdir: Path) -> tuple[dict, Path]:
    """The validated config and its results folder, with the word table and features built by Snakemake."""
    from brainalign.config import load_config
    from brainalign.pipeline.electro import target_set

    cfg = load_config(config)
    results = workdir / "results" / cfg["dataset"]["name"]
    targets = [results / "stimuli" / "events.tsv", results / "features" / f"{target_set(cfg)[0]}.h5"]
    if not all(t.exists() for t in targets):
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
                        "-d", str(workdir), *(str(t.relative_to(workdir)) for t in targets), "--configfile",
                        str(config)], check=True,
                       env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    return cfg, results


def run_seed(cfg: dict, results: Path, seed: int, tmp: Path, before: bool) -> pd.DataFrame:
    """Simulate, epoch and decode one seed; the scores table with a ``seed`` column and the stage's seconds."""
    from brainalign.pipeline.electro import run_contrastive, run_epochs, run_simulate_electro, target_set

    cfg = {**cfg, "simulation": {**cfg["simulation"], "seed": seed},
           "contrastive": {**cfg["contrastive"], "seed": seed, **(BEFORE if before else {})}}
    events = results / "stimuli" / "events.tsv"
    features = results / "features" / f"{target_set(cfg)[0]}.h5"
    run_simulate_electro(cfg, events, features, tmp / "raw")
    subjects = [f"sub-{k + 1:02d}" for k in range(cfg["simulation"]["n_subjects"])]
    epochs = [run_epochs(cfg, s, events, tmp / "epochs" / f"{s}.h5", raw_dir=tmp / "raw") for s in subjects]
    start = time.perf_counter()
    out = run_contrastive(cfg, epochs, events, features, tmp / "decoding", progress=False)
    seconds = time.perf_counter() - start
    scores = pd.read_csv(out / "scores.csv")
    history = pd.read_csv(out / "history.csv")
    best = int(history["val_loss"].idxmin()) + 1 if history["val_loss"].notna().any() else len(history)
    return scores.assign(seed=seed, seconds=seconds, best_epoch=best)


def table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per seed and subject: top-k of each decoder and the ratio of the top-10s."""
    wide = scores.pivot_table(index=["seed", "subject"], columns=["decoder", "metric"], values="value")
    wide = wide.reindex(columns=sorted(wide.columns, key=lambda c: (c[0] != "brain_module", int(c[1][3:]))))
    wide.columns = [f"{'brain' if d == 'brain_module' else d} {m}" for d, m in wide.columns]
    wide["brain/ridge top10"] = wide["brain top10"] / wide["ridge top10"]
    return wide.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "workflows" / "configs" / "simulated_meg_ci.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--before", action="store_true", help="the brain module's settings before issue #15")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the long table (CSV) here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="decoder_vs_ridge_"))
    cfg, results = _prepare(args.config.resolve(), workdir)
    parts = []
    for seed in args.seeds:
        tmp = Path(tempfile.mkdtemp(prefix=f"seed{seed}_", dir=workdir))
        parts.append(run_seed(cfg, results, seed, tmp, args.before))
        print(f"seed {seed}: contrastive stage {parts[-1]['seconds'].iloc[0]:.0f} s", flush=True)
    scores = pd.concat(parts, ignore_index=True)
    if args.out is not None:
        scores.to_csv(args.out, index=False)
    wide = table(scores)
    print(f"\n{args.config.name}{' (before issue #15)' if args.before else ''}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads 1\n")
    print(wide.to_markdown(index=False, floatfmt=".3f"))
    ratio = wide["brain/ridge top10"]
    pooled = wide.loc[wide["subject"] == "pooled", "brain/ridge top10"].round(3).tolist()
    print(f"\nbrain/ridge top-10: min {ratio.min():.3f}, pooled rows {pooled}")


if __name__ == "__main__":
    main()
