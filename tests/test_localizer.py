"""The language localizer against scipy's Welch t-test, on the real Fedorenko (2010) stimuli."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from brainalign.features.localizer import (
    cached_localizer,
    encode_last_tokens,
    load_localizer_stimuli,
    localize,
)
from brainalign.models.hf import load_model
from brainalign.models.suma import SUMA, suma_parameter_count


@pytest.fixture(scope="module")
def stimuli(langloc_dir):
    return load_localizer_stimuli(langloc_dir)


def test_stimuli(stimuli):
    sentences, nonwords = stimuli
    assert len(sentences) == 240 and len(nonwords) == 240
    assert sentences[0] == "just the barest suggestion of a heel is found on teenage pumps"
    assert all(len(s.split()) == 12 for s in sentences + nonwords)


def test_welch_t_global_top_k_and_variants():
    rng = np.random.default_rng(0)
    s = {"a": rng.standard_normal((30, 5)) + np.array([2, 0, 0, -3, 0]), "b": rng.standard_normal((30, 4))}
    n = {"a": rng.standard_normal((25, 5)) * 2, "b": rng.standard_normal((25, 4)) + np.array([0, -1, 0, 0])}
    res = localize(s, n, top_k=3)
    for name in s:
        ref = stats.ttest_ind(s[name], n[name], axis=0, equal_var=False)
        np.testing.assert_allclose(res.t[name], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(res.p[name], ref.pvalue, rtol=1e-12)
    all_t = np.concatenate([res.t["a"], res.t["b"]])
    chosen = np.concatenate([res.mask["a"], res.mask["b"]])
    assert chosen.sum() == 3 and all_t[chosen].min() >= all_t[~chosen].max()  # global, across modules
    q = stats.false_discovery_control(np.concatenate([res.p["a"], res.p["b"]]))
    np.testing.assert_allclose(np.concatenate([res.q["a"], res.q["b"]]), q)
    ab = localize(s, n, top_k=0.5, variant="absolute")
    ref = stats.ttest_ind(np.abs(s["a"]), np.abs(n["a"]), axis=0, equal_var=False)
    np.testing.assert_allclose(ab.t["a"], ref.statistic)
    assert ab.n_selected == round(0.5 * 9)
    # Unit 3 of "a" is strongly *negative* for sentences: raw t ranks it last, absolute t first.
    assert not res.mask["a"][3] and ab.t["a"][3] > 0


def test_suma_shapes_parameter_counts_and_causality():
    vocab = 30522  # MiniLM's WordPiece vocabulary
    model = SUMA(vocab, d_model=64, n_heads=8, seed=10)
    assert sum(p.numel() for p in model.parameters()) == suma_parameter_count(vocab, 64) == vocab * 64 + 64 + 4 * 64 * 64
    assert suma_parameter_count(32000) == 32000 * 4096 + 4096 + 4 * 4096**2  # the published model, Llama-2 vocabulary
    assert SUMA(10, seed=1).head_dim == 8 and SUMA(10, seed=1).n_heads == 512
    ids = torch.randint(0, vocab, (2, 9))
    out = model(ids)
    assert out["norm"].shape == out["attn"].shape == (2, 9, 64) and out["heads"].shape == (2, 9, 8, 8)
    # Causal: changing a later token leaves earlier positions unchanged.
    ids2 = ids.clone()
    ids2[:, 6] = (ids2[:, 6] + 1) % vocab
    out2 = model(ids2)
    torch.testing.assert_close(out["attn"][:, :6], out2["attn"][:, :6])
    assert not torch.allclose(out["attn"][:, 6:], out2["attn"][:, 6:])
    # Untrained, seeded: same seed -> same weights; N(0, 0.02) init.
    assert torch.equal(SUMA(50, 64, 8, seed=3).q_proj.weight, SUMA(50, 64, 8, seed=3).q_proj.weight)
    assert abs(float(model.embed.weight.detach().std()) - 0.02) < 0.001
    # Head chunking does not change the numbers.
    torch.testing.assert_close(SUMA(vocab, 64, 8, seed=10, head_chunk=3)(ids)["attn"], out["attn"])


def test_localizer_on_minilm_with_cache(stimuli, tmp_path):
    sentences, nonwords = stimuli
    loaded = load_model(None)
    tok = loaded.tokenizer

    def encode(ids_list):
        out = {}
        with torch.inference_mode():
            for ids in ids_list:
                seq = torch.tensor([[tok.cls_token_id] + ids + [tok.sep_token_id]])
                hs = loaded.model(input_ids=seq, output_hidden_states=True).hidden_states
                for k in range(1, 7):
                    out.setdefault(str(k), []).append(hs[k][0, len(ids)].numpy())
        return {k: np.stack(v) for k, v in out.items()}

    calls = []

    def compute():
        calls.append(1)
        return localize(encode_last_tokens(encode, tok, sentences[:40]),
                        encode_last_tokens(encode, tok, nonwords[:40]), top_k=0.01)

    key = {"model": loaded.identity["weights_sha256"], "n": 40}
    res = cached_localizer(tmp_path, key, compute)
    again = cached_localizer(tmp_path, key, compute)
    assert calls == [1] and again.n_selected == res.n_selected == round(0.01 * 6 * 384)
    for name in res.mask:
        np.testing.assert_array_equal(again.mask[name], res.mask[name])
        np.testing.assert_array_equal(again.t[name], res.t[name])
    # Real effect: the top-k units separate sentences from nonwords strongly.
    assert min(res.t[n][res.mask[n]].min() for n in res.mask if res.mask[n].any()) > 5
