"""Image decoding end to end: simulated images → betas → decoders → retrieval, captions, images → report.

The CI config runs once through Snakemake; retrieval top-1 must reach 5x
chance at the default SNR (SNR 0: tests/test_decoding_null.py; the NSD layout:
tests/test_nsd.py).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "workflows" / "configs"
SPACES = {"image", "tokens", "text", "vae_latent", "depth"}


@pytest.fixture(scope="module")
def images_config(tmp_path_factory, tiny_sd_depth, tiny_dpt) -> Path:
    """The CI config plus the Brain Captioning path: VAE-latent and depth targets extracted by the tiny Stable
    Diffusion's own VAE and a tiny DPT, img2img + ControlNet-depth from those tiny local folders."""
    sd, controlnet = tiny_sd_depth
    cfg = yaml.safe_load((CONFIGS / "simulated_images_ci.yaml").read_text())
    cfg["decoding"]["targets"] = {"vae_latent": {"model_path": str(sd / "vae"), "batch_size": 128},
                                  "depth": {"model_path": str(tiny_dpt), "batch_size": 128, "size": 8}}
    cfg["decoding"]["brain_captioning"] = {"kind": "img2img", "model_path": str(sd), "controlnet_path": str(controlnet),
                                           "steps": 2, "strength": 0.5, "n_images": 4}
    path = tmp_path_factory.mktemp("images config") / "simulated_images_ci.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def images_run(tmp_path_factory, snakemake, images_config) -> Path:
    workdir = tmp_path_factory.mktemp("images run")
    snakemake(workdir, "--configfile", str(images_config))
    return workdir / "results" / "simulated_images_ci"


