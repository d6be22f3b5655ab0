"""Feature sets of the new model families through the features stage: SUMA, RNNs, transformer heads."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from brainalign._validation import ConfigError
from brainalign.config import validate_config
from brainalign.datasets.simulated import generate_story
from brainalign.features.localizer import load_localizer_stimuli
from brainalign.features.model_sets import read_head_functions
from brainalign.models.rnn import HeadwiseRNNLM
from brainalign.models.suma import SUMA
from brainalign.pipeline.stages import run_features
from brainalign.stimuli.events import write_events


@pytest.fixture
def setup(tmp_path, langloc_dir):
    events = generate_story(120, seed=3)
    write_events(tmp_path / "events.tsv", events, {})
    cfg = validate_config({
        "dataset": {"name": "t", "kind": "simulated"},
        "feature_sets": {
            "minilm": {"kind": "transformer", "layers": [3]},
            "suma": {"kind": "suma", "d_model": 32, "n_heads": 4, "seeds": [10],
                     "localize": {"stimuli_dir": str(langloc_dir), "top_k": 16}},
            "gru": {"kind": "rnn", "cell": "gru", "n_layers": 2, "n_heads": 2, "head_dim": 8, "seeds": [5],
                    "units": ["layers", "heads"],
                    "localize": {"stimuli_dir": str(langloc_dir), "top_k": 0.25, "variant": "absolute"}},
        },
        "simulation": {"planted_layer": "3"},
    })
    (tmp_path / "t" / "features").mkdir(parents=True)
    return cfg, events, tmp_path


def _layers(path):
    with h5py.File(path, "r") as f:
        return {k: f["layers"][k][()] for k in f["layers"]}, {
            m: {k: f["localizer"][m][k][()] for k in f["localizer"][m]} for m in f.get("localizer", {})}


def test_suma_feature_set_with_localized_units(setup, langloc_dir):
    cfg, events, tmp = setup
    out = run_features(cfg, tmp / "events.tsv", "suma_seed10", tmp / "t" / "features" / "suma_seed10.h5",
                       progress=False)
    layers, loc = _layers(out)
    assert list(layers) == ["norm", "attn", "all", "localized"]
    np.testing.assert_array_equal(layers["all"], np.concatenate([layers["norm"], layers["attn"]], 1))
    assert layers["norm"].shape == (120, 32) and layers["localized"].shape == (120, 16)
    mask = np.concatenate([loc["norm"]["mask"], loc["attn"]["mask"]]).astype(bool)
    np.testing.assert_array_equal(layers["localized"], np.concatenate([layers["norm"], layers["attn"]], 1)[:, mask])
    # Independent check of the localizer input: unbatched, unpadded last-token activations of the same model.
    from scipy import stats

    from brainalign.features.model_sets import load_tokenizer

    tok = load_tokenizer(None)
    model = SUMA(len(tok), d_model=32, n_heads=4, seed=10)
    sentences, nonwords = load_localizer_stimuli(langloc_dir)

    def last(texts):
        rows = []
        with torch.inference_mode():
            for text in texts:
                ids = tok(text, add_special_tokens=False)["input_ids"][:12]
                rows.append(model(torch.tensor([ids]))["attn"][0, -1].numpy())
        return np.stack(rows)

    ref = stats.ttest_ind(last(sentences), last(nonwords), axis=0, equal_var=False).statistic
    np.testing.assert_allclose(loc["attn"]["t"], ref, rtol=1e-3, atol=1e-3)
    # Words are read from one pass over the story: the first word's state equals a pass over it alone.
    ids = tok(events["word"].iloc[0], add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        alone = model(torch.tensor([ids]))["norm"][0, -1].numpy()
    np.testing.assert_allclose(layers["norm"][0], alone, rtol=1e-5, atol=1e-6)


def test_rnn_feature_set_states_and_absolute_localizer(setup):
    cfg, events, tmp = setup
    out = run_features(cfg, tmp / "events.tsv", "gru_seed5", tmp / "t" / "features" / "gru_seed5.h5", progress=False)
    layers, loc = _layers(out)
    assert list(layers) == ["L1", "L2", "1.h00", "1.h01", "2.h00", "2.h01", "localized"]
    assert layers["L2"].shape == (120, 16)
    np.testing.assert_array_equal(layers["2.h01"], layers["L2"][:, 8:])  # head 1 = units 8..15
    assert layers["localized"].shape == (120, 8)  # 25 % of 2 x 16 units
    from brainalign.features.model_sets import load_tokenizer

    tok = load_tokenizer(None)
    model = HeadwiseRNNLM(len(tok), cell="gru", n_layers=2, n_heads=2, head_dim=8, seed=5)
    ids = [t for w in events["word"] for t in tok(w, add_special_tokens=False)["input_ids"]]
    ends = np.cumsum([len(tok(w, add_special_tokens=False)["input_ids"]) for w in events["word"]]) - 1
    with torch.inference_mode():
        states = model(torch.tensor([ids]))["states"][1][0, 0].reshape(len(ids), -1).numpy()
    np.testing.assert_allclose(layers["L2"], states[ends], rtol=1e-5, atol=1e-6)
    assert (loc["L1"]["t"].size, loc["L2"]["t"].size) == (16, 16)


def test_transformer_heads_feature_set(setup):
    cfg, events, tmp = setup
    cfg["feature_sets"]["minilm"].update(units=["layers", "heads"], attention_stats=True)
    out = run_features(cfg, tmp / "events.tsv", "minilm", tmp / "t" / "features" / "minilm.h5", progress=False)
    layers, _ = _layers(out)
    assert list(layers)[:2] == ["3", "3.h00"] and len(layers) == 1 + 12
    with h5py.File(out, "r") as f:
        assert f["attention_stats"]["3"].shape == (120, 12, 3)
    functions = read_head_functions(out)
    assert len(functions) == 6 * 12 and functions["induction"].between(0, 1).all()
    assert "unembedding" in functions.attrs["successor_reason"]  # MiniLM is an encoder


@pytest.mark.parametrize("cell", ["lstm", "slstm"])
def test_rnn_lm_is_trainable(cell):
    """A few optimiser steps on a repeating sequence lower the next-token loss (gradients reach every weight)."""
    torch.manual_seed(0)
    model = HeadwiseRNNLM(20, cell=cell, n_layers=2, n_heads=2, head_dim=8, seed=1, backend="torch").train()
    seq = torch.tensor([[1, 2, 3, 4, 5] * 4])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        logits = model(seq[:, :-1])["logits"]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), seq[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_rnn_feature_set_forced_to_the_triton_backend(setup):
    """The config's backend choice reaches the kernels: Triton (CPU interpreter here) equals the reference."""
    cfg, events, tmp = setup
    spec = cfg["feature_sets"]["gru"]
    spec.update(head_dim=16, localize=None, units=["layers"])
    torch_out = run_features(cfg, tmp / "events.tsv", "gru_seed5", tmp / "t" / "features" / "a.h5", progress=False)
    spec["backend"] = "triton"
    triton_out = run_features(cfg, tmp / "events.tsv", "gru_seed5", tmp / "t" / "features" / "b.h5", progress=False)
    a, _ = _layers(torch_out)
    b, _ = _layers(triton_out)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-5)
    # Each file says which kernels computed it: "auto" on a CPU is the reference loop.
    def provenance(path):
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["provenance"])

    assert provenance(torch_out)["settings"]["kernel_backend"] == "torch"
    assert provenance(triton_out)["settings"]["kernel_backend"] == "triton"
    assert provenance(triton_out)["settings"]["device"] == "cpu"


