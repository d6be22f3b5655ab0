"""Activation extraction: head outputs, pooling, attention statistics, chunk cache and resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from brainalign.features.activations import (
    attention_output_modules,
    extract_causal,
    extract_transformer,
)
from brainalign.features.words import extract_word_features
from brainalign.models.hf import load_model

WORDS = ("the white rabbit ran past alice and looked at its watch then it hurried down a large "
         "hole under the hedge while she followed").split()
GROUPS = [1] * 12 + [2] * (len(WORDS) - 12)


@pytest.fixture(scope="module")
def minilm():
    return load_model(None)


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f["layers"][k][()] for k in f["layers"]}, dict(f.attrs)


def test_layers_match_the_word_feature_extractor(minilm, tmp_path):
    out = extract_transformer(minilm, WORDS, GROUPS, tmp_path / "a.h5", tmp_path / "cache", model_name="m",
                              context_words=5, chunk_words=7, batch_size=4, progress=False)
    layers, attrs = _read(out)
    ref = extract_word_features(minilm.model, minilm.tokenizer, WORDS, GROUPS, context_words=5,
                                max_length=minilm.identity["max_length"], progress=False)
    assert list(layers) == [str(k) for k in range(7)]
    for k in range(7):
        np.testing.assert_allclose(layers[str(k)], ref[str(k)], rtol=1e-5, atol=1e-5)
    assert attrs["contract"] == "features/1"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_head_outputs_through_the_output_projection_give_the_attention_output(minilm, tmp_path):
    """Concatenated head outputs x W_o^T + b_o = the block's attention output (before residual and norm)."""
    out = extract_transformer(minilm, WORDS, GROUPS, tmp_path / "h.h5", tmp_path / "cache", model_name="m",
                              units=("layers", "heads"), context_words=6, chunk_words=10, progress=False)
    layers, _ = _read(out)
    dense = attention_output_modules(minilm.model)
    assert sum(1 for k in layers if ".h" in k) == 6 * 12 and layers["3.h05"].shape == (len(WORDS), 32)
    # Reference: run the model on each window and hook the projection's output.
    from brainalign.features.words import word_windows

    seqs, pos = word_windows(minilm.tokenizer, WORDS, GROUPS, 6, 512)
    for block in (1, 4, 6):
        captured = []
        hook = dense[block - 1].register_forward_hook(lambda m, a, o: captured.append(o))
        with torch.inference_mode():
            for seq, p in zip(seqs, pos):
                minilm.model(input_ids=torch.tensor([seq]))
                captured[-1] = captured[-1][0, p]
        hook.remove()
        expected = torch.stack(captured).numpy()
        heads = np.concatenate([layers[f"{block}.h{h:02d}"] for h in range(12)], axis=1)
        W, b = dense[block - 1].weight.detach().numpy(), dense[block - 1].bias.detach().numpy()
        np.testing.assert_allclose(heads @ W.T + b, expected, rtol=1e-4, atol=1e-4)


