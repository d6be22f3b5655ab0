"""Language models here: corpora, planted-grammar training, surprisal by hand, checkpoints."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from brainalign._validation import BrainalignError, InputFileError
from brainalign.features.surprisal import lm_word_surprisal, token_surprisal
from brainalign.models.lm import SUMALanguageModel, build_language_model, next_token_logits
from brainalign.models.training import heldout_perplexity, load_language_model, save_language_model, train_lm
from brainalign.stimuli.corpus import WordVocabulary, read_corpus, split_documents, tokenize_text

# --- corpora -----------------------------------------------------------------------------------


def test_tokenize_text_splits_punctuation_and_keeps_inner_apostrophes_and_hyphens():
    assert tokenize_text("England, long-bearded Atlanta's mill.'") == [
        "england", ",", "long-bearded", "atlanta's", "mill", ".", "'"]


def test_read_corpus_reads_tagged_text_in_a_zip_and_plain_text(tmp_path):
    archive = tmp_path / "brown.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("brown/ca01", "\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n")
        z.writestr("brown/ca02", "\tIt/pps rained/vbd ./.\n")
        z.writestr("brown/README", "not a document")
    assert read_corpus(archive) == [["the", "jury", "said", '"', "no", '"', "."], ["it", "rained", "."]]
    text = tmp_path / "story.txt"
    text.write_text("First Citizen:\nBefore we proceed.")
    assert read_corpus(text) == [["first", "citizen", ":", "before", "we", "proceed", "."]]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(InputFileError, match="UTF-8"):
        read_corpus(tmp_path / "bad.txt")
    with pytest.raises(InputFileError, match="tag"):
        read_corpus(text, fmt="tagged")


def test_vocabulary_ranks_by_count_then_alphabet_and_round_trips():
    vocab = WordVocabulary.build("b a c a b a d".split(), max_size=5)
    assert vocab.itos == ["<unk>", "<bos>", "a", "b", "c"]
    assert vocab.encode(["a", "d", "c"]) == [2, 0, 4]
    assert WordVocabulary.from_json(vocab.to_json()).itos == vocab.itos
    train, valid = split_documents([["a"], ["b"], ["c"], ["d"]], valid_fraction=0.5)
    assert (train, valid) == (["a", "c"], ["b", "d"])


# --- surprisal from logits, by hand -----------------------------------------------------------


class BigramTable(nn.Module):
    """A language model whose next-token log-probabilities are a fixed table of the current token."""

    def __init__(self, logp: torch.Tensor):
        super().__init__()
        self.logp = logp

    def forward(self, input_ids):
        return {"logits": self.logp[input_ids]}


def test_word_surprisal_sums_sub_tokens_in_bits_and_reads_entropy_before_the_first():
    vocab = WordVocabulary(["england", ",", "you", "would"])
    V = len(vocab)
    probs = torch.softmax(torch.randn(V, V, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    model = BigramTable(probs.log())
    words = ["You", "would", "England,", "you"]
    table = lm_word_surprisal(model, vocab, words, progress=False)
    ids = [vocab.bos_token_id] + vocab.encode(["you", "would", "england", ",", "you"])
    bits = [-math.log2(probs[a, b]) for a, b in zip(ids[:-1], ids[1:])]
    expected = [bits[0], bits[1], bits[2] + bits[3], bits[4]]
    np.testing.assert_allclose(table["surprisal"], expected, rtol=1e-12)
    entropy_before = lambda tok: float(-(probs[tok] * probs[tok].log2()).sum())  # noqa: E731
    np.testing.assert_allclose(table["entropy"], [entropy_before(t) for t in (ids[0], ids[1], ids[2], ids[4])], rtol=1e-12)
    assert table["n_tokens"].tolist() == [1, 1, 2, 1]
    # Without a BOS token the first word has no surprisal; stories never share context.
    no_bos = lm_word_surprisal(model, vocab, words, groups=[1, 1, 2, 2], bos_token_id=None, progress=False)
    assert np.isnan(no_bos["surprisal"][0]) and np.isnan(no_bos["surprisal"][2])
    assert no_bos["surprisal"][3] == pytest.approx(-math.log2(probs[vocab.stoi[","], vocab.stoi["you"]]))


def test_windows_score_every_token_once_and_equal_one_pass_for_a_bounded_context_model():
    vocab = WordVocabulary([f"w{i}" for i in range(6)])
    probs = torch.softmax(torch.randn(len(vocab), len(vocab), generator=torch.Generator().manual_seed(1),
                                      dtype=torch.float64), -1)
    ids = list(np.random.default_rng(0).integers(2, len(vocab), 40))
    whole, _ = token_surprisal(BigramTable(probs.log()), ids)
    windowed, _ = token_surprisal(BigramTable(probs.log()), ids, window=7, stride=3)
    np.testing.assert_array_equal(whole, windowed)
    assert np.isnan(whole[0]) and np.isfinite(whole[1:]).all()


# --- planted grammar: a trained LM recovers the true surprisal -----------------------------------


def _markov_chain(n_states=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n_states, 0.3), size=n_states)


def _sample(P, n, seed):
    rng = np.random.default_rng(seed)
    out = [0]
    for u in rng.random(n - 1):
        out.append(int(np.searchsorted(np.cumsum(P[out[-1]]), u * P[out[-1]].sum())))
    return np.minimum(out, len(P) - 1)


@pytest.fixture(scope="module")
def planted():
    P = _markov_chain()
    words = [f"w{i}" for i in range(len(P))]
    vocab = WordVocabulary(words)
    encode = lambda states: vocab.encode([words[s] for s in states])  # noqa: E731
    return P, words, vocab, encode(_sample(P, 12000, 1)), encode(_sample(P, 1000, 2)), _sample(P, 400, 3)


def _train(planted, arch, params, steps=150):
    P, words, vocab, train, valid, _ = planted
    model = build_language_model(arch, len(vocab), **params)
    return train_lm(model, train, valid, seq_len=16, batch_size=32, lr=1e-2, max_steps=steps, eval_every=50,
                    patience=2, progress=False)


def test_a_headwise_lstm_trained_on_a_markov_chain_recovers_the_true_surprisal(planted, tmp_path):
    P, words, vocab, train, valid, test = planted
    result = _train(planted, "lstm", {"n_layers": 1, "n_heads": 2, "head_dim": 16})
    table = lm_word_surprisal(result.model, vocab, [words[s] for s in test], progress=False)
    truth = -np.log2(P[test[:-1], test[1:]])
    r = np.corrcoef(table["surprisal"][1:], truth)[0, 1]
    assert r >= 0.9, r
    # Held-out perplexity approaches the chain's entropy rate (its floor) and beats the unigram's.
    stationary = np.bincount(test, minlength=len(P)) / len(test)
    floor = math.exp(-(stationary * (P * np.log(P)).sum(1)).sum())
    assert floor * 0.95 < result.valid_perplexity < floor * 1.25
    assert list(result.history.columns) == ["step", "tokens", "train_loss", "valid_loss", "valid_perplexity"]
    assert result.valid_perplexity == pytest.approx(heldout_perplexity(result.model, valid, 16), rel=1e-9)
    # The checkpoint rebuilds the same model.
    path = save_language_model(tmp_path / "lstm.safetensors", result.model, "lstm",
                               {"n_layers": 1, "n_heads": 2, "head_dim": 16}, vocab, {"valid_perplexity": result.valid_perplexity})
    loaded, loaded_vocab, meta = load_language_model(path)
    ids = torch.as_tensor([valid[:30]])
    assert torch.equal(next_token_logits(loaded, ids), next_token_logits(result.model, ids))
    assert loaded_vocab.itos == vocab.itos and meta["valid_perplexity"] == result.valid_perplexity


def test_training_is_deterministic_bit_for_bit(planted):
    params = {"n_layers": 1, "n_heads": 2, "head_dim": 8}
    a = _train(planted, "gru", params, steps=20).model.state_dict()
    b = _train(planted, "gru", params, steps=20).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_suma_language_model_trains_its_decoder_only(planted):
    P, words, vocab, train, valid, _ = planted
    model = SUMALanguageModel(len(vocab), d_model=32, n_heads=4, decoder_hidden=0)
    core_before = {k: v.clone() for k, v in model.core.state_dict().items()}
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"decoder"}
    before = heldout_perplexity(model, valid, 16)
    result = train_lm(model, train, valid, seq_len=16, max_steps=60, eval_every=30, lr=1e-2, progress=False)
    assert all(torch.equal(core_before[k], v) for k, v in model.core.state_dict().items())
    assert result.valid_perplexity < 0.5 * before


def test_train_lm_and_checkpoints_refuse_bad_input(planted, tmp_path):
    P, words, vocab, train, valid, _ = planted
    model = build_language_model("elman", len(vocab), n_layers=1, n_heads=1, head_dim=4)
    with pytest.raises(BrainalignError, match="shorter than one window"):
        train_lm(model, train[:10], valid, seq_len=16, progress=False)
    with pytest.raises(BrainalignError, match="'eval_every'"):
        train_lm(model, train, valid, eval_every=0, progress=False)
    with pytest.raises(ValueError, match="architecture"):
        build_language_model("transformer-xl", 10)
    if not torch.cuda.is_available():
        with pytest.raises(BrainalignError, match="cuda"):
            train_lm(model, train, valid, device="cuda", progress=False)
    (tmp_path / "x.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="safetensors"):
        load_language_model(tmp_path / "x.safetensors")


def test_ngram_model_distributions_sum_to_one_and_match_a_hand_count():
    from brainalign.models.ngram import NGramLM

    ids = [2, 3, 2, 3, 4, 2, 3, 2, 5]
    model = NGramLM(order=2, vocab_size=6).fit(ids)
    for context in ([2], [3], [5], [0]):  # seen, seen, seen, unseen context
        assert sum(model.prob(context, w) for w in range(6)) == pytest.approx(1.0, abs=1e-12)
    # Bigrams: n1 = 3 ((3,4), (4,2), (2,5)), n2 = 1 ((3,2)), n3 = 1 ((2,3) x3): D = 3 / (3 + 2) = 0.6.
    # P(3 | 2) = (3 - D) / 4 + D * 2 / 4 * P_uni(3), with P_uni(3) = (3 + 1) / (9 + 6).
    assert model.prob([2], 3) == pytest.approx((3 - 0.6) / 4 + 0.6 * 2 / 4 * 4 / 15, abs=1e-15)
    assert model.perplexity([2, 3, 2]) == pytest.approx(2 ** np.mean(model.surprisal([2, 3, 2])[1:]))


def test_training_stops_early_when_the_held_out_loss_stops_falling(planted):
    P, words, vocab, train, valid, _ = planted
    model = build_language_model("elman", len(vocab), n_layers=1, n_heads=1, head_dim=4)
    # lr = 0: the held-out loss never falls after the first evaluation, so training stops after `patience` more.
    result = train_lm(model, train, valid, seq_len=16, lr=0.0, max_steps=100, eval_every=5, patience=2, progress=False)
    assert result.stopped_early and list(result.history["step"]) == [5, 10, 15] and result.best_step == 5


def test_tiny_shakespeare_reads_as_one_plain_text_document(shared_data):
    (doc,) = read_corpus(shared_data / "tinyshakespeare" / "input.txt")
    assert doc[:4] == ["first", "citizen", ":", "before"] and len(doc) > 200_000
    train, valid = split_documents([doc], 0.1)
    assert len(valid) == pytest.approx(0.1 * len(doc), abs=1)


def test_surprisal_of_a_llama_checkpoint_equals_one_forward_pass_by_hand():
    """The Hugging Face path on the Llama layout: sub-token sums against log-softmax of one full forward pass."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from brainalign.features.words import _tokenize_words
    from brainalign.models.hf import load_model

    tokenizer = load_model(None).tokenizer  # WordPiece: splits rare words into sub-tokens; no BOS
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    words = ["The", "quizzical", "archaeologist", "unearthed", "a", "sarcophagus", "."]
    table = lm_word_surprisal(model, tokenizer, words, progress=False)
    pieces = _tokenize_words(tokenizer, words)
    ids = torch.as_tensor([[t for p in pieces for t in p]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
    bits = [np.nan] + [-float(logp[i - 1, ids[0, i]]) / math.log(2) for i in range(1, ids.shape[1])]
    owner = np.repeat(np.arange(len(words)), [len(p) for p in pieces])
    expected = [np.nan] + [sum(b for b, o in zip(bits, owner) if o == w) for w in range(1, len(words))]
    assert max(len(p) for p in pieces) > 1  # some words have several sub-tokens
    np.testing.assert_allclose(table["surprisal"], expected, rtol=1e-9)
