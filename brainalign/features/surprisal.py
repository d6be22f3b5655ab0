"""Per-word surprisal and entropy from language models, in bits.

Surprisal of a word = ``-log2 p(word | preceding words)``, summed over the
word's sub-tokens (the first conditioned on the context, each next one also on
the word's earlier sub-tokens; ``docs/language.md``). Entropy = the entropy
(bits) of the model's next-token distribution before the word's first
sub-token. Words are split into sub-tokens by the feature extraction's rule
(:func:`brainalign.features.words._tokenize_words`: a word at a time, with a
leading space for byte-level BPE), so surprisal and activations see the same tokens.

Each story is one token sequence that starts with the tokenizer's BOS token
where it has one (GPT-2's ``<|endoftext|>``, Llama's ``<s>``, ``<bos>`` of a
:class:`~brainalign.stimuli.corpus.WordVocabulary`); without one, the story's
first word has no surprisal (NaN). A story longer than ``window`` tokens is
read in windows that advance by ``stride``: every token is scored once, in the
first window where it is past the previous window's end, so it always has at
least ``window - stride`` tokens of context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._validation import BrainalignError

__all__ = ["lm_word_surprisal", "token_surprisal", "story_tokens", "surprisal_regressor"]

_LN2 = math.log(2.0)


def story_tokens(tokenizer: Any, words: Sequence[str], groups: Sequence[Any] | None = None
                 ) -> list[tuple[np.ndarray, list[int], np.ndarray]]:
    """Per story: the word indices, the token ids and the word of each token.

    Parameters
    ----------
    tokenizer : transformers tokenizer or WordVocabulary
    words : sequence of str, length n_words
    groups : sequence, optional
        Story label of each word (contiguous); one story when None.

    Returns
    -------
    list of (word_index [n_story_words], token_ids, token_word [n_tokens])
        ``token_word`` indexes into ``word_index``.
    """
    from .words import _tokenize_words

    token_ids = _tokenize_words(tokenizer, words)
    labels = np.zeros(len(words), dtype=int) if groups is None else np.asarray(groups)
    if len(labels) != len(words):
        raise BrainalignError(f"groups has {len(labels)} labels for {len(words)} words.")
    cuts = [0] + [i for i in range(1, len(words)) if labels[i] != labels[i - 1]] + [len(words)]
    if len(cuts) - 1 != len(pd.unique(labels)):
        raise BrainalignError("the words of each story must be contiguous.")
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        ids = [t for i in range(a, b) for t in token_ids[i]]
        owner = np.repeat(np.arange(b - a), [len(token_ids[i]) for i in range(a, b)])
        out.append((np.arange(a, b), ids, owner))
    return out


def _bos(tokenizer: Any, bos_token_id: int | str | None) -> int | None:
    if bos_token_id != "auto":
        return bos_token_id  # type: ignore[return-value]
    for name in ("bos_token_id", "eos_token_id"):  # GPT-2 marks a document start with its EOS token
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def _max_positions(model: Any, n: int) -> int:
    """The model's position limit (``transformers`` config), else ``n`` (recurrent models, SUMA)."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        limit = getattr(config, name, None)
        if isinstance(limit, int) and limit > 1:
            return min(n, limit)
    return n


