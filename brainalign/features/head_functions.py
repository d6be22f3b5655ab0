"""Functional scores of attention heads: previous-token, induction, copy (retrieval) and successor heads.

Definitions (``docs/language.md``, ``../shared/notes/anchors.md``):

* **previous-token** — mean attention from position ``t`` to ``t − 1``;
* **induction** (Olsson et al. 2022) — a random token sequence of length
  ``L`` shown twice; from each position ``t`` of the second copy, the attention
  to the position right after the earlier occurrence of the same token
  (``t − L + 1``); ideal head 1, a uniform causal head about ``1/t``;
* **copy / retrieval** (Wu et al. 2024) — a needle of random tokens inside a
  random haystack, then the needle again; at each step of the repeat where the
  next token is a needle token ``w`` (and, for a model with an LM head, where
  the model's top prediction is ``w``), the head copy-pastes when its top-1
  attention is on the needle position holding ``w``; the score is the
  fraction of such steps, over trials (teacher forcing replaces generation);
* **successor** (Gould et al. 2023) — on ordinal sequences (digits, number
  words, days, months, letters) the head's OV circuit applied to each token's
  effective embedding (the first MLP's output on the embedding, as in the
  paper), read out through the unembedding restricted to that sequence's
  tokens, ranks the successor first; the score is the fraction of tokens where
  it does. Causal LMs with an unembedding only (GPT-2 and Llama layouts);
  other models get NaN and the reason.

The pattern scores (:func:`previous_token_score`, :func:`induction_score`,
:func:`copy_score`) are pure functions of attention tensors and are tested on
hand-built patterns; :func:`head_function_scores` runs them on a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError

__all__ = ["previous_token_score", "induction_score", "copy_score", "successor_score", "head_function_scores",
           "relate_head_scores", "ORDINAL_SEQUENCES", "HEAD_FUNCTIONS"]

HEAD_FUNCTIONS = ("previous_token", "induction", "copy", "successor")

#: Ordinal sequences of Gould et al. (2023), as words (each tokenized with a leading space where the tokenizer needs one).
ORDINAL_SEQUENCES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(1, 10)],
    "numbers": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
    "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "months": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December"],
    "letters": list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
}


def _as_attention(att: Any) -> np.ndarray:
    a = np.asarray(att, dtype=np.float64)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise BrainalignError(f"attention must have shape [batch, heads, T, T], got {a.shape}.")
    return a


def previous_token_score(att: Any) -> np.ndarray:
    """Mean attention from ``t`` to ``t − 1`` over positions ``t >= 1`` and sequences; shape (n_heads,)."""
    a = _as_attention(att)
    t = np.arange(1, a.shape[-1])
    return a[:, :, t, t - 1].mean(axis=(0, 2))


def induction_score(att: Any, length: int, offset: int = 0) -> np.ndarray:
    """Attention from the second copy to the token after the first occurrence; shape (n_heads,).

    Parameters
    ----------
    att : array of shape [batch, heads, T, T]
        On sequences ``prefix (offset tokens) + x + x`` with ``len(x) = length``.
    length : int
        ``L``.
    offset : int, default=0
        Tokens before the first copy (a BOS or CLS token).
    """
    a = _as_attention(att)
    if a.shape[-1] < offset + 2 * length:
        raise BrainalignError(f"attention covers {a.shape[-1]} positions; need offset + 2 * length = {offset + 2 * length}.")
    t = np.arange(offset + length, offset + 2 * length)
    return a[:, :, t, t - length + 1].mean(axis=(0, 2))


def copy_score(att: Any, steps: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Fraction of copy steps where a head's top-1 attention is on the source position; shape (n_heads,).

    Parameters
    ----------
    att : array of shape [batch, heads, T, T]
    steps : sequence of (sequence index, query position, source position)
        Query position ``t`` predicts a needle token whose occurrence in the
        needle is at the source position.
    """
    a = _as_attention(att)
    if not steps:
        return np.full(a.shape[1], np.nan)
    hits = np.zeros(a.shape[1])
    for b, t, source in steps:
        hits += np.argmax(a[b, :, t, :], axis=-1) == source
    return hits / len(steps)


# --------------------------------------------------------------------------- running models
def _attentions(model: Any, ids: Any) -> list[np.ndarray]:
    """Attention probabilities of every layer, [B, heads, T, T] each (HF ``output_attentions`` or SUMA)."""
    import torch

    with torch.inference_mode():
        if hasattr(model, "attention_probs"):
            return [a.double().numpy() for a in model.attention_probs(ids)]
        out = model(input_ids=ids, output_attentions=True)
    if not getattr(out, "attentions", None):
        raise BrainalignError(f"{type(model).__name__} returns no attention weights (load it with "
                              "attn_implementation='eager').")
    return [a.double().numpy() for a in out.attentions]


