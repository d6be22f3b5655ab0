"""Tests for brainalign.metrics.ceilings: ISC ceilings and analytic limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brainalign._validation import BrainalignError
from brainalign.metrics.ceilings import (
    analytic_isc,
    analytic_model_r,
    isc_ceiling,
    loso_isc,
    normalized_score,
)


def loso_isc_reference(Y):
    """Hand-written loop with numpy.corrcoef."""
    Y = np.asarray(Y, dtype=np.float64)
    n_subjects, _, n_units = Y.shape
    out = np.empty((n_subjects, n_units))
    for i in range(n_subjects):
        others = np.mean([Y[j] for j in range(n_subjects) if j != i], axis=0)
        for u in range(n_units):
            out[i, u] = np.corrcoef(Y[i, :, u], others[:, u])[0, 1]
    return out


def planted_subjects(n_subjects, n_samples, n_units, snr, seed):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n_samples, n_units))
    noise = rng.standard_normal((n_subjects, n_samples, n_units)) / np.sqrt(snr)
    return s, s[None] + noise


# --------------------------------------------------------------------------- loso_isc
@pytest.mark.parametrize("n_subjects", [2, 3, 7])
def test_loso_isc_matches_corrcoef_loop(n_subjects):
    _, Y = planted_subjects(n_subjects, 80, 6, snr=0.5, seed=n_subjects)
    Y = Y + np.arange(6) * 10.0  # unit offsets must not matter
    isc = loso_isc(Y)
    assert isc.shape == (n_subjects, 6) and isc.dtype == np.float64
    np.testing.assert_allclose(isc, loso_isc_reference(Y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(isc_ceiling(Y), loso_isc_reference(Y).mean(axis=0), rtol=1e-10)


def test_loso_isc_accepts_list_and_float32_and_2d():
    _, Y = planted_subjects(4, 50, 3, snr=1.0, seed=1)
    ref = loso_isc_reference(Y)
    np.testing.assert_allclose(loso_isc([y for y in Y]), ref, rtol=1e-10)
    Y32 = Y.astype(np.float32)
    ref32 = loso_isc_reference(Y32.astype(np.float64))
    np.testing.assert_allclose(loso_isc(Y32), ref32, rtol=1e-10)
    # 2-D (n_subjects, n_samples) is one unit.
    np.testing.assert_allclose(loso_isc(Y[:, :, 0]), ref[:, :1], rtol=1e-10)


def test_loso_isc_constant_unit_is_zero():
    _, Y = planted_subjects(3, 40, 2, snr=1.0, seed=2)
    Y[1:, :, 1] = 0.3  # unit 1 is flat in subjects 1 and 2 -> subject 0's "others" are flat
    isc = loso_isc(Y)
    assert isc[0, 1] == 0.0 and isc[1, 1] == 0.0 and isc[2, 1] == 0.0
    assert np.all(np.isfinite(isc))


def test_loso_isc_errors_name_the_parameter():
    with pytest.raises(BrainalignError, match=r"'Y'.*at least 2 subjects"):
        loso_isc(np.zeros((1, 10, 3)))
    with pytest.raises(BrainalignError, match=r"'Y'.*equal shape.*\(10, 3\).*\(9, 3\)"):
        loso_isc([np.zeros((10, 3)), np.zeros((9, 3))])
    with pytest.raises(BrainalignError, match=r"'Y'.*shape \(2, 3, 4, 5\)"):
        loso_isc(np.zeros((2, 3, 4, 5)))
    with pytest.raises(BrainalignError, match=r"'Y'.*at least 2 samples"):
        loso_isc(np.zeros((3, 1, 4)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("func", [loso_isc, isc_ceiling])
def test_non_finite_responses_are_refused_not_turned_into_nan(func, value):
    _, Y = planted_subjects(3, 40, 2, snr=1.0, seed=2)
    Y[2, 17, 1] = value
    with pytest.raises(BrainalignError, match=r"'Y' contains 1 NaN or infinite.*subject 2, sample 17, unit 1"):
        func(Y)


@pytest.mark.parametrize("Y, match", [
    ([["a", "b"], ["c", "d"]], r"'Y' must hold real numbers.*<U1"),
    (np.ones((2, 5, 2), complex), r"'Y' must hold real numbers.*complex"),
    (np.ones((3, 5, 0)), r"'Y' must hold at least 1 unit"),
])
def test_isc_ceiling_refuses_non_numeric_and_empty_input(Y, match):
    with pytest.raises(BrainalignError, match=match):
        isc_ceiling(Y)


# --------------------------------------------------------------------------- normalized_score
def test_normalized_score():
    scores, ceilings = [0.2, 0.3, 0.5, 0.1, 0.4, -0.05], [0.4, 0.0, -0.1, np.nan, 0.25, 0.5]
    out = normalized_score(scores, ceilings, clip=False)
    np.testing.assert_allclose(out[[0, 4, 5]], [0.5, 1.6, -0.1])  # the ratio itself
    assert np.isnan(out[1:4]).all()
    clipped = normalized_score(scores, ceilings)  # Brain-Score's clip to [0, 1]
    np.testing.assert_allclose(clipped[[0, 4, 5]], [0.5, 1.0, 0.0])
    assert np.isnan(clipped[1:4]).all()
    # Below the minimum ceiling both are missing (0.28 / 0.015 = 18.7 is not a score).
    assert math.isnan(normalized_score(0.28, 0.015, min_ceiling=0.1))
    assert math.isnan(normalized_score(0.28, 0.015, min_ceiling=0.1, clip=False))
    assert normalized_score(0.05, 0.1, min_ceiling=0.1) == pytest.approx(0.5)  # the bound is inclusive
    with pytest.raises(BrainalignError, match="min_ceiling"):
        normalized_score(0.1, 0.2, min_ceiling=-1)
    assert normalized_score(0.3, 0.6) == pytest.approx(0.5)
    assert isinstance(normalized_score(0.3, 0.6), float)
    assert math.isnan(normalized_score(0.3, 0.0))
    # Broadcast a per-voxel score against one ROI ceiling.
    np.testing.assert_allclose(normalized_score(np.array([[0.1, 0.2]]), 0.5), [[0.2, 0.4]])
    with pytest.raises(BrainalignError, match=r"'score' and 'ceiling'.*\(3,\).*\(2,\)"):
        normalized_score([0.1, 0.2, 0.3], [0.5, 0.5])


# --------------------------------------------------------------------------- analytic limits
def test_analytic_hand_computed_cases():
    assert analytic_model_r(1.0) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert analytic_model_r(3.0) == pytest.approx(math.sqrt(0.75), rel=1e-15)
    assert analytic_model_r(0.0) == 0.0
    assert analytic_model_r(np.inf) == 1.0
    # snr = 1, N = 2: 1 / sqrt(2 * 2) = 0.5.
    assert analytic_isc(1.0, 2) == pytest.approx(0.5, rel=1e-15)
    # snr = 1, N = 3: 1 / sqrt(2 * 1.5) = 1 / sqrt(3).
    assert analytic_isc(1.0, 3) == pytest.approx(1 / math.sqrt(3), rel=1e-15)
    # snr = 0.5, N = 5: 1 / sqrt(3 * 1.5).
    assert analytic_isc(0.5, 5) == pytest.approx(1 / math.sqrt(4.5), rel=1e-15)
    assert analytic_isc(0.0, 4) == 0.0 and analytic_isc(np.inf, 4) == 1.0
    np.testing.assert_allclose(analytic_model_r([1.0, 3.0]), [math.sqrt(0.5), math.sqrt(0.75)])
    # Many subjects: the ISC tends to the model limit; a perfect model's normalized
    # score is sqrt(1 + 1/((N-1) snr)) >= 1.
    assert analytic_isc(1.0, 10**9) == pytest.approx(analytic_model_r(1.0), rel=1e-8)
    ratio = normalized_score(analytic_model_r(0.4), analytic_isc(0.4, 6), clip=False)
    assert ratio == pytest.approx(math.sqrt(1 + 1 / (5 * 0.4)), rel=1e-12)


@pytest.mark.parametrize("snr", [0.1, 0.5, 1.0, 4.0])
def test_analytic_model_r_matches_monte_carlo(snr):
    rng = np.random.default_rng(100 + int(snr * 10))
    n = 200_000
    s = rng.standard_normal(n)
    y = s + rng.standard_normal(n) / math.sqrt(snr)
    mc = np.corrcoef(s, y)[0, 1]
    assert abs(mc - analytic_model_r(snr)) < 0.01


@pytest.mark.parametrize("snr, n_subjects", [(0.1, 5), (0.5, 2), (1.0, 4), (2.0, 8)])
def test_analytic_isc_matches_monte_carlo_and_loso_isc(snr, n_subjects):
    _, Y = planted_subjects(n_subjects, 200_000, 1, snr, seed=200 + n_subjects)
    mc = isc_ceiling(Y)[0]
    assert abs(mc - analytic_isc(snr, n_subjects)) < 0.01


def test_analytic_errors_name_the_parameter():
    with pytest.raises(BrainalignError, match=r"'snr'.*-1"):
        analytic_model_r(-1.0)
    with pytest.raises(BrainalignError, match="'snr'"):
        analytic_isc([1.0, np.nan], 3)
    with pytest.raises(BrainalignError, match=r"'n_subjects'.*1"):
        analytic_isc(1.0, 1)
    with pytest.raises(BrainalignError, match="'n_subjects'"):
        analytic_isc(1.0, 2.5)
