"""Train small language models here: next-token cross-entropy, held-out perplexity, early stopping, safetensors.

:func:`train_lm` trains any model :func:`~brainalign.models.lm.next_token_logits`
understands (the head-wise RNN LMs on ``brainalign.kernels``, SUMA's decoder,
a small GPT-2) on a token stream. Training windows are ``seq_len + 1``
consecutive tokens (non-overlapping, reshuffled every epoch by a seeded
generator); held-out perplexity is ``exp`` of the mean cross-entropy (nats)
over every token of the held-out stream, read in windows of the same length.
Training stops after ``patience`` evaluations without improvement and the
best weights are restored. Same seed, same data, same thread count → the same
weights, bit for bit.

:func:`save_language_model` writes one ``.safetensors`` file whose header
metadata holds everything needed to rebuild the model (architecture,
parameters, vocabulary, training settings and curve); :func:`load_language_model`
reads it back.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._validation import BrainalignError, InputFileError, check_fname
from .lm import build_language_model, next_token_logits

__all__ = ["LMTrainingResult", "train_lm", "heldout_perplexity", "save_language_model", "load_language_model"]

_META_KEY = "brainalign_language_model"


@dataclass
class LMTrainingResult:
    """What :func:`train_lm` returns.

    Attributes
    ----------
    model : nn.Module
        With the best held-out weights, in eval mode.
    history : DataFrame
        One row per evaluation: ``step``, ``tokens`` (training tokens seen),
        ``train_loss`` (mean since the last evaluation, nats/token),
        ``valid_loss`` (nats/token), ``valid_perplexity``.
    best_step : int
    valid_perplexity : float
        At ``best_step``.
    stopped_early : bool
    tokens_per_second : float
        Training throughput (forward + backward + update), wall clock.
    settings : dict
    """

    model: torch.nn.Module
    history: pd.DataFrame
    best_step: int
    valid_perplexity: float
    stopped_early: bool
    tokens_per_second: float
    settings: dict[str, Any] = field(default_factory=dict)


def _windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` tokens, shape [n_windows, seq_len + 1] (the tail is dropped)."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise BrainalignError(f"the token stream ({len(ids)} tokens) is shorter than one window of {seq_len + 1}.")
    starts = torch.arange(n) * seq_len
    return ids[starts[:, None] + torch.arange(seq_len + 1)[None, :]]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def heldout_perplexity(model: torch.nn.Module, ids: Any, seq_len: int = 128, batch_size: int = 32) -> float:
    """``exp`` of the mean next-token cross-entropy over a held-out stream read in windows of ``seq_len + 1``."""
    stream = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    windows = _windows(stream, seq_len).to(_device_of(model))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for k in range(0, len(windows), batch_size):
            batch = windows[k:k + batch_size]
            logits = next_token_logits(model, batch[:, :-1]).double()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                                     reduction="sum")
            total += float(loss)
            count += batch[:, 1:].numel()
    model.train(was_training)
    return math.exp(total / count)


def train_lm(model: torch.nn.Module, train_ids: Any, valid_ids: Any, *, seq_len: int = 64, batch_size: int = 32,
             lr: float = 3e-3, weight_decay: float = 0.0, max_steps: int = 2000, eval_every: int = 100,
             patience: int = 3, clip: float = 1.0, seed: int = 0, device: str = "cpu",
             progress: bool = True) -> LMTrainingResult:
    """Train ``model`` on next-token prediction with early stopping on held-out perplexity.

    Parameters
    ----------
    model : nn.Module
        A language model (:func:`~brainalign.models.lm.next_token_logits`);
        parameters with ``requires_grad`` are trained (SUMA: the decoder only).
    train_ids, valid_ids : sequence of int
        Token streams (:meth:`~brainalign.stimuli.corpus.WordVocabulary.encode`).
    seq_len : int, default=64
        Tokens of context per training window (truncated back-propagation).
    batch_size : int, default=32
    lr : float, default=3e-3
        AdamW learning rate (constant).
    weight_decay : float, default=0.0
    max_steps : int, default=2000
    eval_every : int, default=100
        Steps between held-out evaluations.
    patience : int, default=3
        Evaluations without a lower held-out loss before stopping.
    clip : float, default=1.0
        Gradient-norm clipping.
    seed : int, default=0
        Seed of the window order.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where to train (the model is moved there; the result stays there).
    progress : bool, default=True

    Returns
    -------
    LMTrainingResult
    """
    if not (device in ("cpu", "cuda") or str(device).startswith("cuda:")):
        raise BrainalignError(f"train_lm: device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}.")
    if device != "cpu" and not torch.cuda.is_available():
        raise BrainalignError("train_lm: device 'cuda' asked for, but torch.cuda.is_available() is False "
                              f"(torch {torch.__version__}); use device 'cpu'.")
    model.to(device)
    for name, value, low in (("seq_len", seq_len, 1), ("batch_size", batch_size, 1), ("max_steps", max_steps, 1),
                             ("eval_every", eval_every, 1), ("patience", patience, 1)):
        if int(value) != value or value < low:
            raise BrainalignError(f"train_lm: '{name}' must be an integer >= {low}, got {value!r}.")
    train = _windows(torch.as_tensor(np.asarray(train_ids), dtype=torch.long), seq_len).to(device)
    valid = torch.as_tensor(np.asarray(valid_ids), dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BrainalignError("train_lm: the model has no trainable parameters.")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(train), generator=gen)
    cursor = 0
    best_loss, best_state, best_step, stale = math.inf, None, 0, 0
    rows: list[dict[str, float]] = []
    running, running_n, train_time, tokens = 0.0, 0, 0.0, 0
    stopped_early = False
    model.train()
    bar = tqdm(total=max_steps, desc="train_lm", unit="step", disable=not progress, mininterval=2)
    for step in range(1, max_steps + 1):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(train), generator=gen), 0
        batch = train[order[cursor:cursor + batch_size].to(device)]
        cursor += batch_size
        start = time.perf_counter()
        logits = next_token_logits(model, batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - start
        tokens += batch[:, 1:].numel()
        running += float(loss.detach())
        running_n += 1
        bar.update(1)
        if step % eval_every == 0 or step == max_steps:
            valid_ppl = heldout_perplexity(model, valid, seq_len, batch_size)
            valid_loss = math.log(valid_ppl)
            rows.append({"step": step, "tokens": tokens, "train_loss": running / running_n,
                         "valid_loss": valid_loss, "valid_perplexity": valid_ppl})
            bar.set_postfix(valid_ppl=f"{valid_ppl:.1f}")
            running, running_n = 0.0, 0
            if valid_loss < best_loss:
                best_loss, best_step, stale = valid_loss, step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    stopped_early = True
                    break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    settings = {"seq_len": seq_len, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                "max_steps": max_steps, "eval_every": eval_every, "patience": patience, "clip": clip, "seed": seed,
                "train_tokens": int(len(train_ids)), "valid_tokens": int(len(valid_ids)),
                "torch_threads": torch.get_num_threads(), "device": device}
    return LMTrainingResult(model, pd.DataFrame(rows), best_step, math.exp(best_loss), stopped_early,
                            tokens / train_time if train_time else float("nan"), settings)


def save_language_model(path: str | os.PathLike, model: torch.nn.Module, architecture: str, params: dict[str, Any],
                        vocabulary: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` and what rebuilds it to one ``.safetensors`` file (atomic).

    Parameters
    ----------
    path : str or path-like
    model : nn.Module
    architecture : str
        :data:`~brainalign.models.lm.LM_ARCHITECTURES` name.
    params : dict
        Keyword arguments of :func:`~brainalign.models.lm.build_language_model`.
    vocabulary : WordVocabulary
    extra : dict, optional
        More JSON metadata (training settings, curve, perplexity).
    """
    from safetensors.torch import save_model

    from ..io.atomic import atomic_path

    meta = {"architecture": architecture, "params": params, "vocabulary": json.loads(vocabulary.to_json())["words"],
            **(extra or {})}
    with atomic_path(path) as tmp:
        save_model(model.to("cpu"), str(tmp), metadata={_META_KEY: json.dumps(meta, default=float)})
    return Path(path)


def load_language_model(path: str | os.PathLike) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Read :func:`save_language_model` output.

    Returns
    -------
    model : nn.Module
        In eval mode.
    vocabulary : WordVocabulary
    meta : dict
        The stored metadata.
    """
    from safetensors import safe_open
    from safetensors.torch import load_model

    from ..stimuli.corpus import WordVocabulary

    path = check_fname(path, "file", "language model checkpoint")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except Exception as err:  # safetensors raises its own error types for a bad header
        raise InputFileError(path, f"not a safetensors file ({err}).") from err
    if raw is None:
        raise InputFileError(path, f"header metadata has no '{_META_KEY}' field: not written by save_language_model.")
    meta = json.loads(raw)
    vocabulary = WordVocabulary(meta["vocabulary"][2:])
    model = build_language_model(meta["architecture"], len(vocabulary), **meta["params"])
    load_model(model, str(path))
    return model.eval(), vocabulary, meta
