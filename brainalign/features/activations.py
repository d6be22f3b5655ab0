"""Model activations per word: layers, attention heads, MLPs, SUMA and RNN states, streamed to HDF5.

Units read per word (the unit of analysis):

* ``layers``: the residual stream (hidden state ``k`` = output of block ``k``,
  0 = embeddings), named ``"k"``;
* ``heads``: each attention head's output before the output projection (the
  input of ``o_proj``/``attention.output.dense``/``c_proj``), named
  ``"k.h<hh>"`` (block ``k``, head ``hh``), ``head_dim`` features each;
* ``mlp``: the MLP's hidden activation (after the nonlinearity), ``"k.mlp"``;
* attention statistics per head (entropy of the word's attention in nats,
  weight on the sequence's first token (position 0), weight on the previous
  token), stored
  in the ``attention_stats`` group, not as features.

Pooling over the word's tokens: ``last`` (the word's last sub-token — with a
left context window this is also the sequence's last content token), ``word``
(mean over the word's own sub-tokens) or ``mean`` (mean over every content
token of the window). Special tokens are never pooled.

Bidirectional models read each word from a left context window of
``context_words`` words; causal models (SUMA, RNNs) run one pass per story and
read every word's state from it.

Extraction is chunked. Each finished chunk is written atomically to
``<cache_dir>/<settings hash>/chunk_<k>.npz``; a restarted extraction reuses the
chunks it finds there, and the declared output appears only by rename once all
chunks are assembled (so a killed job, or Snakemake's cleanup of it, never
loses finished chunks). The output follows the *Features* contract
(``features/1``) with chunked datasets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._validation import BrainalignError
from ..io import _json, atomic_path

__all__ = [
    "POOLINGS",
    "settings_hash",
    "tensor_sha256",
    "attention_output_modules",
    "extract_transformer",
    "extract_causal",
    "run_chunked",
    "read_attention_stats",
]

POOLINGS = ("last", "word", "mean")

# Attention output projections of the common families: module-name suffix -> how
# the head outputs are laid out in its input ([..., n_heads * head_dim]).
_O_PROJ_SUFFIXES = ("attention.output.dense", "attn.c_proj", "self_attn.o_proj", "attention.o_proj",
                    "attn.out_proj", "self_attn.out_proj", "attention.dense")
_MLP_SUFFIXES = ("intermediate.intermediate_act_fn", "mlp.act", "mlp.act_fn", "mlp.activation_fn")


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the JSON of ``settings``: the name of the chunk cache."""
    return hashlib.sha256(_json(settings).encode()).hexdigest()[:16]


