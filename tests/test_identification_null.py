"""The shift test of identification accuracy: exactness and calibration.

Null decoders trained on noise learn the targets' frequencies: with Zipfian
words their top-10 accuracy is about 2.5 times ``k / C`` with no signal at
all, so the binomial chance interval calls nearly every one of them
significant. The shift test's null keeps the frequencies, and its p-values
are calibrated.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from brainalign._validation import BrainalignError
from brainalign.encoders.ridge import RidgeCVEncoder
from brainalign.metrics.cv_permutation import circular_shift_indices
from brainalign.metrics.identification import identification_shift_test, identification_topk


@pytest.fixture(autouse=True)
def one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def zipf_null_decoder(seed: int, n_train: int = 600, n_test: int = 200, signal: float = 0.0):
    """A ridge decoder from autocorrelated noise 'epochs' to Zipfian word embeddings (optionally planted)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 301) ** 1.1
    emb = rng.standard_normal((300, 32))
    words = rng.choice(300, size=n_train + n_test, p=p / p.sum())
    noise = rng.standard_normal((n_train + n_test, 40))
    X = np.cumsum(noise, axis=0) * 0.2 + noise  # neighbouring windows share slow noise
    if signal:
        X += signal * emb[words] @ rng.standard_normal((32, 40))
    Y = emb[words]
    enc = RidgeCVEncoder(alphas=np.logspace(-1, 5, 7), cv=5, gap=2).fit(X[:n_train], Y[:n_train])
    return enc.predict(X[n_train:]), Y[n_train:]


def test_observed_and_null_equal_brute_force_identification():
    pred, true = zipf_null_decoder(0, n_test=120, signal=0.3)
    runs = np.repeat([1, 2], 60)
    res = identification_shift_test(pred, true, k=[1, 10], runs=runs, n_permutations=25, random_state=3)
    base = identification_topk(pred, true, k=[1, 10])
    assert res.accuracy == base["accuracy"]
    index = circular_shift_indices(runs, 25, random_state=3)
    for b in range(25):
        # Row i is scored against the target of the shifted position; the candidates are unchanged.
        shifted = identification_topk(pred, true[index[b]], k=[1, 10])["accuracy"]
        np.testing.assert_allclose(res.null[b], [shifted[1], shifted[10]], atol=1e-12)
    np.testing.assert_allclose(res.pvalues[10], (1 + (res.null[:, 1] >= res.accuracy[10]).sum()) / 26)
    assert res.pvalues[10] == pytest.approx(1 / 26)  # planted signal: never reached by the null


def test_rows_sharing_a_stimulus_move_together():
    """Two subjects pooled: both subjects' windows of a word are scored against the same shifted target."""
    pred, true = zipf_null_decoder(1, n_test=80)
    pred2 = pred + np.random.default_rng(9).standard_normal(pred.shape)
    stimulus = np.r_[np.arange(80), np.arange(80)]
    both = identification_shift_test(np.vstack([pred, pred2]), np.vstack([true, true]), k=5, stimulus=stimulus,
                                     n_permutations=30, random_state=4)
    index = circular_shift_indices(np.zeros(80), 30, random_state=4)
    for b in range(30):
        expected = identification_topk(np.vstack([pred, pred2]), np.vstack([true[index[b]], true[index[b]]]), k=5)
        assert both.null[b, 0] == pytest.approx(expected["accuracy"][5])
    with pytest.raises(BrainalignError, match="same 'stimulus' position"):
        identification_shift_test(pred[:4], true[[0, 1, 2, 3]], stimulus=[0, 0, 1, 2], n_permutations=5)


def test_shift_test_is_calibrated_where_the_binomial_interval_is_not():
    n_rep = 400
    shift_p, binom_p, excess = [], [], []
    for seed in range(n_rep):
        pred, true = zipf_null_decoder(seed)
        res = identification_shift_test(pred, true, k=10, n_permutations=300, random_state=seed)
        chance = identification_topk(pred, true, k=10)["chance"][10]
        hits = round(res.accuracy[10] * len(pred))
        shift_p.append(res.pvalues[10])
        binom_p.append(scipy.stats.binom.sf(hits - 1, len(pred), chance))
        excess.append(res.null_mean[10] / chance)
    shift_p, binom_p = np.array(shift_p), np.array(binom_p)
    for alpha in (0.05, 0.01):
        lo, hi = scipy.stats.binom.interval(0.99, n_rep, alpha)
        assert lo / n_rep <= np.mean(shift_p <= alpha) <= hi / n_rep, (alpha, np.mean(shift_p <= alpha))
    assert np.mean(binom_p <= 0.05) > 0.9  # k / C is not the chance level of a trained decoder
    assert np.mean(excess) > 2.0  # the null's mean accuracy says by how much


def test_shift_test_detects_a_planted_decoder():
    pred, true = zipf_null_decoder(2, signal=0.4)
    res = identification_shift_test(pred, true, k=10, n_permutations=200, random_state=0)
    assert res.accuracy[10] > res.null_mean[10] + 0.1
    assert res.pvalues[10] == pytest.approx(1 / 201)