def test_word_and_mean_pooling_and_attention_stats(minilm, tmp_path):
    out = extract_transformer(minilm, WORDS[:6], [1] * 6, tmp_path / "p.h5", tmp_path / "cache", model_name="m",
                              layers=[2], pooling="word", context_words=3, attention_stats=True,
                              progress=False)
    with h5py.File(out, "r") as f:
        word = f["layers"]["2"][()]
        stats = f["attention_stats"]["2"][()]
    tok = minilm.tokenizer
    # Reference for word 5 ("alice"): its own sub-tokens in its 3-word window, averaged.
    ids = [tok.cls_token_id] + [t for w in WORDS[3:6] for t in tok(w, add_special_tokens=False)["input_ids"]]
    n_own = len(tok(WORDS[5], add_special_tokens=False)["input_ids"])
    ids += [tok.sep_token_id]
    with torch.inference_mode():
        res = minilm.model(input_ids=torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    last = len(ids) - 2
    np.testing.assert_allclose(word[5], res.hidden_states[2][0, last - n_own + 1:last + 1].mean(0).numpy(),
                               rtol=1e-5, atol=1e-5)
    p = res.attentions[1][0, :, last]  # [heads, T]
    entropy = -(p * torch.log(p)).sum(-1)
    np.testing.assert_allclose(stats[5, :, 0], entropy.numpy(), rtol=1e-4)
    np.testing.assert_allclose(stats[5, :, 1], p[:, 0].numpy(), rtol=1e-4)  # first token ([CLS])
    np.testing.assert_allclose(stats[5, :, 2], p[:, last - 1].numpy(), rtol=1e-4)
    assert stats.shape == (6, 12, 3)


def test_killed_extraction_resumes_to_identical_content(minilm, tmp_path):
    kwargs = dict(model_name="m", units=("layers", "heads"), layers=[0, 3], context_words=4, chunk_words=5,
                  progress=False)
    whole = extract_transformer(minilm, WORDS, GROUPS, tmp_path / "whole.h5", tmp_path / "c1", **kwargs)

    def die(k):
        if k == 2:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        extract_transformer(minilm, WORDS, GROUPS, tmp_path / "resumed.h5", tmp_path / "c2", on_chunk=die,
                            **kwargs)
    assert not (tmp_path / "resumed.h5").exists()
    cached = sorted(p.name for p in (tmp_path / "c2").rglob("chunk_*.npz"))
    assert cached == ["chunk_00000.npz", "chunk_00001.npz"]  # finished chunks survive the kill
    seen = []
    resumed = extract_transformer(minilm, WORDS, GROUPS, tmp_path / "resumed.h5", tmp_path / "c2",
                                  on_chunk=seen.append, **kwargs)
    assert seen == [2, 3, 4]  # only the missing chunks are computed
    a, attrs_a = _read(whole)
    b, attrs_b = _read(resumed)
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert attrs_a["settings"] == attrs_b["settings"]


def test_causal_extraction_one_pass_per_story(minilm, tmp_path):
    calls = []

    def run_story(ids):
        calls.append(len(ids))
        x = torch.arange(len(ids), dtype=torch.float32)[:, None].repeat(1, 3)
        return {"pos": x, "cum": torch.cumsum(torch.tensor(ids, dtype=torch.float32), 0)[:, None]}

    out = extract_causal(run_story, minilm.tokenizer, WORDS, GROUPS, tmp_path / "c.h5", tmp_path / "cache",
                         model_name="toy", identity={"name": "toy"}, progress=False)
    layers, _ = _read(out)
    n_tokens = [len(minilm.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in WORDS]
    assert calls == [sum(n_tokens[:12]), sum(n_tokens[12:])]
    ends = np.concatenate([np.cumsum(n_tokens[:12]), np.cumsum(n_tokens[12:])]) - 1
    np.testing.assert_array_equal(layers["pos"][:, 0], ends)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_models_built_from_a_config(family, minilm, tmp_path):
    """Decoder families built from tiny configs (random weights): heads, MLP units and their projections."""
    from transformers import AutoModel, GPT2Config, LlamaConfig

    from brainalign.models.hf import LoadedModel

    vocab = minilm.tokenizer.vocab_size
    if family == "gpt2":
        config = GPT2Config(vocab_size=vocab, n_embd=48, n_layer=2, n_head=4, n_positions=128)
    else:
        config = LlamaConfig(vocab_size=vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    model = AutoModel.from_config(config, attn_implementation="eager").eval()
    loaded = LoadedModel(model, minilm.tokenizer, tmp_path, {"model_type": family, "max_length": 128})
    out = extract_transformer(loaded, WORDS, GROUPS, tmp_path / "x.h5", tmp_path / "cache", model_name=family,
                              units=("layers", "heads", "mlp"), context_words=4, attention_stats=True,
                              progress=False)
    layers, _ = _read(out)
    assert layers["2.h03"].shape == (len(WORDS), 12) and layers["1.mlp"].shape[1] == (192 if family == "gpt2" else 96)
    # The projection applied to the concatenated heads reproduces its output, hooked independently.
    proj = attention_output_modules(model)[1]
    captured = []
    hook = proj.register_forward_hook(lambda m, a, o: captured.append(o))
    from brainalign.features.words import word_windows

    seqs, pos = word_windows(minilm.tokenizer, WORDS[:3], [1] * 3, 4, 128)
    with torch.inference_mode():
        model(input_ids=torch.tensor([seqs[2]]))
        expected = captured[0][0, pos[2]]
        heads = torch.tensor(np.concatenate([layers[f"2.h{h:02d}"][2] for h in range(4)]))
        torch.testing.assert_close(proj(heads), expected, rtol=1e-4, atol=1e-5)
    hook.remove()
