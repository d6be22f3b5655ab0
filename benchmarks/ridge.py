"""Benchmark of brainalign's voxel-wise RidgeCV against scikit-learn and himalaya (issue #3).

One run, same data for every row: n = 2000 training + 500 test samples,
p = 768 features, v = 20 000 targets, 10 alphas ``logspace(-2, 5)``, one alpha
per target, float32 (scikit-learn runs in float64, as it always does for
leave-one-out). Rows, compared like for like:

- leave-one-out: ours against ``sklearn.linear_model.RidgeCV(alpha_per_target=True)``;
- 5-fold: ours against himalaya's ``RidgeCV(cv=5)`` on its numpy and torch backends;
- context: a plain float32 eigendecomposition + leave-one-out (torch), and the
  machine's float32 matrix-product peak.

Every row runs in a fresh subprocess with the same thread count (threadpoolctl
for BLAS/OpenMP, ``torch.set_num_threads``, and the ``*_NUM_THREADS`` variables);
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are removed from the children's
environment only. Peak memory is the process's resident-set high-water mark
during fit + predict (``VmHWM`` reset through ``/proc/self/clear_refs`` just
before the fit; GPU rows report ``torch.cuda.max_memory_allocated``). Each
row is timed ``--repeats`` times (interleaved) and the fastest is kept.

Usage::

    python benchmarks/ridge.py                 # full size, CPU (a few minutes)
    python benchmarks/ridge.py --quick         # small sizes, seconds
    python benchmarks/ridge.py --device cuda   # n=10000, p=1024, v=50000 on the GPU, TF32 off

Prints a Markdown table. ``fraction of peak`` divides the floating-point work
our algorithm does (matrix products counted as 2mnk; float64 set-up included)
by the measured float32 GEMM rate of the same run.
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

ALPHAS = np.logspace(-2, 5, 10)
SIZES = {
    ("cpu", False): {"n": 2000, "n_test": 500, "p": 768, "v": 20000},
    ("cpu", True): {"n": 500, "n_test": 125, "p": 128, "v": 2000},
    ("cuda", False): {"n": 10000, "n_test": 2500, "p": 1024, "v": 50000},
    ("cuda", True): {"n": 2000, "n_test": 500, "p": 256, "v": 10000},
}
CPU_ROWS = [
    "gemm",
    "sklearn_loo",
    "ours_loo_numpy",
    "ours_loo_torch",
    "plain_loo_torch",
    "himalaya_cv5_numpy",
    "himalaya_cv5_torch",
    "ours_cv5_numpy",
    "ours_cv5_torch",
]
CUDA_ROWS = ["gemm", "plain_loo_torch", "ours_loo_torch", "himalaya_cv5_torch", "ours_cv5_torch"]
N_PRED_SAVED = 2000  # prediction columns kept for the agreement check


# --------------------------------------------------------------------------- data
def make_data(n: int, n_test: int, p: int, v: int, seed: int = 0):
    """Features with a decaying spectrum and an offset; targets with a planted linear
    response whose noise level spans two decades, plus 20 % pure-noise targets."""
    rng = np.random.default_rng(seed)
    n_all = n + n_test
    scales = (1.0 / np.sqrt(1.0 + np.arange(p) / 20.0)).astype(np.float32)
    mix = np.linalg.qr(rng.standard_normal((p, p)))[0].astype(np.float32)
    X = (rng.standard_normal((n_all, p), dtype=np.float32) * scales) @ mix + 0.5
    Y = np.empty((n_all, v), dtype=np.float32)
    chunk = 2000
    for start in range(0, v, chunk):
        stop = min(start + chunk, v)
        W = rng.standard_normal((p, stop - start), dtype=np.float32) / np.float32(np.sqrt(p))
        W[:, rng.random(stop - start) < 0.2] = 0.0
        noise = (10.0 ** rng.uniform(-1.0, 1.0, stop - start)).astype(np.float32)
        Y[:, start:stop] = X @ W
        Y[:, start:stop] += rng.standard_normal((n_all, stop - start), dtype=np.float32) * noise
        Y[:, start:stop] += 2.0
    return X[:n], Y[:n], X[n:], Y[n:]


def ours_flops(cfg: dict, cv: str) -> float:
    """Floating-point operations of our fit (matrix products, 2mnk) plus predict."""
    n, p, v, nt, na = cfg["n"], cfg["p"], cfg["v"], cfg["n_test"], len(ALPHAS)
    r = min(n, p)
    predict = 2.0 * nt * p * v
    if cv == "loo":
        setup = 2.0 * n * p * p + 2.0 * n * p * r + 2.0 * na * n * r
        per_target = 2.0 * n * r * (na + 1) + 2.0 * p * r
        return setup + v * per_target + predict
    k = 5
    n_te = n / k
    n_tr = n - n_te
    setup = 2.0 * n * p * p + 2.0 * n * p * r + k * (2.0 * n_te * p * p + 2.0 * n * p * r)
    per_target = k * (2.0 * n_tr * r + 2.0 * na * n_te * r) + 2.0 * n * r + 2.0 * p * r
    return setup + v * per_target + predict


# --------------------------------------------------------------------------- worker side
def _limit_threads(threads: int) -> dict:
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(threads)
    info = {"threadpoolctl": threadpool_info()}
    try:
        import torch

        torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _rss_reset() -> int:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # pragma: no cover - not Linux, or not allowed
        pass
    return _status_kib("VmRSS")


def _status_kib(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:  # pragma: no cover
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _plain_loo(X, Y, alphas, device, block=4096):
    """Plain float32 leave-one-out ridge: eigh of X^T X, blocks of targets, all on ``device``."""
    import torch

    Xt = torch.as_tensor(X, device=device)
    n = Xt.shape[0]
    x_mean = Xt.mean(0)
    Xc = Xt - x_mean
    lam, V = torch.linalg.eigh(Xc.T @ Xc)
    lam = lam.clamp_min(0)
    Z = Xc @ V
    al = torch.as_tensor(alphas, dtype=Xt.dtype, device=device)
    G = 1.0 / (lam[None, :] + al[:, None])  # (n_alphas, p)
    lev = (Z * Z) @ G.T + 1.0 / n  # (n, n_alphas)
    w = 1.0 / (1.0 - lev) ** 2
    coef = np.empty((X.shape[1], Y.shape[1]), np.float32)
    intercept = np.empty(Y.shape[1], np.float32)
    best_alpha = np.empty(Y.shape[1])
    for start in range(0, Y.shape[1], block):
        Yb = torch.as_tensor(Y[:, start : start + block], device=device)
        y_mean = Yb.mean(0)
        Yb = Yb - y_mean
        Q = Z.T @ Yb
        best = torch.full((Yb.shape[1],), float("inf"), device=device)
        idx = torch.zeros(Yb.shape[1], dtype=torch.long, device=device)
        for a in range(len(alphas)):
            R = Yb - Z @ (G[a][:, None] * Q)
            mse = (w[:, a] @ (R * R)) / n
            better = mse < best
            best = torch.where(better, mse, best)
            idx[better] = a
        C = V @ (G[idx].T * Q)
        coef[:, start : start + block] = C.cpu().numpy()
        intercept[start : start + block] = (y_mean - x_mean @ C).cpu().numpy()
        best_alpha[start : start + block] = alphas[idx.cpu().numpy()]
    return best_alpha, coef, intercept


def worker(row: str, cfg: dict, out_dir: Path) -> None:
    info = _limit_threads(cfg["threads"])
    device = cfg["device"]
    import torch

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    X, Y, X_test, _ = make_data(cfg["n"], cfg["n_test"], cfg["p"], cfg["v"])

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    result = {"row": row, **info}
    if row == "gemm":
        m = 4096 if device == "cuda" else 3072
        rates = {}
        for lib in ("numpy", "torch") if device == "cpu" else ("torch",):
            if lib == "numpy":
                A = np.random.default_rng(0).standard_normal((m, m), dtype=np.float32)
                f = lambda A=A: A @ A
            else:
                A = torch.randn(m, m, device=device)
                f = lambda A=A: A @ A
            f()
            sync()
            best = np.inf
            for _ in range(5):
                t = time.perf_counter()
                f()
                sync()
                best = min(best, time.perf_counter() - t)
            rates[lib] = 2.0 * m**3 / best / 1e9
        result.update(gflops=max(rates.values()), gemm_rates=rates, size=m)
        (out_dir / f"{row}.json").write_text(json.dumps(result, default=str))
        return

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    X_fit, Y_fit = X, Y
    if row == "sklearn_loo":
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        X_fit, Y_fit, X_test = X.astype(np.float64), Y.astype(np.float64), X_test.astype(np.float64)
        model = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True)
    elif row.startswith("himalaya"):
        import warnings

        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV as HimalayaRidgeCV

        warnings.simplefilter("ignore")
        set_backend("torch_cuda" if device == "cuda" else row.rsplit("_", 1)[1])
        model = HimalayaRidgeCV(alphas=ALPHAS.astype(np.float32), cv=5, fit_intercept=True)
    elif row.startswith("ours"):
        from brainalign.encoders.ridge_cv import RidgeCV

        backend = row.rsplit("_", 1)[1]
        if device == "cuda":
            backend = "torch_cuda"
        model = RidgeCV(alphas=ALPHAS, cv="loo" if "_loo_" in row else 5, backend=backend)
    elif row == "plain_loo_torch":
        model = None
    else:  # pragma: no cover
        raise SystemExit(f"unknown row {row}")

    rss_before = _rss_reset()
    t0 = time.perf_counter()
    if model is None:
        alpha, coef, intercept = _plain_loo(X_fit, Y_fit, ALPHAS, device)
    else:
        model.fit(X_fit, Y_fit)
    sync()
    t1 = time.perf_counter()
    if model is None:
        pred = X_test @ coef + intercept
    else:
        pred = model.predict(X_test)
        pred = pred.cpu().numpy() if hasattr(pred, "cpu") else np.asarray(pred)
    sync()
    t2 = time.perf_counter()
    peak = _status_kib("VmHWM")
    if model is not None:
        alpha = getattr(model, "alpha_", None)
        if alpha is None or row.startswith("himalaya"):
            alpha = model.best_alphas_
        alpha = alpha.cpu().numpy() if hasattr(alpha, "cpu") else np.asarray(alpha)
        alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (cfg["v"],))
    np.save(out_dir / f"{row}_alpha.npy", np.asarray(alpha, dtype=np.float64))
    np.save(out_dir / f"{row}_pred.npy", np.asarray(pred[:, :N_PRED_SAVED], dtype=np.float64))
    result.update(
        fit_s=t1 - t0,
        predict_s=t2 - t1,
        rss_before_mib=rss_before / 1024,
        peak_rss_mib=peak / 1024,
        gpu_peak_mib=(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        batch=getattr(model, "n_targets_batch_", None),
    )
    (out_dir / f"{row}.json").write_text(json.dumps(result, default=str))


# --------------------------------------------------------------------------- parent side
def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def run_rows(rows, cfg, repeats, out_root: Path) -> dict:
    env = dict(os.environ)
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(key, None)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(cfg["threads"])
    best: dict = {}
    for rep in range(repeats):
        for row in rows:
            out_dir = out_root / f"rep{rep}"
            out_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, __file__, "--_worker", row, "--_config", json.dumps(cfg),
                   "--_out", str(out_dir)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"row {row} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            res = json.loads((out_dir / f"{row}.json").read_text())
            res["dir"] = str(out_dir)
            print(f"  {row} (repeat {rep + 1}): "
                  + (f"{res['gflops']:.0f} GFLOP/s" if row == "gemm" else f"fit {res['fit_s']:.2f} s")
                  + f"  [{time.perf_counter() - t:.0f} s with start-up]", file=sys.stderr)
            key = "gflops" if row == "gemm" else "fit_s"
            better = (lambda a, b: a > b) if row == "gemm" else (lambda a, b: a < b)
            if row not in best or better(res[key], best[row][key]):
                best[row] = res
    return best


def agreement(best: dict, ours: str, ref: str) -> tuple[float, float]:
    """Share of targets with the same alpha, and max relative prediction difference."""
    a = np.load(Path(best[ours]["dir"]) / f"{ours}_alpha.npy")
    b = np.load(Path(best[ref]["dir"]) / f"{ref}_alpha.npy")
    same = float(np.mean(np.isclose(a, b, rtol=1e-5)))
    pa = np.load(Path(best[ours]["dir"]) / f"{ours}_pred.npy")
    pb = np.load(Path(best[ref]["dir"]) / f"{ref}_pred.npy")
    rel = float(np.max(np.abs(pa - pb)) / np.max(np.abs(pb)))
    return same, rel


LABELS = {
    "sklearn_loo": "scikit-learn RidgeCV(alpha_per_target=True), LOO, float64",
    "ours_loo_numpy": "**ours** RidgeCV(cv='loo'), numpy backend, float32",
    "ours_loo_torch": "**ours** RidgeCV(cv='loo'), torch backend, float32",
    "plain_loo_torch": "plain eigh + LOO in blocks (torch), float32",
    "himalaya_cv5_numpy": "himalaya RidgeCV(cv=5), numpy backend, float32",
    "himalaya_cv5_torch": "himalaya RidgeCV(cv=5), torch backend, float32",
    "ours_cv5_numpy": "**ours** RidgeCV(cv=5), numpy backend, float32",
    "ours_cv5_torch": "**ours** RidgeCV(cv=5), torch backend, float32",
}


def report(best: dict, cfg: dict) -> str:
    dev = cfg["device"]
    peak = best.get("gemm", {}).get("gflops")
    loo_anchor = "sklearn_loo" if dev == "cpu" else "plain_loo_torch"
    cv5_refs = [r for r in ("himalaya_cv5_numpy", "himalaya_cv5_torch") if r in best]
    cv5_anchor = min(cv5_refs, key=lambda r: best[r]["fit_s"]) if cv5_refs else None
    lines = [
        (
            f"Sizes: n = {cfg['n']} train + {cfg['n_test']} test, p = {cfg['p']}, v = {cfg['v']}, "
            f"{len(ALPHAS)} alphas logspace(-2, 5), per-target alpha; device {dev}; "
            f"threads {cfg['threads']}; best of {cfg['repeats']} (interleaved)."
        ),
        "",
        (
            "| row | fit (s) | predict (s) | ratio (anchor fit / this fit) | peak memory (MiB) "
            "| fraction of f32 GEMM peak | same alpha as reference |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for row in [r for r in (CPU_ROWS if dev == "cpu" else CUDA_ROWS) if r in best and r != "gemm"]:
        res = best[row]
        anchor, agree = None, ""
        if row.startswith("ours_loo") or row == "plain_loo_torch":
            anchor = loo_anchor if row != loo_anchor else None
            if row.startswith("ours_loo") and loo_anchor in best:
                same, rel = agreement(best, row, loo_anchor)
                agree = f"{100 * same:.2f} % vs {loo_anchor} (pred. max rel. diff {rel:.1e})"
        elif row.startswith("ours_cv5"):
            anchor = cv5_anchor
            agree = "; ".join(
                f"{100 * s:.2f} % vs {r} (pred. {d:.1e})"
                for r in cv5_refs
                for s, d in [agreement(best, row, r)]
            )
        ratio = f"{best[anchor]['fit_s'] / res['fit_s']:.2f}x vs {anchor}" if anchor in best else "anchor"
        mem = res["gpu_peak_mib"] if dev == "cuda" else res["peak_rss_mib"]
        mem_s = f"{mem:.0f}" + ("" if dev == "cuda" else f" (+{mem - res['rss_before_mib']:.0f} over data)")
        frac = ""
        if row.startswith("ours") and peak:
            flops = ours_flops(cfg, "loo" if "_loo_" in row else "cv5")
            frac = f"{flops / (res['fit_s'] + res['predict_s']) / 1e9 / peak:.2f} ({flops / 1e9:.0f} GFLOP)"
        label = LABELS[row].replace("torch backend", "torch_cuda backend") if dev == "cuda" else LABELS[row]
        lines.append(
            f"| {label} | {res['fit_s']:.2f} | {res['predict_s']:.2f} | {ratio} | {mem_s} "
            f"| {frac} | {agree} |"
        )
    lines.append("")
    for row in ("ours_loo_numpy", "ours_loo_torch"):
        if row in best:
            chosen = np.load(Path(best[row]["dir"]) / f"{row}_alpha.npy")
            counts = ", ".join(f"{a:.3g}: {int(np.sum(np.isclose(chosen, a)))}" for a in ALPHAS)
            lines.append(f"Alphas chosen by {row} (targets per grid value): {counts}.")
            break
    if "gemm" in best:
        g = best["gemm"]
        lines.append(
            f"float32 GEMM peak ({g['size']}^3, same threads): "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in g["gemm_rates"].items())
        )
    any_row = next(iter(best.values()))
    blas = [
        f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture', '-')}, "
        f"{d.get('num_threads')} threads, {Path(d.get('filepath', '')).name})"
        for d in any_row.get("threadpoolctl", [])
    ]
    lines.append(f"Thread pools (threadpoolctl): {'; '.join(blas)}; torch threads "
                 f"{any_row.get('torch_threads')} (torch {any_row.get('torch')}).")
    lines.append(f"Machine: {machine()}.")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=1, help="times each row runs (best kept)")
    ap.add_argument("--rows", default=None, help="comma-separated subset of rows")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_config", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        worker(args._worker, json.loads(args._config), Path(args._out))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available")
    cfg = dict(SIZES[(args.device, args.quick)], device=args.device, threads=args.threads,
               repeats=args.repeats)
    rows = CPU_ROWS if args.device == "cpu" else CUDA_ROWS
    if args.rows:
        rows = [r for r in rows if r in args.rows.split(",") or r == "gemm"]
    with tempfile.TemporaryDirectory(prefix="ridge_bench_") as tmp:
        best = run_rows(rows, cfg, args.repeats, Path(tmp))
        if args.json:
            Path(args.json).write_text(json.dumps({"config": cfg, "rows": best}, indent=1, default=str))
        print(report(best, cfg))
        if args.device == "cuda":
            import torch

            print(f"GPU: {torch.cuda.get_device_name(0)}; TF32 off.")


if __name__ == "__main__":
    main()