def _rows(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    return scores[scores["metric"] == metric]


def test_retrieval_captions_and_images(images_run: Path):
    scores = pd.read_csv(images_run / "decoding" / "scores.csv")
    for metric in ("retrieval_image_top1", "retrieval_brain_top1"):
        rows = _rows(scores, metric)
        assert set(zip(rows["decoder"], rows["target"])) == {(d, t) for d in ("ridge", "mlp") for t in SPACES}
        assert set(rows["subject"]) == {"subj01", "subj02"}
        np.testing.assert_allclose(rows["chance"], 1 / 300)
        # The planted map is of the pooled image embedding; every space computed from the images carries it.
        for target in SPACES:
            part = rows[rows["target"] == target]
            assert (part["value"] >= 5 * part["chance"]).all(), part
    feature_r = _rows(scores, "feature_r")
    assert len(feature_r) == 2 * 2 * len(SPACES) and (feature_r["value"] > 0.1).all(), feature_r
    for metric in ("caption_bleu4", "caption_meteor", "caption_rouge_l", "caption_cider",
                   "caption_sentence_similarity", "retrieved_image_pixcorr", "retrieved_image_ssim",
                   "generated_image_pixcorr", "generated_image_ssim", "generated_image_random_cnn_two_way",
                   "brain_captioning_pixcorr", "brain_captioning_ssim", "brain_captioning_random_cnn_two_way"):
        assert len(_rows(scores, metric)) == 2, metric
    # The metrics of the generated images are of what was generated: the first 4 test images.
    generated = scores[scores["metric"].str.startswith(("generated_image_", "brain_captioning_"))]
    assert (generated["n_test"] == 4).all() and np.isfinite(generated["value"]).all()
    assert not (images_run / ".targets_cache").exists()  # the resumable extraction's cache goes once images.h5 is
    captions = pd.read_csv(images_run / "decoding" / "subj01" / "captions.csv")
    assert len(captions) == 300 and captions["decoded"].str.len().gt(0).all()
    with h5py.File(images_run / "decoding" / "subj01" / "reconstructions.h5") as f:
        assert f["true"].shape == (300, 64, 64, 3) and f["retrieved"].shape == (300, 64, 64, 3)
        assert f["generated"].shape[0] == 4 and f["generated"].dtype == np.uint8
        # img2img + ControlNet-depth at the tiny pipeline's size, prompted by the decoded captions.
        assert f["brain_captioning"].shape == (4, 32, 32, 3) and f["brain_captioning"].dtype == np.uint8
        assert [p.decode() for p in f["brain_captioning_prompt"][()]] == captions["decoded"].head(4).tolist()
    tokens = pd.read_csv(images_run / "decoding" / "subj01" / "tokens.csv")
    assert len(tokens) == 2 * 17 and (tokens["r"] > 0).mean() > 0.9  # 2 decoders x (pooled + 4 x 4 grid)
    selectivity = pd.read_csv(images_run / "decoding" / "subj01" / "selectivity.csv")
    assert list(selectivity["roi"]) == ["ROI_A", "ROI_B", "V1", "semantic"]
    # BrainSCUBA per voxel: the 300 best-predicted voxels (all planted: no noise voxel reaches them), captioned,
    # and their word-category shares placed in the volume.
    voxels = pd.read_csv(images_run / "decoding" / "subj01" / "voxel_captions.csv")
    assert len(voxels) == 300 and voxels["roi"].notna().all() and (voxels["r"] >= 0.1).all()
    assert voxels["caption"].str.len().gt(0).all() and voxels["voxel"].is_monotonic_increasing
    shares = voxels[["share_cool", "share_shape", "share_size", "share_warm"]].to_numpy()  # the map's order: by name
    assert ((shares >= 0) & (shares <= 1)).all() and shares.sum(axis=1).max() <= 1 + 1e-9
    # Planted truth: an early visual voxel is tuned to one colour (columns 300-1299, after ROI_A, ROI_B and the
    # noise voxels); its caption names that colour far above the 1 in 4 of a caption's two colour words.
    from brainalign.datasets.simulated_images import retinotopic_tuning

    preferred = np.asarray(retinotopic_tuning(1000, seed=0)[2])
    v1 = voxels[voxels["roi"] == "V1"]
    named = [colour in caption.split() for colour, caption in zip(preferred[v1["voxel"] - 300], v1["caption"])]
    assert len(v1) >= 50 and np.mean(named) > 0.6, np.mean(named)
    img = nib.load(str(images_run / "decoding" / "subj01" / "word_categories.nii.gz"))
    data = np.asarray(img.get_fdata())
    assert data.shape[:2] == (16, 16) and data.shape[3] == 4 and np.isfinite(data).sum() == 4 * 300
    v = voxels["voxel"].to_numpy()
    np.testing.assert_allclose(data[v % 16, (v // 16) % 16, v // 256], shares, rtol=1e-6)  # synthetic layout
    report = (images_run / "report.html").read_text()
    assert "Voxel captions (BrainSCUBA per voxel)" in report and "standing in for MindEye2" in report
    assert "BrainSCUBA" in report and "Brain Captioning" in report and "Token by token" in report
    assert report.count("data:image/png;base64,") >= 6  # retrieval, per-token r, per subject: grid and map


def test_sigkill_twice_then_resume_matches_a_run_from_scratch(images_run: Path, images_config: Path, tmp_path: Path,
                                                              snakemake, results_digest):
    """A second run from scratch, killed mid-HDF5 write of subj02's betas (the job's other outputs
    already written: an incomplete job), then once the captioner is trained; resumed, it matches
    ``images_run`` table for table and array for array."""
    config = ("--configfile", str(images_config))
    workdir = tmp_path / "images ' ü"
    results = workdir / "results" / "simulated_images_ci"
    part = snakemake.kill(workdir, *config, stall="subj02.h5")
    assert part.exists() and part.parent == results / "betas" and not (results / "betas" / "subj02.h5").exists()
    assert (results / "images.h5").exists() and (results / "betas" / "subj01.h5").exists()
    # The documented resume: one command, also after a SIGKILL (the stale lock goes by itself).
    snakemake.kill(workdir, *config, "--rerun-incomplete", when=results / "captioner")
    assert not (results / "decoding" / "scores.csv").exists()
    snakemake(workdir, *config, "--rerun-incomplete")
    assert not list(results.rglob("*.part"))
    assert results_digest(results) == results_digest(images_run)


def test_every_output_records_its_seeds(images_run: Path, unrecorded_seeds):
    assert unrecorded_seeds(images_run) == []
