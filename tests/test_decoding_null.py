"""Image decoding at SNR 0: retrieval stays at chance (two seeds; no captioner or generator needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from brainalign.config import load_config
from brainalign.pipeline.decoding import run_decode, run_decoding_data

CONFIG = Path(__file__).resolve().parent.parent / "workflows" / "configs" / "simulated_images_ci.yaml"


@pytest.mark.parametrize("seed", [0, 1])
def test_snr_zero_is_at_chance(tmp_path: Path, seed: int):
    cfg = load_config(CONFIG)
    cfg["simulation"]["seed"] = seed
    cfg["simulation"]["images"]["snr"] = 0.0
    cfg["decoding"]["captioner"]["kind"] = "none"
    cfg["decoding"]["generator"]["kind"] = "none"
    cfg["decoding"]["image_metrics"] = False
    run_decoding_data(cfg, tmp_path)
    run_decode(cfg, "subj01", tmp_path / "images.h5", tmp_path / "betas" / "subj01.h5", tmp_path / "decoding",
               progress=False)
    scores = pd.read_csv(tmp_path / "decoding" / "scores.csv")
    rows = scores[scores["metric"].str.startswith("retrieval_")]
    assert len(rows) == 8  # ridge and MLP to the image embedding, ridge to tokens and text; both directions
    for row in rows.itertuples():
        assert row.chance_low <= row.value <= row.chance_high, row
