"""Tests for brainalign.metrics.images (MindEye2's image-reconstruction metrics).

References are computed independently here: numpy's corrcoef for PixCorr, a
straightforward SSIM with scipy.ndimage.gaussian_filter, hand-made
correlation cases for two-way identification.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.spatial.distance
import torch

from brainalign._validation import BrainalignError
from brainalign.metrics import identification
from brainalign.metrics import images as im

torch.set_num_threads(1)

# torchvision.models.alexnet().state_dict() keys, in order.
TORCHVISION_ALEXNET_KEYS = [
    "features.0.weight", "features.0.bias",
    "features.3.weight", "features.3.bias",
    "features.6.weight", "features.6.bias",
    "features.8.weight", "features.8.bias",
    "features.10.weight", "features.10.bias",
    "classifier.1.weight", "classifier.1.bias",
    "classifier.4.weight", "classifier.4.bias",
    "classifier.6.weight", "classifier.6.bias",
]
TORCHVISION_ALEXNET_SHAPES = {
    "features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5),
    "features.6.weight": (384, 192, 3, 3), "features.8.weight": (256, 384, 3, 3),
    "features.10.weight": (256, 256, 3, 3), "classifier.1.weight": (4096, 9216),
    "classifier.4.weight": (4096, 4096), "classifier.6.weight": (1000, 4096),
}


def _rand_uint8(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


# --------------------------------------------------------------------------- #
# PixCorr
# --------------------------------------------------------------------------- #


def test_pixcorr_self_and_negative():
    rng = np.random.default_rng(0)
    a = rng.random((3, 20, 20, 3))
    assert im.pixcorr(a, a, size=20) == pytest.approx(1.0, abs=1e-12)
    assert im.pixcorr(a, 1.0 - a, size=20) == pytest.approx(-1.0, abs=1e-6)
    # with the default 425 px resize too (uint8 input)
    u = _rand_uint8(rng, (2, 16, 16, 3))
    assert im.pixcorr(u, u) == pytest.approx(1.0, abs=1e-12)
    assert im.pixcorr(u, 255 - u) == pytest.approx(-1.0, abs=1e-6)


def test_pixcorr_matches_numpy_corrcoef_without_resize():
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 5, 5, 3)), rng.random((4, 5, 5, 3))
    # float32 is what the images are resized in; size == input size: no resize
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ref = [np.corrcoef(a32[i].ravel(), b32[i].ravel())[0, 1] for i in range(4)]
    np.testing.assert_allclose(im.pixcorr_per_image(a, b, size=5), ref, rtol=1e-6)
    assert im.pixcorr(a, b, size=5) == pytest.approx(np.mean(ref), rel=1e-6)
    # uint8 is scaled by 1/255, which Pearson r ignores
    u, v = _rand_uint8(rng, (2, 4, 4, 3)), _rand_uint8(rng, (2, 4, 4, 3))
    ref = [np.corrcoef(u[i].ravel().astype(float), v[i].ravel().astype(float))[0, 1]
           for i in range(2)]
    np.testing.assert_allclose(im.pixcorr_per_image(u, v, size=4), ref, rtol=1e-6)


def test_pixcorr_input_layouts_agree():
    rng = np.random.default_rng(2)
    a, b = _rand_uint8(rng, (3, 24, 24, 3)), _rand_uint8(rng, (3, 24, 24, 3))
    ref = im.pixcorr_per_image(a, b, size=32)
    # channels-first tensors
    ta = torch.from_numpy(a).permute(0, 3, 1, 2)
    tb = torch.from_numpy(b).permute(0, 3, 1, 2)
    np.testing.assert_allclose(im.pixcorr_per_image(ta, tb, size=32, channels_first=True), ref)
    # lists of PIL images
    from PIL import Image

    pa = [Image.fromarray(x) for x in a]
    pb = [Image.fromarray(x) for x in b]
    np.testing.assert_allclose(im.pixcorr_per_image(pa, pb, size=32), ref)
    # small batches give the same result
    np.testing.assert_allclose(im.pixcorr_per_image(a, b, size=32, batch_size=2), ref)


def test_pixcorr_resizes_each_set_to_size():
    rng = np.random.default_rng(3)
    small = rng.random((2, 16, 16, 3))
    big = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)  # same picture at 64 px
    assert im.pixcorr(small, big, size=32) > 0.9
    # a constant reconstruction has undefined r, reported as 0
    flat = np.full((2, 16, 16, 3), 0.5)
    np.testing.assert_array_equal(im.pixcorr_per_image(flat, small, size=16), [0.0, 0.0])


def test_image_input_errors():
    rng = np.random.default_rng(4)
    a = rng.random((2, 8, 8, 3))
    with pytest.raises(BrainalignError, match="same number of images"):
        im.pixcorr(a, a[:1], size=8)
    with pytest.raises(BrainalignError, match=r"'recon'.*\[0, 1\]"):
        im.pixcorr(a * 255.0, a, size=8)
    with pytest.raises(BrainalignError, match="channels_first=True"):
        im.pixcorr(np.moveaxis(a, -1, 1), a, size=8)
    with pytest.raises(BrainalignError, match="'true'"):
        im.pixcorr(a, a[..., 0], size=8)
    with pytest.raises(BrainalignError, match="'size'"):
        im.pixcorr(a, a, size=0)
    with pytest.raises(BrainalignError, match=r"'true'.*dtype"):
        im.pixcorr(a, (a * 10).astype(np.int64), size=8)


# --------------------------------------------------------------------------- #
# SSIM
# --------------------------------------------------------------------------- #


def reference_ssim(x: np.ndarray, y: np.ndarray, sigma: float = 1.5) -> float:
    """Gaussian SSIM written out plainly (Wang et al. 2004; skimage's conventions)."""

    def g(z):
        return scipy.ndimage.gaussian_filter(z, sigma, truncate=3.5, mode="reflect")

    mx, my = g(x), g(y)
    sxx = g(x * x) - mx**2
    syy = g(y * y) - my**2
    sxy = g(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    r = int(3.5 * sigma + 0.5)  # 5 px: the 11 x 11 window's half width, cropped as skimage
    return float(smap[r:-r, r:-r].mean())


def _gray(rgb: np.ndarray, weights) -> np.ndarray:
    return rgb.astype(np.float64) @ np.asarray(weights, dtype=np.float64)


@pytest.mark.parametrize("luma", ["skimage", "bt601"])
def test_ssim_matches_reference_on_random_images(luma):
    rng = np.random.default_rng(5)
    a = rng.random((3, 24, 24, 3)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    weights = im.LUMA_WEIGHTS[luma]
    ref = [reference_ssim(_gray(a[i], weights), _gray(b[i], weights)) for i in range(3)]
    got = im.ssim_per_image(a, b, size=24, luma=luma)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert im.ssim(a, b, size=24, luma=luma) == pytest.approx(np.mean(ref), rel=1e-10)


def test_ssim_luma_weights():
    assert im.LUMA_WEIGHTS["bt601"] == (0.299, 0.587, 0.114)
    assert im.LUMA_WEIGHTS["skimage"] == (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray
    for w in im.LUMA_WEIGHTS.values():
        assert sum(w) == pytest.approx(1.0)


def test_ssim_identical_is_one_and_constant_vs_noise():
    rng = np.random.default_rng(6)
    a = _rand_uint8(rng, (2, 32, 32, 3))
    np.testing.assert_allclose(im.ssim_per_image(a, a, size=32), 1.0, atol=1e-12)
    assert im.ssim(a, a) == pytest.approx(1.0, abs=1e-12)  # 425 px default
    const = np.full((1, 32, 32, 3), 0.5, dtype=np.float32)
    noise = rng.random((1, 32, 32, 3)).astype(np.float32)
    w = im.LUMA_WEIGHTS["skimage"]
    ref = reference_ssim(_gray(const[0], w), _gray(noise[0], w))
    got = im.ssim_per_image(const, noise, size=32)
    np.testing.assert_allclose(got, [ref], rtol=1e-10)
    assert abs(got[0]) < 0.05  # no shared structure


def test_ssim_errors():
    a = np.zeros((1, 8, 8, 3))
    with pytest.raises(BrainalignError, match="'size'.*SSIM window"):
        im.ssim(a, a, size=8)  # the sigma = 1.5 window is 11 px
    with pytest.raises(BrainalignError, match="'sigma'"):
        im.ssim(a, a, size=16, sigma=0)
    with pytest.raises(BrainalignError, match="'luma'"):
        im.ssim(a, a, size=16, luma="rec709")


# --------------------------------------------------------------------------- #
# Two-way identification and correlation distance
# --------------------------------------------------------------------------- #


def test_two_way_identification_hand_case():
    # zero-mean features, so Pearson r is the cosine:
    T = np.array([[1, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1]], dtype=float)
    P = np.array([[1, -1, 0, 0], [1, -1, 0.5, -0.5], [1, 0, 0, -1]], dtype=float)
    # r(P0, T) = [1, 0, 0]                -> own 1 beats both others        -> 2/2
    # r(P1, T) = [2/√5, 1/√5, 0]          -> own (T1) 0.447 beats only T2   -> 1/2
    #            (P1·T0 = 2, P1·T1 = 1, |P1| = √2.5, |T0| = |T1| = √2)
    # r(P2, T) = [0.5, 0.5, 1/√2]         -> own (T2) 0.707 beats both      -> 2/2
    # two-way = (1 + 0.5 + 1) / 3 = 5/6
    np.testing.assert_allclose(im.two_way_identification_per_image(P, T), [1.0, 0.5, 1.0])
    assert im.two_way_identification(P, T) == pytest.approx(5 / 6)
    # features with extra axes are flattened
    assert im.two_way_identification(P.reshape(3, 2, 2), T.reshape(3, 2, 2)) == pytest.approx(5 / 6)
    # a tie is a loss: P1 equal to T2 ties r = 0 with T0 and T1
    P_tie = P.copy()
    P_tie[1] = T[2]
    np.testing.assert_allclose(im.two_way_identification_per_image(P_tie, T), [1.0, 0.0, 1.0])


def test_two_way_reuses_identification_and_matches_mindeye_formula():
    rng = np.random.default_rng(7)
    T = rng.standard_normal((12, 3, 4, 4))
    P = T + 2.0 * rng.standard_normal(T.shape)
    Pf, Tf = P.reshape(12, -1), T.reshape(12, -1)
    # MindEye: r = corrcoef(reals, preds)[:n, n:]; success = r < diag(r); sum over reals
    r = np.corrcoef(Tf, Pf)[:12, 12:]
    mindeye = np.mean(np.sum(r < np.diag(r), axis=0)) / 11
    assert im.two_way_identification(P, T) == pytest.approx(mindeye)
    assert im.two_way_identification(P, T) == identification.two_way_identification(
        Pf, Tf, metric="correlation")
    assert np.mean(im.two_way_identification_per_image(torch.from_numpy(P), T)) == pytest.approx(
        mindeye)


def test_correlation_distance_vs_numpy_and_scipy():
    rng = np.random.default_rng(8)
    A, B = rng.standard_normal((5, 2, 7)), rng.standard_normal((5, 2, 7))
    Af, Bf = A.reshape(5, -1), B.reshape(5, -1)
    ref = [1 - np.corrcoef(Af[i], Bf[i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(im.correlation_distance_per_image(A, B), ref, rtol=1e-12)
    scipy_ref = [scipy.spatial.distance.correlation(Af[i], Bf[i]) for i in range(5)]
    assert im.correlation_distance(A, B) == pytest.approx(np.mean(scipy_ref), rel=1e-12)
    assert im.correlation_distance(A, A) == pytest.approx(0.0, abs=1e-12)
    assert im.correlation_distance(A, -A) == pytest.approx(2.0, abs=1e-12)


def test_feature_errors():
    a = np.zeros((3, 4))
    with pytest.raises(BrainalignError, match="same shape"):
        im.correlation_distance(a, np.zeros((3, 5)))
    with pytest.raises(BrainalignError, match="'true_features'"):
        im.two_way_identification(a, np.full((3, 4), np.nan))
    with pytest.raises(BrainalignError, match="at least 2"):
        im.two_way_identification_per_image(np.ones((1, 4)), np.ones((1, 4)))
    with pytest.raises(BrainalignError, match="'recon_features'"):
        im.correlation_distance(np.zeros(3), np.zeros(3))


# --------------------------------------------------------------------------- #
# AlexNet
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return im.AlexNet().eval()


def test_alexnet_parameter_names_match_torchvision(alexnet):
    sd = alexnet.state_dict()
    assert list(sd) == TORCHVISION_ALEXNET_KEYS
    for key, shape in TORCHVISION_ALEXNET_SHAPES.items():
        assert tuple(sd[key].shape) == shape
    assert [type(m).__name__ for m in alexnet.features] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
        "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d",
    ]
    # the MindEye2 layers: ReLU after conv 2 and ReLU after conv 5
    assert isinstance(alexnet.features[4], torch.nn.ReLU)
    assert isinstance(alexnet.features[11], torch.nn.ReLU)
    assert im.ALEXNET_LAYERS == ("features.4", "features.11")


def test_alexnet_state_dict_round_trip(alexnet, tmp_path):
    # a torchvision-style state dict built by name from the documented keys
    shapes = {k: v.shape for k, v in alexnet.state_dict().items()}
    sd = {k: torch.full(shapes[k], 0.001 * i) for i, k in enumerate(TORCHVISION_ALEXNET_KEYS)}
    path = tmp_path / "alexnet.pth"
    torch.save(sd, path)
    model = im.AlexNet.from_state_dict(path)
    assert not model.training
    assert list(model.state_dict()) == TORCHVISION_ALEXNET_KEYS
    for k in TORCHVISION_ALEXNET_KEYS:
        assert torch.equal(model.state_dict()[k], sd[k])
    from_dict = im.AlexNet.from_state_dict(sd)
    assert torch.equal(from_dict.features[0].weight, sd["features.0.weight"])
    assert from_dict.features[0].weight.data_ptr() != sd["features.0.weight"].data_ptr()
    bad = dict(sd)
    del bad["classifier.6.bias"]
    with pytest.raises(BrainalignError, match="'state_dict'.*Missing.*classifier.6.bias"):
        im.AlexNet.from_state_dict(bad)
    with pytest.raises(BrainalignError, match="does not exist"):
        im.AlexNet.from_state_dict(tmp_path / "missing.pth")


@pytest.mark.parametrize(
    "size, shape4, shape11",
    [
        # 224: conv1 (224 + 4 - 11) // 4 + 1 = 55, pool (55 - 3) // 2 + 1 = 27; pool 27 -> 13
        (224, (192, 27, 27), (256, 13, 13)),
        # 256 (MindEye2's Resize(256)): conv1 63, pool 31; pool 31 -> 15
        (256, (192, 31, 31), (256, 15, 15)),
    ],
)
def test_alexnet_feature_shapes_and_hooks(alexnet, size, shape4, shape11):
    rng = np.random.default_rng(9)
    imgs = _rand_uint8(rng, (2, 40, 40, 3))
    feats = im.alexnet_features(imgs, alexnet, size=size)
    assert set(feats) == {"features.4", "features.11"}
    assert tuple(feats["features.4"].shape) == (2, *shape4)
    assert tuple(feats["features.11"].shape) == (2, *shape11)
    # the hooks return exactly the Sequential's intermediate outputs
    x = im.preprocess(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255, size)
    with torch.no_grad():
        torch.testing.assert_close(feats["features.4"], alexnet.features[:5](x))
        torch.testing.assert_close(feats["features.11"], alexnet.features[:12](x))
    # classifier layers are reachable too (full forward)
    out = im.alexnet_features(imgs, alexnet, layers=["classifier.5"], size=size)
    assert tuple(out["classifier.5"].shape) == (2, 4096)
    with pytest.raises(BrainalignError, match="'layers'"):
        im.alexnet_features(imgs, alexnet, layers=["features.13"])


def test_preprocess_imagenet_normalisation():
    x = torch.full((1, 3, 8, 8), 0.5)
    y = im.preprocess(x, 4)
    assert y.shape == (1, 3, 4, 4)
    expected = (0.5 - torch.tensor(im.IMAGENET_MEAN)) / torch.tensor(im.IMAGENET_STD)
    torch.testing.assert_close(y[0, :, 0, 0], expected)


# --------------------------------------------------------------------------- #
# Extractors and aggregation
# --------------------------------------------------------------------------- #


def test_random_cnn_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    f0, f0b, f1 = im.random_cnn_features(0), im.random_cnn_features(0), im.random_cnn_features(1)
    assert torch.equal(state, torch.get_rng_state())
    x = torch.rand(2, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(f0(x), f0b(x))
        assert not torch.equal(f0(x), f1(x))
        assert f0(x).shape == (2, 8, 7, 7)  # 32 -> 15 -> 7
    assert isinstance(f0, im.FeatureExtractor)


def test_user_extractors_get_mindeye2_preprocessing():
    seen = {}

    def fake(name):
        def model(x):
            seen[name] = x
            return {"avgpool": x.mean(dim=(2, 3))} if name == "inc" else x.mean(dim=(2, 3))
        return model

    imgs = torch.full((2, 3, 10, 10), 0.5)
    im.inception_v3_pool(fake("inc"), output="avgpool")(imgs)
    im.clip_vit_l14(fake("clip"))(imgs)
    im.efficientnet_b1_pool(fake("eff"))(imgs)
    im.swav_resnet50_pool(fake("swav"))(imgs)
    assert seen["inc"].shape[-1] == 342 and seen["clip"].shape[-1] == 224
    assert seen["eff"].shape[-1] == 255 and seen["swav"].shape[-1] == 224
    clip_expected = (0.5 - torch.tensor(im.CLIP_MEAN)) / torch.tensor(im.CLIP_STD)
    torch.testing.assert_close(seen["clip"][0, :, 0, 0], clip_expected)
    with pytest.raises(BrainalignError, match="'output'"):
        im.inception_v3_pool(fake("inc"))(imgs)


def test_image_metrics_aggregates():
    rng = np.random.default_rng(10)
    true = _rand_uint8(rng, (6, 24, 24, 3))
    noise = rng.integers(-40, 41, true.shape)
    recon = np.clip(true.astype(int) + noise, 0, 255).astype(np.uint8)
    cnn = im.random_cnn_features(3)

    def two_layers(x):
        f = cnn(x)
        return {"a": f, "b": f.mean(dim=1)}

    res = im.image_metrics(recon, true, extractors={"cnn": cnn, "multi": two_layers}, size=32)
    assert set(res) == {"pixcorr", "ssim"} | {
        f"{s}_{m}" for s in ("cnn", "multi.a", "multi.b")
        for m in ("two_way", "correlation_distance")}
    assert all(isinstance(v, float) for v in res.values())
    assert res["pixcorr"] == pytest.approx(im.pixcorr(recon, true, size=32))
    assert res["ssim"] == pytest.approx(im.ssim(recon, true, size=32))
    fr = im.extract_features(recon, cnn)
    ft = im.extract_features(true, cnn)
    assert fr.shape == (6, 8 * 7 * 7)
    assert res["cnn_two_way"] == pytest.approx(im.two_way_identification(fr, ft))
    assert res["multi.a_two_way"] == res["cnn_two_way"]
    assert res["cnn_correlation_distance"] == pytest.approx(im.correlation_distance(fr, ft))
    assert res["cnn_two_way"] > 0.5  # mild noise: identifiable
    assert set(im.image_metrics(recon, true, size=32)) == {"pixcorr", "ssim"}
    with pytest.raises(BrainalignError, match="'extractors'"):
        im.image_metrics(recon, true, size=32, extractors=[cnn])


def test_extract_features_mixed_size_list_and_bad_output():
    from PIL import Image

    rng = np.random.default_rng(11)
    imgs = [Image.fromarray(_rand_uint8(rng, (h, h, 3))) for h in (16, 20, 16)]
    f = im.extract_features(imgs, im.random_cnn_features(0))
    assert f.shape == (3, 8 * 7 * 7)
    with pytest.raises(BrainalignError, match="different shape for different images"):
        im.extract_features(imgs, lambda x: x)  # no resize: 16 px and 20 px maps
    with pytest.raises(BrainalignError, match="extractor must return"):
        im.extract_features(np.zeros((3, 8, 8, 3)), lambda x: x[:1])


def test_extractors_from_paths_load_each_network_with_mindeye2_preprocessing(alexnet, tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from brainalign.metrics.images.from_paths import extractors_from_paths

    torch.manual_seed(3)
    tiny_clip_vision = tmp_path / "clip"  # at MindEye2's 224 px, 7 x 7 patches
    CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=224, patch_size=32, hidden_size=16, intermediate_size=32,
                                                   num_hidden_layers=1, num_attention_heads=2, projection_dim=8)
                                  ).save_pretrained(tiny_clip_vision)
    pooled = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.jit.script(pooled).save(str(tmp_path / "inception.pt"))
    torch.save(alexnet.state_dict(), tmp_path / "alexnet.pth")
    got = extractors_from_paths({"alexnet": tmp_path / "alexnet.pth", "inception": tmp_path / "inception.pt",
                                 "clip": tiny_clip_vision, "swav": None})
    assert list(got) == ["alexnet", "inception", "clip"]
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        cfg = im.MINDEYE2_PREPROCESS["inception_v3"]
        want = pooled(im.preprocess(x, cfg["size"], cfg["mean"], cfg["std"]))
        torch.testing.assert_close(got["inception"](x), want)
        cfg = im.MINDEYE2_PREPROCESS["clip_vit_l14"]
        clip = CLIPVisionModelWithProjection.from_pretrained(tiny_clip_vision).eval()
        want = clip(pixel_values=im.preprocess(x, cfg["size"], cfg["mean"], cfg["std"])).image_embeds
        torch.testing.assert_close(got["clip"](x), want)
        features = got["alexnet"](x)
        torch.testing.assert_close(features["features.11"], im.alexnet_extractor(alexnet)(x)["features.11"])
    # Nothing given: the stand-in, under its own name.
    assert list(extractors_from_paths({})) == ["random_cnn"]
    (tmp_path / "broken.pt").write_bytes(b"not torchscript")
    with pytest.raises(BrainalignError, match="decoding.image_metric_models.efficientnet"):
        extractors_from_paths({"efficientnet": tmp_path / "broken.pt"})
    with pytest.raises(BrainalignError, match="unknown image-metric networks"):
        extractors_from_paths({"vgg": tmp_path / "inception.pt"})
