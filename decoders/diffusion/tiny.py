"""Tiny random-weight pipelines (seconds on CPU) for smoke runs and simulated workflows:
:func:`build_tiny_unclip` and :func:`build_tiny_img2img` (their images are noise-like;
only the plumbing is real)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
    StableUnCLIPImageNormalizer,
)

from brainalign._validation import BrainalignError, check_int

from .img2img import Img2ImgReconstructor
from .unclip import UnclipReconstructor

#: Geometry of the tiny random-weight pipelines (images are 32 x 32 pixels).
TINY_IMAGE_SIZE = 32
TINY_LATENT_SHAPE = (4, 16, 16)
TINY_CROSS_ATTENTION_DIM = 32
TINY_PROMPT_LENGTH = 16
TINY_IMAGE_EMBED_DIM = 16


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
