"""Head function scores on hand-built attention patterns, on models, and related to brain scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from brainalign.features.head_functions import (
    copy_score,
    head_function_scores,
    induction_score,
    previous_token_score,
    relate_head_scores,
    successor_score,
)


def _causal_uniform(T):
    a = np.tril(np.ones((T, T)))
    return a / a.sum(1, keepdims=True)


def _pattern(T, targets):
    """One-hot attention: row t attends to targets[t]."""
    a = np.zeros((T, T))
    a[np.arange(T), targets] = 1.0
    return a


def test_previous_token_and_induction_scores_are_1_for_the_ideal_head_and_chance_for_a_uniform_one():
    L, o = 6, 1
    T = o + 2 * L
    prev_head = _pattern(T, np.maximum(np.arange(T) - 1, 0))
    targets = np.arange(T)  # attends to itself outside the second copy
    t = np.arange(o + L, T)
    targets[t] = t - L + 1
    induction_head = _pattern(T, targets)
    uniform = _causal_uniform(T)
    att = np.stack([prev_head, induction_head, uniform])[None]  # [1, 3 heads, T, T]
    prev = previous_token_score(att)
    ind = induction_score(att, L, offset=o)
    assert prev[0] == 1.0 and ind[1] == 1.0
    assert prev[2] == pytest.approx(np.mean(1 / (np.arange(1, T) + 1)))
    assert ind[2] == pytest.approx(np.mean(1 / (t + 1)))  # row t spreads over t + 1 positions
    assert ind[0] == pytest.approx(0.0) and prev[1] < 0.5


def test_copy_score_counts_top1_attention_on_the_source_position():
    T = 12
    steps = [(0, 8, 3), (0, 9, 4), (0, 10, 5)]
    ideal = np.zeros((T, T))
    for _, t, s in steps:
        ideal[t, s] = 1.0
    wrong = np.roll(ideal, 1, axis=1)
    rng = np.random.default_rng(0)
    noisy = np.stack([_causal_uniform(T) + 1e-3 * rng.random((T, T)) for _ in range(400)])
    att = np.stack([ideal, wrong])[None]
    assert copy_score(att, steps).tolist() == [1.0, 0.0]
    # A (jittered) uniform head lands on the source by chance: 1 / (t + 1) on average.
    chance = np.mean([copy_score(noisy[i][None, None], steps)[0] for i in range(400)])
    assert chance == pytest.approx(np.mean([1 / (t + 1) for _, t, _ in steps]), abs=0.03)


def _tiny_gpt2_with_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from brainalign.features.head_functions import ORDINAL_SEQUENCES
    from brainalign.models.lm import gpt2_language_model

    words = sorted({w for seq in ORDINAL_SEQUENCES.values() for w in seq} | {f"w{i}" for i in range(60)})
    vocab = {"<unk>": 0, "<bos>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<bos>")
    return gpt2_language_model(len(vocab), n_layer=2, n_head=4, n_embd=32, n_positions=128, seed=0), tokenizer


def test_head_function_scores_run_on_a_causal_lm_and_successor_matches_a_direct_computation(tmp_path):
    model, tokenizer = _tiny_gpt2_with_tokenizer(tmp_path)
    table = head_function_scores(model, tokenizer, length=10, n_sequences=3, needle=5, haystack=8)
    assert list(table.columns) == ["layer", "head", "previous_token", "induction", "copy", "successor"]
    assert len(table) == 2 * 4 and table["successor"].notna().all()
    for column in ("previous_token", "induction", "successor"):
        assert table[column].between(0, 1).all()
    # Successor of layer 1, head 0 by hand for the digits: OV circuit on the effective embedding.
    sequences = {"digits": [str(i) for i in range(1, 10)]}
    scores, reason = successor_score(model, tokenizer, sequences)
    ids = torch.as_tensor(tokenizer.convert_tokens_to_ids(sequences["digits"]))
    block = model.transformer.h[0]
    with torch.no_grad():
        x = model.transformer.wte(ids)
        emb = x + block.mlp(block.ln_2(x))
        d, dh = 32, 8
        wv = block.attn.c_attn.weight[:, 2 * d:][:, 0:dh]
        wo = block.attn.c_proj.weight[0:dh]
        logits = emb @ wv @ wo @ model.lm_head.weight[ids].T
    expected = float((logits.argmax(-1)[:-1] == torch.arange(1, 9)).float().mean())
    assert reason == "" and scores[0, 0] == pytest.approx(expected)


def test_head_function_scores_of_suma_and_of_an_encoder_say_why_successor_is_missing():
    from brainalign.models.hf import load_model
    from brainalign.models.suma import SUMA

    loaded = load_model(None)  # MiniLM: a BERT encoder without an LM head
    table = head_function_scores(loaded.model, loaded.tokenizer, length=8, n_sequences=2, needle=4, haystack=6)
    assert len(table) == 6 * 12 and table["successor"].isna().all()
    assert "unembedding" in table.attrs["successor_reason"]
    suma = SUMA(len(loaded.tokenizer), d_model=64, n_heads=8)
    suma_table = head_function_scores(suma, loaded.tokenizer, length=8, n_sequences=2, needle=4, haystack=6)
    assert len(suma_table) == 2 * 8 and suma_table["induction"].between(0, 1).all()


def test_relate_head_scores_matches_scipy_spearman_and_finds_a_planted_relation():
    rng = np.random.default_rng(0)
    functions = pd.DataFrame({"layer": np.repeat([1, 2, 3], 8), "head": np.tile(range(8), 3),
                              "previous_token": rng.random(24), "induction": rng.random(24),
                              "copy": rng.random(24), "successor": np.nan})
    brain = functions[["layer", "head"]].assign(roi="IFG", score=np.exp(functions["induction"]) + 0.01 * rng.random(24))
    result = relate_head_scores(functions, brain, n_permutations=199).set_index("function")
    assert result.loc["induction", "spearman"] == pytest.approx(stats.spearmanr(functions["induction"], brain["score"])[0])
    assert result.loc["induction", "p_value"] == pytest.approx(1 / 200)
    assert result.loc["previous_token", "p_value"] > 0.01 and np.isnan(result.loc["successor", "spearman"])


def test_successor_runs_on_the_llama_layout():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from brainalign.models.hf import load_model

    tokenizer = load_model(None).tokenizer
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    scores, reason = successor_score(model, tokenizer)
    assert reason == "" and scores.shape == (2, 4) and ((scores >= 0) & (scores <= 1)).all()


def test_report_section_relates_head_functions_to_head_brain_scores(tmp_path):
    from brainalign.report.html import _head_function_parts

    rng = np.random.default_rng(1)
    functions = pd.DataFrame({"layer": np.repeat([1, 2], 6), "head": np.tile(range(6), 2),
                              "previous_token": rng.random(12), "induction": rng.random(12), "copy": rng.random(12),
                              "successor": np.nan})
    functions.attrs["successor_reason"] = "no unembedding (not a causal LM with an output head)"
    curve = pd.DataFrame({"model": "minilm", "layer": [f"{l}.h{h:02d}" for l, h in zip(functions["layer"], functions["head"])],
                          "roi": "LATL", "mean": functions["previous_token"] * 0.1})
    html = "".join(_head_function_parts(functions, curve, "minilm", tmp_path / "f.png"))
    assert "unembedding" in html and "previous_token" in html and (tmp_path / "f.png").stat().st_size > 5000
