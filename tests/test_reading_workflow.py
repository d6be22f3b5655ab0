"""The reading modality end to end on Natural Stories: trained LMs, a Hugging Face LM by path, a predictor file."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from brainalign._validation import ConfigError
from brainalign.config import validate_config

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "workflows" / "configs"


def _local_causal_lm(folder, words):
    """A tiny random GPT-2 with a lower-casing word-level tokenizer, saved like any local model folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from brainalign.models.lm import gpt2_language_model

    pieces = sorted({p for w in words for p in pre_tokenizers.Whitespace().pre_tokenize_str(w.lower())
                     for p in [p[0]]})
    vocab = {"<unk>": 0, "<bos>": 1, **{w: i + 2 for i, w in enumerate(pieces)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<bos>").save_pretrained(folder)
    gpt2_language_model(len(vocab), n_layer=1, n_head=2, n_embd=16, n_positions=48, seed=3).save_pretrained(folder)


@pytest.mark.workflow
def test_natural_stories_workflow_scores_every_predictor(tmp_path, snakemake, naturalstories_dir, shared_data):
    from brainalign.datasets.naturalstories import gpt3_surprisal, load_words

    words = load_words(naturalstories_dir)
    gpt3_file = tmp_path / "gpt3 bits.tsv"
    pd.DataFrame({"gpt3_logprob": -gpt3_surprisal(naturalstories_dir, words)}).to_csv(gpt3_file, sep="\t", index=False)
    _local_causal_lm(tmp_path / "local gpt2", words["word"])
    cfg = yaml.safe_load((REPO_CONFIGS / "naturalstories_ci.yaml").read_text())
    cfg["dataset"]["data_dir"] = str(naturalstories_dir)
    cfg["language"].update(
        corpus=str(shared_data / "brown_corpus" / "brown.zip"), max_documents=12, vocab_size=1500,
        training={"seq_len": 16, "batch_size": 16, "max_steps": 30, "eval_every": 15, "patience": 2, "seed": 0},
        models={"lstm": {"architecture": "lstm", "params": {"n_layers": 1, "n_heads": 2, "head_dim": 8}}},
        hf_models={"tiny_gpt2": {"model_path": str(tmp_path / "local gpt2"), "window": 32}},
        predictor_files={"gpt3_file": {"path": str(gpt3_file), "column": "gpt3_logprob", "units": "log2prob"}})
    cfg["language"]["verbatim"] = {"list_lengths": [3, 5], "intervening_lengths": [4, 20], "n_trials": 3}
    cfg["reading"].update(builtin_predictors=["ngram1", "ngram3", "gpt3"], n_permutations=19)
    config = tmp_path / "ns.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path / "work", "--configfile", str(config))
    results = tmp_path / "work" / "results" / "naturalstories_ci"
    scores = pd.read_csv(results / "scores.csv").set_index("predictor")
    assert sorted(scores.index) == sorted(["ngram1", "ngram3", "gpt3", "lstm", "corpus_ngram3", "tiny_gpt2", "gpt3_file"])
    # The same values through a predictor file give the same row as the shipped GPT-3 reader.
    numbers = ["metric_futrell2018", "normalized_futrell2018", "n_words", "delta_loglik", "delta_r2", "p_value"]
    pd.testing.assert_series_equal(scores.loc["gpt3", numbers], scores.loc["gpt3_file", numbers], check_names=False)
    # Futrell2018 against scipy on the scored words (common to every predictor, sentence-initial words dropped).
    predictors = pd.read_csv(results / "predictors.csv")
    used = ~predictors["sentence_initial"] & predictors[list(scores.index)].notna().all(axis=1)
    for name in ("ngram3", "lstm", "tiny_gpt2"):
        r = stats.pearsonr(predictors.loc[used, name], predictors.loc[used, "rt"])[0]
        assert scores.loc[name, "metric_futrell2018"] == pytest.approx(abs(r), abs=1e-12)
        assert scores.loc[name, "n_words"] == used.sum()
    assert (scores["normalized_futrell2018"] == scores["metric_futrell2018"] / 0.858).all()
    # freqs-3.tsv, 1.3.word "were": 553145 / 25245107.
    assert predictors.loc[2, "ngram3"] == pytest.approx(-math.log2(553145 / 25245107), abs=1e-12)
    # Unigram surprisal is the baseline's own frequency predictor: no gain by construction.
    assert abs(scores.loc["ngram1", "delta_loglik"]) < 1e-9
    assert np.isfinite(scores.loc["lstm", "valid_perplexity"]) and np.isfinite(scores.loc["corpus_ngram3", "valid_perplexity"])
    assert scores.loc["lstm", "n_unknown_words"] > 0 and scores.loc["tiny_gpt2", "n_unknown_words"] == 0
    per_story = pd.read_csv(results / "per_story.csv")
    assert len(per_story) == 10 * len(scores)
    report = (results / "report.html").read_text()
    assert all(name in report for name in scores.index) and "Futrell2018" in report
    assert str(tmp_path) not in report  # no local paths in the report
    verbatim = pd.read_csv(results / "verbatim" / "lstm.csv")
    assert len(verbatim) == 2 * 2 * 3 * 3 and set(verbatim["condition"]) == {"repeated", "permuted", "control"}
    assert (results / "verbatim" / "tiny_gpt2.csv").exists() and "repeat surprisal" in report.lower()
    for figure in ("reading_scores", "surprisal_scatter", "story_scores", "training_curves", "verbatim"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_reading_config_errors_name_the_field(naturalstories_dir):
    base = {"dataset": {"name": "ns", "kind": "naturalstories", "data_dir": str(naturalstories_dir)}}
    with pytest.raises(ConfigError, match="language.corpus"):
        validate_config({**base, "language": {"models": {"lstm": {"architecture": "lstm"}}}})
    with pytest.raises(ConfigError, match="reading.builtin_predictors"):
        validate_config({**base, "reading": {"builtin_predictors": ["ngram5"]}})
    with pytest.raises(ConfigError, match="used twice"):
        validate_config({**base, "language": {"predictor_files": {"gpt3": {"path": "x.tsv", "column": "c"}}}})
    with pytest.raises(ConfigError, match="dataset.data_dir"):
        validate_config({"dataset": {"name": "ns", "kind": "naturalstories"}})
    for name in ("naturalstories.yaml", "naturalstories_ci.yaml"):
        cfg = yaml.safe_load((REPO_CONFIGS / name).read_text())
        cfg["dataset"]["data_dir"] = str(naturalstories_dir)
        assert validate_config(cfg, REPO_CONFIGS / name)["dataset"]["kind"] == "naturalstories"


def test_train_lm_stage_writes_byte_identical_outputs_twice(tmp_path, naturalstories_dir):
    """Same config, same files, bit for bit: no timing or timestamp in the checkpoint or its provenance."""
    from brainalign.pipeline.reading import run_train_lm

    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(4):
        (corpus / f"doc{k}.txt").write_text(" ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat", "."], 400)))
    cfg = validate_config({
        "dataset": {"name": "ns", "kind": "naturalstories", "data_dir": str(naturalstories_dir)},
        "language": {"corpus": str(corpus), "valid_fraction": 0.25,
                     "training": {"seq_len": 8, "batch_size": 4, "max_steps": 6, "eval_every": 3},
                     "models": {"gru": {"architecture": "gru", "params": {"n_layers": 1, "n_heads": 1, "head_dim": 4}}}}})
    for run in ("a", "b"):
        run_train_lm(cfg, "gru", tmp_path / run / "gru.safetensors", tmp_path / run / "gru_history.csv", progress=False)
    for name in ("gru.safetensors", "gru_history.csv", "gru_history.csv.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
