"""Calibration of the per-unit significance test, before and after the refit shift test.

Null voxels (white and AR(1) noise with a motion artefact and a drift, two
runs of 200 volumes at TR = 2 s, cleaned with detrending, a 1/128 Hz
high-pass and the 6 motion confounds; and AR(1) 0.3 noise on runs of 100
volumes cleaned with 26 regressors per run, as many as fMRIPrep's default
set) are scored like the volume path scores them (leave-one-run-out ridge,
penalties per voxel by inner CV), then tested two ways:

* **before**: circular shifts of the pooled held-out predictions against the
  responses (``brainalign.metrics.stats.circular_shift_test``, the test the
  workflow used until issue 15);
* **after**: the refit circular-shift test
  (``brainalign.metrics.cv_permutation.refit_shift_test``: the raw design
  shifted within each run, cleaned like the fitted one, every fold refitted
  with its penalties).

Then planted data (10 % of voxels carry signal) over 10 seeds: the
false-discovery proportion of per-subject Benjamini–Hochberg maps at q = .05.

Writes docs/figures/calibration.png and prints a Markdown table (false
positive rates, FDP, time per 1000 voxels). Run from the repository root::

    python benchmarks/calibration.py
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import scipy.stats

from brainalign.datasets.planted_voxels import simulate_planted_voxels
from brainalign.metrics.cv_permutation import refit_shift_test
from brainalign.metrics.stats import circular_shift_test, fdr_correction
from brainalign.encoders.ridge_cv import nested_cv_pearson
from brainalign.pipeline.stages import encoder_cv_options
from brainalign.preprocess.fmri import LinearCleaner, clean_signals

CLEANING = {"detrend": True, "high_pass": 0.0078125, "standardize": "zscore_sample", "confounds": "fmriprep"}
ENCODER = {"outer_folds": 5, "gap": 5, "inner_folds": 2, "alphas": [1.0, 10.0, 100.0, 1000.0, 10000.0],
           "alpha_per_target": True, "pooled": False}
ALPHA_GRID = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
N_NULL = 8000
N_PERM = 2000


def both_tests(sim, seed: int, n_permutations: int, stop_after: int | None = 10
               ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """p-values of the old and the new test, and their times (s)."""
    conf = sim.confounds
    y = clean_signals(sim.responses, sim.tr, CLEANING, sim.runs, conf).astype(np.float32)
    x = clean_signals(sim.design, sim.tr, CLEANING, sim.runs, conf)
    res = nested_cv_pearson(x, y, **encoder_cv_options(ENCODER), groups=sim.runs)
    t0 = time.perf_counter()
    old = circular_shift_test(y, res["predictions"], n_permutations=n_permutations, random_state=seed).pvalues
    t1 = time.perf_counter()
    clean = LinearCleaner(sim.tr, CLEANING, sim.runs, conf)
    new = refit_shift_test(y, sim.design, res["folds"], res["alphas"], runs=sim.runs, clean=clean,
                           n_permutations=n_permutations, stop_after=stop_after, random_state=seed).pvalues
    t2 = time.perf_counter()
    return old, new, t1 - t0, t2 - t1


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, null_p, timing = [], {}, []
    cases = (("white", 0.0, 200, 6), ("AR(1) 0.5", 0.5, 200, 6), ("AR(1) 0.3, 26 confounds", 0.3, 100, 26))
    for label, phi, n_volumes, per_run in cases:
        sim = simulate_planted_voxels(N_NULL, n_runs=2, n_volumes=n_volumes, n_features=32, phi=phi,
                                      n_confounds=per_run, seed=21)
        old, new, t_old, t_new = both_tests(sim, 22, N_PERM)
        null_p[label] = (old, new)
        timing.append((t_old, t_new))
        for alpha in (0.05, 0.01):
            lo, hi = scipy.stats.binom.interval(0.99, N_NULL, alpha)
            rows.append((label, alpha, np.mean(old <= alpha), np.mean(new <= alpha), lo / N_NULL, hi / N_NULL))
    # Without sequential stopping the null p-values are (near) continuous: the histogram's view.
    sim = simulate_planted_voxels(N_NULL, n_runs=2, n_volumes=200, n_features=32, phi=0.5, seed=21)
    _, full, _, t_full = both_tests(sim, 22, 1000, stop_after=None)
    fdp = {"before": [], "after": []}
    power = {"before": [], "after": []}
    for seed in range(10):
        sim = simulate_planted_voxels(1000, n_runs=2, n_volumes=150, n_features=32, phi=0.3, planted_fraction=0.1,
                                      snr=0.6, seed=seed)
        old, new, _, _ = both_tests(sim, seed + 100, 1000)
        for name, p in (("before", old), ("after", new)):
            found = fdr_correction(p) <= 0.05
            fdp[name].append((found & ~sim.planted).sum() / max(found.sum(), 1))
            power[name].append((found & sim.planted).sum() / sim.planted.sum())

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for label, style in (("white", "-"), ("AR(1) 0.5", "--"), ("AR(1) 0.3, 26 confounds", ":")):
        old, new = null_p[label]
        axes[0].plot(ALPHA_GRID, [np.mean(old <= a) for a in ALPHA_GRID], style, color="tab:red", marker="o",
                     label=f"before, {label}")
        axes[0].plot(ALPHA_GRID, [np.mean(new <= a) for a in ALPHA_GRID], style, color="tab:blue", marker="o",
                     label=f"after, {label}")
    lo, hi = scipy.stats.binom.interval(0.99, N_NULL, ALPHA_GRID)
    axes[0].fill_between(ALPHA_GRID, lo / N_NULL, hi / N_NULL, color="0.8", label="99 % binomial interval")
    axes[0].plot(ALPHA_GRID, ALPHA_GRID, color="k", lw=0.8)
    axes[0].set(xscale="log", yscale="log", xlabel="nominal level α", ylabel="fraction of null voxels with p ≤ α",
                title=f"False positives ({N_NULL} null voxels)")
    axes[0].legend(fontsize=7)
    bins = np.linspace(0, 1, 21)
    old, _ = null_p["AR(1) 0.5"]
    axes[1].hist(old, bins=bins, histtype="step", color="tab:red", lw=1.5, label="before")
    axes[1].hist(full, bins=bins, histtype="step", color="tab:blue", lw=1.5, label="after (all 1000 shifts)")
    axes[1].axhline(N_NULL / 20, color="k", lw=0.8, ls=":", label="uniform")
    axes[1].set(xlabel="p-value", ylabel="null voxels per bin", title="Null p-values, AR(1) 0.5 noise")
    axes[1].legend(fontsize=8)
    for k, name in enumerate(("before", "after")):
        axes[2].scatter(np.full(10, k) + np.linspace(-0.1, 0.1, 10), fdp[name],
                        color="tab:red" if name == "before" else "tab:blue")
        axes[2].errorbar(k + 0.25, np.mean(fdp[name]), yerr=2 * np.std(fdp[name], ddof=1) / np.sqrt(10), fmt="k_",
                         capsize=4)
    axes[2].axhline(0.05, color="k", lw=0.8, ls=":", label="q = .05")
    axes[2].set(xticks=[0, 1], xticklabels=["before", "after"], ylabel="false-discovery proportion",
                title="Per-subject BH maps, planted data (10 seeds)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "docs" / "figures" / "calibration.png"
    fig.savefig(out, dpi=110)

    print(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}; "
          f"{N_NULL} null voxels x 2 runs, {N_PERM} permutations (after: sequential stop at 10).\n")
    print("| noise | α | before | after | 99 % interval |")
    print("|---|---|---|---|---|")
    for label, alpha, before, after, lo, hi in rows:
        print(f"| {label} | {alpha} | {before:.4f} | {after:.4f} | [{lo:.4f}, {hi:.4f}] |")
    print("\n| planted data, 10 seeds | mean FDP ± SE | mean power |")
    print("|---|---|---|")
    for name in ("before", "after"):
        v = np.asarray(fdp[name])
        print(f"| {name} | {v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(v.size):.3f} | {np.mean(power[name]):.3f} |")
    (t_old_w, t_new_w), (t_old_a, t_new_a), (t_old_c, t_new_c) = timing
    print(f"\nTime per {N_NULL} voxels (white / AR / 26 confounds): before {t_old_w:.1f} / {t_old_a:.1f} / "
          f"{t_old_c:.1f} s, after {t_new_w:.1f} / {t_new_a:.1f} / {t_new_c:.1f} s with sequential stopping, "
          f"{t_full:.1f} s for all 1000 permutations (AR); figure: {out}")


if __name__ == "__main__":
    main()
