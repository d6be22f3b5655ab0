"""unCLIP image variation: images from predicted CLIP image embeddings with a Stable unCLIP
pipeline (:class:`UnclipReconstructor`), which runs without the CLIP image encoder."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from diffusers import AutoencoderKL, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
    StableUnCLIPImageNormalizer,
)
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int

from ._checks import _as_tensor, _check_float, _generators, _local_dir, _resolve_dtype, _resolve_seeds
from .base import _Reconstructor
from .reconstruction import Reconstruction


class _EmbedsUnCLIPImg2ImgPipeline(StableUnCLIPImg2ImgPipeline):
    """:class:`StableUnCLIPImg2ImgPipeline` that needs no image encoder for ``image_embeds``.

    The stock pipeline reads ``next(image_encoder.parameters()).dtype`` even
    when ``image_embeds`` are given, so it cannot run without the (large,
    here useless) CLIP vision model. This subclass skips it in that case and
    otherwise does exactly what the stock ``_encode_image`` does: noise
    augmentation at ``noise_level``, one copy per image, zero embeddings as
    the unconditional half under classifier-free guidance.
    """

    _optional_components: ClassVar[list[str]] = [
        "feature_extractor",
        "image_encoder",
        "tokenizer",
        "text_encoder",
    ]

    def to_json_string(self) -> str:
        # save_pretrained writes the stock class name, so saved folders load anywhere
        config = json.loads(super().to_json_string())
        config["_class_name"] = StableUnCLIPImg2ImgPipeline.__name__
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    def _encode_image(
        self,
        image,
        device,
        batch_size,
        num_images_per_prompt,
        do_classifier_free_guidance,
        noise_level,
        generator,
        image_embeds,
    ):
        if image_embeds is None:
            return super()._encode_image(
                image,
                device,
                batch_size,
                num_images_per_prompt,
                do_classifier_free_guidance,
                noise_level,
                generator,
                image_embeds,
            )
        image_embeds = self.noise_image_embeddings(
            image_embeds=image_embeds, noise_level=noise_level, generator=generator
        )
        image_embeds = image_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        if do_classifier_free_guidance:
            image_embeds = torch.cat([torch.zeros_like(image_embeds), image_embeds])
        return image_embeds


class UnclipReconstructor(_Reconstructor):
    """Images from predicted CLIP image embeddings with a Stable unCLIP pipeline.

    Parameters
    ----------
    pipeline : diffusers.StableUnCLIPImg2ImgPipeline
        A loaded pipeline (its modules are reused, not copied). Its image
        encoder and feature extractor may be ``None``; its tokenizer and text
        encoder are needed only to encode string prompts (the default empty
        prompt included) — otherwise pass ``prompt_embeds`` and, with
        guidance, ``negative_prompt_embeds``.
    device : str or torch.device
        Where the pipeline runs (``"cpu"``, ``"cuda"``, ...).
    dtype : torch.dtype or str or None
        Weight/compute dtype; ``None`` means float32 (use float16 on GPU).
    progress : bool
        Show diffusers' progress bar.

    Attributes
    ----------
    pipeline : StableUnCLIPImg2ImgPipeline
        The wrapped pipeline (a thin subclass that skips the image encoder).
    image_embed_dim : int
        Width of the CLIP image embeddings the pipeline expects (1024 for
        ``stable-diffusion-2-1-unclip``).
    source : dict
        Provenance (local path, or builder and seed).
    """

    def __init__(
        self,
        pipeline: StableUnCLIPImg2ImgPipeline,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ):
        super().__init__(device, dtype, progress)
        if not isinstance(pipeline, StableUnCLIPImg2ImgPipeline):
            raise BrainalignError(
                "'pipeline' must be a diffusers.StableUnCLIPImg2ImgPipeline, got "
                f"{type(pipeline).__name__}."
            )
        if not isinstance(pipeline, _EmbedsUnCLIPImg2ImgPipeline):
            pipeline = _EmbedsUnCLIPImg2ImgPipeline(**pipeline.components)
        unet_cfg = pipeline.unet.config
        dim = int(pipeline.image_normalizer.config.embedding_dim)
        if unet_cfg.class_embed_type != "projection" or (
            unet_cfg.projection_class_embeddings_input_dim != 2 * dim
        ):
            raise BrainalignError(
                "'pipeline' is inconsistent: an unCLIP UNet needs class_embed_type='projection' "
                f"and projection_class_embeddings_input_dim = 2 x {dim} (image embedding + "
                f"noise-level embedding), got {unet_cfg.class_embed_type!r} and "
                f"{unet_cfg.projection_class_embeddings_input_dim!r}."
            )
        self.pipeline = pipeline
        self.image_embed_dim = dim
        self.to()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        load_image_encoder: bool = False,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ) -> UnclipReconstructor:
        """Load a Stable unCLIP img2img folder saved by ``save_pretrained``.

        Parameters
        ----------
        path : str or path-like
            Local folder with ``model_index.json`` (e.g. a local copy of
            ``stable-diffusion-2-1-unclip``). Never a hub name.
        load_image_encoder : bool
            Also load the CLIP vision model and feature extractor (not needed
            to reconstruct from embeddings; ~2.5 GB for ViT-H).
        device, dtype, progress
            As in :class:`UnclipReconstructor`.
        """
        p = _local_dir(path)
        extra: dict[str, Any] = {}
        if not load_image_encoder:
            extra = {"image_encoder": None, "feature_extractor": None}
        pipe = _EmbedsUnCLIPImg2ImgPipeline.from_pretrained(
            p, local_files_only=True, dtype=_resolve_dtype(dtype), **extra
        )
        self = cls(pipe, device=device, dtype=dtype, progress=progress)
        self.source = {"path": str(p)}
        return self

    @classmethod
    def from_components(
        cls,
        *,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        scheduler: Any,
        image_normalizer: StableUnCLIPImageNormalizer,
        image_noising_scheduler: Any,
        text_encoder: Any = None,
        tokenizer: Any = None,
        image_encoder: Any = None,
        feature_extractor: Any = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ) -> UnclipReconstructor:
        """Assemble the pipeline from component objects (see the class for the rest)."""
        pipe = _EmbedsUnCLIPImg2ImgPipeline(
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            image_normalizer=image_normalizer,
            image_noising_scheduler=image_noising_scheduler,
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            unet=unet,
            scheduler=scheduler,
            vae=vae,
        )
        return cls(pipe, device=device, dtype=dtype, progress=progress)

    @property
    def image_size(self) -> tuple[int, int]:
        """Default ``(height, width)`` of the images, in pixels."""
        s = int(self.pipeline.unet.config.sample_size) * self.vae_scale_factor
        return s, s

    def reconstruct(
        self,
        image_embeds: ArrayLike | torch.Tensor,
        *,
        seed: int | Sequence[int],
        num_inference_steps: int = 20,
        guidance_scale: float = 10.0,
        noise_level: int = 0,
        prompt: str | Sequence[str] | None = None,
        prompt_embeds: ArrayLike | torch.Tensor | None = None,
        negative_prompt_embeds: ArrayLike | torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> Reconstruction:
        """Generate one image per predicted CLIP image embedding.

        Parameters
        ----------
        image_embeds : array-like or torch.Tensor, shape (n_images, image_embed_dim)
            Predicted CLIP image embeddings (un-normalised, as the CLIP
            vision model's ``image_embeds``); 1-D means one image.
        seed : int or sequence of int
            Required. An int gives image ``i`` the seed ``seed + i``; or one
            seed per image. Drives the embedding noise augmentation and the
            initial latents.
        num_inference_steps : int
            Denoising steps.
        guidance_scale : float
            Classifier-free guidance weight (> 1 enables guidance; the
            unconditional branch has a zero image embedding and the negative
            prompt).
        noise_level : int
            Noise augmentation of the image embeddings, in
            ``[0, image_noising_scheduler.num_train_timesteps - 1]``; higher
            gives more varied images, less tied to the embedding.
        prompt : str or list of str or None
            Text prompt(s); ``None`` (with no ``prompt_embeds``) is the empty
            prompt. Needs the tokenizer and text encoder.
        prompt_embeds : array-like, shape (n_images, seq_len, width) or (seq_len, width), optional
            Precomputed (e.g. predicted) text-encoder hidden states instead of ``prompt``.
        negative_prompt_embeds : array-like, same shape as ``prompt_embeds``, optional
            Unconditional text embeddings for guidance; default: the empty prompt.
        height, width : int, optional
            Output size in pixels (multiples of 8); default :attr:`image_size`.

        Returns
        -------
        Reconstruction
            ``n_images`` PIL images, the seeds and the settings.
        """
        emb = _as_tensor("image_embeds", image_embeds)
        if emb.ndim == 1:
            emb = emb.unsqueeze(0)
        if emb.ndim != 2 or emb.shape[1] != self.image_embed_dim:
            raise BrainalignError(
                f"'image_embeds' must have shape (n_images, {self.image_embed_dim}) (the "
                f"pipeline's CLIP image embedding width), got {tuple(emb.shape)}."
            )
        n = emb.shape[0]
        seeds = _resolve_seeds(seed, n)
        steps = check_int("num_inference_steps", num_inference_steps, 1)
        guidance = _check_float("guidance_scale", guidance_scale, 0.0)
        n_train = int(self.pipeline.image_noising_scheduler.config.num_train_timesteps)
        noise_level = check_int("noise_level", noise_level, 0)
        if noise_level >= n_train:
            raise BrainalignError(
                f"'noise_level' must be in [0, {n_train - 1}], got {noise_level}."
            )
        h_def, w_def = self.image_size
        height = h_def if height is None else check_int("height", height, 8)
        width = w_def if width is None else check_int("width", width, 8)
        for name, v in (("height", height), ("width", width)):
            if v % 8:
                raise BrainalignError(f"'{name}' must be a multiple of 8, got {v}.")
        pe, neg = self._text_conditioning(
            n, prompt, prompt_embeds, negative_prompt_embeds, guidance
        )
        pipe = self.pipeline
        self._set_progress(pipe)
        out = pipe(
            image=None,
            image_embeds=emb.to(self.device, self.dtype),
            prompt_embeds=pe,
            negative_prompt_embeds=neg,
            num_inference_steps=steps,
            guidance_scale=guidance,
            noise_level=noise_level,
            generator=_generators(seeds),
            height=height,
            width=width,
            output_type="pil",
        )
        params = self._params(
            _pipe=pipe,
            n_images=n,
            num_inference_steps=steps,
            guidance_scale=guidance,
            noise_level=noise_level,
            prompt=prompt if prompt_embeds is None else None,
            prompt_embeds_given=prompt_embeds is not None,
            height=height,
            width=width,
        )
        return Reconstruction(list(out.images), seeds, params)
