"""The notebook path at Alice's size: ``score_alignment`` against the hand-written loop it replaces (issue #21).

Alice-shaped planted data (``--subjects`` subjects × 362 volumes × 6 ROIs,
``--layers`` layers of 384 features, 5 × 5 nested contiguous CV, 17 alphas).
The anchor, in the same run, is the loop a notebook wrote before: one
``cross_validated_pearson`` per subject and layer plus ``isc_ceiling``, with
the libraries' default threads. Both are timed on an idle machine and with
``--busy`` other processes spinning (a shared node), where BLAS's default of
one thread per core oversubscribes the cores.

Usage::

    python benchmarks/api_scoring.py [--subjects 6] [--layers 3] [--busy 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
import warnings

import numpy as np


def _spin() -> None:
    while True:
        pass


def _data(n_subjects: int, n_layers: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    layers = {str(k): rng.standard_normal((362, 384)) for k in range(n_layers)}
    signal = layers["0"] @ rng.standard_normal((384, 6)) / np.sqrt(384)
    return layers, [signal + 2.0 * rng.standard_normal(signal.shape) for _ in range(n_subjects)]


def anchor(layers: dict[str, np.ndarray], ys: list[np.ndarray]) -> float:
    from brainalign.encoders.ridge import cross_validated_pearson
    from brainalign.metrics.ceilings import isc_ceiling

    t0 = time.perf_counter()
    for x in layers.values():
        for y in ys:
            cross_validated_pearson(x, y)
    isc_ceiling(np.stack(ys))
    return time.perf_counter() - t0


def api(layers: dict[str, np.ndarray], ys: list[np.ndarray], n_threads: int | None) -> float:
    from brainalign import CeilingWarning, score_alignment

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CeilingWarning)
        score_alignment(layers, ys, clean=False, n_threads=n_threads, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes for the busy rows")
    args = parser.parse_args()
    layers, ys = _data(args.subjects, args.layers)
    print(f"{args.subjects} subjects × {args.layers} layers, 362 × 384 → 6 ROIs; {os.cpu_count()} cores; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| machine load | anchor loop, default threads (s) | score_alignment, 1 thread (s) | ratio | "
          "score_alignment, n_threads=None (s) |")
    print("|---|---|---|---|---|")
    for load in ("idle", f"{args.busy} busy processes"):
        spinners = []
        if load != "idle":
            spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
            for p in spinners:
                p.start()
        try:
            t_anchor = anchor(layers, ys)
            t_api = api(layers, ys, 1)
            t_default = api(layers, ys, None)
        finally:
            for p in spinners:
                p.terminate()
        print(f"| {load} | {t_anchor:.1f} | {t_api:.1f} | {t_api / t_anchor:.2f} | {t_default:.1f} |")


if __name__ == "__main__":
    main()
