"""Brain-model training and generation of the decoding stage at realistic sizes, random weights, on the CPU
(issue #20; the GPU rows come from ``benchmarks/gpu_check.py``).

- **Training**: the MindEye-style ``BrainToEmbedding`` at NSD scale (``--voxels``
  nsdgeneral-like voxels to a 768-d CLIP embedding, ``--images`` training
  images, ``--epochs`` epochs), against the anchor in the same run: the ridge
  baseline (``RidgeCVEncoder``, 5-fold CV over 9 penalties, one per target)
  on the same data.
- **Generation**: the Brain Captioning generator (``Img2ImgReconstructor``:
  img2img + ControlNet-depth with a Stable Diffusion 1.5-sized UNet, 512 px,
  ``--steps`` steps at strength 0.75, guidance 7.5), against the anchor: the
  diffusers ``StableDiffusionControlNetImg2ImgPipeline`` it wraps, called
  directly with the same latents, embeddings, depth map and seed (the ratio is
  the wrapper's overhead).

Usage::

    python benchmarks/decoding_cpu.py [--threads 2] [--voxels 15000] [--images 1000] [--epochs 10] [--steps 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def training(n_images: int, n_voxels: int, dim: int, epochs: int) -> tuple[float, float]:
    from brainalign.encoders.mindeye import BrainToEmbedding
    from brainalign.encoders.ridge import RidgeCVEncoder

    rng = np.random.default_rng(1)
    y = rng.standard_normal((n_images, dim)).astype(np.float32)
    x = (y @ rng.standard_normal((dim, n_voxels)).astype(np.float32) / np.sqrt(dim)
         + rng.standard_normal((n_images, n_voxels)).astype(np.float32))
    mlp = _time(lambda: BrainToEmbedding(epochs=epochs, shared_dim=256, random_state=0, verbose=False).fit(x, y))
    ridge = _time(lambda: RidgeCVEncoder(alphas=np.logspace(-2, 6, 9), cv=5, gap=0).fit(x, y))
    return mlp, ridge


def generation(steps: int) -> tuple[float, float]:
    import torch
    from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel

    from brainalign.decoders.diffusion import Img2ImgReconstructor

    import image_targets as sizes  # the SD 2.1-sized VAE of the extraction benchmark

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()
    controlnet = ControlNetModel.from_unet(unet).eval()
    rec = Img2ImgReconstructor.from_components(unet=unet, vae=sizes._vae(), scheduler=DDIMScheduler(),
                                               controlnet=controlnet)
    rng = np.random.default_rng(2)
    latents = rng.standard_normal((1, 4, 64, 64)).astype(np.float32)
    prompt = rng.standard_normal((1, 77, 768)).astype(np.float32)
    depth = rng.random((1, 64, 64)).astype(np.float32)
    kwargs = {"seed": 0, "strength": 0.75, "guidance_scale": 7.5, "num_inference_steps": steps}
    ours = _time(lambda: rec.reconstruct(latents, prompt, depth=depth, negative_prompt_embeds=np.zeros_like(prompt),
                                         **kwargs))
    pipe = rec.controlnet_pipeline
    control = torch.nn.functional.interpolate(torch.from_numpy(depth)[:, None].expand(-1, 3, -1, -1),
                                              size=(512, 512), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        direct = _time(lambda: pipe(image=torch.from_numpy(latents), prompt_embeds=torch.from_numpy(prompt),
                                    negative_prompt_embeds=torch.zeros(1, 77, 768), control_image=control,
                                    height=512, width=512, strength=0.75, num_inference_steps=steps,
                                    guidance_scale=7.5, generator=torch.Generator().manual_seed(0),
                                    output_type="np"))
    return ours, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}")
    mlp, ridge = training(args.images, args.voxels, 768, args.epochs)
    print(f"| training: MindEye-style MLP, {args.images} images x {args.voxels} voxels -> 768, {args.epochs} epochs "
          f"| {mlp:.1f} s | ridge (anchor) {ridge:.1f} s | {mlp / ridge:.2f} |")
    if not args.skip_generation:
        ours, direct = generation(args.steps)
        print(f"| generation: img2img + ControlNet-depth, SD 1.5-sized UNet, 512 px, {args.steps} steps x 0.75 "
              f"| {ours:.1f} s per image | diffusers pipeline (anchor) {direct:.1f} s | {ours / direct:.2f} |")


if __name__ == "__main__":
    main()
