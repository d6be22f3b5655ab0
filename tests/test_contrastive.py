"""Tests for brainalign.encoders.contrastive (Défossez-style contrastive decoder).

All data are synthetic and built here. A planted dataset hides a linear
projection of each window's target embedding in per-subject mixtures of a few
sources with a temporal response; identification must beat chance by far on
held-out groups, and must stay at chance when the link between brain windows
and targets is broken (shuffled targets, or no signal at all).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from brainalign._validation import BrainalignError
from brainalign.encoders.contrastive import (
    BrainModule,
    ChannelFusion,
    ClipLoss,
    ContrastiveEncoder,
    SpatialAttention,
    SubjectLayers,
)
from brainalign.metrics.identification import identification_topk

torch.set_num_threads(1)

# A small, fast configuration (a few seconds per fit on one CPU thread).
FAST = {
    "spatial_channels": 32,
    "n_freqs": 4,
    "hidden": 32,
    "depth": 2,
    "n_time_bins": 4,
    "epochs": 10,
    "batch_size": 64,
    "lr": 3e-3,
    "patience": 4,
}
N_TIMES = 40


def planted(
    n_windows: int = 600,
    n_channels: tuple[int, ...] = (24, 24),
    n_targets: int = 16,
    n_sources: int = 8,
    noise: float = 0.5,
    signal: bool = True,
    seed: int = 0,
    group_size: int = 10,
):
    """Windows = per-subject mixing of (sources ∝ projection of the target) × kernel + noise.

    Returns X (array, or a list when channel counts differ), Y, subjects,
    groups and positions (dict subject -> (n_channels, 2) in [0, 1]²).
    """
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n_windows, n_targets))
    A = rng.standard_normal((n_sources, n_targets)) / np.sqrt(n_targets)
    t = np.arange(N_TIMES)
    kernel = np.exp(-0.5 * ((t - 0.4 * N_TIMES) / (0.08 * N_TIMES)) ** 2)
    n_subjects = len(n_channels)
    subjects = np.arange(n_windows) % n_subjects
    groups = np.arange(n_windows) // group_size
    positions = {s: rng.uniform(0, 1, (n_channels[s], 2)) for s in range(n_subjects)}
    mixing = {
        s: rng.standard_normal((n_channels[s], n_sources)) for s in range(n_subjects)
    }
    sources = Y @ A.T
    X = []
    for i in range(n_windows):
        s = subjects[i]
        x = noise * rng.standard_normal((n_channels[s], N_TIMES))
        if signal:
            x += mixing[s] @ (sources[i][:, None] * kernel[None, :])
        X.append(x.astype(np.float32))
    if len(set(n_channels)) == 1:
        X = np.stack(X)
    return X, Y, subjects, groups, positions


def take(X, idx):
    return X[idx] if isinstance(X, np.ndarray) else [X[i] for i in idx]


def split(groups):
    """Whole groups held out for testing (every fifth group)."""
    test = np.flatnonzero(groups % 5 == 0)
    train = np.flatnonzero(groups % 5 != 0)
    return train, test


def chance_interval(n_trials: int, k: int, n_candidates: int, level: float = 0.99):
    p = min(k, n_candidates) / n_candidates
    lo, hi = scipy.stats.binom.interval(level, n_trials, p)
    return lo / n_trials, hi / n_trials


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def fitted(data):
    X, Y, subjects, groups, positions = data
    train, _ = split(groups)
    est = ContrastiveEncoder(**FAST).fit(
        X[train],
        Y[train],
        subjects=subjects[train],
        groups=groups[train],
        positions=positions,
    )
    return est


# --------------------------------------------------------------------------- ClipLoss
def _log_softmax(a, axis):
    a = a - a.max(axis=axis, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=axis, keepdims=True))


def _clip_numpy(brain, target, scale, symmetric, ids=None):
    b = brain / np.linalg.norm(brain, axis=1, keepdims=True)
    t = target / np.linalg.norm(target, axis=1, keepdims=True)
    logits = scale * b @ t.T
    if ids is not None:
        same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
        logits = np.where(same, -np.inf, logits)
    fwd = -np.mean(np.diag(_log_softmax(logits, axis=1)))
    if not symmetric:
        return fwd
    bwd = -np.mean(np.diag(_log_softmax(logits, axis=0)))
    return 0.5 * (fwd + bwd)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("log_scale", [math.log(7.0), math.log(1000.0)])
def test_clip_loss_matches_numpy(symmetric, log_scale):
    rng = np.random.default_rng(0)
    brain = rng.standard_normal((6, 5))
    target = rng.standard_normal((6, 5))
    loss = ClipLoss(symmetric=symmetric).double()
    with torch.no_grad():
        loss.logit_scale.fill_(log_scale)
    got = loss(torch.from_numpy(brain), torch.from_numpy(target)).item()
    scale = min(math.exp(log_scale), 100.0)  # capped at 100 as in CLIP
    assert got == pytest.approx(_clip_numpy(brain, target, scale, symmetric), rel=1e-10)
    assert loss.temperature == pytest.approx(1.0 / scale)


def test_clip_loss_default_temperature_and_duplicate_masking():
    rng = np.random.default_rng(1)
    brain = rng.standard_normal((5, 4))
    target = rng.standard_normal((5, 4))
    target[3] = target[1]  # the same stimulus twice in the batch
    ids = np.array([0, 1, 2, 1, 3])
    loss = ClipLoss().double()
    assert loss.temperature == pytest.approx(0.07)
    scale = (
        loss.scale.item()
    )  # exp(log(1 / 0.07)), with the float32 rounding of the init
    got = loss(
        torch.from_numpy(brain), torch.from_numpy(target), torch.from_numpy(ids)
    ).item()
    assert got == pytest.approx(
        _clip_numpy(brain, target, scale, False, ids), rel=1e-10
    )
    loss.logit_scale.data.fill_(10.0)
    loss.clamp_()
    assert loss.logit_scale.item() == pytest.approx(math.log(100.0))


# --------------------------------------------------------------------------- SpatialAttention
def test_spatial_attention_weights_permutation_and_mask():
    torch.manual_seed(0)
    att = SpatialAttention(n_out=5, n_freqs=4, spatial_dropout=0.3).eval()
    B, C, T = 3, 7, 11
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, C, T, generator=gen)
    pos = torch.rand(B, C, 2, generator=gen)
    w = att.weights(pos)
    assert w.shape == (B, 5, C)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, 5))
    out = att(x, pos)
    assert out.shape == (B, 5, T)

    perm = torch.randperm(C, generator=gen)
    out_perm = att(x[:, perm], pos[:, perm])
    torch.testing.assert_close(out_perm, out, rtol=1e-5, atol=1e-6)

    # NaN positions (padding / missing sensors) and mask=False get exactly zero weight
    pos_nan = pos.clone()
    pos_nan[0, 2] = float("nan")
    mask = torch.ones(B, C, dtype=torch.bool)
    mask[1, 4] = False
    w = att.weights(pos_nan, mask=mask)
    assert w[0, :, 2].abs().max().item() == 0.0
    assert w[1, :, 4].abs().max().item() == 0.0
    torch.testing.assert_close(w.sum(-1), torch.ones(B, 5))
    # the masked channel's signal has no influence
    x2 = x.clone()
    x2[0, 2] = 1e3
    torch.testing.assert_close(att(x2, pos_nan, mask=mask), att(x, pos_nan, mask=mask))

    # positions looked up per subject
    table = pos[:2].numpy()
    att2 = SpatialAttention(n_out=5, n_freqs=4, positions=table).eval()
    att2.heads.data.copy_(att.heads.data)
    subj = torch.tensor([1, 0, 1])
    torch.testing.assert_close(att2(x, subjects=subj), att(x, pos[[1, 0, 1]]))


def test_spatial_dropout_drops_a_disc_in_training_only():
    torch.manual_seed(0)
    att = SpatialAttention(n_out=3, n_freqs=4, spatial_dropout=0.4)
    pos = torch.rand(50, 30, 2, generator=torch.Generator().manual_seed(2))
    att.train()
    w = att.weights(pos)
    torch.testing.assert_close(w.sum(-1), torch.ones(50, 3))
    dropped = (w[:, 0] == 0).sum(dim=1)
    assert dropped.sum() > 0 and torch.all(dropped < 30)
    att.eval()
    assert torch.all(att.weights(pos) > 0)


def test_channel_fusion_and_subject_layers():
    torch.manual_seed(0)
    fusion = ChannelFusion([3, 5], n_out=4)
    x = torch.randn(2, 5, 6)
    subj = torch.tensor([0, 1])
    out = fusion(x, subj)
    assert out.shape == (2, 4, 6)
    x2 = x.clone()
    x2[0, 3:] = 99.0  # padding of the 3-channel subject is ignored
    torch.testing.assert_close(fusion(x2, subj), out)
    layers = SubjectLayers(4, n_subjects=2)
    torch.testing.assert_close(layers(out, subj), out)  # identity at initialisation
    model = BrainModule(
        [3, 5],
        n_times=6,
        n_targets=7,
        front_end="channel_fusion",
        spatial_channels=4,
        hidden=8,
        depth=5,
        n_time_bins=3,
    )
    assert model(x, subj).shape == (2, 7)


# --------------------------------------------------------------------------- estimator
def test_planted_identification_beats_chance_and_shuffled(data, fitted):
    X, Y, subjects, groups, positions = data
    train, test = split(groups)
    acc = fitted.identification_scores(X[test], Y[test], subjects=subjects[test])
    n_cand = np.unique(Y[test], axis=0).shape[0]
    chance10 = 10 / n_cand
    assert acc[10] >= 5 * chance10, acc

    Y_shuffled = Y[train][np.random.default_rng(1).permutation(train.size)]
    shuffled = ContrastiveEncoder(**FAST).fit(
        X[train],
        Y_shuffled,
        subjects=subjects[train],
        groups=groups[train],
        positions=positions,
    )
    acc_shuffled = shuffled.identification_scores(X[test], Y[test], subjects=subjects[test])
    assert acc_shuffled[10] <= chance_interval(test.size, 10, n_cand)[1]
    assert acc[10] - acc_shuffled[10] >= 0.5, (acc, acc_shuffled)
    # fitted attributes
    assert fitted.target_mean_.shape == fitted.target_scale_.shape == (16,)
    assert set(fitted.history_) == {"epoch", "train_loss", "val_loss", "val_top10", "temperature"}
    assert 1 <= fitted.best_epoch_ <= len(fitted.history_["epoch"]) <= FAST["epochs"]
    # The recorded validation top-10 is the identification of the kept weights' validation windows.
    val = train[fitted.val_index_]
    val_top10 = identification_topk(fitted.predict(X[val], subjects=subjects[val]),
                                    fitted.transform_targets(Y[val]), k=10)["accuracy"][10]
    assert fitted.history_["val_top10"][fitted.best_epoch_ - 1] == pytest.approx(val_top10, abs=1.5 / val.size)
    val_groups = set(groups[train][fitted.val_index_])
    assert val_groups.isdisjoint(
        groups[train][fitted.train_index_]
    )  # whole groups held out


def test_no_signal_stays_at_chance():
    X, Y, subjects, groups, positions = planted(signal=False, seed=3)
    train, test = split(groups)
    est = ContrastiveEncoder(**FAST).fit(
        X[train],
        Y[train],
        subjects=subjects[train],
        groups=groups[train],
        positions=positions,
    )
    pred = est.predict(X[test], subjects=subjects[test])
    res = identification_topk(pred, est.transform_targets(Y[test]), k=(1, 10))
    for k in (1, 10):
        lo, hi = chance_interval(test.size, k, res["n_candidates"])
        assert lo <= res["accuracy"][k] <= hi, (k, res["accuracy"], (lo, hi))


def test_determinism_and_torch_rng_untouched(data):
    X, Y, subjects, groups, positions = data
    idx = np.arange(160)
    kw = dict(FAST, epochs=3)
    state = torch.get_rng_state()
    preds = []
    for _ in range(2):
        est = ContrastiveEncoder(**kw).fit(
            X[idx],
            Y[idx],
            subjects=subjects[idx],
            groups=groups[idx],
            positions=positions,
        )
        preds.append(est.predict(X[idx], subjects=subjects[idx]))
    assert np.array_equal(preds[0], preds[1])
    assert torch.equal(torch.get_rng_state(), state)  # fit seeds a forked RNG only
    other = ContrastiveEncoder(**dict(kw, random_state=1)).fit(
        X[idx], Y[idx], subjects=subjects[idx], groups=groups[idx], positions=positions
    )
    assert not np.array_equal(other.predict(X[idx], subjects=subjects[idx]), preds[0])


def test_refit_trains_on_every_window_for_the_chosen_epochs(data):
    X, Y, subjects, groups, positions = data
    train, _ = split(groups)
    kw = dict(FAST, epochs=6)
    fits = [ContrastiveEncoder(**kw, refit=refit).fit(X[train], Y[train], subjects=subjects[train],
                                                      groups=groups[train], positions=positions)
            for refit in (False, True, True)]
    plain, refit, again = fits
    # Early stopping sees the same split and training either way; the refit then runs best_epoch_ epochs.
    assert refit.history_["val_loss"] == plain.history_["val_loss"]
    assert refit.best_epoch_ == plain.best_epoch_
    assert len(refit.history_["refit_loss"]) == len(refit.history_["refit_temperature"]) == refit.best_epoch_
    val = train[refit.val_index_]
    preds = [est.predict(X[val], subjects=subjects[val]) for est in fits]
    assert np.array_equal(preds[1], preds[2])  # deterministic
    # The refit trained on the validation windows: it identifies them better than the model that did not.
    top1 = [identification_topk(p, plain.transform_targets(Y[val]), k=1)["accuracy"][1] for p in preds[:2]]
    assert top1[1] > top1[0], top1


def test_save_load_round_trip(data, fitted, tmp_path):
    X, Y, subjects, groups, _ = data
    _, test = split(groups)
    weights, sidecar = fitted.save(tmp_path / "enc")
    assert weights.name == "enc.safetensors" and sidecar.name == "enc.json"
    loaded = ContrastiveEncoder.load(tmp_path / "enc.safetensors")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.subjects_ == fitted.subjects_
    assert loaded.n_channels_ == fitted.n_channels_
    for s in fitted.subjects_:
        assert np.array_equal(loaded.positions_[s], fitted.positions_[s])
    assert np.array_equal(loaded.target_mean_, fitted.target_mean_)
    assert np.array_equal(loaded.target_scale_, fitted.target_scale_)
    assert (
        loaded.history_ == fitted.history_ and loaded.best_epoch_ == fitted.best_epoch_
    )
    assert np.array_equal(
        loaded.predict(X[test], subjects=subjects[test]),
        fitted.predict(X[test], subjects=subjects[test]),
    )
    assert loaded.identification_scores(X[test], Y[test], subjects[test]) == fitted.identification_scores(
        X[test], Y[test], subjects[test]
    )


def test_channel_fusion_with_different_channel_counts():
    X, Y, subjects, groups, _ = planted(n_channels=(12, 20), seed=5)
    assert isinstance(X, list)
    train, test = split(groups)
    est = ContrastiveEncoder(**dict(FAST, front_end="channel_fusion")).fit(
        take(X, train), Y[train], subjects=subjects[train], groups=groups[train]
    )
    assert est.n_channels_ == {0: 12, 1: 20}
    acc = est.identification_scores(take(X, test), Y[test], subjects=subjects[test])
    n_cand = np.unique(Y[test], axis=0).shape[0]
    assert acc[10] > chance_interval(test.size, 10, n_cand)[1], acc
    assert acc[10] >= 5 * 10 / n_cand, acc


# --------------------------------------------------------------------------- errors
def test_errors(data):
    X, Y, subjects, groups, positions = data
    idx = np.arange(40)
    Xs, Ys, ss = X[idx], Y[idx], subjects[idx]
    with pytest.raises(BrainalignError, match="ContrastiveEncoder.*not fitted"):
        ContrastiveEncoder().predict(Xs, subjects=ss)
    with pytest.raises(BrainalignError, match="positions.*subject 1"):
        ContrastiveEncoder(**FAST).fit(Xs, Ys, subjects=ss, positions={0: positions[0]})
    with pytest.raises(BrainalignError, match=r"positions\[1\].*shape \(24, 2\)"):
        ContrastiveEncoder(**FAST).fit(
            Xs, Ys, subjects=ss, positions={0: positions[0], 1: positions[1][:5]}
        )
    with pytest.raises(BrainalignError, match="'positions'"):
        ContrastiveEncoder(**FAST).fit(Xs, Ys, subjects=ss)
    with pytest.raises(BrainalignError, match="'X' and 'Y'.*40.*39"):
        ContrastiveEncoder(**FAST).fit(Xs, Ys[:-1], subjects=ss, positions=positions)
    with pytest.raises(BrainalignError, match="'dropout'.*ContrastiveEncoder"):
        ContrastiveEncoder(dropout=1.5).fit(Xs, Ys, subjects=ss, positions=positions)
    with pytest.raises(BrainalignError, match="'front_end'"):
        ContrastiveEncoder(front_end="attention").fit(
            Xs, Ys, subjects=ss, positions=positions
        )
    est = ContrastiveEncoder(**dict(FAST, epochs=1)).fit(
        Xs, Ys, subjects=ss, groups=groups[idx], positions=positions
    )
    with pytest.raises(BrainalignError, match="'subjects'.*'sub-99'"):
        est.predict(Xs[:3], subjects=["sub-99", 0, 1])
    with pytest.raises(BrainalignError, match="'subjects' is required"):
        est.predict(Xs[:3])
    with pytest.raises(BrainalignError, match="samples"):
        est.predict(Xs[:, :, :-1], subjects=ss)
    with pytest.raises(BrainalignError, match="n_targets|shape"):
        est.identification_scores(Xs, Ys[:, :3], subjects=ss)


def test_params_contract():
    est = ContrastiveEncoder(hidden=8, random_state=None)
    params = est.get_params()
    assert params["hidden"] == 8 and params["random_state"] is None
    assert params["front_end"] == "spatial_attention" and params["epochs"] == 40
    est.set_params(hidden=12)
    assert est.hidden == 12
    with pytest.raises(BrainalignError, match="Invalid parameter 'hiden'"):
        est.set_params(hiden=3)