def test_surprisal_feature_set_from_a_trained_checkpoint(setup):
    """A surprisal regressor for the fMRI/MEG encoders: the checkpoint's per-word surprisal, by story."""
    from brainalign.config import validate_config
    from brainalign.features.surprisal import lm_word_surprisal
    from brainalign.models.lm import build_language_model
    from brainalign.models.training import save_language_model
    from brainalign.stimuli.corpus import WordVocabulary, tokenize_text

    cfg, events, tmp = setup
    words = events["word"].astype(str).tolist()
    vocab = WordVocabulary.build([t for w in words for t in tokenize_text(w)])
    model = build_language_model("gru", len(vocab), n_layers=1, n_heads=2, head_dim=4, seed=2)
    save_language_model(tmp / "gru.safetensors", model, "gru", {"n_layers": 1, "n_heads": 2, "head_dim": 4, "seed": 2},
                        vocab)
    raw = {"dataset": {"name": "t", "kind": "simulated"}, "simulation": {"planted_layer": "3"},
           "feature_sets": {"minilm": {"kind": "transformer", "layers": [3]},
                            "surprisal": {"kind": "surprisal", "checkpoint": str(tmp / "gru.safetensors")}}}
    out = run_features(validate_config(raw), tmp / "events.tsv", "surprisal", tmp / "t" / "features" / "s.h5",
                       progress=False)
    layers, _ = _layers(out)
    groups = events["story"] if "story" in events else events["run"]
    expected = lm_word_surprisal(model, vocab, words, pd.factorize(groups.astype(str))[0], progress=False)["surprisal"]
    np.testing.assert_allclose(layers["0"][:, 0], expected.to_numpy(), rtol=1e-6)
    with pytest.raises(ConfigError, match="feature_sets.s.checkpoint"):
        validate_config({**raw, "feature_sets": {**raw["feature_sets"], "s": {"kind": "surprisal"}}})
