"""GIT captions from predicted image-encoder embeddings (:class:`GitCaptioner`): the
vision encoder is swapped, for each call, for a stand-in that returns the predictions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from brainalign._validation import BrainalignError, check_fname, check_int

from ._common import (
    _as_float_tensor,
    _batches,
    _check_generate_kwargs,
    _eos_set,
    _eval_mode,
    _load_tokenizer,
    _trim,
)


class _PredictedVisionFeatures(nn.Module):
    """Stands in for GIT's ``image_encoder``: returns the predicted hidden states.

    GIT calls ``image_encoder(pixel_values, interpolate_pos_encoding=...)`` on a
    4-D tensor and reads ``.last_hidden_state``; the captioner passes the
    predicted states as ``pixel_values`` of shape ``(n, 1, n_tokens,
    vision_hidden)`` and this module hands them back as
    ``(n, n_tokens, vision_hidden)``.
    """

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype_ = dtype

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, **kwargs: Any):
        from transformers.modeling_outputs import BaseModelOutput

        return BaseModelOutput(last_hidden_state=pixel_values[:, 0].to(self.dtype_))


class GitCaptioner:
    """Caption predicted GIT image-encoder embeddings with GIT's own text decoder.

    Parameters
    ----------
    model : str, path-like or transformers.GitForCausalLM
        A local folder holding a GIT checkpoint (loaded with
        ``GitForCausalLM.from_pretrained(path, local_files_only=True)``; never
        downloaded) or an instantiated model. Video checkpoints (config
        ``num_image_with_embedding`` set) are not supported.
    tokenizer : str, path-like or tokenizer, optional
        GIT's (BERT WordPiece) tokenizer or a folder holding it. Defaults to
        the model folder when ``model`` is a path; required otherwise.
    device : str or torch.device, optional
        Moves the model there; by default it stays where it is.

    Attributes
    ----------
    model : transformers.GitForCausalLM
        The wrapped model, in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
    vision_hidden_size : int
        Width of the vision encoder's hidden states (768 for ``git-base``,
        1024 for ``git-large``): the last dimension of the embeddings.
    n_image_tokens : int or None
        How many image tokens GIT's vision encoder produces
        (``(image_size / patch_size) ** 2 + 1``: 197 for ``git-base``).

    Notes
    -----
    The predicted embeddings must be estimates of the vision encoder's
    ``last_hidden_state`` (after its ``post_layernorm``), i.e. of
    :meth:`encode_images` applied to the stimulus images; they are
    projected by GIT's ``visual_projection`` and prepended to the text, as
    GIT does with real images. Accepted shapes:

    - ``(n, n_tokens, vision_hidden)``: any number of tokens;
    - ``(n, vision_hidden)``: one image token per sample;
    - ``(n, n_image_tokens * vision_hidden)``: a flattened full token grid
      (what a ridge regression onto flattened targets returns), reshaped.

    The injection swaps ``model.git.image_encoder`` for a stand-in module
    during each call (restored afterwards, also on error) and feeds the
    embeddings through ``pixel_values``, so ``model.generate`` (greedy and
    beam search) is used unchanged. GIT keeps the image tokens in its KV
    cache and sizes the cached attention mask from its config
    (``n_image_tokens``), so the cache is used only when the number of
    predicted tokens equals ``n_image_tokens``; otherwise every step
    recomputes the whole sequence (exact, slower).
    """

    def __init__(
        self,
        model: str | os.PathLike | Any,
        tokenizer: str | os.PathLike | Any | None = None,
        *,
        device: str | torch.device | None = None,
    ):
        if isinstance(model, (str, os.PathLike)):
            from transformers import GitForCausalLM

            path = check_fname(model, kind="directory", what="GIT model")
            model = GitForCausalLM.from_pretrained(path, local_files_only=True)
            if tokenizer is None:
                tokenizer = path
        git = getattr(model, "git", None)
        if git is None or not hasattr(git, "image_encoder") or not hasattr(git, "visual_projection"):
            raise BrainalignError(
                f"'model' must be a transformers GitForCausalLM (or a folder holding one), got "
                f"{type(model).__name__}."
            )
        if getattr(model.config, "num_image_with_embedding", None) is not None:
            raise BrainalignError(
                "'model' is a video GIT checkpoint (config.num_image_with_embedding = "
                f"{model.config.num_image_with_embedding}); only image checkpoints are supported."
            )
        if tokenizer is None:
            raise BrainalignError("'tokenizer' is required when 'model' is a model object, not a folder.")
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _load_tokenizer(check_fname(tokenizer, kind="directory", what="GIT tokenizer"))
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vision_hidden_size = int(model.config.vision_config.hidden_size)
        try:
            self.n_image_tokens: int | None = int(model.git.encoder.layer[0].attention.self.image_patch_tokens)
        except (AttributeError, IndexError, TypeError):
            self.n_image_tokens = None

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def bos_token_id(self) -> int:
        """The token GIT starts a caption with: the tokenizer's ``[CLS]``."""
        tok = getattr(self.tokenizer, "cls_token_id", None)
        if tok is None:
            tok = getattr(self.model.config, "bos_token_id", None)
        if tok is None:
            raise BrainalignError(
                "'tokenizer' has no cls_token_id and the model config no bos_token_id: GIT needs a "
                "start token."
            )
        return int(tok)

    @property
    def eos_token_ids(self) -> set[int]:
        """Tokens that end a caption (the generation config's, else ``[SEP]``)."""
        ids = _eos_set(getattr(self.model.generation_config, "eos_token_id", None))
        if not ids:
            ids = _eos_set(getattr(self.model.config, "eos_token_id", None),
                           getattr(self.tokenizer, "sep_token_id", None))
        return ids

    def _pad_token_id(self) -> int:
        for cand in (getattr(self.tokenizer, "pad_token_id", None), getattr(self.model.config, "pad_token_id", None)):
            if cand is not None:
                return int(cand)
        return min(self.eos_token_ids) if self.eos_token_ids else 0

    # ------------------------------------------------------------------ inputs
    def _check_embeddings(self, image_embeddings: ArrayLike | torch.Tensor) -> torch.Tensor:
        """``(n, n_tokens, vision_hidden)`` on the model's device and dtype."""
        t = _as_float_tensor(image_embeddings, "image_embeddings")
        vh = self.vision_hidden_size
        if t.ndim == 2:
            if t.shape[1] == vh:
                t = t[:, None, :]
            elif self.n_image_tokens is not None and t.shape[1] == self.n_image_tokens * vh:
                t = t.reshape(t.shape[0], self.n_image_tokens, vh)
            else:
                flat = (
                    f" or n_image_tokens * vision_hidden = {self.n_image_tokens} * {vh} = "
                    f"{self.n_image_tokens * vh}" if self.n_image_tokens is not None else ""
                )
                raise BrainalignError(
                    f"'image_embeddings' has width {t.shape[1]}, but this GIT model expects "
                    f"vision_hidden = {vh}{flat} (shape (n, {vh}) or (n, n_tokens, {vh}))."
                )
        elif t.ndim == 3:
            if t.shape[2] != vh:
                raise BrainalignError(
                    f"'image_embeddings' has last dimension {t.shape[2]}, but this GIT model expects "
                    f"vision_hidden = {vh} (shape (n, n_tokens, {vh}))."
                )
        else:
            raise BrainalignError(
                f"'image_embeddings' must be 2-D (n, {vh}) or 3-D (n, n_tokens, {vh}), got shape "
                f"{tuple(t.shape)}."
            )
        dtype = self.model.git.visual_projection.visual_projection[0].weight.dtype
        return t.to(device=self.device, dtype=dtype)

    @contextlib.contextmanager
    def _injected(self) -> Iterator[None]:
        """Swap GIT's vision encoder for :class:`_PredictedVisionFeatures` (restored on exit)."""
        git = self.model.git
        original = git.image_encoder
        dtype = git.visual_projection.visual_projection[0].weight.dtype
        git.image_encoder = _PredictedVisionFeatures(dtype)
        try:
            yield
        finally:
            git.image_encoder = original

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode_images(self, pixel_values: ArrayLike | torch.Tensor) -> torch.Tensor:
        """GIT's vision-encoder embeddings of images: the targets to predict from the brain.

        Parameters
        ----------
        pixel_values : array-like or Tensor, shape (n, 3, height, width)
            Images preprocessed as GIT's processor does.

        Returns
        -------
        Tensor, shape (n, n_image_tokens, vision_hidden)
            The vision encoder's ``last_hidden_state``, float32 on the CPU.
        """
        px = _as_float_tensor(pixel_values, "pixel_values")
        if px.ndim != 4:
            raise BrainalignError(
                f"'pixel_values' must be 4-D (n, channels, height, width), got shape {tuple(px.shape)}."
            )
        enc = self.model.git.image_encoder
        dtype = next(enc.parameters()).dtype
        with _eval_mode(enc):
            out = enc(px.to(device=self.device, dtype=dtype)).last_hidden_state
        return out.float().cpu()

    @torch.no_grad()
    def logits(
        self,
        image_embeddings: ArrayLike | torch.Tensor,
        input_ids: ArrayLike | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits over the text positions, conditioned on the embeddings.

        Parameters
        ----------
        image_embeddings : array-like or Tensor, shape (n, n_tokens, vision_hidden) or (n, vision_hidden)
            Predicted vision-encoder hidden states (see the class notes).
        input_ids : array-like or Tensor of int, shape (n, L), optional
            Text so far, starting with the start token (``[CLS]``); defaults
            to the start token alone.

        Returns
        -------
        Tensor, shape (n, L, vocab_size)
            ``[:, j]`` scores the token after ``input_ids[:, :j + 1]``
            (float32, CPU).
        """
        emb = self._check_embeddings(image_embeddings)
        n = emb.shape[0]
        ids = self._check_input_ids(input_ids, n)
        with self._injected(), _eval_mode(self.model):
            out = self.model(input_ids=ids, pixel_values=emb[:, None], use_cache=False)
        return out.logits[:, emb.shape[1]:].float().cpu()

    def _check_input_ids(self, input_ids: ArrayLike | torch.Tensor | None, n: int) -> torch.Tensor:
        if input_ids is None:
            return torch.full((n, 1), self.bos_token_id, dtype=torch.long, device=self.device)
        ids = torch.as_tensor(np.asarray(input_ids) if not isinstance(input_ids, torch.Tensor) else input_ids)
        if ids.ndim != 2 or ids.shape[0] != n or ids.shape[1] < 1 or ids.is_floating_point():
            raise BrainalignError(
                f"'input_ids' must be integers of shape ({n}, L) with L >= 1, got {tuple(ids.shape)} "
                f"({ids.dtype})."
            )
        return ids.to(device=self.device, dtype=torch.long)

    @torch.no_grad()
    def generate_ids(
        self,
        image_embeddings: ArrayLike | torch.Tensor,
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
            Without the start token, the end token and the padding.
        """
        max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
        num_beams = check_int("num_beams", num_beams, 1)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        _check_generate_kwargs(generate_kwargs)
        emb = self._check_embeddings(image_embeddings)
        n, n_tokens = emb.shape[:2]
        use_cache = self.n_image_tokens is not None and n_tokens == self.n_image_tokens
        generate_kwargs.setdefault("do_sample", False)
        generate_kwargs.setdefault("use_cache", use_cache)
        eos = self.eos_token_ids
        rows: list[list[int]] = []
        with self._injected(), _eval_mode(self.model):
            for sl in _batches(n, batch_size):
                chunk = emb[sl]
                ids = torch.full((chunk.shape[0], 1), self.bos_token_id, dtype=torch.long, device=self.device)
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    pixel_values=chunk[:, None],
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    eos_token_id=sorted(eos) if eos else None,
                    pad_token_id=self._pad_token_id(),
                    **generate_kwargs,
                )
                rows.extend(_trim(out[:, ids.shape[1]:].cpu(), eos))
        return rows

    def generate(
        self,
        image_embeddings: ArrayLike | torch.Tensor,
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        batch_size: int | None = 32,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Captions for predicted image-encoder embeddings.

        Parameters
        ----------
        image_embeddings : array-like or Tensor, shape (n, n_tokens, vision_hidden) or (n, vision_hidden)
            Predicted vision-encoder last hidden states (NumPy or torch; see
            the class notes for the flattened form).
        max_new_tokens : int
            At most this many tokens per caption (20, as in MindEye2).
        num_beams : int
            1 is greedy search; more is beam search with that many beams.
        batch_size : int or None
            Embeddings captioned per ``model.generate`` call (None: all).
        **generate_kwargs
            Passed to ``model.generate`` (e.g. ``length_penalty``,
            ``no_repeat_ngram_size``, ``min_new_tokens``); not the inputs,
            ``max_new_tokens``, ``num_beams`` or ``max_length``.

        Returns
        -------
        list of str, length n
            Decoded without special tokens, stripped.
        """
        ids = self.generate_ids(
            image_embeddings,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            batch_size=batch_size,
            **generate_kwargs,
        )
        return [s.strip() for s in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
