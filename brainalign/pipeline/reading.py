"""The reading modality's stages: corpus → trained LMs → per-word surprisal → reading-time scores.

Each function is one workflow stage (``workflows/rules/reading.smk``, one
``brainalign`` command each) and writes its outputs atomically with provenance.

* :func:`run_reading_words` — the dataset's word table with reading times,
  baseline predictors and the shipped predictors (``words.csv``);
* :func:`run_train_lm` — one language model of ``language.models`` trained on
  the corpus (``lm/<name>.safetensors`` + ``lm/<name>_history.csv``);
* :func:`run_ngram_lm` — the count-based baseline on the same corpus, its
  held-out perplexity and its per-word surprisal;
* :func:`run_surprisal` — per-word surprisal and entropy of a trained model or
  a local Hugging Face causal LM (``surprisal/<name>.csv``);
* :func:`run_reading_scores` — Futrell2018 and the regression gain of every
  predictor (``scores.csv``, ``per_story.csv``, ``predictors.csv``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, InputFileError
from ..backend.device import resolve_device
from ..datasets.registry import get_kind
from ..io import provenance, read_table, write_table

__all__ = ["prepare_corpus", "run_reading_words", "run_train_lm", "run_ngram_lm", "run_surprisal", "run_verbatim",
           "run_reading_scores", "predictor_names", "READING_SCORE_COLUMNS"]

#: Columns of the reading modality's ``scores.csv``, in order.
READING_SCORE_COLUMNS = ["dataset", "predictor", "source", "architecture", "metric_futrell2018", "ceiling",
                         "normalized_futrell2018", "n_words", "delta_loglik", "delta_r2", "r2_baseline", "r2_full",
                         "p_value", "n_permutations", "valid_perplexity", "n_unknown_words"]

_WORD_KEYS = ["story", "zone"]

logger = logging.getLogger("brainalign")


def predictor_names(cfg: dict[str, Any]) -> dict[str, str]:
    """Every predictor the config scores, with its source (builtin, trained, corpus_ngram, hf, file)."""
    lang = cfg["language"]
    names = {name: "builtin" for name in cfg["reading"]["builtin_predictors"]}
    names.update({name: "trained" for name in lang["models"]})
    if lang["corpus"]:
        names[f"corpus_ngram{lang['ngram_order']}"] = "corpus_ngram"
    names.update({name: "hf" for name in lang["hf_models"]})
    names.update({name: "file" for name in lang["predictor_files"]})
    return names


def prepare_corpus(cfg: dict[str, Any]) -> tuple[Any, list[int], list[int]]:
    """The vocabulary and the training and held-out token-id streams of ``language.corpus``.

    Each document starts with ``<bos>`` (what a story starts with when it is
    scored). Deterministic: the same config gives the same streams.
    """
    from ..stimuli.corpus import WordVocabulary, read_corpus, split_document_lists

    lang = cfg["language"]
    if not lang["corpus"]:
        raise BrainalignError("language.corpus is not set: there is nothing to train on.")
    documents = read_corpus(lang["corpus"], lang["corpus_format"])
    if lang["max_documents"]:
        documents = documents[: lang["max_documents"]]
    train_docs, valid_docs = split_document_lists(documents, lang["valid_fraction"])
    vocab = WordVocabulary.build([t for doc in train_docs for t in doc], lang["vocab_size"])

    def stream(docs: list[list[str]]) -> list[int]:
        return [i for doc in docs for i in [vocab.bos_token_id, *vocab.encode(doc)]]

    train = stream(train_docs)
    if lang["max_tokens"]:
        train = train[: lang["max_tokens"]]
    return vocab, train, stream(valid_docs)


# --------------------------------------------------------------------------- words
def run_reading_words(cfg: dict[str, Any], out: str | os.PathLike) -> Path:
    """The word table: reading times, baseline predictors and the shipped predictors (bits)."""
    kind = get_kind(cfg)
    words = kind.reading_words(cfg)
    for name in cfg["reading"]["builtin_predictors"]:
        words[name] = kind.builtin_predictor(cfg, words, name).to_numpy()
    inputs = kind.input_files(cfg)
    return write_table(out, words, provenance(cfg, inputs, stage="reading_words"))


# --------------------------------------------------------------------------- training
def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def run_train_lm(cfg: dict[str, Any], name: str, out: str | os.PathLike, history_out: str | os.PathLike,
                 threads: int = 1, progress: bool = True) -> Path:
    """Train ``language.models.<name>`` on the corpus; write the checkpoint and the training curve."""
    from ..models.lm import build_language_model
    from ..models.training import save_language_model, train_lm

    lang = cfg["language"]
    if name not in lang["models"]:
        raise BrainalignError(f"language.models has no model {name!r}; defined: {list(lang['models'])}.")
    spec = lang["models"][name]
    settings = {**lang["training"], **spec["training"]}
    _set_threads(threads)
    vocab, train, valid = prepare_corpus(cfg)
    model = build_language_model(spec["architecture"], len(vocab), **spec["params"])
    device = resolve_device(cfg, field="language.device")
    result = train_lm(model, train, valid, device=device, progress=progress, **settings)
    history = result.history.assign(model=name)
    # Throughput is logged, not stored: outputs hold no timings, so that a rerun is byte-identical.
    logger.info("train_lm %s: %.0f training tokens/s (%d threads, %s)", name, result.tokens_per_second,
                threads, device)
    extra = {"training": result.settings, "best_step": result.best_step, "valid_perplexity": result.valid_perplexity,
             "stopped_early": result.stopped_early,
             "n_parameters": int(sum(p.numel() for p in model.parameters())),
             "n_trained_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
             "corpus": lang["corpus"]}
    write_table(history_out, history, provenance(cfg, [], stage="train_lm", model=name, **extra))
    return save_language_model(out, result.model, spec["architecture"], spec["params"], vocab, extra)


def run_ngram_lm(cfg: dict[str, Any], words_file: str | os.PathLike, out_perplexity: str | os.PathLike,
                 out_surprisal: str | os.PathLike) -> Path:
    """Fit the corpus n-gram baseline; write its held-out perplexity and its per-word surprisal."""
    from ..features.surprisal import story_tokens
    from ..models.ngram import NGramLM

    lang = cfg["language"]
    order = lang["ngram_order"]
    vocab, train, valid = prepare_corpus(cfg)
    model = NGramLM(order, len(vocab)).fit(train)
    perplexity = model.perplexity(valid)
    name = f"corpus_ngram{order}"
    write_table(out_perplexity, pd.DataFrame([{"model": name, "order": order, "valid_perplexity": perplexity,
                                               "train_tokens": len(train), "valid_tokens": len(valid)}]),
                provenance(cfg, [], stage="ngram_lm"))
    words = read_table(words_file, ["story", "zone", "word"])
    table = _empty_surprisal(words)
    for index, ids, owner in story_tokens(vocab, words["word"].tolist(), words["story"].to_numpy()):
        bits = model.surprisal([vocab.bos_token_id, *ids])[1:]
        table.loc[index, "surprisal"] = np.bincount(owner, weights=bits, minlength=len(index))
        table.loc[index, "n_tokens"] = np.bincount(owner, minlength=len(index))
        table.loc[index, "n_unknown"] = np.bincount(owner, weights=np.asarray(ids) == vocab.unk_token_id,
                                                    minlength=len(index)).astype(int)
    return write_table(out_surprisal, table, provenance(cfg, [words_file], stage="ngram_surprisal", model=name))


def _empty_surprisal(words: pd.DataFrame) -> pd.DataFrame:
    table = words[_WORD_KEYS].copy()
    for column in ("surprisal", "entropy"):
        table[column] = np.nan
    table["n_tokens"] = 0
    table["n_unknown"] = 0
    return table


# --------------------------------------------------------------------------- surprisal
def run_surprisal(cfg: dict[str, Any], name: str, words_file: str | os.PathLike, out: str | os.PathLike,
                  checkpoint: str | os.PathLike | None = None, threads: int = 1, progress: bool = True) -> Path:
    """Per-word surprisal and entropy (bits) of a trained model (``checkpoint``) or of ``language.hf_models.<name>``."""
    from ..features.surprisal import lm_word_surprisal

    _set_threads(threads)
    words = read_table(words_file, ["story", "zone", "word"])
    model, tokenizer, identity, window = _language_model(cfg, name, checkpoint)
    model.to(resolve_device(cfg, field="language.device"))
    inputs = [words_file] + ([checkpoint] if checkpoint is not None else [])
    values = lm_word_surprisal(model, tokenizer, words["word"].tolist(), words["story"].to_numpy(),
                               window=window, progress=progress)
    table = pd.concat([words[_WORD_KEYS].reset_index(drop=True), values], axis=1)
    return write_table(out, table, provenance(cfg, inputs, stage="surprisal", model=name, **identity))


def _language_model(cfg: dict[str, Any], name: str, checkpoint: str | os.PathLike | None
                    ) -> tuple[Any, Any, dict[str, Any], int | None]:
    """(model, tokenizer, identity, window) of a trained checkpoint or of ``language.hf_models.<name>``."""
    lang = cfg["language"]
    if checkpoint is not None:
        from ..models.training import load_language_model

        model, tokenizer, meta = load_language_model(checkpoint)
        return model, tokenizer, {"checkpoint": str(checkpoint), "architecture": meta["architecture"]}, None
    if name in lang["hf_models"]:
        spec = lang["hf_models"][name]
        from ..models.hf import load_causal_lm

        model, tokenizer = load_causal_lm(spec["model_path"])
        return model, tokenizer, {"model_path": spec["model_path"]}, spec["window"]
    raise BrainalignError(f"{name!r} is neither a trained model (give its checkpoint) nor in language.hf_models.")


def run_verbatim(cfg: dict[str, Any], name: str, out: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 threads: int = 1, progress: bool = True) -> Path:
    """Repeat surprisal of the verbatim-memory paradigm for one model, one row per trial (``verbatim/<name>.csv``)."""
    from ..features.verbatim import repeat_surprisal, verbatim_trials

    _set_threads(threads)
    spec = cfg["language"]["verbatim"]
    model, tokenizer, identity, _ = _language_model(cfg, name, checkpoint)
    model.to(resolve_device(cfg, field="language.device"))
    trials = verbatim_trials(spec["list_lengths"], spec["intervening_lengths"], spec["n_trials"], seed=spec["seed"])
    table = repeat_surprisal(model, tokenizer, trials, progress=progress)
    table.insert(0, "model", name)
    inputs = [checkpoint] if checkpoint is not None else []
    return write_table(out, table, provenance(cfg, inputs, stage="verbatim", model=name, **identity))


def _file_predictor(spec: dict[str, Any], n_words: int) -> np.ndarray:
    table = read_table(spec["path"], [spec["column"]])
    if len(table) != n_words:
        raise InputFileError(spec["path"], f"has {len(table)} rows but the dataset has {n_words} words "
                                           "(one row per word, in the dataset's word order).")
    values = pd.to_numeric(table[spec["column"]], errors="coerce").to_numpy(np.float64)
    scale = {"bits": 1.0, "nats": 1 / math.log(2), "log2prob": -1.0, "lnprob": -1 / math.log(2)}[spec["units"]]
    return values * scale


# --------------------------------------------------------------------------- scores
def run_reading_scores(cfg: dict[str, Any], words_file: str | os.PathLike, surprisal_files: list[str | os.PathLike],
                       history_files: list[str | os.PathLike], ngram_file: str | os.PathLike | None,
                       out_dir: str | os.PathLike) -> Path:
    """Futrell2018 and the regression gain of every predictor; ``scores.csv``, ``per_story.csv``, ``predictors.csv``."""
    from ..metrics.readingtimes import futrell2018_score, regression_gain

    reading, lang = cfg["reading"], cfg["language"]
    out_dir = Path(out_dir)
    words = read_table(words_file, ["story", "zone", "word", "rt", "sentence_initial", "position", "length"])
    words["sentence_initial"] = words["sentence_initial"].astype(bool)
    words["log_frequency"] = -words["ngram1"] if "ngram1" in words else np.nan
    if words["log_frequency"].isna().all():
        raise BrainalignError("the baseline needs unigram frequencies: keep 'ngram1' in reading.builtin_predictors.")
    sources = predictor_names(cfg)
    unknown: dict[str, int] = {}
    for path in surprisal_files:
        name = Path(path).stem
        table = read_table(path, [*_WORD_KEYS, "surprisal"])
        merged = words[_WORD_KEYS].merge(table, on=_WORD_KEYS, how="left", validate="one_to_one")
        values = merged["surprisal"].to_numpy()
        if "n_unknown" in merged:
            has_unknown = merged["n_unknown"].to_numpy() > 0
            unknown[name] = int(has_unknown.sum())
            if lang["unknown_words"] == "drop":
                values = np.where(has_unknown, np.nan, values)
        words[name] = values
    for name, spec in lang["predictor_files"].items():
        words[name] = _file_predictor(spec, len(words))
    perplexity = {}
    for path in history_files:
        hist = read_table(path, ["valid_perplexity"])
        perplexity[Path(path).stem.removesuffix("_history")] = float(hist["valid_perplexity"].min())
    if ngram_file:
        row = read_table(ngram_file, ["model", "valid_perplexity"]).iloc[0]
        perplexity[str(row["model"])] = float(row["valid_perplexity"])
    missing = [name for name in sources if name not in words]
    if missing:
        raise BrainalignError(f"predictor(s) {missing} have no values: their surprisal files were not given.")
    if reading["common_words"]:
        # One word set for every row: the words where every predictor has a value.
        defined = np.isfinite(words[list(sources)].to_numpy(np.float64)).all(axis=1)
        for name in sources:
            words[name] = np.where(defined, words[name].to_numpy(np.float64), np.nan)
    rows, per_story = [], []
    for name, source in sources.items():
        values = words[name].to_numpy(np.float64)
        fut = futrell2018_score(values, words["rt"], words["sentence_initial"], ceiling=reading["ceiling"])
        gain = regression_gain(words, name, spillover=reading["spillover"], log_rt=reading["log_rt"],
                               n_permutations=reading["n_permutations"], random_state=0)
        architecture = (lang["models"][name]["architecture"] if source == "trained"
                        else "ngram" if source in ("builtin", "corpus_ngram") and name != "gpt3"
                        else "gpt3" if name == "gpt3" else source)
        rows.append({"dataset": cfg["dataset"]["name"], "predictor": name, "source": source,
                     "architecture": architecture, "metric_futrell2018": fut.raw, "ceiling": fut.ceiling,
                     "normalized_futrell2018": fut.normalized, "n_words": fut.n_words,
                     "delta_loglik": gain.delta_loglik, "delta_r2": gain.delta_r2, "r2_baseline": gain.r2_baseline,
                     "r2_full": gain.r2_full, "p_value": gain.p_value, "n_permutations": reading["n_permutations"],
                     "valid_perplexity": perplexity.get(name, np.nan), "n_unknown_words": unknown.get(name, 0)})
        by_story = gain.per_group.set_index("group")
        for story, group in words.groupby("story", sort=True):
            try:
                story_fut = futrell2018_score(group[name], group["rt"], group["sentence_initial"], reading["ceiling"])
                raw, n_words = story_fut.raw, story_fut.n_words
            except BrainalignError:  # fewer than 3 scored words in this story
                raw, n_words = np.nan, int((group[name].notna() & ~group["sentence_initial"]).sum())
            held_out = by_story.loc[story] if story in by_story.index else {"delta_loglik": np.nan, "delta_r2": np.nan}
            per_story.append({"predictor": name, "story": story, "metric_futrell2018": raw, "n_words": n_words,
                              "delta_loglik": held_out["delta_loglik"], "delta_r2": held_out["delta_r2"]})
    inputs = [words_file, *surprisal_files, *history_files, *([ngram_file] if ngram_file else [])]
    prov = provenance(cfg, inputs, stage="reading_scores")
    write_table(out_dir / "per_story.csv", pd.DataFrame(per_story), prov)
    keep = ["story", "zone", "word", "rt", "sentence_initial", "position", "length", "log_frequency", *sources]
    write_table(out_dir / "predictors.csv", words[keep], prov)
    return write_table(out_dir / "scores.csv", pd.DataFrame(rows, columns=READING_SCORE_COLUMNS), prov)
