"""Diffusion reconstructors on tiny random-weight pipelines (seconds on CPU, offline)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from brainalign.decoders.diffusion import (
    TINY_IMAGE_EMBED_DIM,
    Img2ImgReconstructor,
    Reconstruction,
    UnclipReconstructor,
    build_tiny_img2img,
    build_tiny_unclip,
)
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableUnCLIPImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
    StableUnCLIPImageNormalizer,
)

from brainalign._validation import BrainalignError

torch.set_num_threads(1)

FAST = {"num_inference_steps": 2}


def _pixels(rec: Reconstruction) -> np.ndarray:
    return rec.to_numpy().astype(np.int16)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def unclip() -> UnclipReconstructor:
    return build_tiny_unclip(0)


@pytest.fixture(scope="module")
def img2img() -> Img2ImgReconstructor:
    return build_tiny_img2img(0)


@pytest.fixture(scope="module")
def controlnet() -> Img2ImgReconstructor:
    return build_tiny_img2img(0, controlnet=True)


@pytest.fixture(scope="module")
def embeds() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, TINY_IMAGE_EMBED_DIM))


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    return _randn(2, 4, 16, 16, seed=1)


@pytest.fixture(scope="module")
def prompt_embeds() -> torch.Tensor:
    return _randn(2, 16, 32, seed=2)


# --------------------------------------------------------------------------- #
# unCLIP
# --------------------------------------------------------------------------- #
def test_unclip_outputs_seeds_and_determinism(unclip, embeds):
    rec = unclip.reconstruct(embeds, seed=7, guidance_scale=3.0, **FAST)
    assert len(rec) == 2 and rec.seeds == [7, 8]
    assert all(isinstance(im, PIL.Image.Image) and im.size == (32, 32) for im in rec)
    assert rec.to_numpy().shape == (2, 32, 32, 3)
    assert rec.params["num_inference_steps"] == 2 and rec.params["guidance_scale"] == 3.0
    assert rec.params["source"] == {"builder": "build_tiny_unclip", "seed": 0, "image_embed_dim": 16}
    again = unclip.reconstruct(embeds, seed=7, guidance_scale=3.0, **FAST)
    np.testing.assert_array_equal(_pixels(rec), _pixels(again))
    other = unclip.reconstruct(embeds, seed=[100, 200], guidance_scale=3.0, **FAST)
    assert other.seeds == [100, 200]
    assert np.abs(_pixels(rec) - _pixels(other)).mean() > 5


def test_unclip_image_embeds_condition_the_unet(unclip, embeds):
    seen: list[torch.Tensor] = []
    hook = unclip.pipeline.unet.class_embedding.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone())
    )
    try:
        base = unclip.reconstruct(embeds, seed=0, guidance_scale=1.0, noise_level=0, **FAST)
    finally:
        hook.remove()
    # class labels = [noise-augmented embedding (t=0: ~unchanged), noise-level embedding]
    assert seen and seen[0].shape == (2, 2 * TINY_IMAGE_EMBED_DIM)
    np.testing.assert_allclose(seen[0][:, :TINY_IMAGE_EMBED_DIM].numpy(), embeds, atol=0.05)
    moved = unclip.reconstruct(embeds[::-1] * 2.0, seed=0, guidance_scale=1.0, **FAST)
    assert not np.array_equal(_pixels(base), _pixels(moved))
    noisier = unclip.reconstruct(embeds, seed=0, guidance_scale=1.0, noise_level=500, **FAST)
    assert noisier.params["noise_level"] == 500
    assert not np.array_equal(_pixels(base), _pixels(noisier))


def test_unclip_image_independent_of_batch(unclip, embeds):
    pair = unclip.reconstruct(embeds, seed=[3, 4], guidance_scale=3.0, **FAST)
    single = unclip.reconstruct(embeds[1], seed=[4], guidance_scale=3.0, **FAST)
    assert len(single) == 1
    assert np.abs(_pixels(pair)[1] - _pixels(single)[0]).max() <= 2


def test_unclip_prompt_and_prompt_embeds(unclip, embeds):
    empty = unclip.reconstruct(embeds, seed=0, guidance_scale=3.0, **FAST)
    text = unclip.reconstruct(embeds, seed=0, guidance_scale=3.0, prompt="a red cat", **FAST)
    assert text.params["prompt"] == "a red cat"
    assert np.mean(np.abs(_pixels(empty) - _pixels(text)) > 1) > 0.1  # far beyond the tolerance below
    # the empty prompt, given as embeddings (one (seq, width) shared by all images)
    pipe = unclip.pipeline
    with torch.no_grad():
        e, _ = pipe.encode_prompt([""], "cpu", 1, False)
    same = unclip.reconstruct(embeds, seed=0, guidance_scale=3.0, prompt_embeds=e[0], **FAST)
    # The two paths encode the prompt in different batches and tensor layouts, so they agree to
    # float32 rounding, not bit for bit (some CPUs round otherwise), and a pixel may land on the
    # neighbouring 8-bit level. Tolerance: at most 1 level, on under 1% of the pixels (a relative
    # change of 1e-3 in the embeddings stays inside it; "a red cat" moves 93% of them, up to 43 levels).
    diff = np.abs(_pixels(empty) - _pixels(same))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))
    with pytest.raises(BrainalignError, match="'prompt'"):
        unclip.reconstruct(embeds, seed=0, prompt="x", prompt_embeds=e[0], **FAST)


def test_unclip_from_stock_pipeline_without_encoders(unclip, embeds):
    """A stock pipeline with no image encoder, tokenizer or text encoder works from embeddings."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * TINY_IMAGE_EMBED_DIM,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
    )
    stock = StableUnCLIPImg2ImgPipeline(
        feature_extractor=None,
        image_encoder=None,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=TINY_IMAGE_EMBED_DIM),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=None,
        text_encoder=None,
        unet=unet,
        scheduler=DDIMScheduler(),
        vae=vae,
    )
    rec = UnclipReconstructor(stock)
    assert rec.image_embed_dim == TINY_IMAGE_EMBED_DIM and rec.pipeline.unet is unet
    pe = _randn(2, 5, 32, seed=3)
    out = rec.reconstruct(embeds, seed=0, prompt_embeds=pe, negative_prompt_embeds=0 * pe, **FAST)
    assert [im.size for im in out] == [(32, 32)] * 2
    with pytest.raises(BrainalignError, match="'prompt'"):
        rec.reconstruct(embeds, seed=0, **FAST)  # empty prompt needs a tokenizer
    with pytest.raises(BrainalignError, match="'negative_prompt_embeds'"):
        rec.reconstruct(embeds, seed=0, prompt_embeds=pe, guidance_scale=3.0, **FAST)
    out1 = rec.reconstruct(embeds, seed=0, prompt_embeds=pe, guidance_scale=1.0, **FAST)
    assert len(out1) == 2


