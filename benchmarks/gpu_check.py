"""One GPU check: kernel correctness, the kernel table with its anchors, GPU ridge, CPU-vs-GPU stages.

Run on a machine with one CUDA GPU (about 5 minutes)::

    python benchmarks/gpu_wheels.py            # once, with internet: wheels for an offline node
    python benchmarks/gpu_check.py --out gpu_check

Every step runs in its own subprocess with its own time limit, so a crash, a
hang or a missing package in one step never stops the others; each step writes
``<out>/<step>.json`` and the run ends with ``<out>/gpu_check.json`` (every
figure) and ``<out>/gpu_check.md`` (the tables). Steps:

``environment``
    torch, Triton, the GPU and its limits (shared memory, registers).
``kernels``
    every cell x DH in {16, 32, 64, 128, 256, 768} (NH = 768 / DH) x dtype in
    {bfloat16, float16, float32}: the forward against the float64 reference
    and the gradients against the float64 backward linearised at the stored
    states (relative max error ≤ 1e-4 in float32, ≤ 3e-2 in half precision;
    the error against the float64 forward's gradient is reported beside it),
    and the paths :func:`launch_plan` chose for each shape.
``kernel_table``
    B = 16, T = 1024, LSTM, bfloat16: ours forward and forward+backward next
    to FlashRNN's ``triton_fused`` forward, cuDNN ``nn.LSTM`` (hidden size DH)
    in float16/bfloat16/float32 and NH separate cuDNN LSTMs (medians of CUDA
    event timings, :mod:`rnn_kernels`).
``ridge``
    the volume path's nested cross-validated ridge (leave-one-run-out, per-voxel
    alphas; 50,000 voxels x 1,000 volumes x 768 features) with ``backend=
    "torch_cuda"`` against himalaya's ``RidgeCV`` on ``torch_cuda`` with the
    same folds, and its scores against the NumPy run on a 2,000-voxel subset.
``ridge_shifts``
    the same score stage with its 1,000 circular shifts (the refit shift test,
    responses shifted, sequential stopping; and the design shift, scaled from
    20) on ``torch_cuda``, against himalaya's ``RidgeCV`` plus a ``Ridge``
    refit of every fold per shift (scaled from 3), and the null scores and
    p-values of 1,000 voxels against the NumPy backend.
``fmri_stages``
    the CI-sized simulated fMRI stages (stimuli, features of a random-weight
    BERT and of SUMA, design, simulate, responses, score) with ``device: cpu``
    and ``device: cuda``: |Δr| ≤ 1e-3 on every score, and two GPU runs equal.
``meeg_stages``
    the CI-sized simulated EEG config (``simulated_meg_ci.yaml`` with a
    random-weight BERT: features, simulated recordings, MNE epochs, the
    contrastive brain module and the ridge decoder) with ``device: cpu`` and
    twice with ``device: cuda``: top-k accuracies within 0.05, two GPU runs
    equal.
``contrastive``
    the contrastive brain module on planted data, trained on the CPU and
    twice on the GPU: the GPU runs equal, top-10 identification within 0.05.
``decoding``
    decoding-target extraction with full-size random-weight models (CLIP
    ViT-L/14, GIT-large's encoder, the SD 2.1 VAE at 768 px, DPT-large) on 32
    NSD-sized images, and MindEye-style training (15,000 voxels to 768
    dimensions, 1,000 images, 10 epochs), and generation (img2img +
    ControlNet-depth, an SD 1.5-sized UNet in fp16 at 512 px, 20 steps at
    strength 0.75), seconds each.

``BRAINALIGN_GPU_CHECK_CPU=1`` rehearses every step on the CPU (the Triton
interpreter, small sizes, ``cpu`` and the ``torch`` backend where the GPU would
be; no timings), so that the script is known to run before a GPU is at hand.

No MiniLM weights, no METEOR jar and no Snakemake are needed: the offline GPU
node provides Python, torch, triton, numpy, scipy, h5py, scikit-learn, pandas
and transformers; ``benchmarks/gpu_wheels.py`` fetches the rest. A step whose
package is missing is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Steps and their time limits (seconds); the sum stays within about 5 minutes.
STEPS = {"environment": 30, "kernels": 110, "kernel_table": 100, "ridge": 45, "ridge_shifts": 120,
         "fmri_stages": 60, "meeg_stages": 120, "contrastive": 45, "decoding": 90}
CELLS = ("lstm", "gru", "slstm", "elman")
HEAD_DIMS = (16, 32, 64, 128, 256, 768)
TOL = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 3e-2}
#: A rehearsal on the CPU: every step's code runs, with the CPU where the GPU would be.
REHEARSAL = os.environ.get("BRAINALIGN_GPU_CHECK_CPU") == "1"
DEVICE = "cpu" if REHEARSAL else "cuda"
if REHEARSAL:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _cuda() -> bool:
    import torch

    return REHEARSAL or torch.cuda.is_available()


def _sync() -> None:
    import torch

    if not REHEARSAL:
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- steps
def step_environment() -> dict:
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError as err:
        out["triton"] = f"missing ({err})"
    if not _cuda():
        return {**out, "skipped": "no CUDA device"}
    from brainalign.kernels.resources import H200, device_limits

    limits = H200 if REHEARSAL else device_limits()
    out.update(device="CPU rehearsal" if REHEARSAL else torch.cuda.get_device_name(), max_shared_mem=limits.max_shared_mem,
               max_registers_per_block=limits.max_registers_per_block)
    return out


def step_kernels() -> dict:
    import torch

    from brainalign.kernels import CELLS as SPECS
    from brainalign.kernels import headwise_rnn, reference_headwise_rnn
    from brainalign.kernels.reference import reference_backward_at_states
    from brainalign.kernels.resources import H200, device_limits
    from brainalign.kernels.triton_rnn import launch_plan

    if not _cuda():
        return {"skipped": "no CUDA device"}
    os.environ["BRAINALIGN_TRITON_AUTOTUNE"] = "0"  # correctness, not speed: no candidate timing
    limits = H200 if REHEARSAL else device_limits()
    rows = []
    for cell in CELLS:
        spec = SPECS[cell]
        for dh in (16, 192) if REHEARSAL else HEAD_DIMS:
            nh = 768 // dh if not REHEARSAL else 1
            for dtype in (torch.bfloat16, torch.float32) if REHEARSAL else (torch.bfloat16, torch.float16, torch.float32):
                name = str(dtype).removeprefix("torch.")
                row = {"cell": cell, "DH": dh, "NH": nh, "dtype": name}
                try:
                    plan = launch_plan(cell, dh, 3, dtype, None if REHEARSAL else limits)
                    row.update(forward_path=plan.forward, backward_path=plan.backward)
                    gen = torch.Generator().manual_seed(dh)
                    inputs = [torch.randn(3, 6, spec.gates_in, nh, dh, generator=gen),
                              torch.randn(spec.gates_rec, nh, dh, dh, generator=gen) / dh**0.5,
                              torch.randn(spec.gates_bias, nh, dh, generator=gen) * 0.5]
                    leaves = [t.to(DEVICE, dtype).detach().clone().requires_grad_(True) for t in inputs]
                    out, _ = headwise_rnn(*leaves, cell=cell, backend="triton")
                    out.float().sum().backward()
                    # The reference sees the same rounded inputs: only the kernels' arithmetic is compared.
                    refs = [t.detach().cpu().double().requires_grad_(True) for t in leaves]
                    ref, _ = reference_headwise_rnn(*refs, cell=cell)
                    ref.sum().backward()
                    def rel(got, want):
                        return float((got.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-12))

                    forward = rel(out, ref)
                    exact = max(rel(g.grad, r.grad) for g, r in zip(leaves, refs))
                    # The backward recomputes the gates from the stored states (of the inputs' dtype): its exact
                    # reference is the float64 backward linearised there (equal to the float64 gradient in float32).
                    zeros = torch.zeros(spec.n_states, 3, nh, dh, dtype=dtype)
                    linear = reference_backward_at_states(*[t.detach().cpu() for t in leaves], zeros, out.detach().cpu(),
                                                          torch.ones(out.shape), cell)
                    gradient = max(rel(g.grad, w) for g, w in zip(leaves, linear))
                    row.update(forward_error=forward, gradient_error=gradient, gradient_error_vs_float64_forward=exact,
                               ok=max(forward, gradient) <= TOL[name])
                except Exception as err:  # noqa: BLE001 - every shape is reported, never the first failure only
                    row.update(ok=False, error=f"{type(err).__name__}: {err}"[:300])
                rows.append(row)
    return {"rows": rows, "all_ok": all(r["ok"] for r in rows)}


def step_kernel_table() -> dict:
    if not _cuda() or REHEARSAL:
        return {"skipped": "no CUDA device (timings need CUDA events)"}
    sys.path.insert(0, str(HERE))
    import rnn_kernels

    table = {}
    for dh, nh in rnn_kernels.SIZES:
        try:
            table[f"({dh},{nh})"] = rnn_kernels._rows(dh, nh, repeats=10)
        except Exception as err:  # noqa: BLE001
            table[f"({dh},{nh})"] = {"error": f"{type(err).__name__}: {err}"[:300]}
    return {"B": rnn_kernels.B, "T": rnn_kernels.T, "unit": "ms (median)", "table": table}


def _himalaya_ridgecv_seconds(backend: str, x, y, runs, alphas) -> float:
    """Seconds of himalaya's ``RidgeCV`` over the leave-one-run-out folds (inner: leave one training run out)."""
    import numpy as np
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    set_backend(backend)
    _sync()
    t0 = time.perf_counter()
    for test_run in np.unique(runs):
        train = runs != test_run
        inner = [(np.flatnonzero(runs[train] != r), np.flatnonzero(runs[train] == r)) for r in np.unique(runs[train])]
        model = RidgeCV(alphas=alphas, cv=inner, solver_params={"n_targets_batch": 20000})
        model.fit(x[train], y[train])
        model.predict(x[~train])
    _sync()
    return time.perf_counter() - t0


