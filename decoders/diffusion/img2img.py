"""img2img from a predicted VAE latent and prompt embedding, optionally guided by a depth
map through a ControlNet (:class:`Img2ImgReconstructor`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from numpy.typing import ArrayLike

from brainalign._validation import BrainalignError, check_int

from ._checks import _as_tensor, _check_float, _generators, _local_dir, _resolve_dtype, _resolve_seeds
from .base import _Reconstructor
from .reconstruction import Reconstruction

logger = logging.getLogger("brainalign")


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
