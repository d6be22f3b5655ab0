"""Tests for brainalign.encoders.mindeye (MindEye2-style brain → embedding model).

All data are synthetic and built here. In the planted data each sample's
voxels are a per-subject random linear map of its target embedding plus noise
(two subjects with different voxel counts): held-out retrieval must beat chance
by far and the regression head must recover the targets. With no link between
voxels and targets, retrieval must stay within the binomial chance interval.
The two contrastive losses are checked against hand computations in numpy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainalign._validation import BrainalignError
from brainalign.encoders.mindeye import (
    BrainToEmbedding,
    BrainToEmbeddingModule,
    LogitScale,
    bimixco_loss,
    draw_mixco,
    soft_clip_loss,
)
from brainalign.metrics.identification import binomial_chance_interval

torch.set_num_threads(1)

# Faster than the defaults (60 epochs at lr 3e-4), same architecture.
FAST = {"epochs": 20, "lr": 1e-3}
WIDTHS = (150, 200)
N_TRAIN = 480


def planted(
    n: int = 600,
    d: int = 32,
    widths: tuple[int, ...] = WIDTHS,
    noise: float = 0.5,
    signal: bool = True,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Voxels = target @ per-subject random map (+ a subject offset) + Gaussian noise.

    Returns X (list of 1-D arrays, widths differ by subject), Y (n, d) and
    subjects (n,) with string labels alternating between subjects.
    """
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, d))
    labels = np.array([f"sub-{i % len(widths) + 1:02d}" for i in range(n)])
    maps = [rng.standard_normal((d, w)) / np.sqrt(d) for w in widths]
    X = []
    for i in range(n):
        s = i % len(widths)
        sig = Y[i] @ maps[s] if signal else 0.0
        X.append(sig + noise * rng.standard_normal(widths[s]) + 5.0 * (s + 1))
    return X, Y, labels


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def fitted(data):
    X, Y, subj = data
    est = BrainToEmbedding(**FAST).fit(X[:N_TRAIN], Y[:N_TRAIN], subj[:N_TRAIN])
    return est


# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #
def _np_log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def _np_normalize(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_bimixco_loss_matches_numpy():
    rng = np.random.default_rng(1)
    B, D, tau = 5, 4, 0.1
    pred = rng.standard_normal((B, D))
    targ = rng.standard_normal((B, D))
    perm = np.array([2, 1, 0, 4, 3])  # row 1 is its own partner
    lam = np.array([0.3, 0.6, 0.9, 1.0, 0.05])
    # hand computation, loop by loop
    p, t = _np_normalize(pred), _np_normalize(targ)
    S = np.array([[p[i] @ t[j] for j in range(B)] for i in range(B)]) / tau
    P = np.zeros((B, B))
    for i in range(B):
        P[i, i] += lam[i]
        P[i, perm[i]] += 1 - lam[i]
    row = _np_log_softmax(S)  # brain i over targets j
    col = _np_log_softmax(S.T)  # target j over brains i
    fwd = -np.mean([sum(P[i, j] * row[i, j] for j in range(B)) for i in range(B)])
    bwd = -np.mean([sum(P[i, j] * col[j, i] for i in range(B)) for j in range(B)])
    expected = 0.5 * (fwd + bwd)
    got = bimixco_loss(
        torch.tensor(pred), torch.tensor(targ), torch.tensor(perm), torch.tensor(lam), tau
    )
    assert float(got) == pytest.approx(expected, rel=1e-10)
    one_way = bimixco_loss(
        torch.tensor(pred), torch.tensor(targ), torch.tensor(perm), torch.tensor(lam), tau,
        bidirectional=False,
    )
    assert float(one_way) == pytest.approx(fwd, rel=1e-10)
    # λ = 1 everywhere: the symmetric CLIP (InfoNCE) loss
    ones = torch.ones(B, dtype=torch.float64)
    hard = bimixco_loss(torch.tensor(pred), torch.tensor(targ), torch.tensor(perm), ones, tau)
    logits = torch.tensor(S)
    labels = torch.arange(B)
    clip = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    assert float(hard) == pytest.approx(float(clip), rel=1e-10)


def test_soft_clip_loss_matches_numpy():
    rng = np.random.default_rng(2)
    B, D, tau = 6, 3, 0.2
    pred = rng.standard_normal((B, D))
    targ = rng.standard_normal((B, D))
    targ[4] = targ[1]  # a repeated stimulus
    p, t = _np_normalize(pred), _np_normalize(targ)
    S = p @ t.T / tau
    TT = t @ t.T / tau
    Q = np.exp(TT) / np.exp(TT).sum(axis=1, keepdims=True)
    row, col = _np_log_softmax(S), _np_log_softmax(S.T)
    l1 = -np.mean([sum(Q[i, j] * row[i, j] for j in range(B)) for i in range(B)])
    l2 = -np.mean([sum(Q[j, i] * col[j, i] for i in range(B)) for j in range(B)])
    got = soft_clip_loss(torch.tensor(pred), torch.tensor(targ), tau)
    assert float(got) == pytest.approx(0.5 * (l1 + l2), rel=1e-10)
    # a learnable temperature gets a gradient through the logits only
    log_scale = torch.tensor(np.log(1 / tau), requires_grad=True)
    loss = soft_clip_loss(torch.tensor(pred), torch.tensor(targ), (-log_scale).exp())
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(got), rel=1e-10)
    assert log_scale.grad is not None and torch.isfinite(log_scale.grad)


