"""NSD's distributed layout: the reader on a miniature NSD, and ``workflows/configs/nsd.yaml`` run on it.

The miniature holds simulated images and betas in NSD's files (expdesign,
stimuli brick, per-session int16 betas, nsdgeneral ROI); the config's paths are
switched to it and its models to tiny random-weight CLIP and GIT folders; the
generator is off (the decoding workflow test runs it).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign._validation import ConfigError
from brainalign.config import validate_config
from brainalign.datasets.nsd import NSD_SCALE, load_nsd_geometry, load_nsd_subject
from brainalign.datasets.simulated_images import (
    draw_images,
    image_embeddings,
    simulate_responses,
)
from brainalign.io import read_betas, read_images

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "workflows" / "configs"


def _rows(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    return scores[scores["metric"] == metric]


def _write_mini_nsd(root: Path, n_images: int = 400, n_shared: int = 100, trials_per_session: int = 150,
                    n_sessions: int = 4, embed=None) -> None:
    """Simulated images and betas in NSD's files: expdesign, stimuli brick, per-session betas, ROI.

    The betas are planted in ``embed(images)`` (default: the simulation's random-CNN embeddings).
    """
    import nibabel as nib
    from scipy.io import savemat

    images, table = draw_images(n_images, seed=5, size=64)
    pooled = image_embeddings(images)[1] if embed is None else embed(images)
    shared = np.arange(n_shared)  # 0-based 73k ids
    rng = np.random.default_rng(0)
    n_trials = trials_per_session * n_sessions
    subjectim = np.stack([np.concatenate([shared, rng.permutation(np.arange(n_shared, n_images))])
                          for _ in range(2)])  # each subject sees every image
    masterordering = rng.integers(0, n_images, n_trials)  # repeats, as NSD
    masterordering[:n_images] = rng.permutation(n_images)  # every image at least once
    design = root / "nsddata" / "experiments" / "nsd"
    design.mkdir(parents=True)
    savemat(design / "nsd_expdesign.mat", {"masterordering": masterordering[None] + 1, "subjectim": subjectim + 1,
                                           "sharedix": shared[None] + 1})
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True)
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=images)
    pd.DataFrame({"nsd_id": table["image_id"], "caption": table["caption"]}).to_csv(root / "captions.csv", index=False)
    grid = (6, 7, 8)
    for s in range(2):
        subj = f"subj{s + 1:02d}"
        betas, _ = simulate_responses(pooled, subject_index=s, n_voxels=20, rois={"nsdgeneral": 200}, snr=0.5,
                                      seed=5)
        roi = np.zeros(grid, dtype=np.int16) - 1
        flat = roi.reshape(-1)
        flat[: betas.shape[1]] = 1
        flat[betas.shape[1] - 20: betas.shape[1]] = 0  # the noise voxels are outside nsdgeneral
        roi_dir = root / "nsddata" / "ppdata" / subj / "func1pt8mm" / "roi"
        roi_dir.mkdir(parents=True)
        nib.save(nib.Nifti1Image(roi, np.eye(4)), roi_dir / "nsdgeneral.nii.gz")
        beta_dir = root / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
        beta_dir.mkdir(parents=True)
        trial_images = subjectim[s, masterordering]
        for k in range(n_sessions):
            trials = trial_images[k * trials_per_session:(k + 1) * trials_per_session]
            vol = np.zeros((len(trials), *grid), dtype=np.int16)
            noisy = betas[trials] + 0.3 * rng.standard_normal((len(trials), betas.shape[1]))
            vol.reshape(len(trials), -1)[:, : betas.shape[1]] = np.round(noisy * NSD_SCALE).astype(np.int16)
            with h5py.File(beta_dir / f"betas_session{k + 1:02d}.hdf5", "w") as f:
                f.create_dataset("betas", data=vol)


def test_nsd_reader_averages_repetitions(tmp_path):
    _write_mini_nsd(tmp_path)
    betas, ids, shared = load_nsd_subject(tmp_path, 1)
    assert betas.shape == (400, 200) and shared.sum() == 100  # the 200 nsdgeneral voxels
    np.testing.assert_array_equal(ids, np.arange(400))


def test_a_subset_of_sessions_keeps_its_own_trials(tmp_path):
    """Session 2's betas are the trials of session 2 in masterordering, not the first session's."""
    from scipy.io import loadmat

    _write_mini_nsd(tmp_path)
    design = loadmat(tmp_path / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    images = (design["subjectim"] - 1)[0, design["masterordering"].ravel() - 1]  # trial -> 73k id, subject 1
    betas, ids, _ = load_nsd_subject(tmp_path, 1, sessions=[2])
    session = images[150:300]
    np.testing.assert_array_equal(ids, np.unique(session))
    # An image shown once in session 2: its betas are that one trial's.
    k = next(k for k in range(150) if (session == session[k]).sum() == 1)
    with h5py.File(tmp_path / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
                   / "betas_session02.hdf5", "r") as f:
        trial = f["betas"][k]
    mask = load_nsd_geometry(tmp_path, 1).mask
    np.testing.assert_allclose(betas[np.searchsorted(ids, session[k])], trial[mask] / NSD_SCALE, rtol=1e-6)


@pytest.mark.workflow
def test_nsd_config_on_a_miniature_nsd(tmp_path, snakemake, tiny_clip_vision, tiny_git, tiny_sd_depth, tiny_dpt):
    """No precomputed file beyond betas, images and captions: the embeddings come from local CLIP and GIT weights
    (tiny random-weight models here), and the betas are planted in that CLIP's embedding space; the VAE latents
    and depth maps of the Brain Captioning path come from a local Stable Diffusion's VAE and a DPT."""
    from brainalign.features.image_targets import clip_image_embeddings

    root = tmp_path / "NSD copy"
    _write_mini_nsd(root, embed=lambda images: clip_image_embeddings(tiny_clip_vision, images))
    cfg = yaml.safe_load((CONFIGS / "nsd.yaml").read_text())
    cfg["dataset"]["data_dir"] = str(root)
    # Subject 2 only (the decoding workflow test runs two subjects): NSD's numbering reaches the files as subj02.
    cfg["dataset"]["nsd"].update(subjects=[2], captions=str(root / "captions.csv"), embeddings=None)
    cfg["decoding"].update(mlp={"epochs": 5, "shared_dim": 64},
                           captioner={"kind": "git", "model_path": str(tiny_git), "max_new_tokens": 4},
                           generator={"kind": "none"}, image_metrics=False,
                           targets={"clip_image": {"model_path": str(tiny_clip_vision)},
                                    "git_tokens": {"model_path": str(tiny_git)},
                                    "vae_latent": {"model_path": str(tiny_sd_depth[0] / "vae")},
                                    "depth": {"model_path": str(tiny_dpt), "size": 8}},
                           brain_captioning={"kind": "img2img", "model_path": str(tiny_sd_depth[0]),
                                             "controlnet_path": str(tiny_sd_depth[1]), "steps": 2, "n_images": 2})
    cfg["threads"] = 1
    config = tmp_path / "nsd_mini.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path / "work", "--configfile", str(config))
    results = tmp_path / "work" / "results" / "nsd"
    betas, _, rois = read_betas(results / "betas" / "subj02.h5")
    assert betas.shape == (400, 200) and set(rois) == {"nsdgeneral"}
    scores = pd.read_csv(results / "decoding" / "scores.csv")
    top1 = _rows(scores, "retrieval_image_top1")
    assert set(zip(top1["decoder"], top1["target"])) == {
        (d, t) for d in ("ridge", "mlp") for t in ("image", "tokens", "text", "vae_latent", "depth")}
    assert (top1["chance"] == 1 / 100).all()  # 100 shared images: 100-way
    ridge = top1[(top1["decoder"] == "ridge") & (top1["target"] == "image")]
    assert (ridge["value"] > ridge["chance_high"]).all()
    assert (results / "report.html").exists()
    images = read_images(results / "images.h5")
    assert images["pooled"].shape[1] == 16 and images["tokens"].shape[1:] == (17, 32)  # CLIP's and GIT's shapes
    assert images["targets"]["vae_latent"].shape[1:] == (4, 16, 16) and images["targets"]["depth"].shape[1:] == (8, 8)
    # GIT captions what it reads: the MLP's prediction of its own vision tokens, scored as such.
    captions = scores[scores["metric"].str.startswith("caption_")]
    assert set(zip(captions["decoder"], captions["target"])) == {("mlp", "tokens")}
    with h5py.File(results / "decoding" / "subj02" / "reconstructions.h5") as f:
        assert f["brain_captioning"].shape == (2, 32, 32, 3)
    assert len(pd.read_csv(results / "decoding" / "subj02" / "captions.csv")) == 100


def test_nsd_without_embeddings_or_target_models_is_a_clear_error(tmp_path):
    cfg = yaml.safe_load((CONFIGS / "nsd.yaml").read_text())
    cfg["dataset"]["nsd"]["embeddings"] = None
    del cfg["decoding"]["targets"]
    with pytest.raises(ConfigError, match="decoding.targets.clip_image.model_path.*dataset.nsd.embeddings is null"):
        validate_config(cfg, tmp_path / "nsd.yaml")
    cfg["decoding"]["targets"] = {"clip_image": {"model_path": "/x"}}
    with pytest.raises(ConfigError, match="decoding.targets.git_tokens.model_path"):
        validate_config(cfg, tmp_path / "nsd.yaml")


def test_brain_captioning_without_its_inputs_is_a_clear_error(tmp_path):
    cfg = yaml.safe_load((CONFIGS / "nsd.yaml").read_text())
    cases = [({"kind": "img2img"}, {}, "decoding.brain_captioning.model_path"),
             ({"kind": "img2img", "model_path": "/sd"}, {}, r"decoding.targets.vae_latent.model_path.*/sd/vae"),
             ({"kind": "img2img", "model_path": "/sd", "controlnet_path": "/cn"},
              {"vae_latent": {"model_path": "/sd/vae"}}, "decoding.targets.depth.model_path")]
    for brain_captioning, targets, match in cases:
        cfg["decoding"]["brain_captioning"] = brain_captioning
        cfg["decoding"]["targets"] = targets
        with pytest.raises(ConfigError, match=match):
            validate_config(cfg, tmp_path / "nsd.yaml")
    cfg["decoding"]["targets"] = {"vae_latent": {"model_path": "/sd/vae"}, "depth": {"model_path": "/dpt"}}
    cfg["decoding"]["captioner"] = {"kind": "none"}
    with pytest.raises(ConfigError, match="decoding.captioner.kind"):
        validate_config(cfg, tmp_path / "nsd.yaml")