def _unembedding(model: Any) -> Any:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if getter else None
    return None if head is None else head.weight


def _ov_circuits(model: Any) -> tuple[list[Any], Any, str] | tuple[None, None, str]:
    """Per layer, the (heads, d_model, d_model) OV matrices, the effective-embedding function, or a reason.

    Layer norms inside the circuit are left out (their gains fold into a per-dimension scale).
    """
    base = getattr(model, "transformer", None) or getattr(model, "model", None)
    if _unembedding(model) is None:
        return None, None, "no unembedding (not a causal LM with an output head)"
    cfg = model.config
    n_heads = cfg.num_attention_heads
    d = cfg.hidden_size
    dh = d // n_heads
    if hasattr(base, "h") and hasattr(base.h[0], "attn") and hasattr(base.h[0].attn, "c_attn"):  # GPT-2
        ovs = []
        for block in base.h:
            w = block.attn.c_attn.weight  # Conv1D [d, 3d]: x @ w
            wv = w[:, 2 * d:].reshape(d, n_heads, dh).permute(1, 0, 2)  # [H, d, dh]
            wo = block.attn.c_proj.weight.reshape(n_heads, dh, d)  # [H, dh, d]
            ovs.append(wv @ wo)

        def effective(ids: Any) -> Any:
            x = base.wte(ids)
            block = base.h[0]
            return x + block.mlp(block.ln_2(x))

        return ovs, effective, ""
    if hasattr(base, "layers") and hasattr(base.layers[0], "self_attn") and hasattr(base.layers[0].self_attn, "v_proj"):
        n_kv = getattr(cfg, "num_key_value_heads", n_heads)
        ovs = []
        for layer in base.layers:
            wv = layer.self_attn.v_proj.weight.T.reshape(d, n_kv, dh).permute(1, 0, 2)
            wv = wv.repeat_interleave(n_heads // n_kv, dim=0)
            wo = layer.self_attn.o_proj.weight.T.reshape(n_heads, dh, d)
            ovs.append(wv @ wo)

        def effective(ids: Any) -> Any:
            x = base.embed_tokens(ids)
            layer = base.layers[0]
            return x + layer.mlp(layer.post_attention_layernorm(x))

        return ovs, effective, ""
    return None, None, f"OV circuits of model_type {getattr(cfg, 'model_type', '?')!r} are not mapped (GPT-2 and Llama are)"


def successor_score(model: Any, tokenizer: Any, sequences: dict[str, list[str]] | None = None
                    ) -> tuple[np.ndarray | None, str]:
    """Per layer and head, the fraction of ordinal tokens whose successor the OV circuit ranks first.

    Returns
    -------
    scores : ndarray of shape (n_layers, n_heads) or None
    reason : str
        Why there are no scores ("" when there are).
    """
    import torch

    ovs, effective, reason = _ov_circuits(model)
    if ovs is None:
        return None, reason
    unembed = _unembedding(model)
    prefix = " " if tokenizer.tokenize("a b") != tokenizer.tokenize("a") + tokenizer.tokenize("b") else ""
    hits = np.zeros((len(ovs), ovs[0].shape[0]))
    total = 0
    with torch.inference_mode():
        for words in (sequences or ORDINAL_SEQUENCES).values():
            ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(prefix + w)) for w in words]
            if any(len(i) != 1 or i[0] == tokenizer.unk_token_id for i in ids):
                continue  # the paper's sequences are single tokens
            ids_t = torch.as_tensor([i[0] for i in ids])
            emb = effective(ids_t[None])[0]  # [n, d]
            for k, ov in enumerate(ovs):
                logits = torch.einsum("nd,hde,ve->hnv", emb, ov, unembed[ids_t])  # restricted to the sequence
                top = logits.argmax(-1)  # [H, n]
                hits[k] += (top[:, :-1] == torch.arange(1, len(ids))[None]).sum(-1).numpy()
            total += len(ids) - 1
    if total == 0:
        return None, "no ordinal sequence is single tokens in this vocabulary"
    return hits / total, ""