def test_loss_input_errors():
    with pytest.raises(BrainalignError, match="'pred' and 'target'"):
        soft_clip_loss(torch.zeros(4, 3), torch.zeros(4, 2), 0.1)
    with pytest.raises(BrainalignError, match="'perm' and 'betas'"):
        bimixco_loss(torch.randn(4, 3), torch.randn(4, 3), torch.arange(3), torch.ones(4), 0.1)
    with pytest.raises(BrainalignError, match="'temperature'"):
        soft_clip_loss(torch.randn(4, 3), torch.randn(4, 3), 0.0)


def test_draw_mixco_within_subject():
    rng = np.random.default_rng(0)
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    perms, betas = [], []
    for _ in range(200):
        perm, lam = draw_mixco(groups, rng)
        assert np.array_equal(groups[perm], groups)  # partners share the subject
        assert np.array_equal(np.sort(perm), np.arange(groups.size))
        assert perm[7] == 7  # alone in its subject
        perms.append(perm)
        betas.append(lam)
    lam = np.concatenate(betas)
    assert lam.dtype == np.float32 and np.all((lam >= 0) & (lam <= 1))
    assert 0.35 < np.mean(lam == 1.0) < 0.65  # about half are left unmixed
    mixed = lam[lam < 1]
    assert np.mean((mixed < 0.1) | (mixed > 0.9)) > 0.5  # Beta(0.15, 0.15) is U-shaped


def test_module_shapes_and_subject_order():
    torch.manual_seed(0)
    m = BrainToEmbeddingModule([5, 7], n_tokens=3, token_dim=4, shared_dim=8, n_blocks=2,
                               dropout=0.0).eval()
    x0, x1 = torch.randn(2, 5), torch.randn(3, 7)
    reg, proj = m([x0, x1], [0, 1])
    assert reg.shape == proj.shape == (5, 12)
    r0, _ = m([x0], [0])
    torch.testing.assert_close(reg[:2], r0)
    # the projector acts per token
    torch.testing.assert_close(proj[:2].view(2, 3, 4), m.projector(r0.view(2, 3, 4)))


def test_logit_scale():
    fixed = LogitScale(0.05)
    assert fixed.temperature == pytest.approx(0.05) and not list(fixed.parameters())
    learn = LogitScale(0.05, learnable=True)
    assert len(list(learn.parameters())) == 1
    with torch.no_grad():
        learn.log_scale.fill_(10.0)
    learn.clamp_()
    assert learn.temperature == pytest.approx(0.01)