def token_surprisal(model: Any, ids: Sequence[int], *, window: int | None = None, stride: int | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Surprisal and entropy (bits) of every token of one sequence after the first.

    Parameters
    ----------
    model : nn.Module
        A language model (:func:`~brainalign.models.lm.next_token_logits`).
    ids : sequence of int, length n
    window : int or None
        Maximum tokens per forward pass; None: the model's position limit
        (``transformers`` configs), else the whole sequence at once.
    stride : int or None
        Tokens a window advances (default ``window // 2``).

    Returns
    -------
    surprisal, entropy : ndarray of float64, shape (n,)
        Position 0 is NaN (nothing predicts it); ``entropy[p]`` is that of the
        distribution which predicts token ``p``.
    """
    import torch

    from ..models.lm import next_token_logits

    n = len(ids)
    surprisal = np.full(n, np.nan)
    entropy = np.full(n, np.nan)
    if n < 2:
        return surprisal, entropy
    window = _max_positions(model, n) if window is None else int(window)
    stride = max(1, window // 2) if stride is None else int(stride)
    if window < 2 or (window < n and not 1 <= stride <= window - 1):
        raise BrainalignError(f"window must be >= 2 and 1 <= stride < window, got window={window}, stride={stride}.")
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    tensor = torch.as_tensor(list(ids), dtype=torch.long, device=None if parameter is None else parameter.device)
    scored_until = 1  # first position not yet scored
    start = 0
    with torch.inference_mode():
        while scored_until < n:
            end = min(start + window, n)
            logits = next_token_logits(model, tensor[start:end][None])[0].double().cpu()
            logp = torch.log_softmax(logits, dim=-1)
            # logits at index j (absolute start + j) predict position start + j + 1.
            positions = np.arange(max(scored_until, start + 1), end)
            rows = torch.as_tensor(positions - start - 1)
            targets = tensor.cpu()[positions]
            chosen = logp[rows, targets]
            surprisal[positions] = (-chosen / _LN2).numpy()
            entropy[positions] = (-(logp[rows].exp() * logp[rows]).sum(-1) / _LN2).numpy()
            scored_until = end
            start += stride
            if end == n:
                break
    return surprisal, entropy


def lm_word_surprisal(model: Any, tokenizer: Any, words: Sequence[str], groups: Sequence[Any] | None = None, *,
                      bos_token_id: int | str | None = "auto", window: int | None = None,
                      stride: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-word surprisal and entropy (bits) of a causal language model.

    Parameters
    ----------
    model : nn.Module
        HF causal LM, :class:`~brainalign.models.rnn.HeadwiseRNNLM`,
        :class:`~brainalign.models.lm.SUMALanguageModel`, in eval mode.
    tokenizer : transformers tokenizer or WordVocabulary
    words : sequence of str, length n_words
    groups : sequence, optional
        Story labels (contiguous); context never crosses a story.
    bos_token_id : int, "auto" or None
        Token read before each story; "auto": the tokenizer's BOS (else EOS).
    window, stride : int or None
        Token windows for long stories (:func:`token_surprisal`); None: a
        transformer's position limit, or one pass per story (recurrent models, SUMA).
    progress : bool, default=True

    Returns
    -------
    DataFrame with ``n_words`` rows
        ``surprisal`` (bits, summed over sub-tokens), ``entropy`` (bits),
        ``n_tokens``, ``n_unknown`` (sub-tokens that are the unknown token).
    """
    bos = _bos(tokenizer, bos_token_id)
    unk = getattr(tokenizer, "unk_token_id", None)
    n_words = len(words)
    result = pd.DataFrame({"surprisal": np.full(n_words, np.nan), "entropy": np.full(n_words, np.nan),
                           "n_tokens": np.zeros(n_words, dtype=int), "n_unknown": np.zeros(n_words, dtype=int)})
    stories = story_tokens(tokenizer, words, groups)
    for word_index, ids, owner in tqdm(stories, desc="surprisal", unit="story", disable=not progress, mininterval=2):
        offset = 0 if bos is None else 1
        seq = ([bos] if bos is not None else []) + list(ids)
        bits, ent = token_surprisal(model, seq, window=window, stride=stride)
        bits, ent = bits[offset:], ent[offset:]
        per_word = pd.Series(bits).groupby(owner)
        sums = per_word.sum(min_count=1).to_numpy().copy()
        sums[per_word.apply(lambda s: s.isna().any()).to_numpy()] = np.nan
        first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
        result.loc[word_index, "surprisal"] = sums
        result.loc[word_index, "entropy"] = ent[first]
        result.loc[word_index, "n_tokens"] = np.bincount(owner, minlength=len(word_index))
        if unk is not None:
            result.loc[word_index, "n_unknown"] = np.bincount(owner, weights=np.asarray(ids) == unk,
                                                              minlength=len(word_index)).astype(int)
    return result


def surprisal_regressor(spec: dict[str, Any], words: Sequence[str], groups: Sequence[Any], progress: bool = True
                        ) -> tuple[np.ndarray, dict[str, Any]]:
    """A ``surprisal`` feature set: per-word surprisal (bits) of the set's model, one column.

    Parameters
    ----------
    spec : dict
        The feature set: ``checkpoint`` (a ``train-lm`` file) or ``model_path``
        (a local Hugging Face causal LM).
    words, groups : sequences
        Words and their story labels (context never crosses a story).

    Returns
    -------
    values : ndarray of shape (n_words, 1)
        Missing surprisals (a story's first word without a BOS token) are set
        to the mean of the others, so that the regressor has no gap.
    identity : dict
        What was run (checkpoint or model path, missing words filled).
    """
    if spec.get("checkpoint"):
        from ..models.training import load_language_model

        model, tokenizer, meta = load_language_model(spec["checkpoint"])
        identity: dict[str, Any] = {"checkpoint": str(spec["checkpoint"]), "architecture": meta["architecture"]}
    elif spec.get("model_path"):
        from ..models.hf import load_causal_lm

        model, tokenizer = load_causal_lm(spec["model_path"])
        identity = {"model_path": str(spec["model_path"])}
    else:
        raise BrainalignError("a surprisal feature set needs 'checkpoint' (train-lm) or 'model_path' (a causal LM).")
    table = lm_word_surprisal(model, tokenizer, list(words), groups, progress=progress)
    values = table["surprisal"].to_numpy(np.float64).copy()
    missing = ~np.isfinite(values)
    if missing.all():
        raise BrainalignError("the language model gave no finite surprisal for any word.")
    values[missing] = values[~missing].mean()
    identity.update(units="bits", filled_with_mean=int(missing.sum()), words_with_unknown=int((table["n_unknown"] > 0).sum()))
    return values[:, None], identity