def step_ridge() -> dict:
    import numpy as np

    from brainalign.encoders.ridge_cv import nested_cv_pearson

    if not _cuda():
        return {"skipped": "no CUDA device"}
    rng = np.random.default_rng(0)
    n_runs, run_len, p, v = (4, 50, 32, 3000) if REHEARSAL else (4, 250, 768, 50000)
    backend = "torch" if REHEARSAL else "torch_cuda"
    x = rng.standard_normal((n_runs * run_len, p)).astype(np.float32)
    y = rng.standard_normal((n_runs * run_len, v)).astype(np.float32)
    active = v // 10
    y[:, :active] += x @ (rng.standard_normal((p, active)).astype(np.float32) / np.sqrt(p))
    groups = np.repeat(np.arange(n_runs), run_len)
    alphas = np.logspace(-2, 6, 17)
    options = dict(outer_cv=n_runs, inner_cv=3, gap=0, alphas=alphas, groups=groups)
    nested_cv_pearson(x[:, :32], y[:, :100], backend=backend, **options)  # warm-up (CUDA context, kernels)
    _sync()
    t0 = time.perf_counter()
    ours = nested_cv_pearson(x, y, backend=backend, **options)
    _sync()
    ours_s = time.perf_counter() - t0
    out = {"shape": f"{v} voxels x {n_runs * run_len} volumes x {p} features", f"ours_{backend}_s": ours_s}
    cpu = nested_cv_pearson(x, y[:, :2000], backend="numpy", **options)
    out["max_abs_diff_r_vs_numpy_2000_voxels"] = float(np.abs(cpu["score"] - ours["score"][:2000]).max())
    try:
        out[f"himalaya_{backend}_s"] = _himalaya_ridgecv_seconds(backend, x, y, groups, alphas)
        out["speedup_vs_himalaya"] = out[f"himalaya_{backend}_s"] / ours_s
    except ImportError as err:
        out["himalaya"] = f"skipped: {err}"
    return out