# --------------------------------------------------------------------------- #
# estimator
# --------------------------------------------------------------------------- #
def test_planted_retrieval_and_regression(data, fitted):
    X, Y, subj = data
    Xte, Yte, ste = X[N_TRAIN:], Y[N_TRAIN:], subj[N_TRAIN:]
    n = len(Xte)
    s = fitted.retrieval_scores(Xte, Yte, ste)
    assert s["n_way"] == n and s["n_draws"] == 1 and s["chance"] == pytest.approx(1 / n)
    _, high = binomial_chance_interval(n, 1 / n, 0.99)
    for key in ("brain_to_target", "target_to_brain"):
        assert s[key] > max(0.5, 10 * high), s
    pred = fitted.predict(Xte, ste)
    assert pred.shape == Yte.shape
    r = np.corrcoef(pred.ravel(), Yte.ravel())[0, 1]
    assert r > 0.5
    assert s["cosine"] > 0.5
    # both subjects are decoded
    for lab in np.unique(ste):
        m = ste == lab
        assert np.corrcoef(pred[m].ravel(), Yte[m].ravel())[0, 1] > 0.5
    # fitted state
    assert fitted.subjects_ == ["sub-01", "sub-02"]
    assert fitted.n_voxels_ == {"sub-01": 150, "sub-02": 200}
    assert fitted.voxel_mean_["sub-02"].shape == (200,)
    assert fitted.target_shape_ == (32,) and fitted.n_targets_ == 32
    h = fitted.history_
    assert fitted.n_mixco_epochs_ == int(0.33 * FAST["epochs"])
    assert h["phase"][: fitted.n_mixco_epochs_] == ["bimixco"] * fitted.n_mixco_epochs_
    assert set(h["phase"][fitted.n_mixco_epochs_:]) <= {"softclip"}
    assert 1 <= fitted.best_epoch_ <= len(h["epoch"])
    assert h["val_loss"][fitted.best_epoch_ - 1] == min(h["val_loss"])
    assert fitted.temperature_ == pytest.approx(0.05)
    # projected outputs point at the z-scored targets
    proj = fitted.predict_projected(Xte, ste)
    assert proj.shape == Yte.shape
    Tz = fitted.transform_targets(Yte)
    np.testing.assert_allclose(Tz, (Yte - fitted.target_mean_) / fitted.target_scale_)


def test_score_uses_300_way_when_possible(data, fitted):
    X, Y, subj = data
    s = fitted.retrieval_scores(X[:300], Y[:300], subj[:300])
    assert (s["n_way"], s["n_draws"], s["chance"]) == (300, 30, pytest.approx(1 / 300))


def test_pure_noise_at_chance():
    X, Y, subj = planted(signal=False, seed=3)
    est = BrainToEmbedding(epochs=10, lr=1e-3).fit(X[:N_TRAIN], Y[:N_TRAIN], subj[:N_TRAIN])
    n = len(X) - N_TRAIN
    s = est.retrieval_scores(X[N_TRAIN:], Y[N_TRAIN:], subj[N_TRAIN:])
    low, high = binomial_chance_interval(n, 1 / n, 0.99)
    for key in ("brain_to_target", "target_to_brain"):
        assert low <= s[key] <= high, s


def test_token_targets_and_single_subject():
    rng = np.random.default_rng(4)
    n, tokens, d, v = 80, 3, 4, 20
    Y = rng.standard_normal((n, tokens, d))
    X = Y.reshape(n, -1) @ rng.standard_normal((tokens * d, v)) + 0.1 * rng.standard_normal((n, v))
    est = BrainToEmbedding(epochs=3, shared_dim=16, batch_size=16).fit(X, Y)
    assert est.target_shape_ == (tokens, d) and est.n_targets_ == tokens * d
    assert est.subjects_ == [None]
    pred = est.predict(X[:10])
    assert pred.shape == (10, tokens, d)
    assert est.predict_projected(X[:10]).shape == (10, tokens, d)
    assert est.transform_targets(Y[:10]).shape == (10, tokens, d)
    s = est.retrieval_scores(X[:10], Y[:10])
    assert s["n_way"] == 10
    with pytest.raises(BrainalignError, match=r"'Y' must have shape \(n_samples, 3, 4\)"):
        est.retrieval_scores(X[:10], Y[:10, 0])


def test_determinism_and_global_rng_untouched(data):
    X, Y, subj = data
    kw = {"epochs": 3, "shared_dim": 32, "random_state": 7, "mixco_fraction": 0.5}
    torch.manual_seed(123)
    np.random.seed(5)
    state_t, state_np = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a = BrainToEmbedding(**kw).fit(X[:200], Y[:200], subj[:200])
    assert torch.equal(torch.random.get_rng_state(), state_t)
    assert np.array_equal(np.random.get_state()[1], state_np)
    b = BrainToEmbedding(**kw).fit(X[:200], Y[:200], subj[:200])
    pa, pb = a.predict(X[200:240], subj[200:240]), b.predict(X[200:240], subj[200:240])
    assert np.array_equal(pa, pb)
    assert a.history_ == b.history_
    c = BrainToEmbedding(**{**kw, "random_state": 8}).fit(X[:200], Y[:200], subj[:200])
    assert not np.array_equal(pa, c.predict(X[200:240], subj[200:240]))
    # a 2-D array and a list of rows give the same model (one subject)
    Xa = np.stack([x for x, s in zip(X[:100], subj[:100]) if s == "sub-01"])
    Ya = Y[:100][subj[:100] == "sub-01"]
    e1 = BrainToEmbedding(**kw).fit(Xa, Ya)
    e2 = BrainToEmbedding(**kw).fit(list(Xa), Ya)
    assert np.array_equal(e1.predict(Xa), e2.predict(list(Xa)))


