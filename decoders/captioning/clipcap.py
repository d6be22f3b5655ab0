"""ClipCap captions (:class:`ClipCapCaptioner`): a mapping network from an embedding to a
GPT-2 prefix, its teacher-forced training, generation, and its checkpoints."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from brainalign._validation import (
    BrainalignError,
    check_fname,
    check_int,
    check_option,
    check_random_state,
)
from brainalign.checkpoints import checkpoint_paths, read_checkpoint, write_checkpoint

from ._common import (
    _as_float_tensor,
    _batches,
    _check_generate_kwargs,
    _eval_mode,
    _load_tokenizer,
    _trim,
)
from .mapping import _MLPMapping, _TransformerMapping

_FORMAT = "brainalign.decoders.ClipCapCaptioner"
_FORMAT_VERSION = 1


class ClipCapCaptioner:
    """ClipCap: a mapping network from an embedding to a GPT-2 prefix (Mokady et al. 2021).

    Parameters
    ----------
    decoder : str, path-like or transformers.GPT2LMHeadModel
        A local folder (``from_pretrained(path, local_files_only=True)``,
        never downloaded) or a GPT-2-like causal LM that accepts
        ``inputs_embeds``.
    tokenizer : str, path-like or tokenizer, optional
        The decoder's tokenizer or a folder holding it (defaults to the
        decoder folder when ``decoder`` is a path). Needs an end-of-text
        token (``eos_token``), appended to every training caption.
    embed_dim : int
        Width of the (predicted) embeddings.
    prefix_length : int
        Number of prefix embeddings fed to the decoder (10 in ClipCap).
    mapping : {"mlp", "transformer"}
        The mapping network: ClipCap's MLP (``Linear → tanh → Linear``) or
        its transformer mapper.
    mapping_hidden_size : int, optional
        Hidden width of the MLP; default ``prefix_length * d_model // 2``
        (ClipCap's).
    n_mapping_layers : int
        Transformer mapper depth (8 in ClipCap).
    n_heads : int
        Transformer mapper heads; must divide the decoder width.
    finetune_decoder : bool
        Train the decoder with the mapping network (ClipCap's default
        variant) instead of keeping it frozen.
    device : str or torch.device, optional
        Moves the decoder and mapping there.

    Attributes
    ----------
    decoder, tokenizer
    mapping_net : torch.nn.Module
        Maps ``(n, embed_dim)`` to ``(n, prefix_length, d_model)``;
        initialised with seed 0 at construction and re-initialised by
        :meth:`fit` (unless ``warm_start``).
    d_model : int
        The decoder's embedding width.
    loss_history_ : list of float
        Mean training loss per epoch of the last :meth:`fit`.
    """

    def __init__(
        self,
        decoder: str | os.PathLike | Any,
        tokenizer: str | os.PathLike | Any | None = None,
        *,
        embed_dim: int,
        prefix_length: int = 10,
        mapping: str = "mlp",
        mapping_hidden_size: int | None = None,
        n_mapping_layers: int = 8,
        n_heads: int = 8,
        finetune_decoder: bool = False,
        device: str | torch.device | None = None,
    ):
        if isinstance(decoder, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            path = check_fname(decoder, kind="directory", what="ClipCap decoder")
            decoder = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
            if tokenizer is None:
                tokenizer = path
        if not isinstance(decoder, nn.Module) or not hasattr(decoder, "generate") or \
                not hasattr(decoder, "get_input_embeddings"):
            raise BrainalignError(
                f"'decoder' must be a transformers causal LM such as GPT2LMHeadModel (or a folder "
                f"holding one), got {type(decoder).__name__}."
            )
        if tokenizer is None:
            raise BrainalignError("'tokenizer' is required when 'decoder' is a model object, not a folder.")
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _load_tokenizer(check_fname(tokenizer, kind="directory", what="ClipCap tokenizer"))
        self.embed_dim = check_int("embed_dim", embed_dim, 1)
        self.prefix_length = check_int("prefix_length", prefix_length, 1)
        self.mapping = check_option("mapping", mapping, ["mlp", "transformer"])
        self.d_model = int(decoder.get_input_embeddings().weight.shape[1])
        if mapping_hidden_size is not None:
            mapping_hidden_size = check_int("mapping_hidden_size", mapping_hidden_size, 1)
        self.mapping_hidden_size = mapping_hidden_size
        self.n_mapping_layers = check_int("n_mapping_layers", n_mapping_layers, 1)
        self.n_heads = check_int("n_heads", n_heads, 1)
        if self.mapping == "transformer" and self.d_model % self.n_heads:
            raise BrainalignError(
                f"'n_heads' ({self.n_heads}) must divide the decoder width d_model = {self.d_model}."
            )
        if not isinstance(finetune_decoder, bool):
            raise BrainalignError(f"'finetune_decoder' must be True or False, got {finetune_decoder!r}.")
        self.finetune_decoder = finetune_decoder
        if device is not None:
            decoder = decoder.to(device)
        self.decoder = decoder.eval()
        self.tokenizer = tokenizer
        self.decoder_trained_ = False
        self.loss_history_: list[float] = []
        self.mapping_net = self._build_mapping(seed=0)

    # ------------------------------------------------------------------ internals
    @property
    def device(self) -> torch.device:
        """The device of the decoder's parameters."""
        return next(self.decoder.parameters()).device

    @property
    def eos_token_id(self) -> int:
        """The end-of-text token appended to captions and ending generation."""
        tok = getattr(self.tokenizer, "eos_token_id", None)
        if tok is None:
            tok = getattr(self.decoder.config, "eos_token_id", None)
        if isinstance(tok, (list, tuple)):
            tok = tok[0] if tok else None
        if tok is None:
            raise BrainalignError(
                "'tokenizer' has no eos_token and the decoder config no eos_token_id: ClipCap needs "
                "an end-of-text token."
            )
        return int(tok)

    def _pad_token_id(self) -> int:
        tok = getattr(self.tokenizer, "pad_token_id", None)
        return self.eos_token_id if tok is None else int(tok)

    def _build_mapping(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.mapping == "mlp":
                hidden = self.mapping_hidden_size or max(1, self.prefix_length * self.d_model // 2)
                net: nn.Module = _MLPMapping(self.embed_dim, self.prefix_length, self.d_model, hidden)
            else:
                net = _TransformerMapping(
                    self.embed_dim, self.prefix_length, self.d_model, self.n_mapping_layers, self.n_heads
                )
        dtype = self.decoder.get_input_embeddings().weight.dtype
        return net.to(device=self.device, dtype=dtype)

    def _check_embeddings(self, embeddings: ArrayLike | torch.Tensor) -> torch.Tensor:
        t = _as_float_tensor(embeddings, "embeddings")
        if t.ndim == 1 and self.embed_dim != 1:
            raise BrainalignError(
                f"'embeddings' must be 2-D (n, {self.embed_dim}), got a 1-D array of length {t.shape[0]}; "
                "wrap a single embedding as (1, embed_dim)."
            )
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2:
            raise BrainalignError(
                f"'embeddings' must be 2-D (n, {self.embed_dim}), got shape {tuple(t.shape)}."
            )
        if t.shape[1] != self.embed_dim:
            raise BrainalignError(
                f"'embeddings' has width {t.shape[1]}, but this ClipCapCaptioner expects "
                f"embed_dim = {self.embed_dim}."
            )
        return t.to(device=self.device, dtype=self.decoder.get_input_embeddings().weight.dtype)

    def _encode_captions(self, captions: Sequence[str], max_tokens: int) -> list[list[int]]:
        if isinstance(captions, str) or not isinstance(captions, Sequence):
            raise BrainalignError(
                f"'captions' must be a sequence of strings, got {type(captions).__name__}."
            )
        out = []
        eos = self.eos_token_id
        for i, c in enumerate(captions):
            if not isinstance(c, str) or not c.strip():
                raise BrainalignError(f"'captions'[{i}] must be a non-empty string, got {c!r}.")
            ids = list(self.tokenizer(c, add_special_tokens=False)["input_ids"])[: max_tokens - 1]
            out.append(ids + [eos])
        return out

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, labels), right-padded; labels are -100 on padding."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad_token_id(), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        dev = self.device
        return ids.to(dev), mask.to(dev), labels.to(dev)

    def _text_logits(
        self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits after the prefix and after each token: (n, L + 1, vocab)."""
        n, k = prefix.shape[:2]
        tok = self.decoder.get_input_embeddings()(ids)
        x = torch.cat([prefix, tok], dim=1)
        prefix_mask = torch.ones((n, k), dtype=torch.long, device=x.device)
        if mask is None:
            mask = torch.ones(ids.shape, dtype=torch.long, device=x.device)
        out = self.decoder(inputs_embeds=x, attention_mask=torch.cat([prefix_mask, mask], dim=1), use_cache=False)
        return out.logits[:, k - 1:]

    def _loss(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
        logits = self._text_logits(prefix, ids, mask)[:, :-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def prefix(self, embeddings: ArrayLike | torch.Tensor) -> torch.Tensor:
        """The decoder prefix for embeddings.

        Parameters
        ----------
        embeddings : array-like or Tensor, shape (n, embed_dim)

        Returns
        -------
        Tensor, shape (n, prefix_length, d_model)
            Float32, CPU.
        """
        emb = self._check_embeddings(embeddings)
        with _eval_mode(self.mapping_net):
            return self.mapping_net(emb).float().cpu()

    @torch.no_grad()
    def logits(
        self,
        embeddings: ArrayLike | torch.Tensor,
        input_ids: ArrayLike | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits after the prefix and after each given token.

        Parameters
        ----------
        embeddings : array-like or Tensor, shape (n, embed_dim)
        input_ids : array-like or Tensor of int, shape (n, L), optional
            Caption tokens so far (no start token: the prefix is the start);
            default none (L = 0).

        Returns
        -------
        Tensor, shape (n, L + 1, vocab_size)
            ``[:, j]`` scores the token after the prefix and
            ``input_ids[:, :j]`` (float32, CPU).
        """
        emb = self._check_embeddings(embeddings)
        n = emb.shape[0]
        if input_ids is None:
            ids = torch.zeros((n, 0), dtype=torch.long, device=self.device)
        else:
            ids = torch.as_tensor(np.asarray(input_ids) if not isinstance(input_ids, torch.Tensor) else input_ids)
            if ids.ndim != 2 or ids.shape[0] != n or ids.is_floating_point():
                raise BrainalignError(
                    f"'input_ids' must be integers of shape ({n}, L), got {tuple(ids.shape)} ({ids.dtype})."
                )
            ids = ids.to(device=self.device, dtype=torch.long)
        with _eval_mode(self.mapping_net, self.decoder):
            return self._text_logits(self.mapping_net(emb), ids).float().cpu()

    @torch.no_grad()
    def loss(
        self,
        embeddings: ArrayLike | torch.Tensor,
        captions: Sequence[str],
        *,
        max_caption_tokens: int = 40,
        batch_size: int = 64,
    ) -> float:
        """Teacher-forced cross-entropy (nats per token, end token included).

        Parameters
        ----------
        embeddings : array-like or Tensor, shape (n, embed_dim)
        captions : sequence of str, length n
        max_caption_tokens : int
            Captions are cut to this many tokens, end token included.
        batch_size : int

        Returns
        -------
        float
        """
        emb = self._check_embeddings(embeddings)
        rows = self._encode_captions(captions, check_int("max_caption_tokens", max_caption_tokens, 2))
        if len(rows) != emb.shape[0]:
            raise BrainalignError(
                f"'embeddings' and 'captions' must have the same length, got {emb.shape[0]} and {len(rows)}."
            )
        total, count = 0.0, 0
        with _eval_mode(self.mapping_net, self.decoder):
            for sl in _batches(len(rows), check_int("batch_size", batch_size, 1)):
                ids, mask, labels = self._pad(rows[sl])
                n_tok = int((labels != -100).sum())
                total += float(self._loss(self.mapping_net(emb[sl]), ids, mask, labels)) * n_tok
                count += n_tok
        return total / count

    def fit(
        self,
        embeddings: ArrayLike | torch.Tensor,
        captions: Sequence[str],
        *,
        epochs: int = 10,
        lr: float = 1e-4,
        batch_size: int = 32,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        max_caption_tokens: int = 40,
        random_state: int | np.random.Generator | None = 0,
        warm_start: bool = False,
        verbose: bool = False,
    ) -> ClipCapCaptioner:
        """Train the mapping network (and the decoder if ``finetune_decoder``) by teacher forcing.

        The prefix is followed by the caption tokens and the end token; the
        loss is the cross-entropy of each caption token (and the end token)
        given the prefix and the tokens before it. AdamW, constant learning
        rate after an optional linear warm-up. Runs inside
        :func:`torch.random.fork_rng`, so the global RNG is untouched.

        Parameters
        ----------
        embeddings : array-like or Tensor, shape (n, embed_dim)
            Image embeddings (true ones for training; predicted ones at test).
        captions : sequence of str, length n
        epochs : int
        lr : float
            AdamW learning rate.
        batch_size : int
        weight_decay : float
        warmup_steps : int
            Linear learning-rate warm-up over this many optimiser steps.
        max_caption_tokens : int
            Captions are cut to this many tokens, end token included.
        random_state : int, numpy Generator or None
            Seeds the mapping network's re-initialisation, the shuffling and
            the decoder's dropout (when fine-tuned).
        warm_start : bool
            Continue from the current mapping network instead of
            re-initialising it. A fine-tuned decoder is never reset.
        verbose : bool
            Print the mean loss after each epoch.

        Returns
        -------
        ClipCapCaptioner
            ``self``, with ``loss_history_`` set.
        """
        epochs = check_int("epochs", epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        max_caption_tokens = check_int("max_caption_tokens", max_caption_tokens, 2)
        for name, value in (("lr", lr), ("weight_decay", weight_decay)):
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
                raise BrainalignError(f"'{name}' must be a finite number >= 0, got {value!r}.")
        if lr <= 0:
            raise BrainalignError(f"'lr' must be > 0, got {lr!r}.")
        emb = self._check_embeddings(embeddings)
        rows = self._encode_captions(captions, max_caption_tokens)
        if len(rows) != emb.shape[0]:
            raise BrainalignError(
                f"'embeddings' and 'captions' must have the same length, got {emb.shape[0]} and {len(rows)}."
            )
        rng = check_random_state(random_state)
        seed = int(rng.integers(0, 2**31 - 1))
        if not warm_start:
            self.mapping_net = self._build_mapping(seed)
        params = list(self.mapping_net.parameters())
        decoder_flags = [(p, p.requires_grad) for p in self.decoder.parameters()]
        if self.finetune_decoder:
            params += [p for p in self.decoder.parameters() if p.requires_grad]
        else:
            self.decoder.requires_grad_(False)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        history: list[float] = []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                gen = torch.Generator().manual_seed(seed)
                opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
                sched = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
                )
                self.mapping_net.train()
                self.decoder.train(self.finetune_decoder)
                n = len(rows)
                for epoch in range(epochs):
                    order = torch.randperm(n, generator=gen).tolist()
                    total, count = 0.0, 0
                    for start in range(0, n, batch_size):
                        idx = order[start:start + batch_size]
                        ids, mask, labels = self._pad([rows[i] for i in idx])
                        loss = self._loss(self.mapping_net(emb[idx]), ids, mask, labels)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        sched.step()
                        total += float(loss.detach()) * len(idx)
                        count += len(idx)
                    history.append(total / count)
                    if verbose:
                        print(f"ClipCap epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
        finally:
            for p, flag in decoder_flags:
                p.requires_grad_(flag)
            self.mapping_net.eval()
            self.decoder.eval()
        self.decoder_trained_ = self.decoder_trained_ or self.finetune_decoder
        self.loss_history_ = history
        return self

    @torch.no_grad()
    def generate_ids(
        self,
        embeddings: ArrayLike | torch.Tensor,
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        batch_size: int | None = 32,
        **generate_kwargs: Any,
    ) -> list[list[int]]:
        """Generated token ids, one list per embedding, cut before the end token.

        Parameters are those of :meth:`generate`.

        Returns
        -------
        list of list of int, length n
        """
        max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
        num_beams = check_int("num_beams", num_beams, 1)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        _check_generate_kwargs(generate_kwargs)
        emb = self._check_embeddings(embeddings)
        generate_kwargs.setdefault("do_sample", False)
        eos = self.eos_token_id
        rows: list[list[int]] = []
        with _eval_mode(self.mapping_net, self.decoder):
            for sl in _batches(emb.shape[0], batch_size):
                prefix = self.mapping_net(emb[sl])
                mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
                out = self.decoder.generate(
                    inputs_embeds=prefix,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    eos_token_id=eos,
                    pad_token_id=self._pad_token_id(),
                    **generate_kwargs,
                )
                # Decoder-only models return only the new tokens when given inputs_embeds alone.
                rows.extend(_trim(out.cpu(), {eos}))
        return rows

    def generate(
        self,
        embeddings: ArrayLike | torch.Tensor,
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        batch_size: int | None = 32,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Captions for (predicted) embeddings.

        Parameters
        ----------
        embeddings : array-like or Tensor, shape (n, embed_dim)
            NumPy or torch.
        max_new_tokens : int
            At most this many tokens per caption (default 20).
        num_beams : int
            1 is greedy search; more is beam search with that many beams.
        batch_size : int or None
            Embeddings captioned per ``decoder.generate`` call (None: all).
        **generate_kwargs
            Passed to ``decoder.generate`` (e.g. ``length_penalty``,
            ``no_repeat_ngram_size``, ``min_new_tokens``); not the inputs,
            ``max_new_tokens``, ``num_beams`` or ``max_length``.

        Returns
        -------
        list of str, length n
            Decoded without special tokens, stripped.
        """
        ids = self.generate_ids(
            embeddings, max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size,
            **generate_kwargs,
        )
        return [s.strip() for s in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
        return checkpoint_paths(path)

    @staticmethod
    def _param_names() -> tuple[str, ...]:
        return ("embed_dim", "prefix_length", "mapping", "mapping_hidden_size", "n_mapping_layers", "n_heads",
                "finetune_decoder")

    def _params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write the weights (safetensors) and a JSON sidecar; never pickles.

        Parameters
        ----------
        path : str or path-like
            ``<base>``, ``<base>.safetensors`` or ``<base>.json``. Writes
            ``<base>.safetensors`` (the mapping network, under ``mapping.``,
            and, if the decoder was fine-tuned, the decoder under
            ``decoder.``) and ``<base>.json`` (parameters, decoder shape,
            loss history). The decoder architecture and tokenizer are not
            saved: pass them to :meth:`load`.

        Returns
        -------
        (weights_path, sidecar_path) : tuple of Path
        """
        state = {"mapping." + k: v.detach().cpu().clone().contiguous()
                 for k, v in self.mapping_net.state_dict().items()}
        if self.decoder_trained_:
            state.update({"decoder." + k: v.detach().cpu().clone().contiguous()
                          for k, v in self.decoder.state_dict().items()})
        emb = self.decoder.get_input_embeddings().weight
        meta = {
            "params": self._params(),
            "decoder": {
                "class": type(self.decoder).__name__,
                "d_model": self.d_model,
                "vocab_size": int(emb.shape[0]),
                "weights_included": bool(self.decoder_trained_),
            },
            "loss_history": [float(v) for v in self.loss_history_],
            "torch_version": torch.__version__,
        }
        return write_checkpoint(path, state, meta, _FORMAT, _FORMAT_VERSION)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        decoder: str | os.PathLike | Any,
        tokenizer: str | os.PathLike | Any | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> ClipCapCaptioner:
        """Load a captioner written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            As given to :meth:`save`.
        decoder, tokenizer
            As for the constructor: the decoder the mapping was trained
            with (its weights are replaced by the saved ones if it was
            fine-tuned).
        device : str or torch.device, optional

        Returns
        -------
        ClipCapCaptioner
            In eval mode.
        """
        state, meta, sidecar = read_checkpoint(path, _FORMAT, _FORMAT_VERSION, "ClipCapCaptioner")
        weights = checkpoint_paths(path)[0]
        try:
            params, saved = dict(meta["params"]), dict(meta["decoder"])
            saved_d_model, saved_vocab = int(saved["d_model"]), int(saved["vocab_size"])
        except (KeyError, TypeError, ValueError) as err:
            raise BrainalignError(f"{sidecar}: field {err} is missing or malformed.") from err
        unknown = sorted(set(params) - set(cls._param_names()))
        if unknown:
            raise BrainalignError(f"{sidecar}: field 'params' has unknown key(s) {', '.join(unknown)}.")
        cap = cls(decoder, tokenizer, device=device, **params)
        vocab = int(cap.decoder.get_input_embeddings().weight.shape[0])
        if saved_d_model != cap.d_model or saved_vocab != vocab:
            raise BrainalignError(
                f"{sidecar}: field 'decoder' describes d_model = {saved_d_model}, vocab_size = "
                f"{saved_vocab}, but the given decoder has d_model = {cap.d_model}, "
                f"vocab_size = {vocab}."
            )
        try:
            cap.mapping_net.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("mapping.")})
            if saved.get("weights_included"):
                cap.decoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
                cap.decoder_trained_ = True
        except RuntimeError as err:
            raise BrainalignError(
                f"{weights}: the weights do not match the architecture in {sidecar.name} ({err})."
            ) from err
        cap.loss_history_ = [float(v) for v in meta.get("loss_history", [])]
        cap.mapping_net.eval()
        cap.decoder.eval()
        return cap
