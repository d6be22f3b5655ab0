"""Report text states what was run, in words (issue #21): no "None" where a step was skipped."""

from __future__ import annotations

from pathlib import Path

from brainalign.config import load_config
from brainalign.report.electro import preprocessing_text

CONFIGS = Path(__file__).resolve().parent.parent / "workflows" / "configs"


def test_meg_method_says_which_steps_were_skipped():
    ep = load_config(CONFIGS / "simulated_meg_ci.yaml")["electrophysiology"]
    ep.update(l_freq=None, h_freq=None, high_gamma=None, baseline=None, clamp=None, scaling="none")
    text = preprocessing_text(ep)
    assert "None" not in text
    for words in ("no band-pass filter", "no high-gamma envelope", "no baseline correction", "no clamping",
                  "no scaling"):
        assert words in text


def test_seeg_method_gives_the_bands_and_intervals_that_ran():
    ep = load_config(CONFIGS / "simulated_seeg_ci.yaml")["electrophysiology"]
    ep.update(l_freq=1.0, h_freq=None, high_gamma=[70, 150], baseline=[-0.2, 0.0], reference="bipolar", clamp=20)
    text = preprocessing_text(ep)
    assert "high-pass 1 Hz" in text and "high-gamma envelope (analytic amplitude) 70–150 Hz" in text
    assert "baseline -0.2…0 s subtracted" in text and "bipolar re-referencing" in text and "clamp ±20" in text
    ep.update(l_freq=0.5, h_freq=40.0)
    assert "band-pass 0.5–40 Hz" in preprocessing_text(ep)
