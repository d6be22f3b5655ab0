"""Image reconstruction from decoded brain embeddings with latent diffusion.

Brain activity is decoded elsewhere (e.g. ridge regression) into *predicted*
model-space embeddings. This module turns those predictions into images with
two Stable-Diffusion-family pipelines from ``diffusers``:

:class:`UnclipReconstructor`
    unCLIP image variation (:class:`diffusers.StableUnCLIPImg2ImgPipeline`,
    e.g. ``stable-diffusion-2-1-unclip``), conditioned on a predicted CLIP
    *image* embedding ``(n_images, embed_dim)``, which enters the UNet as a
    class embedding (after the pipeline's normaliser + noise augmentation at
    ``noise_level``), plus an optional text prompt (empty by default). No
    stimulus image and no CLIP image encoder are needed.

:class:`Img2ImgReconstructor`
    The two-stage recipe of brain-diffuser / Takagi & Nishimoto: a predicted
    low-level VAE latent ``(n_images, 4, h, w)`` is the img2img starting
    point, partially re-noised (``strength``) and denoised under a predicted
    prompt embedding (text-encoder hidden states ``(n_images, seq_len,
    cross_attention_dim)``) with
    :class:`diffusers.StableDiffusionImg2ImgPipeline`. With a
    :class:`diffusers.ControlNetModel` (depth), a depth map guides the
    denoising through :class:`diffusers.StableDiffusionControlNetImg2ImgPipeline`,
    as in Brain Captioning (Ferrante et al. 2023).

Every call takes an explicit ``seed``; each image gets its own CPU
:class:`torch.Generator` (seed ``seed + i`` for image ``i``, or one seed per
image), so an image does not depend on the batch it was made in (up to float
rounding), and the seeds are returned in the :class:`Reconstruction`.

Models are only ever loaded from local folders (``local_files_only=True``);
nothing is downloaded. :func:`build_tiny_unclip` and :func:`build_tiny_img2img`
build random-weight, seconds-fast pipelines for smoke runs and simulated
workflows (their images are noise-like; only the plumbing is real).

Notes
-----
Latents are in the *scaled* latent space the UNet works in, i.e.
``vae.encode(x).latent_dist.mean * vae.config.scaling_factor`` with ``x`` in
[-1, 1]; ``diffusers`` treats a 4-channel ``image`` given to an img2img
pipeline as such latents, so only 4-channel VAEs (the whole SD 1.x/2.x family)
are supported. No safety checker is loaded (it would blank images and bias
reconstruction metrics).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
    StableUnCLIPImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
    StableUnCLIPImageNormalizer,
)
from diffusers.utils import logging as diffusers_logging
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int

__all__ = [
    "Img2ImgReconstructor",
    "Reconstruction",
    "UnclipReconstructor",
    "build_tiny_img2img",
    "build_tiny_unclip",
]

logger = logging.getLogger("brainalign")

_MAX_SEED = 2**63 - 1

#: Geometry of the tiny random-weight pipelines (images are 32 x 32 pixels).
TINY_IMAGE_SIZE = 32
TINY_LATENT_SHAPE = (4, 16, 16)
TINY_CROSS_ATTENTION_DIM = 32
TINY_PROMPT_LENGTH = 16
TINY_IMAGE_EMBED_DIM = 16


# --------------------------------------------------------------------------- #
# Results and small helpers
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Reconstruction(Sequence):
    """Reconstructed images with the seeds and settings that made them.

    Behaves as a read-only sequence of the images (``len``, indexing,
    iteration), so it can be used wherever a ``list[PIL.Image.Image]`` is.

    Attributes
    ----------
    images : list of PIL.Image.Image
        ``n_images`` RGB images, in input order.
    seeds : list of int
        The seed of each image's CPU :class:`torch.Generator`.
    params : dict
        The settings of the call (steps, guidance, strength, ...), the
        pipeline class and where the weights came from (``source``).
    """

    images: list[PIL.Image.Image]
    seeds: list[int]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):  # type: ignore[override]
        return self.images[index]

    def __iter__(self) -> Iterator[PIL.Image.Image]:
        return iter(self.images)

    def to_numpy(self) -> np.ndarray:
        """Return the images as one uint8 array of shape (n_images, height, width, 3)."""
        return np.stack([np.asarray(im.convert("RGB")) for im in self.images])


def _resolve_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per image: ``seed + i`` for an int, else the given sequence."""
    if isinstance(seed, bool):
        raise BrainalignError(f"'seed' must be an int or a sequence of ints, got {seed!r}.")
    if isinstance(seed, Integral):
        seeds = [int(seed) + i for i in range(n)]
    elif isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str):
        seeds = list(seed)
        if len(seeds) != n:
            raise BrainalignError(
                f"'seed' has {len(seeds)} seeds but there are {n} images (give one int, "
                "or one seed per image)."
            )
        if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in seeds):
            raise BrainalignError(f"'seed' must contain only ints, got {seeds!r}.")
        seeds = [int(s) for s in seeds]
    else:
        raise BrainalignError(
            f"'seed' must be an int or a sequence of ints, got {type(seed).__name__}."
        )
    if any(s < 0 or s > _MAX_SEED for s in seeds):
        raise BrainalignError(f"'seed' values must be in [0, 2**63 - 1], got {seeds!r}.")
    return seeds


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """CPU generators (reproducible across devices: diffusers draws on CPU and moves)."""
    return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` (array-like or tensor) as a finite float32 CPU tensor."""
    if value is None:
        raise BrainalignError(f"'{name}' is required.")
    try:
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu", torch.float32)
        else:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise BrainalignError(f"'{name}' must be a numeric array or tensor: {err}") from None
    if t.numel() == 0:
        raise BrainalignError(f"'{name}' is empty (shape {tuple(t.shape)}).")
    if not torch.isfinite(t).all():
        raise BrainalignError(f"'{name}' contains NaN or infinite values.")
    return t




def _check_float(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise BrainalignError(f"'{name}' must be a finite number, got {value!r}.")
    if value < low or (high is not None and value > high):
        hi = "inf" if high is None else high
        raise BrainalignError(f"'{name}' must be in [{low}, {hi}], got {value!r}.")
    return float(value)


def _local_dir(path: str | os.PathLike, name: str = "path") -> Path:
    """An existing local folder (never a hub name: nothing is downloaded)."""
    if not isinstance(path, str | os.PathLike):
        raise BrainalignError(f"'{name}' must be a path to a local folder, got {path!r}.")
    p = Path(os.path.expanduser(os.fspath(path))).absolute()
    if not p.is_dir():
        raise BrainalignError(
            f"'{name}' must be an existing local folder saved with save_pretrained "
            f"(models are never downloaded), got {os.fspath(path)!r}."
        )
    return p


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise BrainalignError(f"'dtype' must be a floating torch.dtype, got {dtype!r}.")
    return dtype


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


# --------------------------------------------------------------------------- #
# Shared machinery
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# unCLIP
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# img2img from a predicted VAE latent (+ ControlNet depth)
# --------------------------------------------------------------------------- #
class Img2ImgReconstructor(_Reconstructor):
    """Images from a predicted VAE latent and prompt embedding (optionally + depth).

    Parameters
    ----------
    pipeline : diffusers.StableDiffusionImg2ImgPipeline or StableDiffusionControlNetImg2ImgPipeline
        A loaded Stable Diffusion img2img pipeline (its modules are reused).
        A ControlNet pipeline also enables depth guidance.
    controlnet : diffusers.ControlNetModel, optional
        A depth ControlNet matching the UNet; when given, ``reconstruct``
        requires a ``depth`` map. Ignored if ``pipeline`` already has one.
    device, dtype, progress
        As in :class:`UnclipReconstructor`.

    Attributes
    ----------
    pipeline : StableDiffusionImg2ImgPipeline
        The plain img2img pipeline.
    controlnet_pipeline : StableDiffusionControlNetImg2ImgPipeline or None
        The same modules plus the ControlNet, when there is one.
    source : dict
        Provenance (local paths, or builder and seed).
    """

    def __init__(
        self,
        pipeline: StableDiffusionImg2ImgPipeline | StableDiffusionControlNetImg2ImgPipeline,
        *,
        controlnet: ControlNetModel | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ):
        super().__init__(device, dtype, progress)
        if not isinstance(
            pipeline, StableDiffusionImg2ImgPipeline | StableDiffusionControlNetImg2ImgPipeline
        ):
            raise BrainalignError(
                "'pipeline' must be a diffusers StableDiffusionImg2ImgPipeline or "
                f"StableDiffusionControlNetImg2ImgPipeline, got {type(pipeline).__name__}."
            )
        comps = dict(pipeline.components)
        if isinstance(pipeline, StableDiffusionControlNetImg2ImgPipeline):
            controlnet = comps.pop("controlnet")
        if controlnet is not None and not isinstance(controlnet, ControlNetModel):
            raise BrainalignError(
                "'controlnet' must be a diffusers.ControlNetModel, got "
                f"{type(controlnet).__name__}."
            )
        latent_channels = int(comps["vae"].config.latent_channels)
        if latent_channels != 4 or int(comps["unet"].config.in_channels) != 4:
            raise BrainalignError(
                "'pipeline' must have a 4-channel VAE latent and UNet input (diffusers' img2img "
                f"only takes latents with 4 channels), got VAE latent_channels={latent_channels}, "
                f"UNet in_channels={comps['unet'].config.in_channels}."
            )
        # keep a user-supplied safety checker; none is loaded by from_pretrained/_components
        checker = comps.get("safety_checker") is not None
        if isinstance(pipeline, StableDiffusionImg2ImgPipeline):
            self.pipeline = pipeline
        else:
            self.pipeline = StableDiffusionImg2ImgPipeline(**comps, requires_safety_checker=checker)
        self.controlnet_pipeline = (
            None
            if controlnet is None
            else StableDiffusionControlNetImg2ImgPipeline(
                **comps, controlnet=controlnet, requires_safety_checker=checker
            )
        )
        self.to()

    def _pipelines(self) -> list[Any]:
        return [p for p in (self.pipeline, self.controlnet_pipeline) if p is not None]

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        controlnet: str | os.PathLike | ControlNetModel | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ) -> Img2ImgReconstructor:
        """Load a Stable Diffusion folder (and a depth ControlNet) saved by ``save_pretrained``.

        Parameters
        ----------
        path : str or path-like
            Local Stable Diffusion folder with ``model_index.json`` (e.g. a
            local copy of SD 1.5). Never a hub name. The safety checker is
            not loaded.
        controlnet : str or path-like or ControlNetModel, optional
            Local ControlNet folder (e.g. ``control_v11f1p_sd15_depth``) or model.
        device, dtype, progress
            As in :class:`UnclipReconstructor`.
        """
        p = _local_dir(path)
        torch_dtype = _resolve_dtype(dtype)
        source: dict[str, Any] = {"path": str(p)}
        cn = controlnet
        if cn is not None and not isinstance(cn, ControlNetModel):
            cp = _local_dir(cn, "controlnet")
            cn = ControlNetModel.from_pretrained(cp, local_files_only=True, dtype=torch_dtype)
            source["controlnet"] = str(cp)
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
            p,
            local_files_only=True,
            dtype=torch_dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        self = cls(pipe, controlnet=cn, device=device, dtype=dtype, progress=progress)
        self.source = source
        return self

    @classmethod
    def from_components(
        cls,
        *,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        scheduler: Any,
        text_encoder: Any = None,
        tokenizer: Any = None,
        controlnet: ControlNetModel | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        progress: bool = False,
    ) -> Img2ImgReconstructor:
        """Assemble the pipeline from component objects (no safety checker).

        ``text_encoder`` and ``tokenizer`` are optional: without them, pass
        ``prompt_embeds`` (and ``negative_prompt_embeds`` when guiding).
        """
        pipe = StableDiffusionImg2ImgPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return cls(pipe, controlnet=controlnet, device=device, dtype=dtype, progress=progress)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Default ``(channels, height, width)`` of one latent (UNet ``sample_size``)."""
        s = int(self.pipeline.unet.config.sample_size)
        return int(self.pipeline.vae.config.latent_channels), s, s

    def _check_latents(self, latents: Any, latent_shape: Sequence[int] | None) -> torch.Tensor:
        z = _as_tensor("latents", latents)
        channels = int(self.pipeline.vae.config.latent_channels)
        if latent_shape is not None:
            if (
                not isinstance(latent_shape, Sequence)
                or len(latent_shape) != 3
                or not all(isinstance(v, Integral) and v > 0 for v in latent_shape)
            ):
                raise BrainalignError(
                    f"'latent_shape' must be (channels, height, width), got {latent_shape!r}."
                )
            size = int(np.prod(latent_shape))
            if z.ndim == 1:
                z = z.unsqueeze(0)
            if z.ndim != 2 or z.shape[1] != size:
                raise BrainalignError(
                    f"'latents' must have shape (n_images, {size}) to reshape to 'latent_shape' "
                    f"{tuple(latent_shape)}, got {tuple(z.shape)}."
                )
            z = z.reshape(z.shape[0], *(int(v) for v in latent_shape))
        elif z.ndim in (1, 2):
            raise BrainalignError(
                f"'latent_shape' is required for flat latents of shape {tuple(z.shape)} "
                f"(e.g. latent_shape={self.latent_shape})."
            )
        elif z.ndim == 3:
            z = z.unsqueeze(0)
        if z.ndim != 4 or z.shape[1] != channels:
            raise BrainalignError(
                f"'latents' must have shape (n_images, {channels}, height, width), got "
                f"{tuple(z.shape)}."
            )
        return z.to(self.device, self.dtype)

    def decode_latents(
        self, latents: ArrayLike | torch.Tensor, *, latent_shape: Sequence[int] | None = None
    ) -> list[PIL.Image.Image]:
        """Decode (scaled) VAE latents to images, without any diffusion.

        Parameters
        ----------
        latents : array-like, shape (n_images, 4, h, w) or (n_images, 4 * h * w)
            Scaled latents (``vae.encode(x).latent_dist.mean * scaling_factor``).
        latent_shape : (int, int, int), optional
            ``(4, h, w)``; required for flat latents.

        Returns
        -------
        list of PIL.Image.Image
            Images of ``(h * vae_scale_factor, w * vae_scale_factor)`` pixels.
        """
        z = self._check_latents(latents, latent_shape)
        return self._decode(z)

    def _decode(self, z: torch.Tensor) -> list[PIL.Image.Image]:
        vae = self.pipeline.vae
        with torch.no_grad():
            x = vae.decode(z / vae.config.scaling_factor, return_dict=False)[0]
        return list(self.pipeline.image_processor.postprocess(x, output_type="pil"))

    def _check_depth(self, depth: Any, n: int, size: tuple[int, int], normalize: bool) -> Any:
        if isinstance(depth, PIL.Image.Image):
            depth = [depth]
        if isinstance(depth, list) and depth and all(isinstance(d, PIL.Image.Image) for d in depth):
            if len(depth) != n:
                raise BrainalignError(f"'depth' has {len(depth)} images but there are {n} images.")
            depth = np.stack([np.asarray(d.convert("L"), dtype=np.float64) / 255.0 for d in depth])
        d = _as_tensor("depth", depth)
        if d.ndim == 2:
            d = d.unsqueeze(0)
        if d.ndim == 3:
            d = d.unsqueeze(1)
        if d.ndim != 4 or d.shape[1] not in (1, 3) or d.shape[0] != n:
            raise BrainalignError(
                f"'depth' must have shape (n_images={n}, height, width) (or with a channel axis "
                f"of 1 or 3), got {tuple(d.shape)}."
            )
        if normalize:
            flat = d.reshape(n, -1)
            lo = flat.min(dim=1).values.view(n, 1, 1, 1)
            hi = flat.max(dim=1).values.view(n, 1, 1, 1)
            d = (d - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        elif d.min() < 0 or d.max() > 1:
            raise BrainalignError(
                f"'depth' values must be in [0, 1] with normalize_depth=False, got "
                f"[{float(d.min()):.3g}, {float(d.max()):.3g}]."
            )
        if d.shape[1] == 1:
            d = d.expand(-1, 3, -1, -1)
        if tuple(d.shape[-2:]) != size:
            d = torch.nn.functional.interpolate(d, size=size, mode="bilinear", align_corners=False)
        return d.contiguous()

    def reconstruct(
        self,
        latents: ArrayLike | torch.Tensor,
        prompt_embeds: ArrayLike | torch.Tensor | None = None,
        *,
        seed: int | Sequence[int],
        strength: float = 0.75,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        depth: ArrayLike | torch.Tensor | Sequence[PIL.Image.Image] | None = None,
        controlnet_conditioning_scale: float = 1.0,
        normalize_depth: bool = True,
        prompt: str | Sequence[str] | None = None,
        negative_prompt_embeds: ArrayLike | torch.Tensor | None = None,
        latent_shape: Sequence[int] | None = None,
    ) -> Reconstruction:
        """Re-noise predicted latents by ``strength`` and denoise them under a prompt.

        Parameters
        ----------
        latents : array-like, shape (n_images, 4, h, w) or (n_images, 4 * h * w)
            Predicted *scaled* VAE latents (flat needs ``latent_shape``).
            Images have ``(h, w) * vae_scale_factor`` pixels.
        prompt_embeds : array-like, shape (n_images, seq_len, width) or (seq_len, width), optional
            Predicted text-encoder hidden states (``width`` = UNet
            ``cross_attention_dim``; 77 x 768 for SD 1.5). ``None`` uses
            ``prompt`` (default: the empty prompt).
        seed : int or sequence of int
            Required. An int gives image ``i`` the seed ``seed + i``; or one
            seed per image. Drives the re-noising of the latents.
        strength : float
            In [0, 1]: the fraction of the ``num_inference_steps`` schedule
            that is re-run (1 ignores the latents' content). When
            ``int(num_inference_steps * strength) == 0`` no step runs and the
            decoded input latents are returned.
        num_inference_steps : int
            Length of the full schedule (``strength`` of it runs).
        guidance_scale : float
            Classifier-free guidance weight (> 1 enables guidance).
        depth : array-like, shape (n_images, H, W), or list of PIL images, optional
            Depth maps for the ControlNet (required iff there is one); resized
            to the output size and repeated to 3 channels.
        controlnet_conditioning_scale : float
            Weight of the ControlNet residuals.
        normalize_depth : bool
            Min-max scale each depth map to [0, 1] (else it must be in [0, 1]).
        prompt : str or list of str, optional
            Text instead of ``prompt_embeds`` (needs the tokenizer and text encoder).
        negative_prompt_embeds : array-like, optional
            Unconditional embeddings for guidance; default: the empty prompt.
        latent_shape : (int, int, int), optional
            ``(4, h, w)`` of flat ``latents``.

        Returns
        -------
        Reconstruction
            ``n_images`` PIL images, the seeds and the settings
            (``params['n_denoising_steps']`` is the number of steps that ran).
        """
        z = self._check_latents(latents, latent_shape)
        n = z.shape[0]
        seeds = _resolve_seeds(seed, n)
        steps = check_int("num_inference_steps", num_inference_steps, 1)
        strength = _check_float("strength", strength, 0.0, 1.0)
        guidance = _check_float("guidance_scale", guidance_scale, 0.0)
        cn_scale = _check_float("controlnet_conditioning_scale", controlnet_conditioning_scale, 0.0)
        if not isinstance(normalize_depth, bool):
            raise BrainalignError(f"'normalize_depth' must be a bool, got {normalize_depth!r}.")
        size = (z.shape[2] * self.vae_scale_factor, z.shape[3] * self.vae_scale_factor)
        if self.controlnet_pipeline is None:
            if depth is not None:
                raise BrainalignError(
                    "'depth' was given but this reconstructor has no ControlNet (pass "
                    "controlnet=... when building it)."
                )
            control = None
        else:
            if depth is None:
                raise BrainalignError(
                    "'depth' is required: this reconstructor has a depth ControlNet."
                )
            control = self._check_depth(depth, n, size, normalize_depth)
        pe, neg = self._text_conditioning(
            n, prompt, prompt_embeds, negative_prompt_embeds, guidance
        )
        n_run = min(int(steps * strength), steps)
        pipe = self.pipeline if control is None else self.controlnet_pipeline
        params = self._params(
            _pipe=pipe,
            n_images=n,
            strength=strength,
            num_inference_steps=steps,
            n_denoising_steps=n_run,
            guidance_scale=guidance,
            controlnet_conditioning_scale=cn_scale if control is not None else None,
            normalize_depth=normalize_depth if control is not None else None,
            prompt=prompt if prompt_embeds is None else None,
            prompt_embeds_given=prompt_embeds is not None,
            height=size[0],
            width=size[1],
        )
        if n_run == 0:
            logger.info(
                "strength=%g x num_inference_steps=%d runs no denoising step: returning the "
                "decoded latents.",
                strength,
                steps,
            )
            return Reconstruction(self._decode(z), seeds, params)
        self._set_progress(pipe)
        kwargs: dict[str, Any] = {}
        if control is not None:
            kwargs = {
                "control_image": control.to(self.device, self.dtype),
                "height": size[0],
                "width": size[1],
                "controlnet_conditioning_scale": cn_scale,
            }
        out = pipe(
            image=z,
            prompt_embeds=pe,
            negative_prompt_embeds=neg,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=_generators(seeds),
            output_type="pil",
            **kwargs,
        )
        return Reconstruction(list(out.images), seeds, params)


# --------------------------------------------------------------------------- #
# Tiny random-weight pipelines (smoke runs, simulated workflows)
# --------------------------------------------------------------------------- #
def _tiny_tokenizer() -> Any:
    """A character-level CLIP tokenizer built in memory (no files, no download)."""
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab: dict[str, int] = {}
    for c in letters:
        vocab[c] = len(vocab)
    for c in letters:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_PROMPT_LENGTH)


def _tiny_text_encoder(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_CROSS_ATTENTION_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TINY_PROMPT_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


def _tiny_unet(**extra: Any) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=TINY_LATENT_SHAPE[1],
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        attention_head_dim=8,
        **extra,
    ).eval()


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        sample_size=TINY_IMAGE_SIZE,
    ).eval()


def _sd_scheduler() -> DDIMScheduler:
    """Stable Diffusion 1.x's DDIM configuration."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_unclip(
    seed: int = 0,
    *,
    image_embed_dim: int = TINY_IMAGE_EMBED_DIM,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
) -> UnclipReconstructor:
    """A random-weight Stable unCLIP reconstructor, for smoke runs (seconds on CPU).

    Images are 32 x 32; image embeddings have width
    ``TINY_IMAGE_EMBED_DIM`` (16); prompt embeddings are (16, 32); a
    character-level tokenizer and a 2-layer text encoder are included, no
    image encoder. The global torch RNG is left untouched.

    Parameters
    ----------
    seed : int
        Seed of the weights (recorded in ``.source``).
    image_embed_dim : int
        Width of the image embeddings it is conditioned on (the width of the
        brain decoder's predictions).
    device, dtype, progress
        As in :class:`UnclipReconstructor`.

    Returns
    -------
    UnclipReconstructor
    """
    seed = check_int("seed", seed, 0)
    image_embed_dim = check_int("image_embed_dim", image_embed_dim, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = _tiny_tokenizer()
        text_encoder = _tiny_text_encoder(tokenizer)
        unet = _tiny_unet(
            class_embed_type="projection",
            projection_class_embeddings_input_dim=2 * image_embed_dim,
        )
        vae = _tiny_vae()
    rec = UnclipReconstructor.from_components(
        unet=unet,
        vae=vae,
        scheduler=_sd_scheduler(),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=image_embed_dim),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        progress=progress,
    )
    rec.source = {"builder": "build_tiny_unclip", "seed": seed, "image_embed_dim": image_embed_dim}
    return rec


def build_tiny_img2img(
    seed: int = 0,
    controlnet: bool = False,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
) -> Img2ImgReconstructor:
    """A random-weight img2img reconstructor (optionally + depth ControlNet), for smoke runs.

    Latents are (4, 16, 16), images 32 x 32, prompt embeddings (16, 32); a
    character-level tokenizer and a 2-layer text encoder are included. The
    ControlNet is copied from the UNet (``ControlNetModel.from_unet``) and its
    zero-initialised convolutions are given small random weights — a fresh
    ControlNet is exactly a no-op, so the depth map would otherwise have no
    effect. The global torch RNG is left untouched.

    Parameters
    ----------
    seed : int
        Seed of the weights (recorded in ``.source``).
    controlnet : bool
        Add a depth ControlNet (``reconstruct`` then requires ``depth``).
    device, dtype, progress
        As in :class:`UnclipReconstructor`.

    Returns
    -------
    Img2ImgReconstructor
    """
    seed = check_int("seed", seed, 0)
    if not isinstance(controlnet, bool):
        raise BrainalignError(f"'controlnet' must be a bool, got {controlnet!r}.")
    cn = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = _tiny_tokenizer()
        text_encoder = _tiny_text_encoder(tokenizer)
        unet = _tiny_unet()
        vae = _tiny_vae()
        if controlnet:
            cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
            zero_convs = [
                cn.controlnet_cond_embedding.conv_out,
                *cn.controlnet_down_blocks,
                cn.controlnet_mid_block,
            ]
            with torch.no_grad():
                for module in zero_convs:
                    for p in module.parameters():
                        p.normal_(0.0, 0.3)
            cn.eval()
    rec = Img2ImgReconstructor.from_components(
        unet=unet,
        vae=vae,
        scheduler=_sd_scheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        controlnet=cn,
        device=device,
        dtype=dtype,
        progress=progress,
    )
    rec.source = {"builder": "build_tiny_img2img", "seed": seed, "controlnet": controlnet}
    return rec