def test_unclip_save_load_roundtrip(unclip, embeds, tmp_path):
    unclip.pipeline.save_pretrained(tmp_path / "unclip")
    index = json.loads((tmp_path / "unclip" / "model_index.json").read_text())
    assert index["_class_name"] == "StableUnCLIPImg2ImgPipeline"
    loaded = UnclipReconstructor.from_pretrained(tmp_path / "unclip")
    assert loaded.source == {"path": str(tmp_path / "unclip")}
    a = unclip.reconstruct(embeds, seed=1, **FAST)
    b = loaded.reconstruct(embeds, seed=1, **FAST)
    np.testing.assert_array_equal(_pixels(a), _pixels(b))


# --------------------------------------------------------------------------- #
# img2img (+ ControlNet depth)
# --------------------------------------------------------------------------- #
def test_img2img_outputs_and_determinism(img2img, latents, prompt_embeds):
    kw = {"strength": 0.75, "num_inference_steps": 4, "guidance_scale": 3.0}
    rec = img2img.reconstruct(latents, prompt_embeds, seed=11, **kw)
    assert rec.seeds == [11, 12] and rec.params["n_denoising_steps"] == 3
    assert [im.size for im in rec] == [(32, 32)] * 2
    again = img2img.reconstruct(latents, prompt_embeds, seed=11, **kw)
    np.testing.assert_array_equal(_pixels(rec), _pixels(again))
    other = img2img.reconstruct(latents, prompt_embeds, seed=12345, **kw)
    assert not np.array_equal(_pixels(rec), _pixels(other))
    # flat predictions + latent_shape give the same images
    flat = img2img.reconstruct(
        latents.reshape(2, -1).numpy(), prompt_embeds, seed=11, latent_shape=(4, 16, 16), **kw
    )
    np.testing.assert_array_equal(_pixels(rec), _pixels(flat))
    # the prompt embedding reaches the UNet
    moved = img2img.reconstruct(latents, prompt_embeds.flip(0), seed=11, **kw)
    assert not np.array_equal(_pixels(rec), _pixels(moved))


def test_img2img_strength_to_zero_returns_decoded_latent(img2img, latents, prompt_embeds):
    decoded = np.stack([np.asarray(im) for im in img2img.decode_latents(latents)]).astype(np.int16)
    zero = img2img.reconstruct(latents, prompt_embeds, seed=0, strength=0.0, guidance_scale=1.0)
    assert zero.params["n_denoising_steps"] == 0
    np.testing.assert_array_equal(_pixels(zero), decoded)
    kw = {"seed": 0, "guidance_scale": 1.0}
    # one step at the end of a 50-step schedule (t = 1): almost no noise is added
    small = img2img.reconstruct(latents, prompt_embeds, strength=0.02, num_inference_steps=50, **kw)
    full = img2img.reconstruct(latents, prompt_embeds, strength=1.0, num_inference_steps=4, **kw)
    assert small.params["n_denoising_steps"] == 1
    err_small = np.abs(_pixels(small) - decoded).mean()
    err_full = np.abs(_pixels(full) - decoded).mean()
    assert err_small < 5 and err_small < 0.2 * err_full


