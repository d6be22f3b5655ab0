"""Decoding targets extracted from images and captions with local model weights.

Each brain decoder predicts one target space, and each generator reads its
own: unCLIP reads the image embeddings of the CLIP it was trained with, GIT's
text decoder reads its vision encoder's token sequence, img2img starts from a
Stable Diffusion VAE latent, ControlNet-depth reads a depth map. This module
computes those targets for a set of images (and the caption embeddings for the
captions), from models given by local path or already loaded, in batches, on
any torch device, always returning float32 NumPy arrays in the images' order.

============  ===========================================  ==========================
target        model                                        array per image
============  ===========================================  ==========================
clip_image    ``CLIPVisionModelWithProjection``             (projection_dim,)
clip_text     ``CLIPTextModelWithProjection`` (captions)    (projection_dim,)
git_tokens    ``GitForCausalLM``'s image encoder            (n_tokens, vision_hidden)
vae_latent    diffusers ``AutoencoderKL`` (latent mean,     (4, size/8, size/8)
              times the VAE's scaling factor)
depth         ``DPTForDepthEstimation`` (or any             (height, width)
              ``AutoModelForDepthEstimation``)
============  ===========================================  ==========================

Images are ``uint8`` arrays of shape (n, height, width, 3). The CLIP, GIT and
depth models are preprocessed by the image processor saved beside their
weights (``AutoImageProcessor``); the VAE takes the images resized to its
``sample_size`` and scaled to [-1, 1], as Stable Diffusion's img2img does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import BrainalignError, check_fname

__all__ = ["TARGETS", "clip_image_embeddings", "clip_text_embeddings", "git_image_tokens", "vae_latents",
           "depth_maps", "depth_from_file", "extract_targets", "target_cache"]

#: The target spaces, in the order they are written.
TARGETS = ("clip_image", "clip_text", "git_tokens", "vae_latent", "depth")


def _check_images(images: Any) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise BrainalignError(f"'images' must be uint8 of shape (n, height, width, 3), got {arr.dtype} "
                              f"of shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise BrainalignError("'images' holds no image.")
    return arr


def _load(model: Any, loader: Callable[[str], Any], what: str) -> Any:
    """A model given by local folder (loaded with ``loader``) or already loaded."""
    if isinstance(model, (str, os.PathLike)):
        folder = check_fname(model, kind="directory", what=what)
        return loader(str(folder))
    return model


def _batches(n: int, batch_size: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    if int(batch_size) < 1:
        raise BrainalignError(f"'batch_size' must be >= 1, got {batch_size!r}.")
    starts = range(0, n, int(batch_size))
    return tqdm(starts, desc=desc, unit="batch", disable=not progress, mininterval=2)


def _run_batched(images: np.ndarray, processor: Any, forward: Callable[[Any], Any], batch_size: int,
                 progress: bool, desc: str) -> np.ndarray:
    """``forward(pixel_values)`` over batches of processed images, concatenated as float32 on the CPU."""
    import torch

    parts = []
    with torch.inference_mode():
        for start in _batches(len(images), batch_size, progress, desc):
            batch = list(images[start:start + batch_size])
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
            parts.append(forward(pixels).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False)


def _image_processor(model_path: Any, processor: Any) -> Any:
    if processor is not None:
        return processor
    if not isinstance(model_path, (str, os.PathLike)):
        raise BrainalignError("give 'processor' (the model's image processor) with an already loaded model.")
    from transformers import AutoImageProcessor

    folder = check_fname(model_path, kind="directory", what="model folder")
    return AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)


def clip_image_embeddings(model: Any, images: Any, *, processor: Any = None, batch_size: int = 32,
                          device: str = "cpu", progress: bool = False) -> np.ndarray:
    """CLIP image embeddings (the projection unCLIP is conditioned on).

    Parameters
    ----------
    model : path or ``CLIPVisionModelWithProjection``
        A local folder (with its image processor) or a loaded model.
    images : ndarray of uint8, shape (n, height, width, 3)
    processor : image processor, optional
        Needed when ``model`` is already loaded.
    batch_size : int, default=32
    device : str, default="cpu"
    progress : bool, default=False

    Returns
    -------
    ndarray of float32, shape (n, projection_dim)
    """
    from transformers import CLIPVisionModelWithProjection

    images = _check_images(images)
    processor = _image_processor(model, processor)
    net = _load(model, lambda p: CLIPVisionModelWithProjection.from_pretrained(p, local_files_only=True),
                "CLIP vision model").to(device).eval()
    dtype = next(net.parameters()).dtype
    return _run_batched(images, processor, lambda px: net(pixel_values=px.to(device, dtype)).image_embeds,
                        batch_size, progress, "clip_image")


def clip_text_embeddings(model: Any, captions: Sequence[str], *, tokenizer: Any = None, batch_size: int = 64,
                         device: str = "cpu", progress: bool = False) -> np.ndarray:
    """CLIP text embeddings of captions (``CLIPTextModelWithProjection.text_embeds``).

    Parameters
    ----------
    model : path or ``CLIPTextModelWithProjection``
    captions : sequence of str, length n
    tokenizer : tokenizer, optional
        Needed when ``model`` is already loaded; captions longer than its
        ``model_max_length`` are truncated.

    Returns
    -------
    ndarray of float32, shape (n, projection_dim)
    """
    import torch
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    captions = [str(c) for c in captions]
    if not captions:
        raise BrainalignError("'captions' holds no caption.")
    if tokenizer is None:
        if not isinstance(model, (str, os.PathLike)):
            raise BrainalignError("give 'tokenizer' with an already loaded CLIP text model.")
        folder = check_fname(model, kind="directory", what="CLIP text model")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    net = _load(model, lambda p: CLIPTextModelWithProjection.from_pretrained(p, local_files_only=True),
                "CLIP text model").to(device).eval()
    parts = []
    with torch.inference_mode():
        for start in _batches(len(captions), batch_size, progress, "clip_text"):
            enc = tokenizer(captions[start:start + batch_size], padding=True, truncation=True, return_tensors="pt")
            out = net(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
            parts.append(out.text_embeds.float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False)


def git_image_tokens(model: Any, images: Any, *, processor: Any = None, batch_size: int = 16,
                     device: str = "cpu", progress: bool = False) -> np.ndarray:
    """GIT's vision-encoder token sequence per image (what its text decoder reads, before its projection).

    Parameters
    ----------
    model : path or ``GitForCausalLM``

    Returns
    -------
    ndarray of float32, shape (n, n_tokens, vision_hidden)
        The image encoder's ``last_hidden_state`` (CLS token first).
    """
    from transformers import GitForCausalLM

    images = _check_images(images)
    processor = _image_processor(model, processor)
    net = _load(model, lambda p: GitForCausalLM.from_pretrained(p, local_files_only=True), "GIT model")
    encoder = net.git.image_encoder.to(device).eval()
    dtype = next(encoder.parameters()).dtype
    return _run_batched(images, processor, lambda px: encoder(px.to(device, dtype)).last_hidden_state,
                        batch_size, progress, "git_tokens")


def vae_latents(model: Any, images: Any, *, batch_size: int = 16, device: str = "cpu",
                progress: bool = False) -> np.ndarray:
    """Stable Diffusion VAE latents (the mean of the posterior, times the VAE's scaling factor).

    Images are resized (bicubic) to the VAE's ``sample_size`` and scaled to
    [-1, 1], the input img2img encodes.

    Parameters
    ----------
    model : path or diffusers ``AutoencoderKL``

    Returns
    -------
    ndarray of float32, shape (n, latent_channels, h, w)
        ``h = w = sample_size / 8`` for Stable Diffusion's VAE (a factor of 2 per down block).
    """
    import torch
    from diffusers import AutoencoderKL

    images = _check_images(images)
    vae = _load(model, lambda p: AutoencoderKL.from_pretrained(p, local_files_only=True), "VAE").to(device).eval()
    size = int(vae.config.sample_size)
    scale = float(getattr(vae.config, "scaling_factor", 1.0))
    dtype = next(vae.parameters()).dtype
    parts = []
    with torch.inference_mode():
        for start in _batches(len(images), batch_size, progress, "vae_latent"):
            x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
            x = x.clamp(-1.0, 1.0).to(device, dtype)
            parts.append((vae.encode(x).latent_dist.mean * scale).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False)


def depth_maps(model: Any, images: Any, *, processor: Any = None, batch_size: int = 16, device: str = "cpu",
               progress: bool = False, size: int | None = None) -> np.ndarray:
    """Predicted depth per image, resized (bicubic) back to the images' height and width.

    Parameters
    ----------
    model : path or ``AutoModelForDepthEstimation`` (e.g. DPT)
    size : int, optional
        Side of the square maps returned instead of the images' own size (a
        decoder predicts ``size**2`` numbers per image; ControlNet resizes the
        map to its output anyway).

    Returns
    -------
    ndarray of float32, shape (n, height, width), or (n, size, size)
        The model's relative depth (larger is nearer for DPT).
    """
    import torch
    from transformers import AutoModelForDepthEstimation

    images = _check_images(images)
    processor = _image_processor(model, processor)
    net = _load(model, lambda p: AutoModelForDepthEstimation.from_pretrained(p, local_files_only=True),
                "depth model").to(device).eval()
    dtype = next(net.parameters()).dtype
    height, width = images.shape[1:3]
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise BrainalignError(f"'size' must be a positive int, got {size!r}.")
        height = width = int(size)

    def forward(px: Any) -> Any:
        depth = net(pixel_values=px.to(device, dtype)).predicted_depth[:, None]
        return torch.nn.functional.interpolate(depth.float(), size=(height, width), mode="bicubic",
                                               align_corners=False)[:, 0]

    return _run_batched(images, processor, forward, batch_size, progress, "depth")


def depth_from_file(path: str | os.PathLike, image_ids: Sequence[int], size: int) -> np.ndarray:
    """The user's depth maps of ``image_ids`` from an HDF5 (datasets ``image_id`` (n,) and ``depth`` (n, H, W)),
    resized (bicubic) to ``size`` x ``size``.

    Returns
    -------
    ndarray of float32, shape (len(image_ids), size, size)
    """
    import h5py
    import torch

    from .._validation import InputFileError
    from ..io import rows_of_image_ids

    path = check_fname(path, "file", "depth-map file")
    with h5py.File(path, "r") as f:
        for key in ("image_id", "depth"):
            if key not in f:
                raise InputFileError(path, f"dataset {key!r} is missing (field decoding.targets.depth.files).")
        rows = rows_of_image_ids(path, f["image_id"][()], image_ids, "depth map", "decoding.targets.depth.files")
        if f["depth"].ndim != 3:
            raise InputFileError(path, f"dataset 'depth' must be (n, height, width), got {f['depth'].shape}.")
        order = np.argsort(rows)  # h5py reads rows in increasing order
        maps = np.empty((len(rows),) + f["depth"].shape[1:], dtype=np.float32)
        maps[order] = f["depth"][rows[order]]
    if not np.isfinite(maps).all():
        raise InputFileError(path, "dataset 'depth' has non-finite values.")
    x = torch.from_numpy(maps)[:, None]
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)[:, 0].numpy()


#: Folder where :func:`extract_targets` keeps each finished target (set by :func:`target_cache`).
_CACHE: ContextVar[Path | None] = ContextVar("image_target_cache", default=None)


@contextmanager
def target_cache(folder: str | os.PathLike) -> Iterator[Path]:
    """Within the block, :func:`extract_targets` keeps each finished target in ``folder`` and reuses it.

    A target is reused when its model path, options, images and captions are
    the same (a BLAKE2 digest of them names the file), so a stage killed
    during its third extraction restarts at the third. The caller removes the
    folder once its own output is written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = _CACHE.set(folder)
    try:
        yield folder
    finally:
        _CACHE.reset(token)


