"""Captions from predicted image-encoder embeddings: GIT and ClipCap.

Brain activity is decoded elsewhere into *predicted* image-encoder
embeddings; the two captioners here turn such embeddings into text.

:class:`GitCaptioner`
    Wraps a pretrained ``transformers.GitForCausalLM`` (GIT, Wang et al.
    2022), as MindEye2 (Scotti et al. 2024) does. GIT encodes an image with a
    CLIP vision transformer, projects the encoder's last hidden states with
    ``git.visual_projection`` (linear + LayerNorm) and prepends them to the
    text tokens of its decoder. Here the vision transformer is replaced, for
    the duration of each call, by a stand-in module that returns the
    predicted hidden states unchanged, so the rest of GIT (projection,
    bidirectional image-token attention, causal text, ``model.generate``
    with its greedy and beam search) runs as published.
:class:`ClipCapCaptioner`
    ClipCap (Mokady et al. 2021): a mapping network (MLP or small
    transformer) turns one embedding into ``prefix_length`` input embeddings
    of a GPT-2-like decoder, trained with teacher forcing (decoder frozen by
    default); captions are generated from the prefix with
    ``model.generate(inputs_embeds=...)``.

Both accept NumPy arrays or torch tensors and default to at most 20 new
tokens (MindEye2's setting). Generation is deterministic (no sampling) unless
``do_sample=True`` is passed through to ``generate``.

Tested against ``transformers`` 5.x.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
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

__all__ = ["ClipCapCaptioner", "GitCaptioner"]

_FORMAT = "brainalign.decoders.ClipCapCaptioner"
_FORMAT_VERSION = 1

# ``generate`` sets these itself; passing them through ``**generate_kwargs`` is an error.
_RESERVED_GENERATE_KWARGS = frozenset(
    {
        "input_ids",
        "inputs",
        "inputs_embeds",
        "pixel_values",
        "attention_mask",
        "max_new_tokens",
        "max_length",
        "num_beams",
        "return_dict_in_generate",
        "num_return_sequences",
    }
)


# --------------------------------------------------------------------------- helpers
def _as_float_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` (NumPy, torch or nested lists) as a finite floating-point tensor."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.bool)):
            raise BrainalignError(f"'{name}' must hold real numbers, got a tensor of dtype {t.dtype}.")
        if not t.is_floating_point():
            t = t.float()
    else:
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise BrainalignError(f"'{name}' must be an array of real numbers ({err}).") from err
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.numel() == 0:
        raise BrainalignError(f"'{name}' must not be empty, got shape {tuple(t.shape)}.")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        first = tuple(int(i) for i in torch.nonzero(~finite)[0])
        raise BrainalignError(
            f"'{name}' contains {int((~finite).sum())} NaN or infinite value(s), the first at index {first}."
        )
    return t




def _check_generate_kwargs(kwargs: dict[str, Any]) -> None:
    bad = sorted(set(kwargs) & _RESERVED_GENERATE_KWARGS)
    if bad:
        raise BrainalignError(
            f"'generate_kwargs' must not set {', '.join(repr(b) for b in bad)}: the captioner sets "
            "them itself (use the 'max_new_tokens' and 'num_beams' arguments)."
        )


def _trim(ids: torch.Tensor, eos_token_ids: set[int]) -> list[list[int]]:
    """Rows of generated ids, each cut before its first end-of-sequence token."""
    rows = []
    for row in ids.tolist():
        out = []
        for tok in row:
            if tok in eos_token_ids:
                break
            out.append(int(tok))
        rows.append(out)
    return rows


def _eos_set(*candidates: Any) -> set[int]:
    out: set[int] = set()
    for c in candidates:
        if c is None:
            continue
        if isinstance(c, torch.Tensor):
            c = c.tolist()
        if isinstance(c, (list, tuple, set)):
            out.update(int(v) for v in c)
        else:
            out.add(int(c))
    return out


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode and restore their ``training`` flags afterwards."""
    flags = [[(m, m.training) for m in mod.modules()] for mod in modules]
    for mod in modules:
        mod.eval()
    try:
        yield
    finally:
        for group in flags:
            for m, was in group:
                m.training = was


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _batches(n: int, batch_size: int | None) -> list[slice]:
    step = n if batch_size is None else batch_size
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


# --------------------------------------------------------------------------- GIT
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


# --------------------------------------------------------------------------- ClipCap
class _MLPMapping(nn.Module):
    """ClipCap's MLP mapping: ``Linear → tanh → Linear`` to ``prefix_length × d_model``."""

    def __init__(self, embed_dim: int, prefix_length: int, d_model: int, hidden_size: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.d_model = d_model
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, prefix_length * d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0], self.prefix_length, self.d_model)


class _TransformerMapping(nn.Module):
    """ClipCap's transformer mapping.

    The embedding is linearly expanded to ``prefix_length`` tokens,
    concatenated with ``prefix_length`` learned constant tokens, passed
    through a transformer encoder, and the outputs at the constant tokens
    form the prefix.
    """

    def __init__(self, embed_dim: int, prefix_length: int, d_model: int, n_layers: int, n_heads: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.d_model = d_model
        self.linear = nn.Linear(embed_dim, prefix_length * d_model)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=0.0, activation="relu",
            batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = self.linear(x).view(n, self.prefix_length, self.d_model)
        h = torch.cat([h, self.prefix_const.unsqueeze(0).expand(n, -1, -1)], dim=1)
        return self.transformer(h)[:, self.prefix_length:]


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