def test_controlnet_depth_changes_output(controlnet, img2img, latents, prompt_embeds):
    depth = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(4))
    kw = {"seed": 0, "strength": 0.75, "num_inference_steps": 4, "guidance_scale": 3.0}
    a = controlnet.reconstruct(latents, prompt_embeds, depth=depth, **kw)
    assert a.params["pipeline"] == "StableDiffusionControlNetImg2ImgPipeline"
    assert [im.size for im in a] == [(32, 32)] * 2
    again = controlnet.reconstruct(latents, prompt_embeds, depth=depth, **kw)
    np.testing.assert_array_equal(_pixels(a), _pixels(again))
    b = controlnet.reconstruct(latents, prompt_embeds, depth=1.0 - depth, **kw)
    assert not np.array_equal(_pixels(a), _pixels(b))
    # a low-resolution depth map is resized; PIL depth images are accepted
    small = depth[:, ::2, ::2]
    pil = [PIL.Image.fromarray((d.numpy() * 255).astype(np.uint8)) for d in small]
    assert len(controlnet.reconstruct(latents, prompt_embeds, depth=pil, **kw)) == 2
    # at conditioning scale 0 the ControlNet path is the plain img2img pipeline (shared weights)
    off = controlnet.reconstruct(
        latents, prompt_embeds, depth=depth, controlnet_conditioning_scale=0.0, **kw
    )
    plain = img2img.reconstruct(latents, prompt_embeds, **kw)
    np.testing.assert_array_equal(_pixels(off), _pixels(plain))
    with pytest.raises(BrainalignError, match="'depth'"):
        controlnet.reconstruct(latents, prompt_embeds, **kw)
    with pytest.raises(BrainalignError, match="'depth'"):
        img2img.reconstruct(latents, prompt_embeds, depth=depth, **kw)
    with pytest.raises(BrainalignError, match="'depth'"):
        controlnet.reconstruct(latents, prompt_embeds, depth=depth[:1], **kw)


def test_img2img_save_load_roundtrip(controlnet, latents, prompt_embeds, tmp_path):
    controlnet.pipeline.save_pretrained(tmp_path / "sd")
    controlnet.controlnet_pipeline.controlnet.save_pretrained(tmp_path / "cn")
    loaded = Img2ImgReconstructor.from_pretrained(tmp_path / "sd", controlnet=tmp_path / "cn")
    depth = np.linspace(0, 5, 2 * 32 * 32).reshape(2, 32, 32)
    kw = {"seed": 0, "strength": 1.0, "depth": depth, **FAST}
    np.testing.assert_array_equal(
        _pixels(controlnet.reconstruct(latents, prompt_embeds, **kw)),
        _pixels(loaded.reconstruct(latents, prompt_embeds, **kw)),
    )


# --------------------------------------------------------------------------- #
# Bad inputs
# --------------------------------------------------------------------------- #
def test_bad_inputs_name_the_argument(unclip, img2img, embeds, latents, prompt_embeds, tmp_path):
    cases = [
        ("image_embeds", lambda: unclip.reconstruct(np.zeros((2, 7)), seed=0, **FAST)),
        ("image_embeds", lambda: unclip.reconstruct(np.full((1, 16), np.nan), seed=0, **FAST)),
        ("seed", lambda: unclip.reconstruct(embeds, seed=[1], **FAST)),
        ("seed", lambda: unclip.reconstruct(embeds, seed=-1, **FAST)),
        ("noise_level", lambda: unclip.reconstruct(embeds, seed=0, noise_level=1000, **FAST)),
        ("num_inference_steps", lambda: unclip.reconstruct(embeds, seed=0, num_inference_steps=0)),
        ("height", lambda: unclip.reconstruct(embeds, seed=0, height=20, **FAST)),
        ("latent_shape", lambda: img2img.reconstruct(latents.reshape(2, -1), seed=0, **FAST)),
        (
            "latents",
            lambda: img2img.reconstruct(latents.reshape(2, -1), seed=0, latent_shape=(4, 8, 8)),
        ),
        ("latents", lambda: img2img.reconstruct(latents[:, :3], seed=0, **FAST)),
        ("prompt_embeds", lambda: img2img.reconstruct(latents, prompt_embeds[..., :8], seed=0)),
        ("prompt_embeds", lambda: img2img.reconstruct(latents, prompt_embeds[:1], seed=0)),
        ("strength", lambda: img2img.reconstruct(latents, prompt_embeds, seed=0, strength=1.5)),
        ("path", lambda: UnclipReconstructor.from_pretrained(tmp_path / "absent")),
        ("path", lambda: Img2ImgReconstructor.from_pretrained("runwayml/stable-diffusion-v1-5")),
        ("pipeline", lambda: UnclipReconstructor(img2img.pipeline)),
        ("dtype", lambda: build_tiny_img2img(0, dtype="int8")),
    ]
    for name, call in cases:
        with pytest.raises(BrainalignError, match=f"'{name}'"):
            call()