def head_function_scores(model: Any, tokenizer: Any, *, length: int = 25, n_sequences: int = 8,
                         needle: int = 10, haystack: int = 40, seed: int = 0) -> pd.DataFrame:
    """Previous-token, induction, copy and successor scores of every attention head of ``model``.

    Parameters
    ----------
    model : transformers model (eager attention) or SUMA
    tokenizer : transformers tokenizer
        Its vocabulary bounds the random tokens; its BOS/CLS token (if any)
        starts each sequence.
    length : int, default=25
        Length of the repeated random sequence (induction).
    n_sequences : int, default=8
        Random sequences (and copy trials).
    needle, haystack : int
        Needle length and haystack tokens before and between (copy).
    seed : int, default=0

    Returns
    -------
    DataFrame
        ``layer`` (1-based block), ``head``, ``previous_token``, ``induction``,
        ``copy``, ``successor``; ``attrs["successor_reason"]`` says why
        successor scores are missing.
    """
    import torch

    rng = np.random.default_rng(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = getattr(model.config, "vocab_size", None) if hasattr(model, "config") else getattr(model, "vocab_size", None)
    candidates = np.array([i for i in range(min(int(vocab or len(tokenizer)), len(tokenizer))) if i not in special])
    start = getattr(tokenizer, "bos_token_id", None) or getattr(tokenizer, "cls_token_id", None)
    prefix = [] if start is None else [int(start)]
    # Induction and previous-token: [prefix] + x + x.
    x = rng.choice(candidates, size=(n_sequences, length))
    seqs = torch.as_tensor(np.array([prefix + list(r) + list(r) for r in x]))
    atts = _attentions(model, seqs)
    # Copy: [prefix] + hay + needle + hay + needle (teacher forced).
    hay1 = rng.choice(candidates, size=(n_sequences, haystack))
    hay2 = rng.choice(candidates, size=(n_sequences, haystack))
    nd = np.stack([rng.choice(candidates, size=needle, replace=False) for _ in range(n_sequences)])
    copy_seqs = torch.as_tensor(np.array([prefix + list(a) + list(n) + list(b) + list(n) for a, n, b in zip(hay1, nd, hay2)]))
    copy_atts = _attentions(model, copy_seqs)
    o = len(prefix)
    first = o + haystack  # needle start
    second = o + 2 * haystack + needle  # repeat start
    predicts = None
    lm_head = _unembedding(model) is not None and hasattr(model, "config")
    if lm_head:
        with torch.inference_mode():
            predicts = model(input_ids=copy_seqs).logits.argmax(-1).numpy()
    steps = []
    for b in range(n_sequences):
        for j in range(1, needle):  # position second + j - 1 predicts needle[j], held at first + j
            t = second + j - 1
            if predicts is None or predicts[b, t] == nd[b, j]:
                steps.append((b, t, first + j))
    succ, reason = successor_score(model, tokenizer) if lm_head else (None, "no unembedding (not a causal LM with an output head)")
    rows = []
    for k, (att, catt) in enumerate(zip(atts, copy_atts)):
        prev = previous_token_score(att[:, :, o:, o:])
        ind = induction_score(att, length, offset=o)
        cp = copy_score(catt, steps)
        for h in range(att.shape[1]):
            rows.append({"layer": k + 1, "head": h, "previous_token": prev[h], "induction": ind[h], "copy": cp[h],
                         "successor": np.nan if succ is None else succ[k, h]})
    table = pd.DataFrame(rows)
    table.attrs["successor_reason"] = reason
    table.attrs["copy_steps"] = len(steps)
    return table


def relate_head_scores(functions: pd.DataFrame, brain: pd.DataFrame, *, n_permutations: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """Spearman correlation across heads between each head function and the heads' brain scores, per ROI.

    Parameters
    ----------
    functions : DataFrame
        :func:`head_function_scores` (``layer``, ``head`` and the function columns).
    brain : DataFrame
        ``layer``, ``head``, ``roi``, ``score`` (e.g. mean held-out r over subjects).
    n_permutations : int, default=1000
        Permutations of the brain scores across heads; two-sided p.

    Returns
    -------
    DataFrame
        ``function``, ``roi``, ``spearman``, ``p_value``, ``n_heads``.
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    rows = []
    for roi, group in brain.groupby("roi", sort=False):
        merged = functions.merge(group, on=["layer", "head"], how="inner")
        for name in HEAD_FUNCTIONS:
            ok = merged[name].notna() & merged["score"].notna()
            if ok.sum() < 3 or merged.loc[ok, name].nunique() < 2:
                rows.append({"function": name, "roi": roi, "spearman": np.nan, "p_value": np.nan, "n_heads": int(ok.sum())})
                continue
            a = rankdata(merged.loc[ok, name]) - (ok.sum() + 1) / 2
            b = rankdata(merged.loc[ok, "score"]) - (ok.sum() + 1) / 2
            rho = float(a @ b / np.sqrt((a @ a) * (b @ b)))
            null = np.array([a @ rng.permutation(b) for _ in range(n_permutations)]) / np.sqrt((a @ a) * (b @ b))
            p = float((1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (1 + n_permutations))
            rows.append({"function": name, "roi": roi, "spearman": rho, "p_value": p, "n_heads": int(ok.sum())})
    return pd.DataFrame(rows)
