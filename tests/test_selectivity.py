"""BrainSCUBA's projection of voxel weights onto natural-image embeddings, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign._validation import BrainalignError
from brainalign.decoders.selectivity import project_to_bank, roi_weights


def test_projection_matches_a_hand_computation():
    bank = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = np.array([[2.0, 1.0]])
    cos = np.array([2 / np.sqrt(5), 1 / np.sqrt(5), 3 / np.sqrt(10)])
    p = np.exp(10 * cos) / np.exp(10 * cos).sum()
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    expected = p @ unit
    expected = expected / np.linalg.norm(expected) * np.linalg.norm(bank, axis=1).mean()
    projected, top = project_to_bank(w, bank, temperature=10.0, top=2)
    np.testing.assert_allclose(projected[0], expected, rtol=1e-12)
    np.testing.assert_array_equal(top[0], np.argsort(-p)[:2])


def test_high_temperature_picks_the_nearest_bank_image():
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((50, 8))
    w = bank[17] + 0.01 * rng.standard_normal(8)
    projected, top = project_to_bank(w[None], bank, temperature=1e4)
    assert top[0, 0] == 17
    np.testing.assert_allclose(projected[0] / np.linalg.norm(projected[0]),
                               bank[17] / np.linalg.norm(bank[17]), atol=1e-6)


def test_roi_weights_and_errors():
    W = np.arange(12.0).reshape(4, 3)
    rois, means = roi_weights(W, ["b", "a", "", "a"])
    assert rois == ["a", "b"]
    np.testing.assert_allclose(means, [[6.0, 7.0, 8.0], [0.0, 1.0, 2.0]])
    with pytest.raises(BrainalignError, match="dimensions"):
        project_to_bank(np.ones((1, 3)), np.ones((2, 4)))
    with pytest.raises(BrainalignError, match="no voxel"):
        roi_weights(W, [""] * 4)
