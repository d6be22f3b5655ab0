"""Contextual word features from transformer models: one vector per word per layer.

Each word is represented by the hidden state of **its own last sub-token**
(never a special token such as ``[CLS]``/``[SEP]``), computed with the
preceding words of the same run as context: the input for word ``i`` is
``words[i - context_words + 1 : i + 1]`` joined by spaces, wrapped in the
tokenizer's special tokens, and truncated *from the left* to the model's
maximum length. This is how Brain-Score Language feeds text (the representation
of a part is its last token, computed with the preceding parts as context).

Words are tokenized one at a time and their token ids concatenated, which is
identical to tokenizing the joined text for WordPiece tokenizers (BERT,
MiniLM) and, with a leading space per word, for byte-level BPE (GPT-2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._validation import BrainalignError

__all__ = ["word_windows", "extract_word_features"]

logger = logging.getLogger("brainalign")


def _needs_prefix_space(tokenizer: Any) -> bool:
    joined = tokenizer.tokenize("hello world")
    return joined != tokenizer.tokenize("hello") + tokenizer.tokenize("world")


def _tokenize_words(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    prefix = " " if _needs_prefix_space(tokenizer) else ""
    cache: dict[str, list[int]] = {}
    unk = tokenizer.unk_token_id
    out = []
    for i, word in enumerate(words):
        # Key on the text tokenized: the first word has no prefix space, its repeats do.
        text = prefix + word if i else word
        if text not in cache:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
            if not ids:
                if unk is None:
                    raise BrainalignError(f"word {word!r} (row {i}) produces no token.")
                logger.warning("word %r produces no token; using the unknown token", word)
                ids = [unk]
            cache[text] = ids
        out.append(cache[text])
    return out


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single sequence."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("hello", add_special_tokens=True)["input_ids"]
    for start in range(len(wrapped) - len(plain) + 1):
        if wrapped[start:start + len(plain)] == plain:
            return list(wrapped[:start]), list(wrapped[start + len(plain):])
    raise BrainalignError("cannot locate the content tokens among the tokenizer's special tokens.")


def word_windows(
    tokenizer: Any,
    words: Sequence[str],
    runs: Sequence[int],
    context_words: int,
    max_length: int,
) -> tuple[list[list[int]], np.ndarray]:
    """Build one input sequence per word and the position of the word's last sub-token.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    words : sequence of str, length n_words
    runs : sequence of int, length n_words
        Run (story) label of each word; context never crosses a run boundary.
    context_words : int
        Number of words in each window, the word itself included (≥ 1).
    max_length : int
        Maximum sequence length in tokens, special tokens included.

    Returns
    -------
    sequences : list of list of int, length n_words
        Token ids with special tokens.
    positions : ndarray of shape (n_words,)
        Index of each word's last sub-token within its sequence.
    """
    if context_words < 1:
        raise BrainalignError(f"'context_words' must be >= 1, got {context_words}.")
    prefix, suffix = _special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise BrainalignError(f"'max_length' {max_length} leaves no room for tokens.")
    token_ids = _tokenize_words(tokenizer, words)
    runs = np.asarray(runs)
    sequences: list[list[int]] = []
    positions = np.empty(len(words), dtype=np.int64)
    run_start = 0
    for i in range(len(words)):
        if i > 0 and runs[i] != runs[i - 1]:
            run_start = i
        first = max(run_start, i - context_words + 1)
        content = [t for j in range(first, i + 1) for t in token_ids[j]][-budget:]
        sequences.append(prefix + content + suffix)
        positions[i] = len(prefix) + len(content) - 1
    return sequences, positions


def extract_word_features(
    model: Any,
    tokenizer: Any,
    words: Sequence[str],
    runs: Sequence[int],
    *,
    context_words: int = 32,
    max_length: int = 512,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Hidden states of every word's last sub-token, for every requested layer.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An encoder or decoder returning ``hidden_states``.
    tokenizer : transformers tokenizer
    words : sequence of str, length n_words
    runs : sequence of int, length n_words
    context_words : int
        Words per window (the word and its preceding context).
    max_length : int
        Left-truncation limit in tokens.
    layers : sequence of int or None
        Hidden-state indices (0 = embeddings, k = output of block k); None for all.
    batch_size : int
        Sequences per forward pass; windows are sorted by length so that
        padding is minimal. The order is deterministic.
    progress : bool
        Show a progress bar.

    Returns
    -------
    features : dict of str to ndarray of shape (n_words, hidden_size), float32
        Keyed by layer index as a string, in increasing order.
    """
    import torch

    sequences, positions = word_windows(tokenizer, words, runs, context_words, max_length)
    n_hidden = int(model.config.num_hidden_layers) + 1
    wanted = list(range(n_hidden)) if layers is None else [int(k) for k in layers]
    bad = [k for k in wanted if not 0 <= k < n_hidden]
    if bad:
        raise BrainalignError(f"layers {bad} out of range: the model has hidden states 0..{n_hidden - 1}.")
    hidden = int(model.config.hidden_size)
    out = {str(k): np.empty((len(words), hidden), dtype=np.float32) for k in wanted}
    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    device = next(model.parameters()).device  # inputs go where the model is; features come back to the CPU
    with torch.inference_mode():
        for batch in tqdm(batches, desc="words", unit="batch", disable=not progress, mininterval=2):
            width = max(len(sequences[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
                mask[row, : len(sequences[i])] = 1
            states = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True).hidden_states
            rows = torch.arange(len(batch))
            pos = torch.as_tensor(positions[batch])
            for k in wanted:
                out[str(k)][batch] = states[k][rows, pos].float().cpu().numpy()
    return out
