"""Tests of word-level features: transformer windows/extraction (packaged MiniLM) and baselines.

The reference for the transformer features is an independent, unbatched
forward pass per word, on a window built by tokenizing the joined text with
the tokenizer's own ``__call__`` (special tokens added by the tokenizer).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from brainalign._validation import BrainalignError, InputFileError
from brainalign.features.baselines import random_embedding_features, word_rate_features
from brainalign.features.words import extract_word_features, word_windows
from brainalign.models.hf import load_model


@pytest.fixture(scope="module")
def minilm():
    # One thread, as the pipeline pins it (``threads: 1``): small forward passes are
    # much faster without thread contention, and results are reproducible.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_model()
    finally:
        torch.set_num_threads(previous)


def _tokens(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens(ids)


# --------------------------------------------------------------------------- load_model
def test_load_model_identity(minilm):
    ident = minilm.identity
    assert ident["n_layers"] == 6 and ident["hidden_size"] == 384
    assert ident["model_type"] == "bert"
    assert ident["max_length"] == 512
    assert len(ident["weights_sha256"]) == 64
    assert not minilm.model.training


def test_load_model_missing_dir(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(InputFileError) as info:
        load_model(missing)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_load_model_dir_without_config(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00" * 8)
    with pytest.raises(InputFileError) as info:
        load_model(folder)
    assert str(folder) in str(info.value)
    assert "config.json" in str(info.value)


def test_load_model_file_instead_of_dir(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(InputFileError, match="directory"):
        load_model(f)


# --------------------------------------------------------------------------- windows
WORDS = ["Alice", "was", "unbelievably", "tired", "in", "wonderland", "and", "curiouser"]


def test_word_windows_last_subtoken(minilm):
    tok = minilm.tokenizer
    assert len(tok.tokenize("unbelievably")) > 1  # a multi-subtoken word
    seqs, pos = word_windows(tok, WORDS, [1] * len(WORDS), context_words=3, max_length=512)
    assert len(seqs) == len(WORDS) and pos.shape == (len(WORDS),)
    specials = set(tok.all_special_tokens)
    for i, word in enumerate(WORDS):
        tokens = _tokens(tok, seqs[i])
        assert tokens[0] == tok.cls_token and tokens[-1] == tok.sep_token
        assert tokens[pos[i]] not in specials
        assert tokens[pos[i]] == tok.tokenize(word)[-1]
        # Reference window: the tokenizer's own encoding of the joined context.
        text = " ".join(WORDS[max(0, i - 2):i + 1])
        assert seqs[i] == tok(text)["input_ids"]
        assert pos[i] == len(seqs[i]) - 2
    i = WORDS.index("unbelievably")
    tokens = _tokens(tok, seqs[i])
    sub = tok.tokenize("unbelievably")
    assert tokens[pos[i]] == "##bly"
    assert tokens[pos[i] - len(sub) + 1:pos[i] + 1] == sub


def test_word_windows_context_stops_at_run_boundary(minilm):
    tok = minilm.tokenizer
    words = ["the", "rabbit", "ran", "down", "the", "hole"]
    runs = [1, 1, 1, 2, 2, 2]
    seqs, pos = word_windows(tok, words, runs, context_words=10, max_length=512)
    assert seqs[2] == tok("the rabbit ran")["input_ids"]
    assert seqs[3] == tok("down")["input_ids"]  # first word of run 2: no context from run 1
    assert seqs[5] == tok("down the hole")["input_ids"]
    assert _tokens(tok, seqs[3])[pos[3]] == "down"
    # Non-adjacent repeat of a run label also restarts the context.
    seqs2, _ = word_windows(tok, ["a", "b", "c"], [1, 2, 1], context_words=5, max_length=512)
    assert seqs2[2] == tok("c")["input_ids"]


def test_word_windows_left_truncation(minilm):
    tok = minilm.tokenizer
    words = ["the", "rabbit", "was", "unbelievably"]
    full = tok.tokenize("the rabbit was unbelievably")
    assert len(full) == 8
    seqs, pos = word_windows(tok, words, [1] * 4, context_words=4, max_length=6)
    tokens = _tokens(tok, seqs[3])
    assert len(seqs[3]) == 6
    assert tokens == [tok.cls_token, *full[-4:], tok.sep_token]
    assert tokens[pos[3]] == "##bly"
    # Short windows are untouched.
    assert _tokens(tok, seqs[1]) == [tok.cls_token, "the", "rabbit", tok.sep_token]
    # A single word longer than the budget keeps its final sub-tokens.
    seqs, pos = word_windows(tok, ["unbelievably"], [1], context_words=1, max_length=4)
    assert _tokens(tok, seqs[0]) == [tok.cls_token, "##va", "##bly", tok.sep_token]
    assert pos[0] == 2


def test_word_windows_byte_level_bpe_repeats_first_word():
    """Byte-level BPE (GPT-2 style): per-word tokens must equal the joined text's tokens.

    Regression: the first word is tokenized without a prefix space; its later
    repeats must get the space-prefixed tokens ('Ġthe'), not the cached ones.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the rabbit ran down the hole and the cat sat"] * 20,
                            vocab_size=300, min_frequency=1, show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)
    words = ["the", "rabbit", "ran", "down", "the", "hole", "the"]
    seqs, pos = word_windows(tok, words, [1] * len(words), context_words=len(words),
                             max_length=512)
    for i in range(len(words)):
        assert seqs[i] == tok(" ".join(words[:i + 1]))["input_ids"]
        assert pos[i] == len(seqs[i]) - 1
    assert tok.convert_ids_to_tokens(seqs[-1])[-1] == "\u0120the"


