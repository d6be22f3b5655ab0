"""The decoding stage's per-space scores and the simulated image dataset's early visual and semantic voxels,
against independent computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from brainalign.datasets.simulated_images import (
    COLOR_TUNING,
    COLORS,
    draw_images,
    retinotopic_responses,
    semantic_responses,
)
from brainalign.pipeline.decoding import space_scores, target_spaces, token_correlations


def test_space_scores_and_token_correlations_match_scipy():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((40, 3 * 5)) + 2.0
    pred = 0.5 * true + rng.standard_normal(true.shape)
    scores = space_scores(pred, true)
    cosine = np.mean([p @ t / np.linalg.norm(p) / np.linalg.norm(t) for p, t in zip(pred, true)])
    r = np.array([pearsonr(true[:, j], pred[:, j])[0] for j in range(true.shape[1])])
    assert scores["cosine"] == pytest.approx(cosine, rel=1e-12)
    assert scores["feature_r"] == pytest.approx(r.mean(), rel=1e-12)
    # 3 tokens of width 5, flattened token-major: token t is columns 5t .. 5t+4.
    np.testing.assert_allclose(token_correlations(pred, true, 5), r.reshape(3, 5).mean(axis=1), rtol=1e-12)


def test_target_spaces_flatten_every_space_in_order():
    data = {"pooled": np.ones((4, 2)), "tokens": np.arange(4 * 3 * 2).reshape(4, 3, 2), "text": np.zeros((4, 5)),
            "targets": {"vae_latent": np.arange(4 * 2 * 2 * 2).reshape(4, 2, 2, 2), "depth": np.ones((4, 3, 3))}}
    spaces = target_spaces(data, np.array([2, 0]))
    assert list(spaces) == ["image", "tokens", "text", "vae_latent", "depth"]
    assert [v.shape for v in spaces.values()] == [(2, 2), (2, 6), (2, 5), (2, 8), (2, 9)]
    np.testing.assert_array_equal(spaces["vae_latent"][0], np.arange(16, 24))


def test_retinotopic_voxel_is_its_colour_tuned_window_over_the_image():
    images, _ = draw_images(12, seed=3, size=32)
    got = retinotopic_responses(images, 5, seed=7, grid=8)
    # By hand: voxel 2's centre, size and colour from the documented draws, then the sum over the 8 x 8 grid.
    rng = np.random.default_rng([7, 109])
    centres, sigmas = rng.uniform(0.1, 0.9, size=(5, 2)), rng.uniform(0.05, 0.2, size=5)
    palette = np.asarray(list(COLORS.values()), dtype=np.float64) / 255.0
    colour = palette[rng.integers(len(palette), size=5)][2]
    small = images.astype(np.float64).reshape(12, 8, 4, 8, 4, 3).mean(axis=(2, 4)) / 255.0  # (n, y, x, rgb)
    values = np.zeros(12)
    total = 0.0
    for y in range(8):
        for x in range(8):
            g = np.exp(-0.5 * (((x + 0.5) / 8 - centres[2, 0]) ** 2 + ((y + 0.5) / 8 - centres[2, 1]) ** 2)
                       / sigmas[2] ** 2)
            total += g
            values += g * np.exp(-((small[:, y, x] - colour) ** 2).sum(axis=1) / (2 * COLOR_TUNING ** 2))
    values /= total
    values = (values - values.mean()) / values.std()
    np.testing.assert_allclose(got[:, 2], values, rtol=1e-9, atol=1e-9)


def test_semantic_voxels_are_a_linear_code_of_the_caption_attributes():
    _, table = draw_images(60, seed=1, size=16)
    got = semantic_responses(table, 8, seed=2)
    np.testing.assert_allclose(got.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(got.std(axis=0), 1, rtol=1e-12)
    # Images with the same four attributes respond identically; the 22 one-hot columns explain everything.
    onehot = pd.get_dummies(table[["shape", "color", "background", "size"]]).to_numpy(float)
    coef, *_ = np.linalg.lstsq(np.c_[np.ones(60), onehot], got, rcond=None)
    np.testing.assert_allclose(np.c_[np.ones(60), onehot] @ coef, got, atol=1e-9)


def test_category_shares_by_hand():
    from brainalign.decoders.selectivity import category_shares

    got = category_shares(["A man and two dogs on the beach.", "the of a", "Women with glasses"],
                          {"person": ["man", "woman"], "animal": ["dog"], "place": ["beach"]})
    # Content words: man, two, dogs, beach (4); none; women, glasses (2: 'women' is not a plural -s of 'woman').
    np.testing.assert_array_equal(got, [[0.25, 0.25, 0.25], [0, 0, 0], [0, 0, 0]])


def test_image_bank_of_a_folder_is_embedded_like_the_images(tmp_path):
    from PIL import Image

    from brainalign._validation import InputFileError
    from brainalign.config import load_config
    from brainalign.datasets.simulated_images import SimulatedImagesKind, image_embeddings
    from brainalign.io import load_image_folder

    images, _ = draw_images(3, seed=4, size=64)
    for k, name in enumerate(["c.png", "a.jpg", "b.png"]):
        Image.fromarray(images[k]).save(tmp_path / name, quality=100)
    (tmp_path / "notes.txt").write_text("not an image")
    loaded, names = load_image_folder(tmp_path, 64)
    assert names == ["a.jpg", "b.png", "c.png"]
    np.testing.assert_array_equal(loaded[1], images[2])  # PNG is lossless
    cfg = load_config(Path(__file__).resolve().parent.parent / "workflows" / "configs" / "simulated_images_ci.yaml")
    bank = SimulatedImagesKind().embed_bank(cfg, tmp_path)
    tokens, pooled = image_embeddings(loaded, 64, 0)
    np.testing.assert_array_equal(bank.pooled, pooled)
    assert bank.tokens.shape == (3, 17, 64) and bank.names == names
    (tmp_path / "broken.png").write_bytes(b"no png")
    with pytest.raises(InputFileError, match="broken.png"):
        load_image_folder(tmp_path, 64)
    with pytest.raises(InputFileError, match="selectivity_bank"):
        load_image_folder(tmp_path / "missing", 64)


def test_ridge_on_all_spaces_at_once_equals_one_ridge_per_space():
    """The decode stage fits ridge once on the target spaces side by side: with a penalty per target column
    nothing couples the columns, so each space's prediction is that of its own fit."""
    from brainalign.encoders.ridge import RidgeCVEncoder

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 30))
    spaces = [X[:, :5] @ rng.standard_normal((5, k)) + rng.standard_normal((80, k)) for k in (3, 7)]
    alphas = np.logspace(-2, 4, 7)
    joint = RidgeCVEncoder(alphas=alphas, cv=5, gap=0).fit(X[:60], np.hstack([Y[:60] for Y in spaces]))
    parts = np.split(joint.predict(X[60:]), [3], axis=1)
    for Y, part in zip(spaces, parts):
        alone = RidgeCVEncoder(alphas=alphas, cv=5, gap=0).fit(X[:60], Y[:60]).predict(X[60:])
        np.testing.assert_allclose(part, alone, rtol=1e-10, atol=1e-12)


def test_unclip_of_another_clip_is_a_clear_error(tmp_path):
    """unCLIP must read embeddings of its own CLIP: a mismatched 'image' space names the key to fix."""
    from brainalign._validation import InputFileError
    from brainalign.decoders.diffusion import build_tiny_unclip
    from brainalign.pipeline.decoding import _generate

    build_tiny_unclip(seed=0, image_embed_dim=16).pipeline.save_pretrained(tmp_path / "unclip")
    cfg = {"decoding": {"generator": {"kind": "unclip", "model_path": str(tmp_path / "unclip"), "steps": 1,
                                      "seed": 0}}, "device": "cpu"}
    with pytest.raises(InputFileError, match=r"unCLIP reads 16-d.*has 8.*decoding.targets.clip_image"):
        _generate(cfg, np.zeros((2, 8)))
