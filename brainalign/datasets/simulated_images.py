"""Simulated image-fMRI dataset: procedurally drawn images, template captions, planted voxel responses.

No image-fMRI dataset can ship with the project, so the decoding workflow
generates one whose ground truth is known (docs/decoding.md):

- **Images** (:func:`draw_images`): one shape (circle, square, triangle,
  cross) of one colour, size and position on a background colour, RGB uint8.
  Each comes with a template caption ("a small red circle on a blue
  background") built from the same attributes.
- **Image embeddings** (:func:`image_embeddings`): the output of a fixed,
  seeded random convolutional network (the "image encoder" of the simulation;
  the role CLIP plays on NSD), a few spatial tokens plus a pooled vector.
- **Responses** (:func:`simulate_responses`): per subject, voxel betas
  ``B = E W_s + noise``, with ``E`` the standardised pooled embeddings and
  ``W_s`` a random subject-specific map; voxels fall in ROIs, and each ROI's
  voxels share a preferred direction (so ROIs have a selectivity that
  BrainSCUBA-style captions can recover). ``snr`` scales signal against unit
  noise; ``snr = 0`` plants nothing.
- **Semantic voxels** (:func:`semantic_responses`, optional,
  ``semantic_voxels``): an ROI ``semantic`` tuned to the attributes the
  caption names (shape, colour, background, size).
- **Early visual voxels** (:func:`retinotopic_responses`, optional,
  ``retinotopic_voxels``): an ROI ``V1`` of population receptive fields
  (Dumoulin & Wandell 2008), each voxel a 2-D Gaussian window on the image
  with its own colour tuning. They carry the low-level, spatial information
  (where, what colour) that VAE latents and depth maps hold and the pooled
  embedding averages away.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .._validation import ConfigError
from ..io import ImageBank, VoxelGeometry, load_image_folder
from ._preflight import count
from .registry import ImageData, ImagesKind, Preflight, selected_subjects

__all__ = ["COLORS", "SHAPES", "draw_images", "image_embeddings", "simulate_responses", "retinotopic_responses",
           "semantic_responses", "retinotopic_tuning", "synthetic_geometry", "ImageEncoder", "SimulatedImagesKind"]

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
          "purple": (140, 50, 170), "white": (245, 245, 245), "black": (20, 20, 20), "orange": (245, 140, 30)}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = {"small": 0.22, "large": 0.4}
#: Width (RGB distance, channels in [0, 1]) of the early visual voxels' colour tuning.
COLOR_TUNING = 0.25


def draw_images(n_images: int, seed: int, size: int = 64) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw ``n_images`` images and their attributes/captions.

    Returns
    -------
    images : ndarray of shape (n_images, size, size, 3), uint8
    table : DataFrame
        Columns ``image_id``, ``shape``, ``color``, ``background``, ``size``, ``x``, ``y`` (centre, in
        [0, 1]), ``caption``.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, 101])
    names = list(COLORS)
    rows, images = [], np.empty((n_images, size, size, 3), dtype=np.uint8)
    for i in range(n_images):
        shape = SHAPES[rng.integers(len(SHAPES))]
        color, background = rng.choice(names, size=2, replace=False)
        scale = list(SIZES)[rng.integers(len(SIZES))]
        radius = SIZES[scale] * size / 2 * rng.uniform(0.9, 1.1)
        cx, cy = rng.uniform(radius, size - radius, size=2)
        img = Image.new("RGB", (size, size), COLORS[background])
        draw = ImageDraw.Draw(img)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if shape == "circle":
            draw.ellipse(box, fill=COLORS[color])
        elif shape == "square":
            draw.rectangle(box, fill=COLORS[color])
        elif shape == "triangle":
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
                         fill=COLORS[color])
        else:
            w = radius / 3
            draw.rectangle((cx - radius, cy - w, cx + radius, cy + w), fill=COLORS[color])
            draw.rectangle((cx - w, cy - radius, cx + w, cy + radius), fill=COLORS[color])
        pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, 6, (size, size, 3))  # sensor-like grain
        images[i] = np.clip(pixels, 0, 255).astype(np.uint8)
        rows.append({"image_id": i, "shape": shape, "color": str(color), "background": str(background),
                     "size": scale, "x": cx / size, "y": cy / size,
                     "caption": f"a {scale} {color} {shape} on a {background} background"})
    return images, pd.DataFrame(rows)


class ImageEncoder:
    """The simulation's fixed image encoder: a seeded random CNN (no training), like a frozen CLIP.

    ``encode(images)`` returns ``tokens`` (n, n_tokens, dim), a 4 x 4 grid of
    spatial tokens plus one pooled token first, and ``pooled`` (n, dim).
    """

    def __init__(self, dim: int = 64, seed: int = 0):
        import torch
        from torch import nn

        self.dim, self.seed = int(dim), int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(64, dim, 3, stride=2, padding=1),
        )
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / np.sqrt(max(1, p[0].numel())) if p.ndim > 1
                                                               else 0.1))
        self.net.eval()

    def encode(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                fmap = self.net(x[start:start + batch_size])  # (b, dim, 8, 8) for 64 px
                grid = torch.nn.functional.adaptive_avg_pool2d(fmap, 4).flatten(2).transpose(1, 2)
                pooled = fmap.mean(dim=(2, 3))[:, None, :]
                outs.append(torch.cat([pooled, grid], dim=1))
        tokens = torch.cat(outs).numpy().astype(np.float32)
        return tokens, tokens[:, 0].copy()


def image_embeddings(images: np.ndarray, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, pooled) embeddings of ``images`` by :class:`ImageEncoder`."""
    return ImageEncoder(dim, seed).encode(images)


