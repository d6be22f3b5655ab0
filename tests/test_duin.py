"""DuINWordDecoder: planted recovery, chance on noise, determinism, VQ stages, I/O, errors.

All data are synthetic and small (100 Hz, 1-1.5 s trials, d_model 16-32) so
that the whole file runs in a few seconds on one CPU thread.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from brainalign._validation import BrainalignError
from brainalign.encoders.duin import DuINWordDecoder
from brainalign.encoders.duin.network import _DuINNet

torch.set_num_threads(1)

SFREQ = 100.0
FAST = {
    "sfreq": SFREQ,
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 4,
    "lr": 3e-3,
    "batch_size": 32,
}


def planted(
    n_per_class=40, n_classes=6, n_src=8, dur=1.5, chans=(10, 7), snr=1.5, seed=0
):
    """Per class one spatio-temporal template on ``n_src`` sources (Gabor bursts),
    plus unit white noise, mixed into each subject's channels by a random matrix.
    Returns a list of (n_channels_i, n_times) trials, labels and subject labels."""
    rng = np.random.default_rng(seed)
    T = round(SFREQ * dur)
    t = np.arange(T) / SFREQ
    templates = np.zeros((n_classes, n_src, T))
    for c in range(n_classes):
        for k in range(n_src):
            f, phase = rng.uniform(2, 8), rng.uniform(0, 2 * np.pi)
            center, width = rng.uniform(0.2, dur - 0.2), rng.uniform(0.15, 0.4)
            templates[c, k] = np.sin(2 * np.pi * f * t + phase) * np.exp(
                -0.5 * ((t - center) / width) ** 2
            )
    mixing = [rng.standard_normal((n, n_src)) / np.sqrt(n_src) for n in chans]
    X, y, subj = [], [], []
    for c in range(n_classes):
        for i in range(n_per_class):
            s = i % len(chans)
            src = snr * templates[c] + rng.standard_normal((n_src, T))
            X.append((mixing[s] @ src).astype(np.float32))
            y.append(f"word{c}")
            subj.append(f"sub-{s + 1:02d}")
    perm = rng.permutation(len(X))
    return [X[i] for i in perm], np.array(y)[perm], np.array(subj)[perm]


@pytest.fixture(scope="module")
def planted_data():
    X, y, s = planted()
    n_train = 180
    return (X[:n_train], y[:n_train], s[:n_train]), (
        X[n_train:],
        y[n_train:],
        s[n_train:],
    )


@pytest.fixture(scope="module")
def planted_model(planted_data):
    (X, y, s), _ = planted_data
    return DuINWordDecoder(epochs=25, patience=8, **FAST).fit(X, y, s)


@pytest.fixture(scope="module")
def vq_model():
    X, y, s = planted(n_per_class=16, dur=1.0, seed=3)
    model = DuINWordDecoder(
        codebook_size=16, codebook_dim=8, pretrain_epochs=6, epochs=3, **FAST
    ).fit(X, y, s)
    return model, (X, y, s)


# --------------------------------------------------------------------------- #
# learning
# --------------------------------------------------------------------------- #
def test_planted_words_are_decoded(planted_model, planted_data):
    _, (X, y, s) = planted_data
    m = planted_model
    assert list(m.classes_) == [f"word{c}" for c in range(6)]
    assert list(m.subjects_) == ["sub-01", "sub-02"]
    assert m.n_channels_ == {"sub-01": 10, "sub-02": 7}
    acc = m.score(X, y, subjects=s)
    assert acc >= 3 * (1 / 6), acc  # chance is 1/6; typically > 0.9
    proba = m.predict_proba(X, subjects=s)
    assert proba.shape == (len(X), 6) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    h = m.history_
    assert len(h["train_loss"]) == len(h["val_acc"]) >= m.best_epoch_ + 1
    assert h["val_acc"][m.best_epoch_] == max(h["val_acc"])
    assert h["vq_recon_loss"] == [] and h["mask_loss"] == []


def test_noise_is_at_chance():
    rng = np.random.default_rng(7)
    n_classes, n_train, n_test = 4, 160, 200
    X = rng.standard_normal((n_train + n_test, 6, 100)).astype(np.float32)
    y = np.tile(np.arange(n_classes), (n_train + n_test) // n_classes)
    rng.shuffle(y)
    m = DuINWordDecoder(
        sfreq=SFREQ, d_model=16, n_layers=1, epochs=8, patience=4, batch_size=32
    )
    m.fit(X[:n_train], y[:n_train])
    acc = m.score(X[n_train:], y[n_train:])
    lo, hi = stats.binom.interval(0.99, n_test, 1 / n_classes)
    assert lo / n_test <= acc <= hi / n_test, acc


def test_same_seed_same_probabilities():
    X, y, s = planted(n_per_class=8, dur=1.0, seed=5)
    kw = dict(epochs=3, val_fraction=0.25, **FAST)
    p1 = DuINWordDecoder(random_state=11, **kw).fit(X, y, s).predict_proba(X, s)
    p2 = DuINWordDecoder(random_state=11, **kw).fit(X, y, s).predict_proba(X, s)
    assert np.array_equal(p1, p2)
    p3 = DuINWordDecoder(random_state=12, **kw).fit(X, y, s).predict_proba(X, s)
    assert not np.array_equal(p1, p3)
    # fit leaves the global torch RNG alone
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    DuINWordDecoder(random_state=11, **kw).fit(X, y, s)
    assert torch.equal(torch.rand(3), a)


def test_vq_stages(vq_model):
    model, (X, _y, s) = vq_model
    h = model.history_
    for key in (
        "vq_recon_loss",
        "vq_codebook_loss",
        "vq_commit_loss",
        "vq_perplexity",
        "mask_loss",
        "mask_acc",
    ):
        assert len(h[key]) == 6, key
        assert np.all(np.isfinite(h[key])), key
    assert h["vq_recon_loss"][-1] < h["vq_recon_loss"][0]
    assert h["mask_loss"][-1] < h["mask_loss"][0]
    assert len(h["train_loss"]) == 3
    assert 1.0 <= max(h["vq_perplexity"]) <= 16
    codes = model.encode_codes(X, s)
    assert codes.shape == (len(X), model.n_patches_) == (len(X), 10)
    assert codes.dtype == np.int64 and codes.min() >= 0 and codes.max() < 16


def test_encode_codes_needs_vq(planted_model, planted_data):
    _, (X, _, s) = planted_data
    with pytest.raises(BrainalignError, match="encode_codes"):
        planted_model.encode_codes(X, s)


@pytest.mark.parametrize("patch_len, stride", [(10, 1), (20, 2), (13, 1)])
def test_composed_fusion_kernel_matches_explicit_layers(patch_len, stride):
    torch.manual_seed(0)
    net = _DuINNet([10, 7], 6, patch_len, 12, 16, 1, 4, 0.0, 0, 8, False).eval()
    assert net.stride == stride
    for f in net.fusion:
        f.mean.normal_()
        f.std.uniform_(0.5, 2.0)
    x0, x1 = torch.randn(3, 10, 12 * patch_len), torch.randn(2, 7, 12 * patch_len)
    explicit = torch.cat(
        [net.temporal(net.fusion[0](x0)), net.temporal(net.fusion[1](x1))]
    )
    fast = net.temporal_features([(0, x0), (1, x1)])
    assert fast.shape == (5, 16, 12 * patch_len // stride)
    torch.testing.assert_close(fast, explicit, rtol=1e-4, atol=1e-5)
    assert net.tokens([(0, x0), (1, x1)]).shape == (5, 12, 16)


# --------------------------------------------------------------------------- #
# I/O and evaluation helpers
# --------------------------------------------------------------------------- #
def test_save_load_round_trip(planted_model, planted_data, tmp_path):
    _, (X, _y, s) = planted_data
    path = planted_model.save(tmp_path / "duin.safetensors")
    sidecar = tmp_path / "duin.safetensors.json"
    meta = json.loads(sidecar.read_text())
    assert meta["classes"] == list(planted_model.classes_)
    assert meta["n_channels"] == [10, 7]
    loaded = DuINWordDecoder.load(path)
    assert np.array_equal(loaded.predict_proba(X, s), planted_model.predict_proba(X, s))
    assert loaded.get_params() == planted_model.get_params()
    assert np.array_equal(loaded.classes_, planted_model.classes_)
    assert loaded.n_channels_ == planted_model.n_channels_
    assert loaded.best_epoch_ == planted_model.best_epoch_
    assert loaded.history_ == planted_model.history_
    assert b"pickle" not in path.read_bytes()[:200]


def test_save_load_round_trip_vq(vq_model, tmp_path):
    model, (X, _, s) = vq_model
    loaded = DuINWordDecoder.load(model.save(tmp_path / "vq.safetensors"))
    assert np.array_equal(loaded.predict_proba(X, s), model.predict_proba(X, s))
    assert np.array_equal(loaded.encode_codes(X, s), model.encode_codes(X, s))


def test_confusion_matrix_matches_predict(planted_model, planted_data):
    _, (X, y, s) = planted_data
    m = planted_model
    cm = m.confusion_matrix(X, y, subjects=s)
    pred = m.predict(X, subjects=s)
    expected = np.zeros((6, 6), dtype=np.int64)
    for true_label, pred_label in zip(y, pred):
        expected[
            list(m.classes_).index(true_label), list(m.classes_).index(pred_label)
        ] += 1
    assert np.array_equal(cm, expected)
    assert cm.sum() == len(X)
    assert np.trace(cm) / cm.sum() == pytest.approx(m.score(X, y, s))


def test_single_subject_array_input_and_cropping():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 4, 57)).astype(np.float64)  # 5 patches + 7 samples
    y = np.repeat([3, 1, 2], 8)
    m = DuINWordDecoder(
        sfreq=SFREQ, d_model=8, n_heads=2, n_layers=1, epochs=2, verbose=True
    )
    m.fit(X, y)
    assert m.n_patches_ == 5 and m.patch_len_ == 10
    assert list(m.subjects_) == [0] and m.n_channels_ == {0: 4}
    assert m.predict(X).dtype == y.dtype and set(m.predict(X)) <= {1, 2, 3}
    assert m.predict_proba(X[:, :, :50]).shape == (24, 3)  # already whole patches
    assert m.best_epoch_ in (0, 1)


def test_get_set_params():
    m = DuINWordDecoder(d_model=48, codebook_size=64)
    p = m.get_params()
    assert p["d_model"] == 48 and p["codebook_size"] == 64 and p["sfreq"] == 200.0
    assert len(p) == 19
    assert m.set_params(epochs=5) is m and m.epochs == 5
    with pytest.raises(BrainalignError, match="epoch"):
        m.set_params(epoch=5)
    assert "DuINWordDecoder(" in repr(m)


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
def _small(seed=0, n=12, C=3, T=40):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, C, T)).astype(np.float32), np.arange(n) % 3


def test_predict_before_fit():
    X, _ = _small()
    with pytest.raises(BrainalignError, match="DuINWordDecoder.*not fitted"):
        DuINWordDecoder().predict(X)
    with pytest.raises(BrainalignError, match="DuINWordDecoder.*not fitted"):
        DuINWordDecoder().predict_proba(X)


def test_channel_mismatch_within_subject():
    X, y = _small()
    trials = list(X)
    trials[5] = trials[5][:2]
    subjects = ["a"] * 6 + ["b"] * 6
    with pytest.raises(BrainalignError, match="trial 5 of subject 'a' has 2 channels"):
        DuINWordDecoder(sfreq=SFREQ).fit(trials, y, subjects)


def test_unknown_subject_and_wrong_channels_at_predict(planted_model, planted_data):
    _, (X, _, s) = planted_data
    subjects = s.copy()
    subjects[2] = "sub-99"
    with pytest.raises(BrainalignError, match="sub-99"):
        planted_model.predict(X, subjects)
    with pytest.raises(BrainalignError, match="'subjects' is required"):
        planted_model.predict(X)
    bad = list(X)
    first_sub1 = int(np.flatnonzero(s == "sub-01")[0])
    bad[first_sub1] = bad[first_sub1][:5]
    with pytest.raises(
        BrainalignError, match=f"trial {first_sub1} of subject 'sub-01' has 5 channels"
    ):
        planted_model.predict(bad, s)


def test_non_finite_input_names_trial():
    X, y = _small()
    X[7, 1, 3] = np.nan
    with pytest.raises(BrainalignError, match="trial 7"):
        DuINWordDecoder(sfreq=SFREQ).fit(X, y)
    X[7, 1, 3] = 0.0
    X[4, 0, 0] = np.inf
    with pytest.raises(BrainalignError, match="trial 4"):
        DuINWordDecoder(sfreq=SFREQ).fit(X, y)


def test_too_short_trials():
    X, y = _small(T=9)  # one patch is 10 samples at 100 Hz
    with pytest.raises(BrainalignError, match="fewer than one patch"):
        DuINWordDecoder(sfreq=SFREQ).fit(X, y)


def test_bad_parameters_and_labels():
    X, y = _small()
    with pytest.raises(BrainalignError, match="n_heads"):
        DuINWordDecoder(d_model=30, n_heads=4).fit(X, y)
    with pytest.raises(BrainalignError, match="codebook_size"):
        DuINWordDecoder(pretrain_epochs=2).fit(X, y)
    with pytest.raises(BrainalignError, match="val_fraction"):
        DuINWordDecoder(val_fraction=1.0).fit(X, y)
    with pytest.raises(BrainalignError, match="'y' has 5 entries"):
        DuINWordDecoder(sfreq=SFREQ).fit(X, y[:5])
    with pytest.raises(BrainalignError, match="at least 2 classes"):
        DuINWordDecoder(sfreq=SFREQ).fit(X, np.zeros(12))