def test_word_windows_bad_arguments(minilm):
    with pytest.raises(BrainalignError, match="context_words"):
        word_windows(minilm.tokenizer, ["a"], [1], context_words=0, max_length=512)
    with pytest.raises(BrainalignError, match="max_length"):
        word_windows(minilm.tokenizer, ["a"], [1], context_words=1, max_length=2)


# --------------------------------------------------------------------------- extraction
TEXT = (
    "Alice was beginning to get very tired of sitting by her sister on the bank "
    "and of having nothing to do once or twice she had peeped into the book her "
    "sister was reading but it had no pictures unbelievably"
).split()


@pytest.fixture(scope="module")
def extracted(minilm):
    assert len(TEXT) == 40
    runs = [1] * 25 + [2] * 15
    return runs, extract_word_features(minilm.model, minilm.tokenizer, TEXT, runs,
                                       context_words=8, batch_size=7, progress=False)


def test_extract_word_features_matches_unbatched_forward(minilm, extracted):
    runs, feats = extracted
    assert list(feats) == [str(k) for k in range(7)]
    for arr in feats.values():
        assert arr.shape == (40, 384) and arr.dtype == np.float32
        assert np.isfinite(arr).all()
    tok, model = minilm.tokenizer, minilm.model
    max_err = 0.0
    with torch.no_grad():
        for i in range(40):
            start = i
            while start > 0 and runs[start - 1] == runs[i] and i - start + 1 < 8:
                start -= 1
            enc = tok(" ".join(TEXT[start:i + 1]), return_tensors="pt")
            states = model(**enc, output_hidden_states=True).hidden_states
            position = enc["input_ids"].shape[1] - 2  # the last token before [SEP]
            for k in range(7):
                ref = states[k][0, position].numpy()
                max_err = max(max_err, float(np.max(np.abs(feats[str(k)][i] - ref))))
    assert max_err < 1e-4


def test_extract_word_features_layer_subset_and_determinism(minilm, extracted):
    runs, feats = extracted
    again = extract_word_features(minilm.model, minilm.tokenizer, TEXT, runs,
                                  context_words=8, batch_size=7, progress=False)
    for k in feats:
        assert np.array_equal(feats[k], again[k])  # bit-identical
    subset = extract_word_features(minilm.model, minilm.tokenizer, TEXT, runs, context_words=8,
                                   layers=[6, 0], batch_size=7, progress=False)
    assert set(subset) == {"0", "6"}
    for k in subset:
        assert np.array_equal(subset[k], feats[k])
    # Different layers really differ (no aliasing of one array).
    assert not np.allclose(feats["0"], feats["6"])
    with pytest.raises(BrainalignError, match="out of range"):
        extract_word_features(minilm.model, minilm.tokenizer, TEXT[:2], [1, 1], layers=[7],
                              progress=False)


# --------------------------------------------------------------------------- baselines
def test_word_rate_features():
    f = word_rate_features(5)
    assert f.shape == (5, 1) and f.dtype == np.float32
    np.testing.assert_array_equal(f, np.ones((5, 1)))
    assert word_rate_features(0).shape == (0, 1)


def test_random_embedding_case_insensitive_and_shape():
    f = random_embedding_features(["Alice", "alice", "ALICE", "rabbit"], 16, seed=0)
    assert f.shape == (4, 16) and f.dtype == np.float32
    np.testing.assert_array_equal(f[0], f[1])
    np.testing.assert_array_equal(f[0], f[2])
    assert not np.array_equal(f[0], f[3])


def test_random_embedding_seeds_differ():
    words = ["alice", "rabbit", "hole"]
    a = random_embedding_features(words, 64, seed=0)
    b = random_embedding_features(words, 64, seed=1)
    np.testing.assert_array_equal(a, random_embedding_features(words, 64, seed=0))
    for i in range(3):
        assert not np.array_equal(a[i], b[i])
        assert abs(np.corrcoef(a[i], b[i])[0, 1]) < 0.5


def test_random_embedding_independent_of_other_words():
    alone = random_embedding_features(["rabbit"], 32, seed=3)
    among = random_embedding_features(["the", "White", "rabbit", "ran", "Rabbit"], 32, seed=3)
    np.testing.assert_array_equal(alone[0], among[2])
    np.testing.assert_array_equal(alone[0], among[4])


def test_random_embedding_standard_normal_moments():
    words = [f"word{i}" for i in range(3000)]
    f = random_embedding_features(words, 50, seed=7).astype(np.float64)
    values = f.ravel()  # 150 000 draws
    assert abs(values.mean()) < 0.02
    assert abs(values.std() - 1.0) < 0.02
    assert abs(np.mean(values ** 3)) < 0.05          # skewness ~ 0
    assert abs(np.mean(values ** 4) - 3.0) < 0.1     # kurtosis ~ 3
    # Different types are uncorrelated.
    c = np.corrcoef(f[:200])
    off = c[~np.eye(200, dtype=bool)]
    assert abs(off.mean()) < 0.01 and off.std() < 0.2