def simulate_responses(pooled: np.ndarray, *, subject_index: int, n_voxels: int, rois: dict[str, int],
                       snr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxel betas of one subject.

    Parameters
    ----------
    pooled : ndarray of shape (n_images, dim)
        Image embeddings.
    n_voxels : int
        Voxels outside the ROIs (unplanted, pure noise); the ROIs add theirs.
    rois : dict of str to int
        ROI name → number of voxels. Each ROI has a preferred embedding
        direction shared by its voxels (plus voxel-specific variation).

    Returns
    -------
    betas : ndarray of shape (n_images, n_total_voxels), float32
    roi_labels : ndarray of shape (n_total_voxels,), str ("" outside ROIs)
    """
    E = np.asarray(pooled, dtype=np.float64)
    E = (E - E.mean(axis=0)) / np.where(E.std(axis=0) > 0, E.std(axis=0), 1.0)
    shared = np.random.default_rng([seed, 103])
    subject = np.random.default_rng([seed, 107, subject_index])
    weights, labels = [], []
    for name in rois:
        direction = shared.standard_normal(E.shape[1])
        W = 0.8 * direction[:, None] + 0.6 * subject.standard_normal((E.shape[1], rois[name]))
        weights.append(W)
        labels += [name] * rois[name]
    W = np.concatenate(weights, axis=1)
    signal = E @ W
    signal /= signal.std(axis=0, keepdims=True)
    n_total = W.shape[1] + n_voxels
    noise = subject.standard_normal((len(E), n_total))
    betas = noise
    betas[:, : W.shape[1]] += snr * signal
    return betas.astype(np.float32), np.asarray(labels + [""] * n_voxels)


def retinotopic_tuning(n_voxels: int, *, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The early visual voxels' receptive fields: centres (n_voxels, 2) and sizes (n_voxels,) as fractions of
    the image side, and preferred colours (names of :data:`COLORS`); see :func:`retinotopic_responses`."""
    rng = np.random.default_rng([seed, 109])
    centres = rng.uniform(0.1, 0.9, size=(n_voxels, 2))
    sigmas = rng.uniform(0.05, 0.2, size=n_voxels)
    names = list(COLORS)
    return centres, sigmas, [names[k] for k in rng.integers(len(names), size=n_voxels)]


def retinotopic_responses(images: np.ndarray, n_voxels: int, *, seed: int, grid: int = 16) -> np.ndarray:
    """Noise-free responses of ``n_voxels`` population-receptive-field voxels, each standardised over images.

    Voxel ``v`` has a centre ``(x_v, y_v)`` uniform in [0.1, 0.9]² and a size
    ``sigma_v`` uniform in [0.05, 0.2] (fractions of the image side), and a
    preferred colour ``c_v`` drawn from :data:`COLORS`, all shared by the
    subjects. Its response to an image is
    ``sum_xy G_v(x, y) exp(-|I(x, y) - c_v|² / (2 tau²))`` on the image
    averaged down to ``grid`` x ``grid`` pixels (RGB in [0, 1]), with ``G_v``
    the normalised Gaussian window and ``tau`` = :data:`COLOR_TUNING`: a
    nonlinear colour code, so any function of the local colour (a VAE
    latent, a depth estimate) is a linear read-out of the population.

    Parameters
    ----------
    images : ndarray of shape (n_images, size, size, 3), uint8
    n_voxels : int
    seed : int
    grid : int, default=16

    Returns
    -------
    ndarray of shape (n_images, n_voxels), float64
    """
    import torch

    x = torch.as_tensor(np.asarray(images), dtype=torch.float64).permute(0, 3, 1, 2) / 255.0
    small = torch.nn.functional.adaptive_avg_pool2d(x, grid).numpy()  # (n, 3, grid, grid)
    centres, sigmas, colours = retinotopic_tuning(n_voxels, seed=seed)
    axis = (np.arange(grid) + 0.5) / grid
    gx = np.exp(-0.5 * ((axis[None, :] - centres[:, :1]) / sigmas[:, None]) ** 2)  # (v, grid) along x
    gy = np.exp(-0.5 * ((axis[None, :] - centres[:, 1:]) / sigmas[:, None]) ** 2)
    windows = gy[:, :, None] * gx[:, None, :]
    windows /= windows.sum(axis=(1, 2), keepdims=True)
    # The colour-tuned image is the same for every voxel preferring a colour: one per palette colour.
    responses = np.empty((len(small), n_voxels))
    for name, rgb in COLORS.items():
        voxels = np.flatnonzero(np.asarray(colours) == name)
        if len(voxels):
            distance2 = ((small - np.asarray(rgb, np.float64)[None, :, None, None] / 255.0) ** 2).sum(axis=1)
            tuned = np.exp(-distance2 / (2 * COLOR_TUNING ** 2)).reshape(len(small), -1)  # (n, grid * grid)
            responses[:, voxels] = tuned @ windows[voxels].reshape(len(voxels), -1).T
    responses -= responses.mean(axis=0)
    return responses / np.where(responses.std(axis=0) > 0, responses.std(axis=0), 1.0)


def semantic_responses(table: pd.DataFrame, n_voxels: int, *, seed: int) -> np.ndarray:
    """Noise-free responses of ``n_voxels`` voxels tuned to what the caption says, standardised over images.

    Each image is coded by the one-hot vectors of its shape, colour,
    background and size (22 numbers, what the template caption names); each
    voxel weighs them with standard-normal weights shared by all subjects
    (a category-selective population, the part of the signal a caption
    embedding can be read from).

    Parameters
    ----------
    table : DataFrame
        The attributes of :func:`draw_images`.
    n_voxels : int
    seed : int

    Returns
    -------
    ndarray of shape (n_images, n_voxels), float64
    """
    codes = [np.asarray(table[column].to_numpy()[:, None] == np.asarray(values)[None, :], dtype=np.float64)
             for column, values in (("shape", SHAPES), ("color", list(COLORS)), ("background", list(COLORS)),
                                    ("size", list(SIZES)))]
    onehot = np.concatenate(codes, axis=1)
    weights = np.random.default_rng([seed, 127]).standard_normal((onehot.shape[1], n_voxels))
    responses = (onehot - onehot.mean(axis=0)) @ weights
    return responses / np.where(responses.std(axis=0) > 0, responses.std(axis=0), 1.0)


def synthetic_geometry(n_voxels: int, side: int = 16) -> VoxelGeometry:
    """A stand-in volume for simulated voxels: voxel ``v`` at ``(v % side, (v // side) % side, v // side**2)``,
    2 mm isotropic, so that the ROIs (consecutive voxels) fill consecutive slabs of the maps."""
    v = np.arange(n_voxels)
    ijk = np.stack([v % side, (v // side) % side, v // side ** 2], axis=1)
    return VoxelGeometry(ijk, np.diag([2.0, 2.0, 2.0, 1.0]), (side, side, int(ijk[:, 2].max()) + 1))


class SimulatedImagesKind(ImagesKind):
    """``simulated_images``: drawn shapes and betas planted from their embeddings (docs/decoding.md)."""

    name = "simulated_images"
    simulated = True

    def image_data(self, cfg: dict[str, Any]) -> ImageData:
        sim, spec = cfg["simulation"], cfg["simulation"]["images"]
        images, table = draw_images(spec["n_images"], sim["seed"], spec["image_size"])
        tokens, pooled = image_embeddings(images, spec["embedding_dim"], sim["seed"])
        ids = table["image_id"].to_numpy()
        betas, geometry = {}, {}
        populations = {"V1": (spec["retinotopic_voxels"], retinotopic_responses, images),
                       "semantic": (spec["semantic_voxels"], semantic_responses, table)}
        clean = {roi: respond(source, count, seed=sim["seed"])
                 for roi, (count, respond, source) in populations.items() if count}
        for k, subject in enumerate(self.subjects(cfg)):
            trials, rois = simulate_responses(pooled, subject_index=k, n_voxels=spec["n_noise_voxels"],
                                              rois=spec["rois"], snr=spec["snr"], seed=sim["seed"])
            # Early visual and semantic voxels: the same tuning in every subject, own noise (seeded by subject).
            noise = np.random.default_rng([sim["seed"], 113, k])
            for roi, responses in clean.items():
                part = spec["snr"] * responses + noise.standard_normal(responses.shape)
                trials = np.concatenate([trials, part.astype(np.float32)], axis=1)
                rois = np.concatenate([rois, np.asarray([roi] * responses.shape[1])])
            betas[subject] = (trials, ids, rois)
            geometry[subject] = synthetic_geometry(len(rois))
        captions = table["caption"].tolist()
        # decoding.targets (tiny or real local models) add target spaces; the betas stay planted in the
        # simulation's own encoder space ("image").
        targets = self.extract_targets(cfg, images, captions, image_ids=table["image_id"].to_numpy())
        return ImageData(images, captions, tokens, pooled, ids, ids < spec["n_test"], betas, targets, geometry)

    def subjects(self, cfg: dict[str, Any]) -> list[str]:
        return [f"subj{k + 1:02d}" for k in range(cfg["simulation"]["n_subjects"])]

    def embed_bank(self, cfg: dict[str, Any], folder: str | os.PathLike) -> ImageBank:
        """The folder's images at the simulation's size, through the simulation's encoder."""
        spec = cfg["simulation"]["images"]
        images, names = load_image_folder(folder, spec["image_size"])
        tokens, pooled = image_embeddings(images, spec["embedding_dim"], cfg["simulation"]["seed"])
        return ImageBank(pooled, tokens, names)

    def preflight(self, cfg: dict[str, Any]) -> Preflight:
        """The held-out (``simulation.images.n_test``) and the other images: at least 2 of each to decode."""
        spec = cfg["simulation"]["images"]
        n_test, n_train = spec["n_test"], spec["n_images"] - spec["n_test"]
        if n_test < 2 or n_train < 2:
            raise ConfigError(None, "simulation.images.n_test",
                              f"{n_test} test and {n_train} training images of simulation.images.n_images = "
                              f"{spec['n_images']}; decoding needs at least 2 of each.")
        return Preflight([f"{count(len(selected_subjects(cfg)), 'subject')}, {spec['n_images']} images "
                          f"({n_test} held out)"])

    def credit(self, cfg: dict[str, Any]) -> str:
        sim = cfg["simulation"]
        return (f"simulated by brainalign (docs/decoding.md): {sim['images']['n_images']} drawn images, betas at "
                f"SNR {sim['images']['snr']:g}, seed {sim['seed']}.")
