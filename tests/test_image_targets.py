"""Decoding targets from images and captions, with tiny random-weight models saved to local folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from brainalign._validation import BrainalignError
from brainalign.features.image_targets import (
    clip_image_embeddings,
    clip_text_embeddings,
    depth_maps,
    extract_targets,
    git_image_tokens,
    vae_latents,
)

SIZE = 32


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    imgs[3] = imgs[1]  # a repeated image must get the same target
    return imgs


def test_clip_image_embeddings_equal_the_model_on_its_processed_images(tiny_clip_vision, images):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    got = clip_image_embeddings(tiny_clip_vision, images, batch_size=2)
    model = CLIPVisionModelWithProjection.from_pretrained(tiny_clip_vision).eval()
    processor = CLIPImageProcessor.from_pretrained(tiny_clip_vision)  # the one saved beside the weights
    with torch.no_grad():
        want = model(pixel_values=processor(images=list(images), return_tensors="pt")["pixel_values"]).image_embeds
    assert got.shape == (5, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)  # batches of 2 against one batch of 5
    np.testing.assert_array_equal(got[1], got[3])


def test_clip_text_embeddings_equal_the_model(tmp_path):
    from brainalign.decoders.diffusion.tiny import _tiny_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(3)
    tokenizer = _tiny_tokenizer()
    folder = tmp_path / "clip_text"
    CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length, projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    captions = ["a cat", "two red dogs", "a cat"]  # within the tiny tokenizer's 16 positions
    got = clip_text_embeddings(folder, captions, batch_size=2)  # padded differently in the two batches
    model = CLIPTextModelWithProjection.from_pretrained(folder).eval()
    with torch.no_grad():
        want = [model(**tokenizer([c], return_tensors="pt")).text_embeds[0].numpy() for c in captions]
    assert got.shape == (3, 16)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0], got[2], rtol=1e-6, atol=1e-7)


def test_git_tokens_equal_the_captioners_image_encoder(tmp_path, images, tiny_git):
    from brainalign.decoders.captioning import GitCaptioner
    from transformers import BertTokenizerFast, CLIPImageProcessor, GitForCausalLM

    folder = tiny_git
    got = git_image_tokens(folder, images, batch_size=3)
    pixels = CLIPImageProcessor.from_pretrained(folder)(images=list(images), return_tensors="pt")["pixel_values"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghij"]) + "\n")
    want = GitCaptioner(GitForCausalLM.from_pretrained(folder), BertTokenizerFast(str(vocab))).encode_images(pixels)
    assert got.shape == (5, (SIZE // 8) ** 2 + 1, 32)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_vae_latents_of_images_at_the_vaes_size_are_the_encoders_mean(tmp_path, images):
    """At the VAE's own size no resizing happens: the latent is the posterior mean of the image in [-1, 1]."""
    from brainalign.decoders.diffusion.tiny import _tiny_vae
    from diffusers import AutoencoderKL

    torch.manual_seed(4)
    folder = tmp_path / "vae"
    _tiny_vae().save_pretrained(folder)
    vae = AutoencoderKL.from_pretrained(folder).eval()
    size, scale = vae.config.sample_size, vae.config.scaling_factor
    square = np.random.default_rng(5).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    got = vae_latents(folder, square, batch_size=2)
    x = torch.from_numpy(square.astype(np.float64) / 127.5 - 1.0).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        want = (vae.encode(x).latent_dist.mean * scale).numpy()
    assert got.shape == (3, 4, size // 2, size // 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    other = vae_latents(folder, images, batch_size=4)  # other sizes are resized first
    assert other.shape == (5, 4, size // 2, size // 2)
    np.testing.assert_array_equal(other[1], other[3])


def test_depth_maps_have_the_images_size_and_follow_the_model(tiny_dpt, images):
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    folder = tiny_dpt
    processor = DPTImageProcessor.from_pretrained(folder)
    got = depth_maps(folder, images, batch_size=2)
    assert got.shape == (5, 40, 48) and np.isfinite(got).all()
    model = DPTForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        raw = model(pixel_values=processor(images=[images[0]], return_tensors="pt")["pixel_values"]).predicted_depth
    want = torch.nn.functional.interpolate(raw[:, None], size=(40, 48), mode="bicubic", align_corners=False)[0, 0]
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[1], got[3])
    small = depth_maps(folder, images, batch_size=5, size=8)  # a decoder's target: the map at 8 x 8
    want = torch.nn.functional.interpolate(raw[:, None], size=(8, 8), mode="bicubic", align_corners=False)[0, 0]
    assert small.shape == (5, 8, 8)
    np.testing.assert_allclose(small[0], want.numpy(), rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_clear_errors(tiny_clip_vision, images, tmp_path):
    with pytest.raises(BrainalignError, match="uint8 of shape"):
        clip_image_embeddings(tiny_clip_vision, images.astype(np.float32))
    with pytest.raises(BrainalignError, match="does not exist|not found|no such"):
        clip_image_embeddings(tmp_path / "missing", images)
    with pytest.raises(BrainalignError, match="unknown decoding targets \\['clip'\\]"):
        extract_targets({"clip": {"model_path": str(tiny_clip_vision)}}, images)
    with pytest.raises(BrainalignError, match="'vae_latent' needs 'model_path'"):
        extract_targets({"vae_latent": {}}, images)
    with pytest.raises(BrainalignError, match="'clip_text' needs the images' captions"):
        extract_targets({"clip_text": {"model_path": str(tiny_clip_vision)}}, images)
    out = extract_targets({"clip_image": {"model_path": str(tiny_clip_vision), "batch_size": 4}}, images)
    assert list(out) == ["clip_image"] and out["clip_image"].shape == (5, 16)


def test_finished_targets_are_kept_and_reused_inside_a_target_cache(tmp_path, tiny_clip_vision, tiny_dpt, images,
                                                                     monkeypatch):
    """A stage killed during its second extraction restarts at the second: the first is read back."""
    from brainalign.features import image_targets as it

    spec = {"clip_image": {"model_path": str(tiny_clip_vision)}, "depth": {"model_path": str(tiny_dpt), "size": 4}}
    with it.target_cache(tmp_path / "cache"):
        first = extract_targets(spec, images)
        assert len(list((tmp_path / "cache").glob("clip_image-*.h5"))) == 1
        calls = []
        real = it.depth_maps
        monkeypatch.setattr(it, "depth_maps", lambda *a, **k: calls.append(1) or real(*a, **k))
        monkeypatch.setattr(it, "clip_image_embeddings", lambda *a, **k: pytest.fail("recomputed a finished target"))
        again = extract_targets(spec, images)
        assert calls == []  # depth was cached too
        np.testing.assert_array_equal(again["clip_image"], first["clip_image"])
        changed = extract_targets({"depth": {"model_path": str(tiny_dpt), "size": 5}}, images)  # other options
        assert calls == [1] and changed["depth"].shape == (5, 5, 5)
    assert not list(tmp_path.glob("cache/*.part"))


def test_depth_maps_from_the_users_file_follow_the_ids_and_are_resized(tmp_path):
    import h5py

    from brainalign._validation import InputFileError
    from brainalign.features.image_targets import depth_from_file

    maps = np.random.default_rng(1).random((4, 6, 6)).astype(np.float32)
    with h5py.File(tmp_path / "depth.h5", "w") as f:
        f["image_id"] = np.array([30, 10, 20, 40])
        f["depth"] = maps
    got = depth_from_file(tmp_path / "depth.h5", [20, 30], 3)
    want = torch.nn.functional.interpolate(torch.from_numpy(maps[[2, 0]])[:, None], size=(3, 3), mode="bicubic",
                                           align_corners=False)[:, 0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    with pytest.raises(InputFileError, match=r"no depth map for image id\(s\) \[99\].*decoding.targets.depth.files"):
        depth_from_file(tmp_path / "depth.h5", [10, 99], 3)


def test_depth_target_needs_exactly_one_source_and_a_bank_must_exist(tmp_path):
    import yaml

    from brainalign._validation import ConfigError
    from brainalign.config import validate_config

    repo = Path(__file__).resolve().parent.parent
    cfg = yaml.safe_load((repo / "workflows" / "configs" / "simulated_images_ci.yaml").read_text())
    for depth in ({"size": 8}, {"model_path": "/dpt", "files": "/maps.h5"}):
        cfg["decoding"]["targets"] = {"depth": depth}
        with pytest.raises(ConfigError, match="decoding.targets.depth.model_path.*exactly one"):
            validate_config(cfg, tmp_path / "c.yaml")
    cfg["decoding"]["targets"] = {}
    cfg["decoding"]["selectivity_bank"] = "no such folder"
    with pytest.raises(ConfigError, match="decoding.selectivity_bank.*does not exist"):
        validate_config(cfg, tmp_path / "c.yaml")