def _digest(name: str, path: Path, options: dict[str, Any], images_digest: str, captions: Sequence[str] | None
            ) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([name, str(path), sorted(options.items()), images_digest, list(captions or [])]).encode())
    return h.hexdigest()


def _images_digest(images: np.ndarray) -> str:
    arr = np.ascontiguousarray(images)
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([list(arr.shape), str(arr.dtype)]).encode())
    h.update(arr.data)
    return h.hexdigest()


def _cached(name: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, kept in (and read back from) the active :func:`target_cache` under ``key``."""
    folder = _CACHE.get()
    if folder is None:
        return compute()
    import h5py

    from ..io import atomic_path

    path = folder / f"{name}-{key}.h5"
    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                return f["values"][()]
        except OSError:  # an unreadable leftover: compute again
            pass
    values = compute()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("values", data=values, track_times=False)
    return values


def extract_targets(spec: dict[str, Any], images: Any, captions: Sequence[str] | None = None, *,
                    device: str = "cpu", progress: bool = False) -> dict[str, np.ndarray]:
    """Every target ``spec`` names, computed from its model path.

    Parameters
    ----------
    spec : dict
        Target name (one of :data:`TARGETS`) → ``{"model_path": folder, "batch_size": int}``.
    images : ndarray of uint8, shape (n, height, width, 3)
    captions : sequence of str, optional
        Needed for ``clip_text``.
    device : str, default="cpu"
    progress : bool, default=False

    Returns
    -------
    dict of str to ndarray, in the order of :data:`TARGETS`
    """
    functions = {"clip_image": clip_image_embeddings, "git_tokens": git_image_tokens, "vae_latent": vae_latents,
                 "depth": depth_maps}
    unknown = sorted(set(spec) - set(TARGETS))
    if unknown:
        raise BrainalignError(f"unknown decoding targets {unknown}; choose from {list(TARGETS)}.")
    out = {}
    # The images' digest names the cached targets: computed once, and only when a cache is active.
    images_digest = _images_digest(images) if _CACHE.get() is not None else ""
    for name in TARGETS:
        if name not in spec:
            continue
        options = dict(spec[name])
        path = options.pop("model_path", None)
        if not path:
            raise BrainalignError(f"decoding target {name!r} needs 'model_path' (a local folder of weights).")
        path = Path(path)
        if name == "clip_text" and captions is None:
            raise BrainalignError("decoding target 'clip_text' needs the images' captions.")
        key = _digest(name, path, options, images_digest, captions if name == "clip_text" else None)
        if name == "clip_text":
            out[name] = _cached(name, key, lambda: clip_text_embeddings(path, captions, device=device,
                                                                        progress=progress, **options))
        else:
            out[name] = _cached(name, key, lambda: functions[name](path, images, device=device, progress=progress,
                                                                   **options))
    return out