def test_learnable_temperature(data):
    X, Y, subj = data
    est = BrainToEmbedding(epochs=2, shared_dim=32, learn_temperature=True, val_fraction=0.0)
    est.fit(X[:200], Y[:200], subj[:200])
    assert isinstance(est.logit_scale_.log_scale, torch.nn.Parameter)
    assert est.temperature_ != pytest.approx(0.05, abs=1e-6)
    assert est.best_epoch_ == 2 and np.isnan(est.history_["val_loss"]).all()


def test_save_load_identical(data, fitted, tmp_path):
    X, _, subj = data
    weights, sidecar = fitted.save(tmp_path / "me")
    assert weights.name == "me.safetensors" and sidecar.name == "me.json"
    meta = json.loads(sidecar.read_text())
    assert meta["format"] == "brainalign.BrainToEmbedding"
    assert meta["subjects"] == ["sub-01", "sub-02"] and meta["n_voxels"] == [150, 200]
    loaded = BrainToEmbedding.load(tmp_path / "me.json")
    assert loaded.get_params() == fitted.get_params()
    Xte, ste = X[N_TRAIN:], subj[N_TRAIN:]
    assert np.array_equal(loaded.predict(Xte, ste), fitted.predict(Xte, ste))
    assert np.array_equal(loaded.predict_projected(Xte, ste), fitted.predict_projected(Xte, ste))
    assert loaded.history_ == fitted.history_
    assert loaded.best_epoch_ == fitted.best_epoch_
    sidecar.write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(BrainalignError, match="field 'format'"):
        BrainToEmbedding.load(tmp_path / "me")


# --------------------------------------------------------------------------- #
# errors and parameters
# --------------------------------------------------------------------------- #
def test_errors(data, fitted):
    X, Y, subj = data
    with pytest.raises(BrainalignError, match="not fitted"):
        BrainToEmbedding().predict(X[:5], subj[:5])
    with pytest.raises(BrainalignError, match="not fitted"):
        BrainToEmbedding().save("nowhere")
    with pytest.raises(BrainalignError, match="'sub-03'.*not seen in fit"):
        fitted.predict(X[:2], ["sub-01", "sub-03"])
    with pytest.raises(BrainalignError, match="sample 1 has 150 voxels.*'sub-02' had 200"):
        fitted.predict([X[0], X[0]], ["sub-01", "sub-02"])
    with pytest.raises(BrainalignError, match="'subjects' is required"):
        fitted.predict(X[:1])
    with pytest.raises(BrainalignError, match="one label per sample"):
        fitted.predict(X[:3], subj[:2])
    with pytest.raises(BrainalignError, match="same number of samples"):
        fitted.retrieval_scores(X[:4], Y[:3], subj[:4])
    with pytest.raises(BrainalignError, match="'X' sample 2 of subject 'sub-01' has 200 voxels"):
        BrainToEmbedding().fit([X[0], X[1], X[1], X[0]], Y[:4], ["sub-01", "sub-02"] * 2)
    with pytest.raises(BrainalignError, match="same number of samples"):
        BrainToEmbedding().fit(X[:10], Y[:9], subj[:10])
    with pytest.raises(BrainalignError, match="'Y' must be 2-D"):
        BrainToEmbedding().fit(X[:10], Y[:10, 0], subj[:10])
    bad = [x.copy() for x in X[:10]]
    bad[3][5] = np.nan
    with pytest.raises(BrainalignError, match=r"'X\[3\]' contains NaN"):
        BrainToEmbedding().fit(bad, Y[:10], subj[:10])
    with pytest.raises(BrainalignError, match="'mixco_fraction' parameter of BrainToEmbedding"):
        BrainToEmbedding(mixco_fraction=1.5).fit(X[:10], Y[:10], subj[:10])
    with pytest.raises(BrainalignError, match="'temperature' parameter"):
        BrainToEmbedding(temperature=0).fit(X[:10], Y[:10], subj[:10])


def test_params_protocol():
    est = BrainToEmbedding(shared_dim=64)
    params = est.get_params()
    assert params["shared_dim"] == 64 and params["mixco_fraction"] == 0.33
    assert list(params) == list(BrainToEmbedding._parameter_constraints)
    est.set_params(n_blocks=3)
    assert est.n_blocks == 3 and "n_blocks=3" in repr(est)
    with pytest.raises(BrainalignError, match="Invalid parameter 'blocks'"):
        est.set_params(blocks=3)
