"""Decoding-target extraction at realistic model sizes, random weights, on this machine's CPU (issue #20).

Models built from configs in memory (nothing downloaded), at the sizes the
decoding systems use: CLIP ViT-L/14 vision tower at 224 px with a 768-d
projection (unCLIP's image encoder), GIT-large's image encoder (the same ViT-L/14
tower), Stable Diffusion 2.1's VAE encoder at 768 px, and DPT-large at 384 px.
For each, :mod:`brainalign.features.image_targets` on ``--n`` images against the
anchor in the same run: the model called directly on the same preprocessed
batch (the ratio shows the module's overhead: preprocessing, batching, copies).

Usage::

    python benchmarks/image_targets.py [--n 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


# ``tiny=True``: the same architectures at toy sizes, for rehearsing scripts on a CPU.
def _clip_vision(tiny: bool = False):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    size = 32 if tiny else 224
    config = (CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, projection_dim=16) if tiny else
              CLIPVisionConfig(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096,
                               num_hidden_layers=24, num_attention_heads=16, projection_dim=768))
    return CLIPVisionModelWithProjection(config).eval(), CLIPImageProcessor(size={"shortest_edge": size},
                                                                            crop_size={"height": size, "width": size})


def _git(tiny: bool = False):
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM

    size = 32 if tiny else 224
    vision = ({"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2} if tiny else
              {"image_size": 224, "patch_size": 14, "hidden_size": 1024, "intermediate_size": 4096,
               "num_hidden_layers": 24, "num_attention_heads": 16})
    config = (GitConfig(vision_config=vision, vocab_size=60, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64) if tiny else
              GitConfig(vision_config=vision, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=3072))
    return GitForCausalLM(config).eval(), CLIPImageProcessor(size={"shortest_edge": size},
                                                             crop_size={"height": size, "width": size})


def _vae(tiny: bool = False):
    from diffusers import AutoencoderKL

    if tiny:
        return AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                             block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
                             sample_size=32).eval()
    return AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         sample_size=768, scaling_factor=0.18215).eval()


def _dpt(tiny: bool = False):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    size = 32 if tiny else 384
    config = (DPTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                        backbone_out_indices=[0, 1, 2, 3]) if tiny else
              DPTConfig(image_size=384, patch_size=16, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096, neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256,
                        backbone_out_indices=[5, 11, 17, 23]))
    return DPTForDepthEstimation(config).eval(), DPTImageProcessor(size={"height": size, "width": size},
                                                                   keep_aspect_ratio=False)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="images per target")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from brainalign.features import image_targets as it

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (args.n, 425, 425, 3), dtype=np.uint8)  # NSD's size
    print(f"machine: {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}; "
          f"{args.n} images of 425 x 425; seconds per image (ours / direct, ratio)")
    with torch.inference_mode():
        model, proc = _clip_vision()
        px = proc(images=list(images), return_tensors="pt")["pixel_values"]
        ours = _time(lambda: it.clip_image_embeddings(model, images, processor=proc, batch_size=args.n))
        direct = _time(lambda: model(pixel_values=px).image_embeds)
        print(f"| clip_image (ViT-L/14, 224 px) | {ours / args.n:.3f} | {direct / args.n:.3f} | {ours / direct:.2f} |")
        del model
        model, proc = _git()
        px = proc(images=list(images), return_tensors="pt")["pixel_values"]
        ours = _time(lambda: it.git_image_tokens(model, images, processor=proc, batch_size=args.n))
        direct = _time(lambda: model.git.image_encoder(px).last_hidden_state)
        print(f"| git_tokens (GIT-large encoder) | {ours / args.n:.3f} | {direct / args.n:.3f} | {ours / direct:.2f} |")
        del model
        vae = _vae()
        x = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1,
                                            size=(768, 768), mode="bicubic", align_corners=False)
        ours = _time(lambda: it.vae_latents(vae, images, batch_size=args.n))
        direct = _time(lambda: vae.encode(x).latent_dist.mean)
        print(f"| vae_latent (SD 2.1 VAE, 768 px) | {ours / args.n:.3f} | {direct / args.n:.3f} | {ours / direct:.2f} |")
        del vae
        model, proc = _dpt()
        px = proc(images=list(images), return_tensors="pt")["pixel_values"]
        ours = _time(lambda: it.depth_maps(model, images, processor=proc, batch_size=args.n))
        direct = _time(lambda: model(pixel_values=px).predicted_depth)
        print(f"| depth (DPT-large, 384 px) | {ours / args.n:.3f} | {direct / args.n:.3f} | {ours / direct:.2f} |")


if __name__ == "__main__":
    main()