def tensor_sha256(module: Any) -> str:
    """SHA-256 over a module's state dict (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        arr = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{arr.shape}:{arr.dtype}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- chunk driver
def run_chunked(
    compute: Callable[[int], dict[str, np.ndarray]],
    n_chunks: int,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike,
    settings: dict[str, Any],
    *,
    model: str,
    times: np.ndarray | None = None,
    prov: dict[str, Any] | None = None,
    progress: bool = True,
    keep_cache: bool = False,
) -> Path:
    """Compute chunks (reusing cached ones), then assemble the HDF5 output atomically.

    Parameters
    ----------
    compute : callable
        ``compute(k)`` returns chunk ``k``'s arrays, name → (n_rows_k, ...).
        Names containing ``"/"`` go to that group (e.g.
        ``"attention_stats/3"``); the others are feature layers.
    n_chunks : int
    out : path-like
        The HDF5 file to write.
    cache_dir : path-like
        Root of the chunk caches; chunks live in ``<cache_dir>/<settings_hash>/``.
    settings : dict
        Everything that determines the numbers (model identity and weights
        hash, units, pooling, context, chunking): the cache key, stored in the
        output.
    model : str
        The feature set's name.

    Returns
    -------
    Path of the output.
    """
    from tqdm.auto import tqdm

    folder = Path(cache_dir) / settings_hash(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(_json(settings) + "\n")
    computed = 0
    for k in tqdm(range(n_chunks), desc=f"{model} chunks", unit="chunk", disable=not progress, mininterval=2):
        path = folder / f"chunk_{k:05d}.npz"
        if path.exists():
            continue
        arrays = compute(k)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{name.replace("/", "|"): np.asarray(a, np.float32) for name, a in arrays.items()})
        computed += 1
    _assemble(folder, n_chunks, out, settings, model, times, prov or {}, computed)
    if not keep_cache:
        shutil.rmtree(folder, ignore_errors=True)
    return Path(out)


def _assemble(folder: Path, n_chunks: int, out: str | os.PathLike, settings: dict[str, Any], model: str,
              times: np.ndarray | None, prov: dict[str, Any], computed: int) -> None:
    first = np.load(folder / "chunk_00000.npz")
    names = list(first.files)
    sizes = []
    for k in range(n_chunks):
        with np.load(folder / f"chunk_{k:05d}.npz") as z:
            sizes.append(z[names[0]].shape[0])
    n_rows = int(sum(sizes))
    layer_names = [n for n in names if "|" not in n]
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        grp = f.create_group("layers", track_order=True)
        dsets = {}
        for name in names:
            shape = (n_rows,) + first[name].shape[1:]
            target = grp if "|" not in name else f.require_group(name.split("|")[0])
            key = name if "|" not in name else name.split("|")[1]
            # Chunked but not compressed: float activations barely compress, and gzip
            # would cost a tenth of the extraction (benchmarks/extraction.py).
            dsets[name] = target.create_dataset(key, shape=shape, dtype=np.float32,
                                                chunks=(min(n_rows, 256),) + shape[1:], track_times=False)
        row = 0
        for k, size in enumerate(sizes):
            with np.load(folder / f"chunk_{k:05d}.npz") as z:
                for name in names:
                    dsets[name][row:row + size] = z[name]
            row += size
        if times is not None:
            f.create_dataset("times", data=np.asarray(times, float), track_times=False)
        f.attrs["contract"] = "features/1"
        f.attrs["model"] = model
        f.attrs["layer_order"] = _json(layer_names)
        f.attrs["settings"] = _json(settings)
        f.attrs["provenance"] = _json({**prov, "chunks": n_chunks, "chunks_reused": n_chunks - computed})
    first.close()


# --------------------------------------------------------------------------- transformers
def attention_output_modules(model: Any) -> list[Any]:
    """The attention output projection of every block, in order.

    Raises
    ------
    BrainalignError
        When the family's projection is not recognised.
    """
    found = [m for name, m in model.named_modules() if name.endswith(_O_PROJ_SUFFIXES)]
    n_layers = int(model.config.num_hidden_layers)
    if len(found) != n_layers:
        raise BrainalignError(
            f"cannot locate one attention output projection per block in {type(model).__name__} "
            f"(found {len(found)} for {n_layers} blocks; known names: {_O_PROJ_SUFFIXES})."
        )
    return found


def _mlp_modules(model: Any) -> list[Any]:
    found = [m for name, m in model.named_modules() if name.endswith(_MLP_SUFFIXES)]
    if len(found) != int(model.config.num_hidden_layers):
        raise BrainalignError(f"cannot locate one MLP activation per block in {type(model).__name__}.")
    return found


def _pool(tensor: Any, spans: list[tuple[int, int, int]], pooling: str) -> Any:
    """Pool rows of ``tensor`` [B, T, ...] by (batch row, start, stop) spans."""
    import torch

    if pooling == "last":
        rows = torch.tensor([b for b, _, _ in spans])
        pos = torch.tensor([stop - 1 for _, _, stop in spans])
        return tensor[rows, pos]
    return torch.stack([tensor[b, start:stop].mean(dim=0) for b, start, stop in spans])


def _attention_stats(att: Any, rows: Any, pos: Any) -> Any:
    """(entropy, weight on the sequence's first token, weight on the previous token) per head: [n, NH, 3].

    The first token is position 0 (``[CLS]``/BOS when the tokenizer adds one:
    the usual "attention sink"); the previous token is ``pos - 1`` (0 weight
    for a word at position 0).
    """
    import torch

    p = att[rows, :, pos]  # [n, NH, T]
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    n = torch.arange(len(rows))
    first_w = p[n, :, 0]
    prev_w = torch.where((pos >= 1)[:, None], p[n, :, (pos - 1).clamp_min(0)], torch.zeros_like(first_w))
    return torch.stack([entropy, first_w, prev_w], dim=-1)


def extract_transformer(
    loaded: Any,
    words: Sequence[str],
    groups: Sequence[int],
    out: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    model_name: str,
    units: Sequence[str] = ("layers",),
    layers: Sequence[int] | None = None,
    pooling: str = "last",
    context_words: int = 32,
    attention_stats: bool = False,
    batch_size: int = 16,
    chunk_words: int = 256,
    times: np.ndarray | None = None,
    prov: dict[str, Any] | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Per-word activations of a ``transformers`` model with a left context window.

    Parameters
    ----------
    loaded : brainalign.models.hf.LoadedModel
    words : sequence of str, length n_words
    groups : sequence of int
        Story labels; context never crosses a change of label.
    out, cache_dir : path-like
        Output HDF5 and the root of the chunk cache.
    model_name : str
        Feature set name stored in the file.
    units : subset of {"layers", "heads", "mlp"}
    layers : sequence of int or None
        Blocks (hidden-state indices) to read; None = all.
    pooling : {"last", "word", "mean"}
    context_words : int
        Words per window, the word included.
    attention_stats : bool
        Also store per-head attention statistics.
    batch_size, chunk_words : int
        Sequences per forward pass; words per cached chunk.
    on_chunk : callable or None
        Called with the chunk index after each chunk is computed (tests use it
        to interrupt an extraction).

    Returns
    -------
    Path
    """
    import torch

    from .words import _special_tokens, _tokenize_words

    model, tokenizer = loaded.model, loaded.tokenizer
    if pooling not in POOLINGS:
        raise BrainalignError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    bad_units = sorted(set(units) - {"layers", "heads", "mlp"})
    if bad_units:
        raise BrainalignError(f"unknown units {bad_units}; choose among 'layers', 'heads', 'mlp'.")
    cfg = model.config
    n_blocks = int(cfg.num_hidden_layers)
    n_heads = int(cfg.num_attention_heads)
    wanted = list(range(n_blocks + 1)) if layers is None else [int(k) for k in layers]
    if any(not 0 <= k <= n_blocks for k in wanted):
        raise BrainalignError(f"layers {wanted} out of range 0..{n_blocks}.")
    blocks = [k for k in wanted if k >= 1]
    o_proj = attention_output_modules(model) if "heads" in units else []
    mlps = _mlp_modules(model) if "mlp" in units else []
    prefix, suffix = _special_tokens(tokenizer)
    budget = loaded.identity["max_length"] - len(prefix) - len(suffix)
    token_ids = _tokenize_words(tokenizer, words)
    groups = np.asarray(groups)
    starts = np.zeros(len(words), dtype=np.int64)
    for i in range(1, len(words)):
        starts[i] = i if groups[i] != groups[i - 1] else starts[i - 1]
    settings = {"model": loaded.identity, "units": sorted(units), "layers": wanted, "pooling": pooling,
                "context_words": int(context_words), "attention_stats": bool(attention_stats),
                "chunk_words": int(chunk_words), "truncation": "left", "n_words": len(words),
                "words_sha256": hashlib.sha256("\x1f".join(words).encode()).hexdigest()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device  # inputs go where the model is; units come back to the CPU

    def window(i: int) -> tuple[list[int], int, int, int]:
        first = max(int(starts[i]), i - context_words + 1)
        content = [t for j in range(first, i + 1) for t in token_ids[j]]
        own = len(token_ids[i])
        content = content[-budget:]
        own = min(own, len(content))
        ids = prefix + content + suffix
        stop = len(prefix) + len(content)
        return ids, stop - own, stop, len(prefix)

    def compute(k: int) -> dict[str, np.ndarray]:
        idx = list(range(k * chunk_words, min((k + 1) * chunk_words, len(words))))
        wins = {i: window(i) for i in idx}
        order = sorted(idx, key=lambda i: (-len(wins[i][0]), i))
        result: dict[str, np.ndarray] = {}
        captured: dict[int, Any] = {}
        hooks = []
        for b, module in enumerate(o_proj, start=1):
            if b in blocks:
                hooks.append(module.register_forward_pre_hook(
                    lambda mod, args, b=b: captured.__setitem__(("heads", b), args[0])))
        for b, module in enumerate(mlps, start=1):
            if b in blocks:
                hooks.append(module.register_forward_hook(
                    lambda mod, args, output, b=b: captured.__setitem__(("mlp", b), output)))
        parts: dict[str, list[tuple[list[int], np.ndarray]]] = {}
        try:
            with torch.inference_mode():
                for s in range(0, len(order), batch_size):
                    batch = order[s:s + batch_size]
                    width = max(len(wins[i][0]) for i in batch)
                    ids = torch.full((len(batch), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, i in enumerate(batch):
                        ids[row, :len(wins[i][0])] = torch.tensor(wins[i][0])
                        mask[row, :len(wins[i][0])] = 1
                    captured.clear()
                    res = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True,
                                output_attentions=attention_stats)
                    if pooling == "mean":
                        spans = [(row, wins[i][3], wins[i][2]) for row, i in enumerate(batch)]
                    else:
                        spans = [(row, wins[i][1], wins[i][2]) for row, i in enumerate(batch)]
                    arrays = {}
                    if "layers" in units:
                        for layer in wanted:
                            arrays[str(layer)] = _pool(res.hidden_states[layer], spans, pooling)
                    for (kind, b), tensor in captured.items():
                        pooled = _pool(tensor, spans, pooling)
                        if kind == "heads":
                            pooled = pooled.view(len(batch), n_heads, -1)
                            for h in range(n_heads):
                                arrays[f"{b}.h{h:02d}"] = pooled[:, h]
                        else:
                            arrays[f"{b}.mlp"] = pooled
                    if attention_stats:
                        rows = torch.arange(len(batch))
                        pos = torch.tensor([wins[i][2] - 1 for i in batch])
                        for b in blocks:
                            arrays[f"attention_stats/{b}"] = _attention_stats(res.attentions[b - 1], rows, pos)
                    for name, tensor in arrays.items():
                        parts.setdefault(name, []).append((batch, tensor.float().cpu().numpy()))
        finally:
            for h in hooks:
                h.remove()
        position = {i: r for r, i in enumerate(idx)}
        for name, pieces in parts.items():
            arr = np.empty((len(idx),) + pieces[0][1].shape[1:], np.float32)
            for batch, values in pieces:
                arr[[position[i] for i in batch]] = values
            result[name] = arr
        if on_chunk is not None:
            on_chunk(k)
        return _ordered(result, wanted, blocks, n_heads, units)

    n_chunks = max(1, int(np.ceil(len(words) / chunk_words)))
    return run_chunked(compute, n_chunks, out, cache_dir, settings, model=model_name, times=times, prov=prov,
                       progress=progress)


def _ordered(arrays: dict[str, np.ndarray], wanted: list[int], blocks: list[int], n_heads: int,
             units: Sequence[str]) -> dict[str, np.ndarray]:
    """Layers, then heads, then MLPs, then statistics, each in block order."""
    names = [str(k) for k in wanted if "layers" in units]
    names += [f"{b}.h{h:02d}" for b in blocks for h in range(n_heads) if "heads" in units]
    names += [f"{b}.mlp" for b in blocks if "mlp" in units]
    names += [n for n in arrays if n.startswith("attention_stats/")]
    return {n: arrays[n] for n in names if n in arrays}


# --------------------------------------------------------------------------- causal models
def extract_causal(
    run_story: Callable[[list[int]], dict[str, Any]],
    tokenizer: Any,
    words: Sequence[str],
    groups: Sequence[int],
    out: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    model_name: str,
    identity: dict[str, Any],
    pooling: str = "last",
    times: np.ndarray | None = None,
    prov: dict[str, Any] | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Per-word states of a causal model run once over each story (one chunk per story).

    Parameters
    ----------
    run_story : callable
        ``run_story(token_ids)`` returns unit name → Tensor [T, ...] for one
        story's tokens (no special tokens).
    tokenizer : transformers tokenizer
        Splits words into sub-tokens.
    words, groups : sequences
        Words and their story labels.
    identity : dict
        Model identity (architecture, seed, weights hash), stored and hashed.
    pooling : {"last", "word"}
        The word's last sub-token, or the mean of its sub-tokens.

    Returns
    -------
    Path
    """
    from .words import _tokenize_words

    if pooling not in ("last", "word"):
        raise BrainalignError(f"pooling for causal models must be 'last' or 'word', got {pooling!r}.")
    token_ids = _tokenize_words(tokenizer, words)
    groups = np.asarray(groups)
    cuts = [0] + [i for i in range(1, len(words)) if groups[i] != groups[i - 1]] + [len(words)]
    stories = [list(range(a, b)) for a, b in zip(cuts[:-1], cuts[1:])]
    settings = {"model": identity, "pooling": pooling, "n_words": len(words), "one pass per story": True,
                "words_sha256": hashlib.sha256("\x1f".join(words).encode()).hexdigest(),
                "stories": [len(s) for s in stories]}

    def compute(k: int) -> dict[str, np.ndarray]:
        import torch

        idx = stories[k]
        ids, spans = [], []
        for i in idx:
            start = len(ids)
            ids += token_ids[i]
            spans.append((0, start, len(ids)))
        with torch.inference_mode():
            states = run_story(ids)
            result = {name: _pool(tensor.unsqueeze(0), spans, pooling).float().cpu().numpy()
                      for name, tensor in states.items()}
        if on_chunk is not None:
            on_chunk(k)
        return result

    return run_chunked(compute, len(stories), out, cache_dir, settings, model=model_name, times=times,
                       prov=prov, progress=progress)


def read_attention_stats(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per-block attention statistics [n_words, n_heads, 3] (entropy, first, previous) from an extraction."""
    with h5py.File(path, "r") as f:
        if "attention_stats" not in f:
            return {}
        return {name: f["attention_stats"][name][()] for name in f["attention_stats"]}

