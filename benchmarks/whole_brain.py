"""Whole-brain scoring: 50,000 voxels x 1,000 TRs x 768 features (issue #4).

The score stage of the volume path (:func:`brainalign.pipeline.volumes.run_volume_score`)
on one subject and one layer: 4 runs of 250 volumes, leave-one-run-out outer
folds, leave-one-run-out inner folds over the 3 training runs, 17 alphas, one
alpha per voxel, voxels in batches of ``encoder.target_batch_size`` (20,000),
held-out Pearson r per voxel; without and with the per-voxel significance
test (the refit circular-shift test of docs/method.md, at most 1,000
permutations with sequential stopping after 10 exceedances), once shifting
the responses (the workflow's choice without confound regressors) and once
shifting the design and refitting every fold (its choice with them). Data: float32
responses in which 5,000 voxels carry a linear map of the features plus
noise, the rest noise.

Anchor, same data and folds: himalaya's ``RidgeCV`` (numpy backend, float32,
``solver="svd"``, with intercept, the same alphas, the same inner leave-one-run-out splits,
``n_targets_batch=20000``), fit on the training runs and predicting the held-out
run, Pearson r computed with numpy.

Every row runs in a fresh subprocess with 2 BLAS threads; peak memory is the
process's resident-set high-water mark (``VmHWM``), of which the data itself
(responses in float32 plus the design) is about 200 MB.

Usage::

    python benchmarks/whole_brain.py            # full size (several minutes)
    python benchmarks/whole_brain.py --quick    # 5,000 voxels, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHAS = np.logspace(-2, 6, 17)
THREADS = 2


def _make_data(folder: Path, n_voxels: int, n_runs: int, run_len: int, n_features: int) -> tuple[Path, Path]:
    from brainalign.io import Features, Responses, write_features, write_responses

    rng = np.random.default_rng(0)
    n = n_runs * run_len
    x = rng.standard_normal((n, n_features)).astype(np.float32)
    y = rng.standard_normal((n, n_voxels)).astype(np.float32)
    active = n_voxels // 10
    w = rng.standard_normal((n_features, active)).astype(np.float32) / np.sqrt(n_features)
    y[:, :active] += x @ w
    y = (y - y.mean(0)) / y.std(0)
    runs = np.repeat(np.arange(1, n_runs + 1), run_len)
    index = np.arange(n_voxels, dtype=np.int32).reshape(1, 1, -1)
    resp = Responses(data=y, sampling=2.0, times=np.tile(np.arange(run_len) * 2.0, n_runs), runs=runs,
                     unit_names=[f"v{i}" for i in range(n_voxels)], unit_rois=["brain"] * n_voxels,
                     subject="sub-01", affine=np.eye(4), unit_index=index)
    rpath = write_responses(folder / "sub-01.h5", resp, {})
    dpath = write_features(folder / "design.h5", Features({"0": x}, "bench", {}, times=np.arange(n) * 2.0), {},
                           kind="design")
    return rpath, dpath


def _config(n_permutations: int, null: str = "auto") -> dict:
    from brainalign.config import validate_config

    return validate_config({
        "dataset": {"name": "bench", "kind": "bids", "bids_dir": ".", "task": "bench"},
        "feature_sets": {"bench": {"kind": "word_rate"}},
        "preprocessing": {"detrend": False, "high_pass": None, "standardize": False, "confounds": "none"},
        "encoder": {"alphas": ALPHAS.tolist(), "target_batch_size": 20000},
        "statistics": {"n_permutations": n_permutations, "null": null},
    })


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _row(name: str, folder: Path) -> dict:
    from threadpoolctl import threadpool_limits

    threadpool_limits(THREADS)
    rpath, dpath = folder / "sub-01.h5", folder / "design.h5"
    if name.startswith("ours"):
        from brainalign.io import read_unit_scores
        from brainalign.pipeline.volumes import run_volume_score

        cfg = _config(0 if name == "ours" else 1000, "design" if name == "ours_perm_design" else "responses")
        _reset_peak()
        t0 = time.perf_counter()
        run_volume_score(cfg, dpath, [rpath], folder / f"{name}.csv", folder / f"{name}.h5", threads=THREADS)
        seconds = time.perf_counter() - t0
        r = read_unit_scores(folder / f"{name}.h5")["subjects"]["sub-01"]["score"][0]
    else:
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV

        from brainalign.io import read_features, read_responses

        set_backend("numpy")
        resp = read_responses(rpath)
        x = read_features(dpath, kind="design").layers["0"].astype(np.float32)
        y = resp.data
        runs = resp.runs
        _reset_peak()
        t0 = time.perf_counter()
        fold_r = []
        for held in np.unique(runs):
            train, test = runs != held, runs == held
            inner = [(np.flatnonzero(runs[train] != k), np.flatnonzero(runs[train] == k))
                     for k in np.unique(runs[train])]
            model = RidgeCV(alphas=ALPHAS, cv=inner, fit_intercept=True, solver_params={"n_targets_batch": 20000,
                                                                    "n_alphas_batch": 17})
            model.fit(x[train], y[train])
            pred = np.asarray(model.predict(x[test]))
            a = pred - pred.mean(0)
            b = y[test] - y[test].mean(0)
            fold_r.append((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0)))
        seconds = time.perf_counter() - t0
        r = np.mean(fold_r, axis=0)
    return {"name": name, "seconds": seconds, "peak_mb": _peak_mb(), "r": r.tolist()}


NAMES = {
    "himalaya": "himalaya RidgeCV, numpy backend, float32 (anchor)",
    "ours": "**ours** score stage (batched RidgeCV, float32), no permutations",
    "ours_perm": "**ours** score stage + refit shift test, responses shifted (≤ 1,000 permutations, "
                 "sequential stop at 10)",
    "ours_perm_design": "**ours** score stage + refit shift test, design shifted and refitted (as with "
                        "confound regressors)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(_row(args.row, args.folder)))
        return
    n_voxels = 5000 if args.quick else 50000
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    env.update({k: str(THREADS) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _make_data(folder, n_voxels, 4, 250, 768)
        results = {}
        for name in NAMES:
            out = subprocess.run([sys.executable, __file__, "--row", name, "--folder", str(folder)],
                                 capture_output=True, text=True, env=env, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name}: {results[name]['seconds']:.1f} s, {results[name]['peak_mb']:.0f} MB", file=sys.stderr)
    anchor = results["himalaya"]
    r_ref = np.asarray(anchor["r"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {THREADS} BLAS threads; "
          f"{n_voxels} voxels x 1000 TRs (4 runs) x 768 features, 17 alphas, leave-one-run-out outer and inner\n")
    print("| row | time (s) | ratio (anchor / this) | peak memory (MB) | r vs anchor: max abs diff, corr |")
    print("|---|---|---|---|---|")
    for name, label in NAMES.items():
        res = results[name]
        r = np.asarray(res["r"])
        ratio = "anchor" if name == "himalaya" else f"{anchor['seconds'] / res['seconds']:.2f}x"
        diff = "" if name == "himalaya" else f"{np.abs(r - r_ref).max():.3f}, {np.corrcoef(r, r_ref)[0, 1]:.4f}"
        print(f"| {label} | {res['seconds']:.1f} | {ratio} | {res['peak_mb']:.0f} | {diff} |")


if __name__ == "__main__":
    main()
