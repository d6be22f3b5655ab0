"""Natural Stories (Futrell et al. 2018): self-paced reading times, n-gram counts and GPT-3 log-probabilities.

Reads the files of the Natural Stories release as laid out in
``../shared/data/naturalstories`` (a path the user gives; nothing is copied):

``processed_wordinfo.tsv``
    One row per word (``item`` = story 1–10, ``zone`` = word index), with the
    mean reading time over readers ``meanItemRT`` (ms) and their number ``nItem``.
``freqs/freqs-N.tsv``
    Google Books counts: per token code ``story.zone.word``, the count of the
    N-gram ending in the word and of its (N−1)-word context, within the
    sentence (so sentence-initial words have no N ≥ 2 row).
``probs/all_stories_gpt3.csv``
    GPT-3 (davinci) token log-probabilities (natural log) with character
    offsets into each story's text (its words joined by single spaces).

:func:`load_words` returns the word table every reading-time score uses;
:func:`ngram_surprisal` and :func:`gpt3_surprisal` give per-word surprisal in
bits aligned to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from typing import Any

from .._validation import ConfigError, InputFileError, check_fname, resolve_against
from .registry import ReadingKind

__all__ = ["load_words", "ngram_surprisal", "gpt3_surprisal", "word_letters", "builtin_predictor",
           "BUILTIN_PREDICTORS", "NaturalStoriesKind"]

#: Predictors the release ships, computed by :func:`builtin_predictor`.
BUILTIN_PREDICTORS = ("ngram1", "ngram2", "ngram3", "ngram4", "gpt3")

_WORDINFO = "processed_wordinfo.tsv"


def _read(path: Path, what: str, required: list[str], **kwargs) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputFileError(path, f"cannot read {what} ({err}).") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputFileError(path, f"column(s) {missing} missing from {what}; found {list(table.columns)}.")
    return table


def word_letters(word: str) -> int:
    """Number of letters and digits in ``word`` (punctuation not counted)."""
    return sum(ch.isalnum() for ch in str(word))


def load_words(root: str | os.PathLike) -> pd.DataFrame:
    """The Natural Stories word table with mean reading times.

    Parameters
    ----------
    root : str or path-like
        The Natural Stories folder (with ``processed_wordinfo.tsv``).

    Returns
    -------
    DataFrame, one row per word in reading order
        ``story`` (1–10), ``zone`` (word index in the story), ``word`` (with
        punctuation), ``rt`` (mean reading time, ms), ``n_readers``,
        ``sentence_initial`` (bool), ``position`` (= zone), ``length``
        (letters), ``code`` (``story.zone``).
    """
    root = check_fname(root, "directory", "Natural Stories folder")
    path = check_fname(root / _WORDINFO, "file", "Natural Stories word table")
    info = _read(path, "the word table", ["word", "zone", "item", "nItem", "meanItemRT"], sep="\t",
                 keep_default_na=False, na_values=["NA", ""])
    if info.duplicated(["item", "zone"]).any():
        dup = info[info.duplicated(["item", "zone"], keep=False)].iloc[0]
        raise InputFileError(path, f"item {dup['item']} zone {dup['zone']} appears twice.")
    info = info.sort_values(["item", "zone"], kind="stable").reset_index(drop=True)
    table = pd.DataFrame({
        "story": info["item"].astype(int),
        "zone": info["zone"].astype(int),
        "word": info["word"].astype(str),
        "rt": info["meanItemRT"].astype(np.float64),
        "n_readers": info["nItem"].astype(int),
    })
    # Imported here: the registry imports every kind to build the config schema, in every job.
    from ..metrics.readingtimes import sentence_initial

    table["sentence_initial"] = sentence_initial(table["word"].tolist(), table["story"].to_numpy())
    table["position"] = table["zone"].astype(np.float64)
    table["length"] = table["word"].map(word_letters).astype(np.float64)
    table["code"] = table["story"].astype(str) + "." + table["zone"].astype(str)
    return table


def _ngram_counts(root: Path, order: int) -> pd.DataFrame:
    path = check_fname(root / "freqs" / f"freqs-{order}.tsv", "file", f"{order}-gram counts")
    counts = _read(path, f"the {order}-gram counts", ["code", "count", "context"], sep="\t", header=None,
                   names=["code", "order", "token", "count", "context"], keep_default_na=False,
                   na_values=["NA"], dtype={"code": str, "token": str})
    # "story.zone.word": the word without its punctuation, conditioned on the previous words.
    words = counts[counts["code"].str.endswith(".word")]
    return pd.DataFrame({"code": words["code"].str[: -len(".word")],
                         "count": words["count"].astype(np.float64),
                         "context": words["context"].astype(np.float64)}).drop_duplicates("code")


def ngram_surprisal(root: str | os.PathLike, words: pd.DataFrame, order: int) -> pd.Series:
    """Per-word n-gram surprisal (bits) from the Google Books counts, with back-off.

    ``-log2(count(n-gram) / count(context))``, the MLE conditional probability
    (``freqs/README.md``). Where the n-gram is unseen (count 0) or the word
    has no order-``n`` row (near a sentence start), the next lower order is
    used; unigram probabilities are ``count / N`` with ``N`` the summed counts
    of the corpus's distinct words (the Google Books total is not shipped, so
    unigram surprisal is defined up to an additive constant, which changes
    neither a correlation nor a regression with an intercept). Words with a
    zero unigram count get NaN.

    Parameters
    ----------
    root : str or path-like
        The Natural Stories folder.
    words : DataFrame
        From :func:`load_words` (uses ``code``).
    order : int
        1 to 4.

    Returns
    -------
    Series of float64 aligned to ``words``
        ``attrs["backoff"]``: words that used a lower order.
    """
    if order not in (1, 2, 3, 4):
        raise ValueError(f"order must be 1, 2, 3 or 4 (the shipped counts), got {order!r}.")
    root = check_fname(root, "directory", "Natural Stories folder")
    uni = _ngram_counts(root, 1)
    total = float(uni.drop_duplicates("code")["count"].sum())
    result = pd.Series(np.nan, index=words.index, dtype=np.float64)
    used = pd.Series(0, index=words.index)
    for n in range(order, 0, -1):
        counts = _ngram_counts(root, n).set_index("code")
        todo = result.isna()
        if not todo.any():
            break
        match = counts.reindex(words.loc[todo, "code"])
        denom = match["context"].to_numpy() if n > 1 else np.full(len(match), total)
        ok = (match["count"].to_numpy() > 0) & (denom > 0)
        bits = np.where(ok, -np.log2(np.where(ok, match["count"].to_numpy(), 1.0) / np.where(ok, denom, 1.0)), np.nan)
        result.loc[todo] = bits
        used.loc[todo[todo].index[ok]] = n
    out = result.rename(f"ngram{order}")
    out.attrs["backoff"] = int(((used > 0) & (used < order)).sum())
    return out


def gpt3_surprisal(root: str | os.PathLike, words: pd.DataFrame) -> pd.Series:
    """Per-word GPT-3 surprisal (bits), summing the log-probabilities of each word's tokens.

    Tokens are assigned to the word holding their first non-space character,
    using the character offsets into the story text (the story's words joined
    by single spaces). A story's first token has no log-probability, so the
    story's first word gets NaN.

    Parameters
    ----------
    root : str or path-like
        The Natural Stories folder (with ``probs/all_stories_gpt3.csv``).
    words : DataFrame
        From :func:`load_words`.

    Returns
    -------
    Series of float64 aligned to ``words``
    """
    root = check_fname(root, "directory", "Natural Stories folder")
    path = check_fname(root / "probs" / "all_stories_gpt3.csv", "file", "GPT-3 log-probabilities")
    probs = _read(path, "the GPT-3 log-probabilities", ["token", "logprob", "offset", "story"],
                  keep_default_na=False, na_values=[""], dtype={"token": str})
    out = pd.Series(np.nan, index=words.index, dtype=np.float64, name="gpt3")
    for story, group in words.groupby("story", sort=False):
        tokens = probs[probs["story"] == story - 1]  # stories are numbered from 0 in this file
        if tokens.empty:
            raise InputFileError(path, f"no tokens for story {story} (column 'story' = {story - 1}).")
        lengths = group["word"].str.len().to_numpy()
        starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        text_length = int(lengths.sum() + len(lengths) - 1)
        token_text = tokens["token"].fillna("").to_numpy(str)
        first_char = tokens["offset"].to_numpy(int) + (np.char.str_len(token_text) - np.char.str_len(np.char.lstrip(token_text)))
        if first_char.max() >= text_length:
            raise InputFileError(path, f"story {story}: a token offset ({int(first_char.max())}) lies past the "
                                 f"story text ({text_length} characters); is this the same corpus?")
        word_of_token = np.searchsorted(starts, first_char, side="right") - 1
        bits = -tokens["logprob"].to_numpy(np.float64) / np.log(2)
        sums = pd.Series(bits).groupby(word_of_token).sum()
        has_nan = pd.Series(np.isnan(bits)).groupby(word_of_token).any()
        sums[has_nan] = np.nan
        values = np.full(len(group), np.nan)
        values[sums.index.to_numpy()] = sums.to_numpy()
        out.loc[group.index] = values
    return out


def builtin_predictor(root: str | os.PathLike, words: pd.DataFrame, name: str) -> pd.Series:
    """A shipped predictor by name: ``ngram1`` … ``ngram4`` (:func:`ngram_surprisal`) or ``gpt3``."""
    if name == "gpt3":
        return gpt3_surprisal(root, words)
    if name in BUILTIN_PREDICTORS:
        return ngram_surprisal(root, words, int(name[-1]))
    raise ValueError(f"unknown Natural Stories predictor {name!r}; available: {list(BUILTIN_PREDICTORS)}.")


class NaturalStoriesKind(ReadingKind):
    """Natural Stories self-paced reading times (Futrell et al. 2018), ``dataset.data_dir`` = the release folder."""

    name = "naturalstories"
    required = ("data_dir",)

    def reading_words(self, cfg: dict[str, Any]) -> pd.DataFrame:
        return load_words(cfg["dataset"]["data_dir"])

    def builtin_predictor(self, cfg: dict[str, Any], words: pd.DataFrame, name: str) -> pd.Series:
        return builtin_predictor(cfg["dataset"]["data_dir"], words, name)

    def check_config(self, cfg: dict[str, Any], path: str | os.PathLike | None) -> None:
        super().check_config(cfg, path)
        unknown = [p for p in cfg["reading"]["builtin_predictors"] if p not in BUILTIN_PREDICTORS]
        if unknown:
            raise ConfigError(path, "reading.builtin_predictors",
                              f"unknown predictor(s) {unknown}; naturalstories ships {list(BUILTIN_PREDICTORS)}.")
        lang = cfg["language"]
        if lang["models"] and not lang["corpus"]:
            raise ConfigError(path, "language.corpus", "is required to train language.models.")
        names = [*cfg["reading"]["builtin_predictors"], *lang["models"], *lang["hf_models"], *lang["predictor_files"]]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(path, "language", f"predictor name(s) {repeated} are used twice (builtin predictors, "
                                                "models, hf_models and predictor_files share one namespace).")
        if not names:
            raise ConfigError(path, "language.models", "no predictor to score: give models, hf_models, "
                                                       "predictor_files or reading.builtin_predictors.")

    def resolve(self, cfg: dict[str, Any], base: Path) -> None:
        lang = cfg["language"]
        if lang["corpus"]:
            lang["corpus"] = resolve_against(base, lang["corpus"])
        for spec in lang["hf_models"].values():
            spec["model_path"] = resolve_against(base, spec["model_path"])
        for spec in lang["predictor_files"].values():
            spec["path"] = resolve_against(base, spec["path"])

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return []  # mean reading times over readers; per-reader times are not in the release

    def input_files(self, cfg: dict[str, Any], subject: str | None = None) -> list[Path]:
        root = Path(cfg["dataset"]["data_dir"])
        return [root / _WORDINFO]

    def credit(self, cfg: dict[str, Any]) -> str:
        return ("Natural Stories corpus (Futrell et al. 2018, Language Resources and Evaluation), mean self-paced "
                "reading times per word; Google Books n-gram counts and GPT-3 log-probabilities from its release.")
