"""The machinery both reconstructors share: device, dtype and progress handling, and the
text conditioning (prompts or prompt embeddings, and their unconditional half)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.utils import logging as diffusers_logging

from brainalign._validation import BrainalignError

from ._checks import _as_tensor, _resolve_dtype


class _Reconstructor:
    """Device/dtype/progress handling and prompt embeddings shared by both decoders."""

    pipeline: Any

    def __init__(self, device: str | torch.device, dtype: torch.dtype | str | None, progress: bool):
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise BrainalignError(f"'device' is not a valid torch device: {err}") from None
        self.dtype = _resolve_dtype(dtype)
        if not isinstance(progress, bool):
            raise BrainalignError(f"'progress' must be a bool, got {progress!r}.")
        self.progress = progress
        self.source: dict[str, Any] = {}

    # -- geometry ---------------------------------------------------------- #
    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent pixel (8 for Stable Diffusion, 2 for the tiny VAE)."""
        return int(self.pipeline.vae_scale_factor)

    @property
    def prompt_embeds_shape(self) -> tuple[int, int]:
        """``(seq_len, width)`` of one prompt embedding (text-encoder hidden states).

        ``seq_len`` is the tokenizer's ``model_max_length`` (77 for SD); without
        a tokenizer only ``width`` (the UNet's ``cross_attention_dim``) is
        enforced and ``seq_len`` is reported as -1.
        """
        tok = self.pipeline.tokenizer
        seq = int(tok.model_max_length) if tok is not None else -1
        return seq, int(self.pipeline.unet.config.cross_attention_dim)

    def _pipelines(self) -> list[Any]:
        return [self.pipeline]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None):
        """Move the pipeline(s) to ``device`` and cast to ``dtype``; return ``self``."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = _resolve_dtype(dtype)
        for pipe in self._pipelines():
            pipe.to(self.device)
            modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
            # cast only when needed: diffusers warns on every dtype cast, even a no-op
            if any(getattr(m, "dtype", self.dtype) != self.dtype for m in modules):
                level = diffusers_logging.get_verbosity()
                diffusers_logging.set_verbosity_error()
                try:
                    pipe.to(dtype=self.dtype)
                finally:
                    diffusers_logging.set_verbosity(level)
        return self

    def _set_progress(self, pipe: Any) -> None:
        pipe.set_progress_bar_config(disable=not self.progress)

    # -- text conditioning ------------------------------------------------- #
    def _encode_text(self, prompts: list[str], name: str) -> torch.Tensor:
        pipe = self.pipeline
        if pipe.tokenizer is None or pipe.text_encoder is None:
            raise BrainalignError(
                f"'{name}' needs the pipeline's tokenizer and text encoder to encode "
                f"{prompts[0]!r}, but it has none; pass precomputed embeddings instead."
            )
        with torch.no_grad():
            embeds, _ = pipe.encode_prompt(prompts, self.device, 1, False)
        return embeds.to(self.device, self.dtype)

    def _check_prompt_embeds(self, name: str, value: Any, n: int) -> torch.Tensor:
        t = _as_tensor(name, value)
        _, width = self.prompt_embeds_shape
        if t.ndim == 2 and t.shape[-1] == width:
            t = t.unsqueeze(0).expand(n, -1, -1)  # one prompt for all images
        if t.ndim != 3:
            raise BrainalignError(
                f"'{name}' must have shape (n_images, seq_len, {width}) (or (seq_len, {width}) "
                f"for one prompt shared by all images), got {tuple(t.shape)}; reshape flat "
                "predictions to (n_images, seq_len, width)."
            )
        if t.shape[-1] != width:
            raise BrainalignError(
                f"'{name}' has width {t.shape[-1]} but the UNet's cross_attention_dim is "
                f"{width} (expected shape (n_images, seq_len, {width}))."
            )
        if t.shape[0] != n:
            raise BrainalignError(f"'{name}' has {t.shape[0]} rows but there are {n} images.")
        return t.to(self.device, self.dtype)

    def _text_conditioning(
        self,
        n: int,
        prompt: str | Sequence[str] | None,
        prompt_embeds: Any,
        negative_prompt_embeds: Any,
        guidance_scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(prompt_embeds, negative_prompt_embeds)`` for ``n`` images."""
        if prompt is not None and prompt_embeds is not None:
            raise BrainalignError("Give either 'prompt' or 'prompt_embeds', not both.")
        if prompt_embeds is None:
            if prompt is None:
                prompts = [""] * n
            elif isinstance(prompt, str):
                prompts = [prompt] * n
            elif isinstance(prompt, Sequence) and all(isinstance(p, str) for p in prompt):
                prompts = list(prompt)
                if len(prompts) != n:
                    raise BrainalignError(
                        f"'prompt' has {len(prompts)} strings but there are {n} images."
                    )
            else:
                raise BrainalignError(f"'prompt' must be a str or a list of str, got {prompt!r}.")
            pe = self._encode_text(prompts, "prompt")
        else:
            pe = self._check_prompt_embeds("prompt_embeds", prompt_embeds, n)
        neg = None
        if guidance_scale > 1.0:
            if negative_prompt_embeds is None:
                neg = self._encode_text([""] * n, "negative_prompt_embeds")
                if neg.shape != pe.shape:
                    raise BrainalignError(
                        f"'prompt_embeds' has shape {tuple(pe.shape)} but the empty prompt "
                        f"encodes to {tuple(neg.shape)}; pass matching 'negative_prompt_embeds'."
                    )
            else:
                neg = self._check_prompt_embeds("negative_prompt_embeds", negative_prompt_embeds, n)
                if neg.shape != pe.shape:
                    raise BrainalignError(
                        f"'negative_prompt_embeds' has shape {tuple(neg.shape)} but "
                        f"'prompt_embeds' has {tuple(pe.shape)}."
                    )
        return pe, neg

    def _params(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "pipeline": type(kwargs.pop("_pipe")).__name__,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "source": dict(self.source),
            **kwargs,
        }
