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

from .img2img import Img2ImgReconstructor
from .reconstruction import Reconstruction
from .tiny import (  # noqa: F401 (the TINY_* constants stay importable from here, outside __all__)
    TINY_CROSS_ATTENTION_DIM,
    TINY_IMAGE_EMBED_DIM,
    TINY_IMAGE_SIZE,
    TINY_LATENT_SHAPE,
    TINY_PROMPT_LENGTH,
    build_tiny_img2img,
    build_tiny_unclip,
)
from .unclip import UnclipReconstructor

__all__ = [
    "Img2ImgReconstructor",
    "Reconstruction",
    "UnclipReconstructor",
    "build_tiny_img2img",
    "build_tiny_unclip",
]