def step_ridge_shifts() -> dict:
    """The whole-brain score stage with its circular shifts on the GPU, against himalaya on the same folds.

    Ours: the volume path's nested CV (``nested_cv_pearson``) plus the refit
    shift test as the workflow runs it without confound regressors (the
    cleaned responses shifted and re-cleaned, 1,000 permutations, sequential
    stopping after 10 exceedances), all on ``torch_cuda``; and the design
    shift (every fold refitted, the workflow's choice with confounds), timed
    over 20 permutations and scaled to 1,000. Anchor: himalaya's ``RidgeCV``
    on the same folds, plus, for each shift, a refit of every fold with
    himalaya's ``Ridge`` at the penalties the folds chose, timed over 3 shifts
    and scaled to 1,000. Agreement: null scores and p-values of 1,000 voxels
    (20 design shifts, float64) against the NumPy backend.
    """
    import numpy as np

    from brainalign.encoders.ridge_cv import nested_cv_pearson
    from brainalign.metrics.cv_permutation import circular_shift_indices, refit_shift_tests
    from brainalign.preprocess.fmri import LinearCleaner

    if not _cuda():
        return {"skipped": "no CUDA device"}
    rng = np.random.default_rng(0)
    n_runs, run_len, p, v = (4, 50, 32, 2000) if REHEARSAL else (4, 250, 768, 50000)
    backend = "torch" if REHEARSAL else "torch_cuda"
    runs = np.repeat(np.arange(n_runs), run_len)
    clean = LinearCleaner(2.0, {"detrend": True, "high_pass": 0.01, "standardize": "zscore_sample"}, runs)
    x_raw = rng.standard_normal((n_runs * run_len, p))
    x = clean(x_raw).astype(np.float32)
    y = rng.standard_normal((n_runs * run_len, v))
    y[:, : v // 10] += x @ (rng.standard_normal((p, v // 10)) / np.sqrt(p))
    y = clean(y).astype(np.float32)
    alphas = np.logspace(-2, 6, 17)
    options = dict(outer_cv=n_runs, inner_cv=3, gap=0, alphas=alphas, groups=runs)
    shifts = dict(runs=runs, clean=clean, random_state=0)
    small = nested_cv_pearson(x[:, :32], y[:, :200], backend=backend, **options)  # warm-up
    refit_shift_tests(y[:, :200], {"x": (x_raw[:, :32], small["alphas"])}, small["folds"], n_permutations=3,
                      backend=backend, **shifts)
    out: dict = {"shape": f"{v} voxels x {n_runs * run_len} volumes x {p} features, {n_runs} runs"}
    _sync()
    t0 = time.perf_counter()
    res = nested_cv_pearson(x, y, backend=backend, **options)
    _sync()
    out["ours_nested_cv_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    test = refit_shift_tests(y, {"x": (x_raw, res["alphas"])}, res["folds"], shift="responses", n_permutations=1000,
                             stop_after=10, backend=backend, **shifts)["x"]
    _sync()
    out["ours_shifts_responses_1000_s"] = time.perf_counter() - t0
    out["permutations_drawn_total"] = int(test.n_permutations.sum())
    out["planted_voxels_p_below_0.01"] = float((test.pvalues[: v // 10] < 0.01).mean())
    out["null_voxels_p_below_0.05"] = float((test.pvalues[v // 10:] < 0.05).mean())
    t0 = time.perf_counter()
    refit_shift_tests(y, {"x": (x_raw, res["alphas"])}, res["folds"], shift="design", n_permutations=20,
                      backend=backend, **shifts)
    _sync()
    out["ours_shifts_design_per_1000_s"] = (time.perf_counter() - t0) * 50
    out["ours_stage_s"] = out["ours_nested_cv_s"] + out["ours_shifts_responses_1000_s"]
    # Agreement with the NumPy backend on 1,000 voxels (float64 products, every null score).
    sub = slice(0, min(v, 1000))
    alphas_sub = res["alphas"][:, sub]
    kwargs = dict(n_permutations=20, dtype=np.float64, **shifts)  # design shifted: 80 decompositions each side
    ref = refit_shift_tests(y[:, sub], {"x": (x_raw, alphas_sub)}, res["folds"], **kwargs)["x"]
    ours = refit_shift_tests(y[:, sub], {"x": (x_raw, alphas_sub)}, res["folds"], backend=backend, **kwargs)["x"]
    out["max_abs_diff_null_vs_numpy"] = float(np.abs(ours.null - ref.null).max())
    out["pvalues_equal_vs_numpy"] = bool(np.array_equal(ours.pvalues, ref.pvalues))
    try:
        from himalaya.backend import set_backend
        from himalaya.ridge import Ridge

        out["himalaya_ridgecv_s"] = _himalaya_ridgecv_seconds(backend, x, y, runs, alphas)
        hb = set_backend(backend)
        index = circular_shift_indices(runs, 3, random_state=1)
        t0 = time.perf_counter()
        for rows in index:
            xs = clean(x_raw[rows]).astype(np.float32)
            for k, (train, test_idx) in enumerate(res["folds"]):
                model = Ridge(alpha=hb.asarray(res["alphas"][k].astype(np.float32)))
                model.fit(xs[train], y[train])
                pred = hb.to_numpy(model.predict(xs[test_idx]))
                np.corrcoef(pred[:, :1].T, y[test_idx, :1].T)  # the score: one column is enough for the time
        _sync()
        out["himalaya_per_shift_s"] = (time.perf_counter() - t0) / len(index)
        out["himalaya_stage_1000_shifts_s"] = out["himalaya_ridgecv_s"] + 1000 * out["himalaya_per_shift_s"]
        out["speedup_stage_vs_himalaya"] = out["himalaya_stage_1000_shifts_s"] / out["ours_stage_s"]
        out["speedup_design_shift_stage_vs_himalaya"] = out["himalaya_stage_1000_shifts_s"] / (
            out["ours_nested_cv_s"] + out["ours_shifts_design_per_1000_s"])
    except ImportError as err:
        out["himalaya"] = f"skipped: {err}"
    return out


def _tiny_bert(folder: Path, words: list[str]) -> Path:
    """A random-weight 2-layer BERT with a word-level vocabulary of the stimuli (no download, no MiniLM)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w.lower() for w in words})]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128)).save_pretrained(folder)
    return folder


def _fmri_scores(device: str, folder: Path) -> "object":
    import pandas as pd

    from brainalign.config import validate_config
    from brainalign.pipeline.stages import (run_design, run_features, run_responses, run_score, run_simulate,
                                            run_stimuli)

    def config(model_path: str | None) -> dict:
        return validate_config({
            "dataset": {"name": "gpu_check", "kind": "simulated"},
            "simulation": {"seed": 0, "n_subjects": 2, "n_words": 400, "tr": 2.0,
                           "rois": {"ROI_A": 1.0, "CONTROL": 0.0}, "planted_feature_set": "bert",
                           "planted_layer": "2"},
            "feature_sets": {"bert": {"kind": "transformer", "model_path": model_path, "layers": [1, 2]},
                             "suma": {"kind": "suma", "tokenizer_path": model_path, "d_model": 64, "n_heads": 8,
                                      "seeds": [0]}},
            "encoder": {"outer_folds": 4, "inner_folds": 3, "gap": 5}, "device": device, "threads": 1})

    events = run_stimuli(config(None), folder / "events.tsv")
    words = pd.read_csv(events, sep="\t")["word"].astype(str).tolist()
    cfg = config(str(_tiny_bert(folder.parent / "bert", words)))
    tables = []
    feats = {name: run_features(cfg, events, name, folder / f"{name}.h5", progress=False)
             for name in ("bert", "suma_seed0")}
    raw = run_simulate(cfg, events, feats["bert"], [folder / f"raw-{s}.h5" for s in ("sub-01", "sub-02")])
    subjects = [run_responses(cfg, s, folder / f"{s}.h5", raw=r) for s, r in zip(("sub-01", "sub-02"), raw)]
    for name, path in feats.items():
        design = run_design(cfg, events, path, folder / f"{name}_design.h5")
        tables.append(pd.read_csv(run_score(cfg, design, subjects, folder / f"{name}_scores.csv")))
    return pd.concat(tables, ignore_index=True)


def step_fmri_stages() -> dict:
    import numpy as np

    if not _cuda():
        return {"skipped": "no CUDA device"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: _fmri_scores(device, Path(tmp) / name)
                for name, device in (("cpu", "cpu"), ("gpu1", DEVICE), ("gpu2", DEVICE))}
    values = ("score", "alpha", "p_value", "score_pooled")  # computed; the other columns name the row
    keys = [c for c in runs["cpu"].columns if c not in values]
    merged = runs["cpu"].merge(runs["gpu1"], on=keys, suffixes=("_cpu", "_gpu"))
    diff = float(np.nanmax(np.abs(merged["score_cpu"] - merged["score_gpu"])))
    pooled = float(np.nanmax(np.abs(merged["score_pooled_cpu"] - merged["score_pooled_gpu"])))
    p_diff = float(np.nanmax(np.abs(merged["p_value_cpu"] - merged["p_value_gpu"])))
    repeat = bool(runs["gpu1"].equals(runs["gpu2"]))
    return {"n_scores": len(merged), "all_rows_matched": len(merged) == len(runs["cpu"]),
            "max_abs_diff_cpu_gpu": diff, "max_abs_diff_pooled_cpu_gpu": pooled,
            "alphas_equal_fraction": float((merged["alpha_cpu"] == merged["alpha_gpu"]).mean()),
            "max_abs_diff_p_value_cpu_gpu": p_diff, "gpu_runs_identical": repeat,
            "ok": len(merged) == len(runs["cpu"]) and max(diff, pooled) <= 1e-3 and repeat}


def _meeg_scores(device: str, folder: Path) -> "object":
    """The CI-sized simulated EEG stages (``simulated_meg_ci.yaml`` with a random-weight BERT): top-k table."""
    import pandas as pd

    from brainalign.config import validate_config
    from brainalign.pipeline.electro import run_contrastive, run_epochs, run_simulate_electro
    from brainalign.pipeline.stages import run_features, run_stimuli

    def config(model_path: str | None) -> dict:
        return validate_config({
            "dataset": {"name": "gpu_check_meg", "kind": "simulated_meeg"},
            "simulation": {"seed": 0, "n_subjects": 2, "n_words": 800, "planted_feature_set": "bert",
                           "planted_layer": "2",
                           "meeg": {"modality": "eeg", "montage": "biosemi32", "sfreq": 300.0, "n_runs": 4}},
            "feature_sets": {"bert": {"kind": "transformer", "model_path": model_path, "layers": [2],
                                      "context_words": 8}},
            "electrophysiology": {"sfreq": 40.0}, "device": device, "threads": 1})

    folder.mkdir(parents=True, exist_ok=True)
    events = run_stimuli(config(None), folder / "events.tsv")
    words = pd.read_csv(events, sep="\t")["word"].astype(str).tolist()
    cfg = config(str(_tiny_bert(folder.parent / "bert", words)))
    features = run_features(cfg, events, "bert", folder / "bert.h5", progress=False)
    raw_dir = Path(run_simulate_electro(cfg, events, features, folder / "raw"))
    subjects = sorted(p.name for p in raw_dir.iterdir() if p.is_dir())
    epochs = [run_epochs(cfg, s, events, folder / f"{s}_epochs.h5", raw_dir=raw_dir) for s in subjects]
    out = run_contrastive(cfg, epochs, events, features, folder / "contrastive", progress=False)
    return pd.read_csv(Path(out) / "scores.csv")


def step_meeg_stages() -> dict:
    """The CI-sized simulated EEG config's stages with ``device: cpu`` and ``device: cuda`` (twice)."""
    import numpy as np

    if not _cuda():
        return {"skipped": "no CUDA device"}
    import importlib.util

    if importlib.util.find_spec("mne") is None:
        return {"skipped": "MNE is missing; benchmarks/gpu_wheels.py fetches it"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: _meeg_scores(device, Path(tmp) / name)
                for name, device in (("cpu", "cpu"), ("gpu1", DEVICE), ("gpu2", DEVICE))}
    values = [c for c in runs["cpu"].columns if runs["cpu"][c].dtype.kind == "f"]
    keys = [c for c in runs["cpu"].columns if c not in values]
    merged = runs["cpu"].merge(runs["gpu1"], on=keys, suffixes=("_cpu", "_gpu"))
    accuracy = [c for c in values if c in ("accuracy", "score", "topk_accuracy")] or values[:1]
    diffs = {c: float(np.nanmax(np.abs(merged[f"{c}_cpu"] - merged[f"{c}_gpu"]))) for c in accuracy}
    repeat = bool(runs["gpu1"].equals(runs["gpu2"]))
    brain = merged[merged["decoder"] == "brain_module"] if "decoder" in merged else merged
    return {"n_rows": len(merged), "all_rows_matched": len(merged) == len(runs["cpu"]),
            "max_abs_diff_cpu_gpu": diffs, "gpu_runs_identical": repeat,
            "brain_module_cpu": brain[[f"{c}_cpu" for c in accuracy]].round(3).to_dict("list"),
            "brain_module_gpu": brain[[f"{c}_gpu" for c in accuracy]].round(3).to_dict("list"),
            "ok": len(merged) == len(runs["cpu"]) and repeat and max(diffs.values()) <= 0.05}


def step_contrastive() -> dict:
    import numpy as np

    from brainalign.encoders.contrastive import ContrastiveEncoder

    if not _cuda():
        return {"skipped": "no CUDA device"}
    rng = np.random.default_rng(0)
    n, channels, times, dim = 600, 16, 40, 32
    y = rng.standard_normal((n, dim)).astype(np.float32)
    mixing = rng.standard_normal((dim, channels * times)).astype(np.float32) / np.sqrt(dim)
    x = (y @ mixing).reshape(n, channels, times) + rng.standard_normal((n, channels, times)).astype(np.float32)
    train, test = np.arange(n) < 450, np.arange(n) >= 450

    def top10(device: str) -> tuple[float, np.ndarray]:
        model = ContrastiveEncoder(front_end="channel_fusion", spatial_channels=16, hidden=32, depth=1, epochs=15,
                                   batch_size=64, random_state=0, device=device, verbose=False)
        model.fit(x[train], y[train])
        pred = np.asarray(model.predict(x[test]))
        sims = pred @ y[test].T / (np.linalg.norm(pred, axis=1)[:, None] * np.linalg.norm(y[test], axis=1))
        ranks = (sims > np.diag(sims)[:, None]).sum(axis=1)
        return float((ranks < 10).mean()), pred

    cpu, _ = top10("cpu")
    gpu1, pred1 = top10(DEVICE)
    gpu2, pred2 = top10(DEVICE)
    return {"top10_cpu": cpu, "top10_gpu": gpu1, "gpu_runs_identical": bool(np.array_equal(pred1, pred2)),
            "ok": abs(cpu - gpu1) <= 0.05 and bool(np.array_equal(pred1, pred2))}


def step_decoding() -> dict:
    import numpy as np
    import torch

    from brainalign.encoders.mindeye import BrainToEmbedding
    from brainalign.features import image_targets as it

    if not _cuda():
        return {"skipped": "no CUDA device"}
    sys.path.insert(0, str(HERE))
    import image_targets as sizes  # the realistic model sizes of benchmarks/image_targets.py

    n = 4 if REHEARSAL else 32
    images = np.random.default_rng(0).integers(0, 256, (n, 425, 425, 3), dtype=np.uint8)
    out: dict = {"n_images": n}
    torch.manual_seed(0)
    builders = {"clip_image": (sizes._clip_vision, it.clip_image_embeddings),
                "git_tokens": (sizes._git, it.git_image_tokens),
                "depth": (sizes._dpt, it.depth_maps)}
    for name, (build, extract) in builders.items():
        with torch.device(DEVICE):  # random init on the device: ViT-L-sized CPU inits would eat the step's 90 s
            model, processor = build(tiny=REHEARSAL)
        extract(model, images[:2], processor=processor, device=DEVICE)  # warm-up: weights moved, kernels chosen
        _sync()
        t0 = time.perf_counter()
        extract(model, images, processor=processor, device=DEVICE, batch_size=16)
        _sync()
        out[f"{name}_s_per_image"] = (time.perf_counter() - t0) / n
        del model
    try:
        with torch.device(DEVICE):
            vae = sizes._vae(tiny=REHEARSAL)
        it.vae_latents(vae, images[:1], device=DEVICE)
        _sync()
        t0 = time.perf_counter()
        it.vae_latents(vae, images, device=DEVICE, batch_size=8)
        _sync()
        out["vae_latent_s_per_image"] = (time.perf_counter() - t0) / n
        del vae
    except ImportError as err:  # diffusers comes with benchmarks/gpu_wheels.py
        out["vae_latent"] = f"skipped: {err}"
    try:
        out.update(_time_generation())
    except ImportError as err:  # diffusers comes with benchmarks/gpu_wheels.py
        out["generation"] = f"skipped: {err}"
    rng = np.random.default_rng(1)
    n_img, n_vox, dim = (200, 2000, 64) if REHEARSAL else (1000, 15000, 768)
    y = rng.standard_normal((n_img, dim)).astype(np.float32)
    x = (y @ rng.standard_normal((dim, n_vox)).astype(np.float32) / np.sqrt(dim)
         + rng.standard_normal((n_img, n_vox)).astype(np.float32))
    model = BrainToEmbedding(epochs=2 if REHEARSAL else 10, shared_dim=256, random_state=0, device=DEVICE,
                             verbose=False)
    _sync()
    t0 = time.perf_counter()
    model.fit(x, y)
    _sync()
    out["mindeye_fit_s"] = time.perf_counter() - t0
    out["mindeye_shape"] = f"{n_img} images x {n_vox} voxels -> {dim}"
    return out


def _time_generation() -> dict:
    """Seconds per image of the Brain Captioning generator: img2img + ControlNet-depth with a Stable Diffusion
    1.5-sized UNet (random weights, fp16, 512 px, 20 steps at strength 0.75, guidance 7.5), built on the device."""
    import numpy as np
    import torch
    from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel

    from brainalign.decoders.diffusion import Img2ImgReconstructor, build_tiny_img2img

    n, steps = (2, 4) if REHEARSAL else (4, 20)
    if REHEARSAL:
        rec = build_tiny_img2img(seed=0, controlnet=True)
        latent_shape, width = rec.latent_shape, rec.pipeline.unet.config.cross_attention_dim
    else:
        sys.path.insert(0, str(HERE))
        import image_targets as sizes

        with torch.device(DEVICE):  # random init on the GPU: a CPU init of 1.2 B parameters takes longer
            torch.manual_seed(0)
            unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
            controlnet = ControlNetModel.from_unet(unet)
            vae = sizes._vae()
        rec = Img2ImgReconstructor.from_components(unet=unet, vae=vae, scheduler=DDIMScheduler(), controlnet=controlnet,
                                                   device=DEVICE, dtype="float16")
        latent_shape, width = (4, 64, 64), 768
    rng = np.random.default_rng(2)
    latents = rng.standard_normal((n, *latent_shape)).astype(np.float32)
    prompts = rng.standard_normal((n, 77, width)).astype(np.float32)
    depth = rng.random((n, 64, 64)).astype(np.float32)
    kwargs = {"seed": 0, "strength": 0.75, "guidance_scale": 7.5, "depth": depth,
              "negative_prompt_embeds": np.zeros_like(prompts)}  # no tokenizer: the unconditional branch given
    rec.reconstruct(latents[:1], prompts[:1], num_inference_steps=2,
                    **{**kwargs, "depth": depth[:1], "negative_prompt_embeds": np.zeros_like(prompts[:1])})
    _sync()
    t0 = time.perf_counter()
    rec.reconstruct(latents, prompts, num_inference_steps=steps, **kwargs)
    _sync()
    return {"img2img_controlnet_s_per_image": (time.perf_counter() - t0) / n,
            "generation_shape": f"{n} images, {steps} steps x strength 0.75, latents {tuple(latent_shape)}"}


# --------------------------------------------------------------------------- driver
def _run_step(name: str, out: Path, limit: int) -> dict:
    """Run one step in a fresh interpreter with a time limit; its JSON, or what went wrong."""
    target = out / f"{name}.json"
    target.unlink(missing_ok=True)
    t0 = time.perf_counter()
    limit = limit * 4 if REHEARSAL else limit  # the interpreter and the CPU are slower
    try:
        proc = subprocess.run([sys.executable, __file__, "--step", name, "--out", str(out)], capture_output=True,
                              text=True, timeout=limit)
        (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
        result = json.loads(target.read_text()) if target.exists() else {
            "error": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {limit} s"}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _markdown(results: dict) -> str:
    lines = ["# GPU check", ""]
    env = results.get("environment", {})
    lines += [f"{env.get('device', 'no GPU')}; torch {env.get('torch')}; Triton {env.get('triton')}", ""]
    table = results.get("kernel_table", {}).get("table")
    if table:
        columns = list(dict.fromkeys(c for row in table.values() for c in row))
        lines += ["## Kernels: B = 16, T = 1024, LSTM, ms (medians)", "",
                  "| (DH, NH) | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {size} | " + " | ".join(str(row.get(c, "–")) for c in columns) + " |"
                  for size, row in table.items()]
        lines.append("")
    kernels = results.get("kernels", {}).get("rows")
    if kernels:
        bad = [r for r in kernels if not r["ok"]]
        lines += [f"## Kernel correctness: {len(kernels) - len(bad)} of {len(kernels)} shapes within tolerance", ""]
        lines += [f"- {r['cell']} DH={r['DH']} {r['dtype']}: {r.get('error') or r}" for r in bad]
        lines.append("")
    for name in ("environment", "ridge", "ridge_shifts", "fmri_stages", "meeg_stages", "contrastive", "decoding"):
        lines += [f"## {name}", "", "```", json.dumps(results.get(name), indent=1), "```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--step", choices=list(STEPS), help="run one step in this process (used by the driver)")
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step:
        try:
            result = globals()[f"step_{args.step}"]()
        except ImportError as err:
            result = {"skipped": f"missing package: {err}"}
        except Exception:  # noqa: BLE001 - the driver reports it; other steps go on
            result = {"error": traceback.format_exc()[-1500:]}
        (args.out / f"{args.step}.json").write_text(json.dumps(result, indent=1, default=str))
        return 0
    results = {}
    for name in args.only.split(","):
        results[name] = _run_step(name, args.out, STEPS[name])
        print(f"{name}: {json.dumps(results[name], default=str)[:400]}", flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    (args.out / "gpu_check.md").write_text(_markdown(results))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
