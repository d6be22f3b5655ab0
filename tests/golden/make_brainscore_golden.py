#!/usr/bin/env python
"""Write tests/golden/brainscore_2.3.0.json with Brain-Score Language 2.3.0's own metrics.

Run this in a THROWAWAY virtual environment, never in the project's:
brainscore-language 2.3.0 pins numpy<2 and transformers<5. On this project's
machines (torch installed from the local wheel first, so that nothing pulls a
CUDA build)::

    python3 -m venv /tmp/bsvenv
    /tmp/bsvenv/bin/pip install torch==2.13.0
    BS_INSTALL_DEPENDENCIES=no /tmp/bsvenv/bin/pip install brainscore-language==2.3.0
    /tmp/bsvenv/bin/python tests/golden/make_brainscore_golden.py

The inputs are synthetic and deterministic: :func:`make_inputs` builds them
from a fixed seed with numpy's ``default_rng`` (whose normal and permutation
streams are the same under numpy 1.26 and 2.x), and ``tests/test_brainscore.py``
imports it from this file to rebuild them, so the JSON stores only the seed,
the shapes, a checksum of the inputs and the outputs: per-split scores, the
final scores, the mean per-neuroid r and the ridge alphas chosen per split.

What is run (all from the installed ``brainscore_language`` package):

* ``metrics.linear_predictivity.metric.linear_pearsonr()`` — linear-shuffle —
  and the same classes with ``LinearRegression(tol=eps)``, which is what
  ``linear_pearsonr()`` computed under scikit-learn < 1.9 (from 1.9 on,
  ``tol=1e-6`` is the relative singular-value cutoff of the dense solver);
* ``ridge_pearsonr(crossvalidation_kwargs=dict(split_coord="story",
  kfold="group", random_state=1234))`` — the grouped ridge of Pereira2018, and
  the same with ``splits=8`` (Blank2014), and a plain ``ridge_pearsonr()``
  (its ShuffleSplit fallback);
* ``metrics.cka.metric.CKACrossValidated()`` and
  ``metrics.rdm.metric.RDMCrossValidated()``;
* each on layer A, on layer B (more units than training stimuli), on layer C
  (ill-conditioned: its small singular values fall between the two cutoffs) and
  on layers A and B concatenated, plus ``utils.ceiling.ceiling_normalize`` per layer
  with a fixed ceiling, averaged as the 2.3.0 benchmarks do;
* ``benchmarks.futrell2018.benchmark.SplitHalvesConsistency`` with the
  ``pearsonr`` metric (|r|, Spearman–Brown) on simulated reading times;
* ``benchmarks.blank2014.ceiling.ExtrapolationCeiling`` (all subject subsets,
  every subject held out in turn, 100 bootstraps) with ``linear_pearsonr`` on
  a small simulated four-subject data set.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np

SEED = 20250611
OUT = Path(__file__).resolve().parent / "brainscore_2.3.0.json"

#: Stimuli per story (12 stories, 60 stimuli); labels 'story_1' ... 'story_12'
#: are strings, so GroupKFold sorts them as 'story_1', 'story_10', 'story_11', 'story_12', 'story_2', ...
STORY_SIZES = (3, 4, 5, 6, 7, 5, 4, 6, 5, 5, 4, 6)
N_LATENT = 8
UNITS = {"layer_a": 16, "layer_b": 80}  # the two layers of the per-layer / joint checks
LAYER_C_UNITS = 30  # an extra, ill-conditioned layer (see make_inputs)
N_SUBJECTS = 3
NEUROIDS_PER_SUBJECT = 10
CEILING = 0.7  # a fixed ceiling: some layers normalize inside [0, 1], some are clipped

# subject-pool extrapolation data
EX_STIMULI, EX_SUBJECTS, EX_NEUROIDS_PER_SUBJECT = 40, 4, 3
# split-half reading-time data
RT_SUBJECTS, RT_WORDS = 20, 300


def make_inputs(seed: int = SEED) -> dict[str, np.ndarray]:
    """The synthetic inputs, rebuilt identically by the tests.

    Returns a dict of arrays: ``layer_a`` (60, 16), ``layer_b`` (60, 80), ``layer_c`` (60, 30),
    ``neural`` (60, 30), ``stories`` (60,) str, ``stimulus_ids`` (60,) str
    (not in row order), ``neuroid_ids`` (30,), ``subjects`` (30,);
    ``ex_neural`` (40, 12), ``ex_subjects`` (12,), ``ex_neuroid_ids`` (12,),
    ``ex_stimulus_ids`` (40,); ``rt`` (20, 300) reading times (subject by word).
    """
    rng = np.random.default_rng(seed)
    n = sum(STORY_SIZES)
    stories = np.repeat([f"story_{k + 1}" for k in range(len(STORY_SIZES))], STORY_SIZES)
    stories = stories[rng.permutation(n)]
    stimulus_ids = np.array([f"stim_{j:03d}" for j in rng.permutation(n)])
    latent = rng.standard_normal((n, N_LATENT))
    story_index = {s: k for k, s in enumerate(sorted(set(stories.tolist())))}
    story_effect = rng.standard_normal((len(STORY_SIZES), N_LATENT))[[story_index[s] for s in stories]]
    latent = latent + 0.5 * story_effect
    out: dict[str, np.ndarray] = {"stories": stories, "stimulus_ids": stimulus_ids}
    noise = {"layer_a": 0.5, "layer_b": 1.5}
    # Scales put the best ridge penalty between two grid values, so that the
    # chosen alpha differs between splits (a sharper test of the selection).
    scale = {"layer_a": 0.75, "layer_b": 0.2}
    for name, p in UNITS.items():
        out[name] = scale[name] * (
            latent @ rng.standard_normal((N_LATENT, p)) + noise[name] * rng.standard_normal((n, p)))
    v = N_SUBJECTS * NEUROIDS_PER_SUBJECT
    out["neural"] = 0.35 * (latent @ rng.standard_normal((N_LATENT, v))) + rng.standard_normal((n, v))
    out["neuroid_ids"] = np.array([f"neuroid_{i:03d}" for i in range(v)])
    out["subjects"] = np.repeat([f"subject_{s}" for s in range(N_SUBJECTS)], NEUROIDS_PER_SUBJECT)

    signal = rng.standard_normal((EX_STIMULI, EX_NEUROIDS_PER_SUBJECT))
    out["ex_neural"] = np.concatenate(
        [signal + 1.2 * rng.standard_normal((EX_STIMULI, EX_NEUROIDS_PER_SUBJECT))
         for _ in range(EX_SUBJECTS)],
        axis=1,
    )
    out["ex_subjects"] = np.repeat([f"sub{s}" for s in range(EX_SUBJECTS)], EX_NEUROIDS_PER_SUBJECT)
    out["ex_neuroid_ids"] = np.array([f"n{i:03d}" for i in range(EX_SUBJECTS * EX_NEUROIDS_PER_SUBJECT)])
    out["ex_stimulus_ids"] = np.array([f"x{i:03d}" for i in range(EX_STIMULI)])

    word_effect = rng.standard_normal(RT_WORDS)
    out["rt"] = 300.0 + 30.0 * word_effect + 60.0 * rng.standard_normal((RT_SUBJECTS, RT_WORDS))

    # Layer C: rank 8 plus noise 1e-6, so its smallest singular values (~1e-8 to 1e-7 of the
    # largest) lie between the two least-squares cutoffs in use: scikit-learn >= 1.9 drops
    # them (LinearRegression(tol=1e-6) -> lstsq cond=1e-6), earlier versions keep them (eps).
    out["layer_c"] = 0.5 * (latent @ rng.standard_normal((N_LATENT, LAYER_C_UNITS))
                            + 1e-6 * rng.standard_normal((n, LAYER_C_UNITS)))
    return out


def inputs_sha256(inputs: dict[str, np.ndarray]) -> str:
    """Checksum of the inputs (names, dtypes kinds, shapes and values)."""
    digest = hashlib.sha256()
    for key in sorted(inputs):
        arr = inputs[key]
        digest.update(key.encode())
        digest.update(str(arr.shape).encode())
        if arr.dtype.kind in "US":
            digest.update("\x1f".join(arr.tolist()).encode())
        else:
            digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return digest.hexdigest()


def _floats(a) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def main() -> int:
    warnings.filterwarnings("ignore")
    try:
        import brainscore_language  # noqa: F401
    except ImportError:
        print(__doc__, file=sys.stderr)
        print("brainscore_language is not importable in this interpreter; see the commands above.",
              file=sys.stderr)
        return 1
    import importlib.metadata as md

    import xarray as xr  # noqa: F401
    from brainscore_core.supported_data_standards.brainio.assemblies import DataAssembly, NeuroidAssembly
    from brainscore_language.benchmarks.blank2014.ceiling import ExtrapolationCeiling
    from brainscore_language.benchmarks.futrell2018.benchmark import SplitHalvesConsistency
    from brainscore_language.metrics.cka.metric import CKACrossValidated
    from brainscore_language.metrics.linear_predictivity.metric import (
        CrossRegressedCorrelation,
        XarrayRegression,
        linear_pearsonr,
        pearsonr_correlation,
        ridge_pearsonr,
    )
    from brainscore_language.metrics.pearson_correlation.metric import PearsonCorrelation
    from brainscore_language.metrics.rdm.metric import RDMCrossValidated
    from brainscore_language.utils.ceiling import ceiling_normalize
    from sklearn.linear_model import LinearRegression

    inp = make_inputs()
    n = inp["neural"].shape[0]

    def assembly(values, unit_coords, stimulus_ids, stories):
        return NeuroidAssembly(
            values,
            coords={
                "stimulus_id": ("presentation", stimulus_ids),
                "story": ("presentation", stories),
                **{k: ("neuroid", v) for k, v in unit_coords.items()},
            },
            dims=["presentation", "neuroid"],
        )

    neural = assembly(inp["neural"], {"neuroid_id": inp["neuroid_ids"], "subject": inp["subjects"]},
                      inp["stimulus_ids"], inp["stories"])
    features = {}
    for name in UNITS:
        p = inp[name].shape[1]
        features[name] = assembly(inp[name], {"neuroid_id": [f"{name}.{i:03d}" for i in range(p)],
                                              "layer": [name] * p}, inp["stimulus_ids"], inp["stories"])
    p = inp["layer_c"].shape[1]
    features["layer_c"] = assembly(inp["layer_c"], {"neuroid_id": [f"layer_c.{i:03d}" for i in range(p)],
                                                    "layer": ["layer_c"] * p},
                                   inp["stimulus_ids"], inp["stories"])
    joint = np.concatenate([inp[name] for name in UNITS], axis=1)
    features["joint"] = assembly(
        joint,
        {"neuroid_id": [f"{name}.{i:03d}" for name in UNITS for i in range(inp[name].shape[1])],
         "layer": [name for name in UNITS for _ in range(inp[name].shape[1])]},
        inp["stimulus_ids"], inp["stories"])

    def regression_metric(make):
        metric = make()
        reg = metric.regression._regression
        alphas: list[float] = []
        if hasattr(reg, "alpha_"):
            original = reg.fit

            def fit(*args, **kwargs):
                out = original(*args, **kwargs)
                alphas.append(float(np.asarray(reg.alpha_)))
                return out

            reg.fit = fit
        return metric, alphas

    schemes = {
        "linear_pearsonr": lambda: linear_pearsonr(),
        "ridge_pearsonr_group": lambda: ridge_pearsonr(
            crossvalidation_kwargs=dict(split_coord="story", kfold="group", random_state=1234)),
        "ridge_pearsonr_group_8splits": lambda: ridge_pearsonr(
            crossvalidation_kwargs=dict(splits=8, split_coord="story", kfold="group", random_state=1234)),
        "ridge_pearsonr_shuffle": lambda: ridge_pearsonr(),
        # Brain-Score's own classes with LinearRegression's least-squares cutoff at machine
        # epsilon, i.e. what linear_pearsonr() computed under scikit-learn < 1.9.
        "linear_pearsonr_cond_eps": lambda: CrossRegressedCorrelation(
            regression=XarrayRegression(LinearRegression(tol=float(np.finfo(np.float64).eps))),
            correlation=pearsonr_correlation()),
    }
    # With more units than training stimuli the centred features have a null direction whose
    # singular value sits near machine epsilon, so the eps cutoff is not reproducible there.
    only = {"linear_pearsonr_cond_eps": ("layer_a", "layer_c")}
    results: dict = {}
    for scheme, make in schemes.items():
        results[scheme] = {}
        for name, source in features.items():
            if scheme in only and name not in only[scheme]:
                continue
            metric, alphas = regression_metric(make)
            score = metric(source, neural)
            raw = score.raw  # (split, neuroid), neuroids sorted by neuroid_id = column order
            assert list(raw.dims) == ["split", "neuroid"], raw.dims
            assert list(raw["neuroid_id"].values) == list(inp["neuroid_ids"])
            entry = {
                "score": float(score),
                "split_scores": _floats(raw.median("neuroid")),
                "neuroid_scores_mean": _floats(raw.mean("split")),
            }
            if alphas:
                entry["alphas"] = alphas
            results[scheme][name] = entry
    for scheme, make in {"cka": CKACrossValidated, "rdm": RDMCrossValidated}.items():
        results[scheme] = {}
        for name, source in features.items():
            score = make()(source, neural)
            results[scheme][name] = {"score": float(score), "split_scores": _floats(score.raw)}

    normalization = {"ceiling": CEILING}
    for scheme in results:
        if scheme in only:
            continue
        per_layer = [ceiling_normalize(DataAssembly(results[scheme][name]["score"]), DataAssembly(CEILING))
                     for name in UNITS]
        joint_norm = ceiling_normalize(DataAssembly(results[scheme]["joint"]["score"]), DataAssembly(CEILING))
        normalization[scheme] = {
            "per_layer_score": float(np.mean([float(s) for s in per_layer])),
            "per_layer_raw": float(np.mean([float(s.attrs["raw"]) for s in per_layer])),
            "per_layer_unclipped": float(np.mean([
                float(s.attrs.get("original_out_of_range_score", float(s))) for s in per_layer])),
            "joint_score": float(joint_norm),
        }

    # --- split-half consistency (Futrell2018 style)
    rt = inp["rt"]
    rt_assembly = DataAssembly(
        rt, coords={"subject_id": ("subject", [f"rt_sub{s:02d}" for s in range(rt.shape[0])]),
                    "subject_index": ("subject", np.arange(rt.shape[0])),
                    "word_id": ("presentation", np.arange(rt.shape[1])),
                    "word": ("presentation", [f"w{i}" for i in range(rt.shape[1])])},
        dims=["subject", "presentation"])
    ceiler = SplitHalvesConsistency(num_splits=10, split_coordinate="subject_id",
                                    consistency_metric=PearsonCorrelation())
    split_half = ceiler(rt_assembly)
    split_half_out = {
        "ceiling": float(split_half),
        "corrected": _floats(split_half.attrs["raw"]),
        "uncorrected": _floats(split_half.attrs["uncorrected_consistencies"]),
    }

    # --- subject-pool extrapolation ceiling (Blank2014 / current ExtrapolationCeiling)
    ex = assembly(inp["ex_neural"], {"neuroid_id": inp["ex_neuroid_ids"], "subject": inp["ex_subjects"]},
                  inp["ex_stimulus_ids"], inp["ex_stimulus_ids"])
    extrapolation = ExtrapolationCeiling(subject_column="subject")
    collected = extrapolation.collect(assembly=ex, metric=linear_pearsonr())
    ceiling = extrapolation.extrapolate(collected)
    neuroid_ceilings = ceiling.attrs["raw"]
    assert list(neuroid_ceilings["neuroid_id"].values) == list(inp["ex_neuroid_ids"])
    params = neuroid_ceilings.attrs["bootstrapped_params"]  # (neuroid, bootstrap, param)
    params = params.transpose("neuroid", "bootstrap", "param")
    extrapolation_out = {
        "ceiling": float(ceiling),
        "neuroid_ceilings": _floats(neuroid_ceilings),
        "v0_bootstrap_mean": _floats(params.sel(param="v0").mean("bootstrap")),
        "tau0_bootstrap_median": _floats(params.sel(param="tau0").median("bootstrap")),
    }

    golden = {
        "generator": "brainscore-language 2.3.0 (real package), tests/golden/make_brainscore_golden.py",
        "install": [
            "python3 -m venv /tmp/bsvenv",
            "/tmp/bsvenv/bin/pip install torch==2.13.0",
            "BS_INSTALL_DEPENDENCIES=no /tmp/bsvenv/bin/pip install brainscore-language==2.3.0",
        ],
        "versions": {pkg: md.version(pkg) for pkg in (
            "brainscore-language", "brainscore-core", "numpy", "scipy", "scikit-learn", "xarray", "torch")},
        "seed": SEED,
        "inputs_sha256": inputs_sha256(inp),
        "shapes": {k: list(v.shape) for k, v in sorted(inp.items())},
        "n_stimuli": n,
        "results": results,
        "normalization": normalization,
        "split_half": split_half_out,
        "extrapolation": extrapolation_out,
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
