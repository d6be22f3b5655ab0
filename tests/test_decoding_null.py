"""Image decoding at SNR 0: retrieval stays at chance in every target space (no captioner or generator needed).

The further target spaces are extracted by tiny random-weight models (CLIP, GIT, a Stable Diffusion VAE), as a
user's local weights would be, and read from the user's depth maps.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainalign.config import load_config
from brainalign.pipeline.decoding import run_decode, run_decoding_data

CONFIG = Path(__file__).resolve().parent.parent / "workflows" / "configs" / "simulated_images_ci.yaml"
SPACES = {"image", "tokens", "text", "clip_image", "git_tokens", "vae_latent", "depth"}


def test_snr_zero_is_at_chance_in_every_target_space(tmp_path: Path, tiny_clip_vision, tiny_git, tiny_sd_depth):
    cfg = load_config(CONFIG)
    cfg["simulation"]["seed"] = 1
    cfg["simulation"]["images"].update(snr=0.0, retinotopic_voxels=100, semantic_voxels=20)
    cfg["decoding"]["captioner"]["kind"] = "none"
    cfg["decoding"]["generator"]["kind"] = "none"
    cfg["decoding"]["image_metrics"] = False
    cfg["decoding"]["targets"] = {"clip_image": {"model_path": str(tiny_clip_vision), "batch_size": 64},
                                  "git_tokens": {"model_path": str(tiny_git), "batch_size": 64},
                                  "vae_latent": {"model_path": str(tiny_sd_depth[0] / "vae"), "batch_size": 64},
                                  "depth": {"files": str(tmp_path / "depth.h5"), "size": 8}}
    # The user's own depth maps (any size, any order), in place of a depth model.
    with h5py.File(tmp_path / "depth.h5", "w") as f:
        f["image_id"] = np.arange(900)[::-1]
        f["depth"] = np.random.default_rng(3).random((900, 12, 12)).astype(np.float32)
    # The BrainSCUBA bank: a folder of images (three drawn by the simulation, written as PNG), not the training set.
    from PIL import Image

    from brainalign.datasets.simulated_images import draw_images

    bank = tmp_path / "bank"
    bank.mkdir()
    for k, image in enumerate(draw_images(3, seed=5)[0]):
        Image.fromarray(image).save(bank / f"bank_{k}.png")
    cfg["decoding"]["selectivity_bank"] = str(bank)
    run_decoding_data(cfg, tmp_path)
    run_decode(cfg, "subj01", tmp_path / "images.h5", tmp_path / "betas" / "subj01.h5", tmp_path / "decoding",
               progress=False)
    scores = pd.read_csv(tmp_path / "decoding" / "scores.csv")
    rows = scores[scores["metric"].str.startswith("retrieval_")]
    # Ridge and the MLP to every space, both directions.
    assert set(zip(rows["decoder"], rows["target"])) == {(d, t) for d in ("ridge", "mlp") for t in SPACES}
    assert len(rows) == 2 * 2 * len(SPACES)
    for row in rows.itertuples():
        assert row.chance_low <= row.value <= row.chance_high, row
    # Without signal the predictions correlate with no feature (|r| of 300 images: sd 0.058 per feature).
    feature_r = scores[scores["metric"] == "feature_r"]
    assert len(feature_r) == 2 * len(SPACES) and (feature_r["value"].abs() < 0.06).all(), feature_r
    tokens = pd.read_csv(tmp_path / "decoding" / "tokens.csv")
    assert set(tokens["target"]) == {"tokens", "git_tokens"}
    assert len(tokens[(tokens["target"] == "git_tokens") & (tokens["decoder"] == "ridge")]) == 17  # 16 patches + CLS
    assert (tokens["r"].abs() < 0.1).all()
    selectivity = pd.read_csv(tmp_path / "decoding" / "selectivity.csv")
    assert all(set(json.loads(t)) <= {"bank_0.png", "bank_1.png", "bank_2.png"} for t in selectivity["top_images"])
    assert len(pd.read_csv(tmp_path / "decoding" / "voxel_captions.csv")) == 0  # no captioner: no voxel captions
