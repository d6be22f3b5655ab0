"""Tests of brainalign.features.design: HRF convolution, FIR design, frame times.

The HRF design is checked column by column against nilearn's own
``compute_regressor`` (the reference implementation it claims to replicate);
the FIR design against a lagged matrix built by hand.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from nilearn.glm.first_level import compute_regressor

from brainalign._validation import BrainalignError
from brainalign.features.design import events_after_last_volume, fir_design, frame_times_for_run, hrf_convolve


def _nilearn_columns(onsets, durations, amplitudes, frame_times, hrf_model, **kwargs):
    cols = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn warns about onsets before the first frame
        for j in range(amplitudes.shape[1]):
            reg, _ = compute_regressor(
                np.vstack([onsets, durations, amplitudes[:, j]]), hrf_model, frame_times, **kwargs
            )
            cols.append(reg[:, 0])
    return np.column_stack(cols)


def _assert_close_rel_max(actual, expected, rtol=1e-8):
    assert actual.shape == expected.shape
    for j in range(expected.shape[1]):
        scale = np.max(np.abs(expected[:, j]))
        assert scale > 0
        err = np.max(np.abs(actual[:, j] - expected[:, j]))
        assert err <= rtol * scale, f"column {j}: max abs error {err} vs scale {scale}"


# --------------------------------------------------------------------------- frame times
def test_frame_times_for_run():
    np.testing.assert_array_equal(frame_times_for_run(4, 2.0, 20.0), [20.0, 22.0, 24.0, 26.0])
    np.testing.assert_array_equal(frame_times_for_run(3, 1.5), [0.0, 1.5, 3.0])
    ft = frame_times_for_run(362, 2.0, 20.0)
    assert ft.dtype == np.float64 and ft.shape == (362,)
    assert ft[-1] == 20.0 + 2.0 * 361
    assert frame_times_for_run(0, 2.0).shape == (0,)


# --------------------------------------------------------------------------- HRF vs nilearn
@pytest.mark.parametrize("hrf_model", ["spm", "glover"])
@pytest.mark.parametrize("with_durations", [False, True], ids=["impulse", "boxcar"])
@pytest.mark.parametrize("first_volume", [0.0, 20.0])
def test_hrf_convolve_matches_nilearn(hrf_model, with_durations, first_volume):
    rng = np.random.default_rng(1)
    frame_times = frame_times_for_run(80, 2.0, first_volume)
    n_events = 60
    # Some events lie before the first frame (but after frame_times[0] - 24 s).
    onsets = np.sort(rng.uniform(first_volume - 20.0, frame_times[-1] + 3.0, n_events))
    assert (onsets < frame_times[0]).sum() >= 3
    durations = rng.uniform(0.05, 0.8, n_events) if with_durations else np.zeros(n_events)
    amplitudes = rng.standard_normal((n_events, 4))
    design = hrf_convolve(onsets, durations, amplitudes, frame_times, hrf_model)
    assert design.shape == (80, 4) and design.dtype == np.float64
    expected = _nilearn_columns(onsets, durations, amplitudes, frame_times, hrf_model)
    _assert_close_rel_max(design, expected)


def test_hrf_convolve_word_like_timing_and_oversampling():
    """Dense word-rate events (0.3 s apart), a non-integer TR and another oversampling."""
    frame_times = frame_times_for_run(50, 1.5, 7.0)
    onsets = 7.2 + 0.3 * np.arange(200)
    durations = np.full(200, 0.25)
    amplitudes = np.column_stack([np.ones(200), np.cos(np.arange(200) / 7.0)])
    for oversampling in (16, 50):
        design = hrf_convolve(onsets, durations, amplitudes, frame_times, "glover",
                              oversampling=oversampling)
        expected = _nilearn_columns(onsets, durations, amplitudes, frame_times, "glover",
                                    oversampling=oversampling)
        _assert_close_rel_max(design, expected)


def test_hrf_convolve_linear_in_amplitudes_and_1d_input():
    frame_times = frame_times_for_run(40, 2.0)
    onsets = np.array([3.0, 10.5, 33.3, 51.0])
    durations = np.zeros(4)
    a = np.array([1.0, -2.0, 0.5, 3.0])
    one = hrf_convolve(onsets, durations, a, frame_times)
    assert one.shape == (40, 1)
    both = hrf_convolve(onsets, durations, np.column_stack([a, 2 * a]), frame_times)
    np.testing.assert_allclose(both[:, 1], 2 * one[:, 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(both[:, 0], one[:, 0], rtol=1e-12, atol=1e-15)
    # Nothing before the first event (to FFT rounding): the response is causal.
    assert np.all(np.abs(one[frame_times < onsets[0]]) <= 1e-12 * np.abs(one).max())


def test_hrf_convolve_drops_events_before_min_onset():
    """Events earlier than frame_times[0] + min_onset contribute nothing.

    (nilearn's ``compute_regressor`` warns that such events "are not
    considered" but in fact piles them at the first high-resolution sample;
    brainalign follows the documented behaviour, so the reference here is the
    design without those events.)
    """
    frame_times = frame_times_for_run(30, 2.0, 20.0)
    onsets = np.array([-30.0, -10.0, 5.0, 19.0, 30.0])
    durations = np.zeros(5)
    amplitudes = np.array([[7.0], [5.0], [1.0], [2.0], [3.0]])
    full = hrf_convolve(onsets, durations, amplitudes, frame_times)
    kept = hrf_convolve(onsets[2:], durations[2:], amplitudes[2:], frame_times)
    np.testing.assert_array_equal(full, kept)
    _assert_close_rel_max(kept, _nilearn_columns(onsets[2:], durations[2:], amplitudes[2:],
                                                 frame_times, "spm"))


def test_hrf_convolve_bad_inputs():
    ft = frame_times_for_run(10, 2.0)
    with pytest.raises(BrainalignError, match="same number of events"):
        hrf_convolve(np.zeros(3), np.zeros(2), np.ones((3, 1)), ft)
    with pytest.raises(BrainalignError, match="at least 2 volumes"):
        hrf_convolve(np.zeros(1), np.zeros(1), np.ones((1, 1)), ft[:1])
    with pytest.raises(BrainalignError, match="hrf_model"):
        hrf_convolve(np.zeros(1), np.zeros(1), np.ones((1, 1)), ft, "boynton")


# --------------------------------------------------------------------------- FIR
def test_fir_design_hand_built():
    frame_times = frame_times_for_run(5, 2.0, 20.0)  # volumes at 20, 22, 24, 26, 28
    onsets = np.array([19.0, 20.5, 21.9, 22.0, 27.9, 29.9, 30.5])
    amplitudes = np.array([[100.0, 100.0],   # before the first volume: dropped
                           [1.0, 2.0],       # volume 0
                           [3.0, 4.0],       # volume 0
                           [5.0, 6.0],       # volume 1 (starts exactly at 22 s)
                           [7.0, 8.0],       # volume 3
                           [9.0, 10.0],      # volume 4 (interval [28, 30))
                           [50.0, 50.0]])    # after the last volume's interval: dropped
    binned = np.array([[4.0, 6.0],
                       [5.0, 6.0],
                       [0.0, 0.0],
                       [7.0, 8.0],
                       [9.0, 10.0]])
    lags = [0, 1, 3, 7]
    expected = np.zeros((5, 2 * len(lags)))
    for k, lag in enumerate(lags):
        for t in range(5):
            if t - lag >= 0:
                expected[t, 2 * k:2 * k + 2] = binned[t - lag]
    design = fir_design(onsets, amplitudes, frame_times, lags)
    assert design.shape == (5, 8)
    np.testing.assert_array_equal(design, expected)
    # Spot checks of the hand-built matrix itself: lag 1, volume 2 holds volume 1's sum.
    np.testing.assert_array_equal(design[2, 2:4], [5.0, 6.0])
    np.testing.assert_array_equal(design[:, 6:8], 0.0)  # lag 7 > 5 volumes


def test_fir_design_1d_and_default_lags_and_negative_lag():
    frame_times = frame_times_for_run(10, 1.0)
    onsets = np.array([0.2, 0.7, 4.5])
    design = fir_design(onsets, np.ones(3), frame_times)
    assert design.shape == (10, 6)  # default lags 1..6
    # lag 1: volume 1 holds the 2 words of volume 0; volume 5 holds the word of volume 4.
    np.testing.assert_array_equal(design[:, 0], [0, 2, 0, 0, 0, 1, 0, 0, 0, 0])
    # lag 6: shifted by six volumes.
    np.testing.assert_array_equal(design[:, 5], [0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
    with pytest.raises(BrainalignError, match="non-negative"):
        fir_design(onsets, np.ones(3), frame_times, [1, -1])


def test_events_after_last_volume():
    frame_times = frame_times_for_run(10, 2.0, 20.0)  # volumes at 20 ... 38 s, the last until 40 s
    late = events_after_last_volume(np.array([19.0, 20.0, 39.99, 40.0, 5000.0]), frame_times)
    np.testing.assert_array_equal(late, [False, False, False, True, True])
    with pytest.raises(BrainalignError, match="at least 2 volumes"):
        events_after_last_volume(np.zeros(1), frame_times[:1])


@pytest.mark.parametrize("model", ["hrf", "fir"])
def test_design_stage_refuses_words_after_their_run(model):
    """Both temporal models leave out a word after the run's end; the pipeline's convolution refuses it."""
    import pandas as pd

    from brainalign._validation import InputFileError
    from brainalign.pipeline.stages import convolve_runs

    cfg = {"design": {"model": model, "fir_lags": [1, 2], "event_duration": "word", "hrf_model": "spm"}}
    events = pd.DataFrame({"onset": [1.0, 3.0, 2.0, 5000.0], "duration": 0.3, "word": ["a", "b", "c", "d"],
                           "run": [1, 1, 2, 2]})
    frames = {1: frame_times_for_run(20, 2.0), 2: frame_times_for_run(20, 2.0)}
    ok = convolve_runs(cfg, events.iloc[:3], np.ones((3, 1)), frames)
    assert ok.shape == (40, 2 if model == "fir" else 1)
    with pytest.raises(InputFileError, match=r"word 'd' at row 3 starts at 5000.000 s, after the last volume of "
                                             r"run 2 \(20 volumes from 0 s, the run ends at 40.000 s\)"):
        convolve_runs(cfg, events, np.ones((4, 1)), frames)
    with pytest.raises(InputFileError, match=r"column 'run': word\(s\) of run\(s\) \[3\]"):
        convolve_runs(cfg, events.assign(run=[1, 1, 2, 3]), np.ones((4, 1)), frames, source="events.tsv")
