"""Decoding stages: brain → image embeddings → retrieval, captions, images and voxel-wise selectivity captions.

Data flow (docs/decoding.md)::

    run_decoding_data    images.h5 (images, captions, pooled + token embeddings, test flags)
                         betas/<subject>.h5 (repetition-averaged betas, ROI labels)
    run_captioner        captioner/ (ClipCap trained on the training images; simulated data)
    run_decode           decoding/<subject>/ : ridge and MindEye-style MLP decoders, one per target
                         space (image, tokens, text, decoding.targets' further spaces), each scored in
                         its own space (retrieval top-1, cosine, feature r; per-token r in tokens.csv),
                         captions + caption metrics, nearest-training-image and unCLIP
                         reconstructions + image metrics, BrainSCUBA ROI captions
    run_decoding_report  decoding/scores.csv, report.html

The test images are shared by all subjects (NSD's shared1000; the simulated
dataset's first ``n_test`` images); decoders and the captioner never see them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .._validation import InputFileError
from ..backend.device import resolve_device
from ..datasets.registry import get_kind
from ..io import (
    ImageBank,
    _json,
    atomic_path,
    provenance,
    read_betas,
    read_images,
    read_table,
    read_voxel_geometry,
    write_betas,
    write_images,
    write_table,
)

# read_images and read_betas live in brainalign.io (the images/1 and betas/1 contracts); still importable from here.

__all__ = ["decoding_subjects", "run_decoding_data", "run_captioner", "run_decode",
           "run_decoding_report"]

def decoding_subjects(cfg: dict[str, Any]) -> list[str]:
    """``subjXX`` labels (NSD's naming)."""
    return get_kind(cfg).subjects(cfg)


# --------------------------------------------------------------------------- data
def run_decoding_data(cfg: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``images.h5`` and ``betas/<subject>.h5`` from the dataset kind's :class:`ImageData`."""
    out_dir = Path(out_dir)
    prov = provenance(cfg, [], stage="decoding_data")
    from ..features.image_targets import target_cache

    kind = get_kind(cfg)
    folder = cfg["decoding"]["selectivity_bank"]
    # Each finished target extraction is kept until images.h5 is written: a killed stage resumes at the next one.
    cache = out_dir / ".targets_cache"
    with target_cache(cache):
        data = kind.image_data(cfg)
        bank = kind.embed_bank(cfg, folder) if folder else None
    if bank is not None and bank.pooled.shape[1] != data.pooled.shape[1]:
        raise InputFileError(folder, f"the bank embeds to {bank.pooled.shape[1]} dimensions, the images to "
                                     f"{data.pooled.shape[1]} (field decoding.selectivity_bank).")
    write_images(out_dir / "images.h5", data.images, data.captions, data.tokens, data.pooled, data.image_ids,
                 data.test, prov, targets=data.targets, bank=bank)
    for subject in decoding_subjects(cfg):
        betas, ids, rois = data.betas[subject]
        write_betas(out_dir / "betas" / f"{subject}.h5", betas, ids, rois, prov, data.geometry.get(subject))
    shutil.rmtree(cache, ignore_errors=True)
    return out_dir


# --------------------------------------------------------------------------- captioner
def _template_captioner(embed_dim: int, captions: list[str], seed: int):
    """A small GPT-2 with a byte-level BPE vocabulary learnt from the captions, under a ClipCap mapping."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from ..decoders.captioning import ClipCapCaptioner

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(sorted(set(captions)), trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return ClipCapCaptioner(GPT2LMHeadModel(config), tokenizer, embed_dim=embed_dim, prefix_length=4,
                            finetune_decoder=True)


def run_captioner(cfg: dict[str, Any], images_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Train the template captioner on the training images' true embeddings (never on test images)."""
    data = read_images(images_path)
    train = ~data["test"]
    captions = [c for c, keep in zip(data["captions"], train) if keep]
    spec, seed = cfg["decoding"]["captioner"], cfg["decoding"]["seed"]
    model = _template_captioner(data["pooled"].shape[1], captions, seed)
    model.fit(data["pooled"][train], captions, epochs=spec["epochs"], lr=2e-3, batch_size=64, random_state=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.decoder.save_pretrained(out / "decoder", safe_serialization=True)
    model.tokenizer.save_pretrained(out / "decoder")
    model.save(out / "mapping.safetensors")
    write_table(out / "training.csv", pd.DataFrame({"epoch": np.arange(1, len(model.loss_history_) + 1),
                                                    "loss": model.loss_history_}),
                provenance(cfg, [images_path], stage="captioner"))
    return out


def _load_captioner(cfg: dict[str, Any], captioner_dir: str | os.PathLike | None):
    spec = cfg["decoding"]["captioner"]
    from ..decoders.captioning import ClipCapCaptioner, GitCaptioner

    device = resolve_device(cfg)
    if spec["kind"] == "git":
        return GitCaptioner(spec["model_path"], device=device)
    if spec["kind"] == "clipcap":
        return ClipCapCaptioner.load(Path(spec["model_path"]) / "mapping.safetensors",
                                     decoder=Path(spec["model_path"]) / "decoder", device=device)
    return ClipCapCaptioner.load(Path(captioner_dir) / "mapping.safetensors", decoder=Path(captioner_dir) / "decoder",
                                 device=device)


# --------------------------------------------------------------------------- decode
def run_decode(cfg: dict[str, Any], subject: str, images_path: str | os.PathLike, betas_path: str | os.PathLike,
               out_dir: str | os.PathLike, captioner_dir: str | os.PathLike | None = None,
               progress: bool = True) -> Path:
    """Decode one subject's test images; write scores (every target space), captions, per-token r,
    reconstructions, ROI and voxel captions and the word-category map."""
    from ..metrics.identification import binomial_chance_interval, retrieval_top1

    dec = cfg["decoding"]
    data = read_images(images_path)
    betas, ids, rois = read_betas(betas_path)
    index = {int(i): k for k, i in enumerate(data["image_id"])}
    rows = np.asarray([index[int(i)] for i in ids])
    test = data["test"][rows]
    if test.sum() < 2 or (~test).sum() < 2:
        raise InputFileError(betas_path, f"{int(test.sum())} test and {int((~test).sum())} training images; "
                                         "need at least 2 of each.")
    spaces = target_spaces(data, rows)
    X_train, X_test = betas[~test], betas[test]
    decoders = list(dict.fromkeys(["ridge", *dec["decoders"]]))
    n_test = int(test.sum())
    way = min(300, n_test)
    chance = 1.0 / way
    lo, hi = binomial_chance_interval(n_test, chance)
    score_rows, token_rows = [], []

    def retrieval_rows(decoder: str, target: str, pred: np.ndarray, true: np.ndarray) -> None:
        res = retrieval_top1(pred, true, n_way=way, n_draws=30, random_state=dec["seed"])
        # Image retrieval: each brain prediction picks its image; brain retrieval: the reverse.
        for direction, key in (("image", "a_to_b"), ("brain", "b_to_a")):
            score_rows.append({"subject": subject, "decoder": decoder, "target": target,
                               "metric": f"retrieval_{direction}_top1", "value": float(res[key]),
                               "chance": chance, "chance_low": lo, "chance_high": hi, "n_test": n_test})

    def metric_rows(decoder: str, target: str, prefix: str, values: dict[str, float], n: int) -> None:
        """Scores without a chance level (captions, image metrics), one row each."""
        for metric, value in values.items():
            score_rows.append({"subject": subject, "decoder": decoder, "target": target,
                               "metric": f"{prefix}_{metric}" if prefix else metric, "value": float(value),
                               "chance": np.nan, "chance_low": np.nan, "chance_high": np.nan, "n_test": n})

    # One brain model per decoder and target space, each scored in its own space. Ridge with a penalty per target
    # column is the same model fit on all spaces at once (one SVD per fold instead of one per fold and space).
    predictions: dict[tuple[str, str], np.ndarray] = {}
    joint = _fit_decoder(cfg, "ridge", X_train, np.hstack([Y[~test] for Y in spaces.values()]), progress)
    joint_pred = np.split(np.asarray(joint.predict(X_test), dtype=np.float64),
                          np.cumsum([Y.shape[1] for Y in spaces.values()])[:-1], axis=1)
    for (target, Y), ridge_pred in zip(spaces.items(), joint_pred):
        for name in decoders:
            model = joint if name == "ridge" else _fit_decoder(cfg, name, X_train, Y[~test], progress)
            pred = ridge_pred if name == "ridge" else np.asarray(model.predict(X_test), dtype=np.float64).reshape(
                n_test, -1)
            predictions[name, target] = pred
            retrieval_rows(name, target, *_retrieval_pair(model, X_test, Y[test], pred))
            metric_rows(name, target, "", space_scores(pred, Y[test]), n_test)
            if target in TOKEN_SPACES:
                width = data[target].shape[-1] if target == "tokens" else data["targets"][target].shape[-1]
                for token, r in enumerate(token_correlations(pred, Y[test], width)):
                    token_rows.append({"subject": subject, "decoder": name, "target": target, "token": token,
                                       "r": r})
    # Captioners and generators read the MindEye-style model's predictions when it ran, else ridge's.
    best = "mlp" if "mlp" in decoders else "ridge"
    pred = predictions[best, "image"]
    Y_train = spaces["image"][~test]
    tokens = spaces["tokens"]
    out_dir = Path(out_dir)
    prov = provenance(cfg, [images_path, betas_path], stage="decode", subject=subject)

    # Captions from the predicted embeddings, scored against the true captions.
    spec = dec["captioner"]
    captioner = None if spec["kind"] == "none" else _load_captioner(cfg, captioner_dir)
    true_captions = [data["captions"][r] for r in rows[test]]
    captions = [""] * n_test
    if captioner is not None:
        from ..metrics.captions import caption_scores, sentence_similarity

        # GIT's text decoder reads its vision encoder's token sequence: the ridge prediction of the tokens
        # (flattened; the captioner restores (n, n_tokens, width)). ClipCap reads the pooled embedding.
        caption_target = "tokens" if spec["kind"] == "git" else "image"
        inputs = predictions[best, caption_target]
        captions = captioner.generate(inputs.astype(np.float32), max_new_tokens=spec["max_new_tokens"],
                                      num_beams=spec["num_beams"])
        caption_rows = dict(caption_scores(captions, [[c] for c in true_captions]))
        caption_rows["sentence_similarity"] = sentence_similarity(captions, true_captions)
        metric_rows(best, caption_target, "caption", caption_rows, n_test)

    # Images: the nearest training image to each predicted embedding (all test images), and the generator.
    from ..metrics.images import image_metrics
    from ..metrics.images.from_paths import extractors_from_paths

    train_images = data["images"][rows[~test]]
    true_images = data["images"][rows[test]]
    sims = _unit(pred) @ _unit(Y_train).T
    nearest = train_images[np.argmax(sims, axis=1)]
    # Two-way identification and correlation distance on MindEye2's networks from the user's weights
    # (decoding.image_metric_models), else on a fixed random CNN named random_cnn.
    extractors = extractors_from_paths(dec["image_metric_models"], seed=dec["seed"]) if dec["image_metrics"] else {}
    measured = (image_metrics(nearest, true_images, extractors=extractors, size=dec["image_metrics_size"])
                if dec["image_metrics"] else {})
    metric_rows(best, "image", "retrieved_image", measured, n_test)
    generated = _generate(cfg, pred[: dec["generator"]["n_images"]])
    if generated is not None and dec["image_metrics"] and len(generated) >= 2:
        # The same metrics on what was generated (the first n_images test images), beside the retrieved baseline.
        k = len(generated)
        metric_rows(best, "image", "generated_image",
                    image_metrics(generated, true_images[:k], extractors=extractors, size=dec["image_metrics_size"]),
                    k)

    # Brain Captioning: the decoded caption as prompt, the predicted VAE latent as the img2img start, the
    # predicted depth through ControlNet-depth (config checks guarantee the targets and the captioner).
    captioned = _brain_captioning(cfg, {name: predictions[best, name] for name in ("vae_latent", "depth")
                                        if (best, name) in predictions}, data["targets"], captions)
    if captioned is not None and dec["image_metrics"] and len(captioned) >= 2:
        k = len(captioned)
        metric_rows(best, "vae_latent", "brain_captioning",
                    image_metrics(captioned, true_images[:k], extractors=extractors, size=dec["image_metrics_size"]),
                    k)

    # BrainSCUBA: ROI and voxel preferred directions from a forward (embedding -> voxel) ridge encoder.
    bank = data["bank"]
    if bank is None:  # the training images
        bank_names = [str(int(i)) for i in ids[~test]]
        bank_captions = [data["captions"][r] for r in rows[~test]]
        bank = ImageBank(Y_train, tokens[~test], bank_names)
    else:
        bank_captions = None
    selectivity, voxels = _selectivity(cfg, subject, X_train, X_test, Y_train, spaces["image"][test], rois,
                                       bank, bank_captions, captioner)

    write_table(out_dir / "scores.csv", pd.DataFrame(score_rows), prov)
    write_table(out_dir / "tokens.csv", pd.DataFrame(token_rows, columns=["subject", "decoder", "target", "token",
                                                                          "r"]), prov)
    write_table(out_dir / "captions.csv", pd.DataFrame({"subject": subject, "image_id": ids[test],
                                                        "true": true_captions, "decoded": captions}), prov)
    write_table(out_dir / "selectivity.csv", selectivity, prov)
    write_table(out_dir / "voxel_captions.csv", voxels, prov)
    _write_category_map(cfg, out_dir / "word_categories.nii.gz", voxels, read_voxel_geometry(betas_path),
                        len(rois))
    with atomic_path(out_dir / "reconstructions.h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("image_id", data=ids[test])
        f.create_dataset("true", data=true_images)
        f.create_dataset("retrieved", data=nearest)
        if generated is not None:
            f.create_dataset("generated", data=generated)
        if captioned is not None:
            f.create_dataset("brain_captioning", data=captioned)
            f.create_dataset("brain_captioning_prompt", data=np.asarray(captions[: len(captioned)], dtype=object),
                             dtype=h5py.string_dtype())
        f.attrs["generator_seed"] = dec["generator"]["seed"]
        f.attrs["brain_captioning_seed"] = dec["brain_captioning"]["seed"]
        f.attrs["provenance"] = _json(prov)
    return out_dir


#: Target spaces whose rows are token sequences (n_tokens x width), scored token by token too.
TOKEN_SPACES = ("tokens", "git_tokens")


def target_spaces(data: dict[str, Any], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every target space of ``images.h5`` as (n_rows, n_features) float64, in the order decoded.

    ``image`` (pooled embeddings), ``tokens`` (flattened token sequences),
    ``text`` (caption sentence embeddings), then the further spaces of
    ``decoding.targets`` (``vae_latent``, ``depth``, ...), flattened.
    """
    spaces = {"image": data["pooled"], "tokens": data["tokens"], "text": data["text"], **data["targets"]}
    return {name: np.asarray(values[rows], dtype=np.float64).reshape(len(rows), -1)
            for name, values in spaces.items()}


def space_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """``cosine``: mean cosine similarity of each prediction with its true target; ``feature_r``: mean over
    features of the Pearson r across images (0 without signal, whatever the targets' mean)."""
    from ..metrics.correlation import pearsonr_columns

    cosine = float(np.mean(np.sum(_unit(pred) * _unit(true), axis=1)))
    return {"cosine": cosine, "feature_r": float(np.mean(pearsonr_columns(true, pred)))}


def token_correlations(pred: np.ndarray, true: np.ndarray, width: int) -> np.ndarray:
    """Per token position, the mean over its ``width`` features of the Pearson r across images.

    ``pred`` and ``true`` are flattened token sequences (n_images, n_tokens * width).
    """
    from ..metrics.correlation import pearsonr_columns

    return pearsonr_columns(true, pred).reshape(-1, width).mean(axis=1)


def _fit_decoder(cfg: dict[str, Any], decoder: str, X_train: np.ndarray, Y_train: np.ndarray, progress: bool):
    """One fitted brain → target decoder: ridge over ``encoder.alphas`` or the MindEye-style MLP."""
    from ..encoders.ridge import RidgeCVEncoder

    dec = cfg["decoding"]
    if decoder == "ridge":
        # The config's penalty grid (encoder.alphas), as in every other ridge of the workflow.
        model = RidgeCVEncoder(alphas=np.asarray(cfg["encoder"]["alphas"], dtype=np.float64), cv=5, gap=0)
    else:
        from ..encoders.mindeye import BrainToEmbedding

        model = BrainToEmbedding(**{"random_state": dec["seed"], "verbose": progress, **dec["mlp"],
                                    "device": resolve_device(cfg)})
    return model.fit(X_train, Y_train)


def _retrieval_pair(model: Any, X_test: np.ndarray, Y_test: np.ndarray, pred: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """What retrieval compares: the MindEye-style model's projector outputs with the z-scored targets (its
    contrastive space, as in MindEye2), a ridge prediction with the targets themselves."""
    if hasattr(model, "predict_projected"):
        n = len(X_test)
        return (np.asarray(model.predict_projected(X_test)).reshape(n, -1),
                np.asarray(model.transform_targets(Y_test)).reshape(n, -1))
    return pred, Y_test


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _generate(cfg: dict[str, Any], embeds: np.ndarray) -> np.ndarray | None:
    """unCLIP images from predicted embeddings (uint8, n x H x W x 3), or None."""
    spec = cfg["decoding"]["generator"]
    if spec["kind"] == "none":
        return None
    from ..decoders.diffusion import UnclipReconstructor, build_tiny_unclip

    device = resolve_device(cfg)
    if spec["model_path"]:
        pipe = UnclipReconstructor.from_pretrained(spec["model_path"], device=device)
    else:
        pipe = build_tiny_unclip(seed=spec["seed"], image_embed_dim=embeds.shape[1], device=device)
    if pipe.image_embed_dim != embeds.shape[1]:
        raise InputFileError(spec["model_path"], f"unCLIP reads {pipe.image_embed_dim}-d image embeddings, but the "
                                                 f"decoded 'image' space has {embeds.shape[1]}: extract it with the "
                                                 "CLIP unCLIP was trained with (decoding.targets.clip_image: the "
                                                 "pipeline's image_encoder/ folder).")
    result = pipe.reconstruct(embeds.astype(np.float32), num_inference_steps=spec["steps"], seed=spec["seed"])
    return result.to_numpy()


def _caption(captioner: Any, spec: dict[str, Any], projected: np.ndarray, bank: ImageBank, top: np.ndarray,
             batch_size: int) -> list[str]:
    """Captions of projected preferences: ClipCap reads the projection; GIT, which reads token sequences, captions
    the most selective bank image from its tokens (each distinct image once)."""
    if captioner is None:
        return [""] * len(projected)
    if spec["kind"] == "git":
        unique, inverse = np.unique(top[:, 0], return_inverse=True)
        inputs = bank.tokens[unique].reshape(len(unique), -1)
    else:
        inverse, inputs = np.arange(len(projected)), projected
    out: list[str] = []
    for start in range(0, len(inputs), batch_size):
        out += captioner.generate(np.asarray(inputs[start:start + batch_size], np.float32),
                                  max_new_tokens=spec["max_new_tokens"])
    return [out[k] for k in inverse]


def _selectivity(cfg: dict[str, Any], subject: str, X_train: np.ndarray, X_test: np.ndarray, Y_train: np.ndarray,
                 Y_test: np.ndarray, rois: np.ndarray, bank: ImageBank, bank_captions: list[str] | None,
                 captioner: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BrainSCUBA per ROI (mean weight vector) and per well-predicted voxel, projected onto ``bank``.

    Returns the ROI table (caption, top bank images) and the voxel table (voxel index, ROI, test r, caption,
    top bank image, one share column per word category)."""
    from ..decoders.selectivity import category_shares, project_to_bank, roi_weights
    from ..encoders.ridge import RidgeCVEncoder
    from ..metrics.correlation import pearsonr_columns

    dec = cfg["decoding"]
    spec, vc = dec["captioner"], dec["voxel_captions"]
    alphas = np.asarray(cfg["encoder"]["alphas"], dtype=np.float64)
    encoder = RidgeCVEncoder(alphas=alphas, cv=5, gap=0, alpha_per_target=False).fit(Y_train, X_train)
    weights = encoder.coef_.T  # (n_voxels, dim): each voxel's preferred direction in embedding space
    r = pearsonr_columns(X_test, encoder.predict(Y_test))
    temperature = dec["selectivity_temperature"]

    roi_names, roi_w = roi_weights(weights, rois)
    projected, top = project_to_bank(roi_w, bank.pooled, temperature=temperature)
    roi_captions = _caption(captioner, spec, projected, bank, top, vc["batch_size"])
    described = bank_captions if bank_captions is not None else bank.names
    selectivity = pd.DataFrame({"subject": subject, "roi": roi_names, "caption": roi_captions,
                                "top_images": [json.dumps([bank.names[j] for j in t]) for t in top],
                                "top_captions": [" | ".join(described[j] for j in t[:3]) for t in top]})

    chosen = np.flatnonzero(r >= vc["min_r"]) if vc["enabled"] and captioner is not None else np.array([], int)
    chosen = np.sort(chosen[np.argsort(-r[chosen], kind="stable")][: vc["max_voxels"]])
    # Sorted by name: the workflow's copy of the config does not keep the order the user wrote.
    categories = {name: vc["categories"][name] for name in sorted(vc["categories"])}
    if len(chosen):
        projected, top = project_to_bank(weights[chosen], bank.pooled, temperature=temperature)
        captions = _caption(captioner, spec, projected, bank, top, vc["batch_size"])
        shares = category_shares(captions, categories)
        best_image = [bank.names[j] for j in top[:, 0]]
    else:
        captions, shares, best_image = [], np.zeros((0, len(categories))), []
    voxels = pd.DataFrame({"subject": subject, "voxel": chosen.astype(int), "roi": np.asarray(rois)[chosen],
                           "r": r[chosen], "caption": captions, "top_image": best_image})
    for k, name in enumerate(categories):
        voxels[f"share_{name}"] = shares[:, k]
    return selectivity, voxels


def _write_category_map(cfg: dict[str, Any], path: Path, voxels: pd.DataFrame, geometry: Any, n_voxels: int
                        ) -> Path:
    """The word-category shares of the captioned voxels as a 4-D NIfTI (one volume per category, sorted by
    name, listed in the header's ``descrip``; NaN where no voxel was captioned), placed where the betas say their voxels are (betas
    without coordinates: the stand-in layout of :func:`~brainalign.datasets.simulated_images.synthetic_geometry`)."""
    import nibabel as nib

    if geometry is None:
        from ..datasets.simulated_images import synthetic_geometry

        geometry = synthetic_geometry(n_voxels)

    from ..preprocess.nifti import write_nifti

    names = sorted(cfg["decoding"]["voxel_captions"]["categories"])
    values = np.full((n_voxels, len(names)), np.nan, dtype=np.float32)
    values[voxels["voxel"].to_numpy(int)] = voxels[[f"share_{n}" for n in names]].to_numpy(np.float32)
    img = nib.Nifti1Image(geometry.to_volume(values), geometry.affine)
    img.header["descrip"] = ("shares: " + ",".join(names)).encode()[:79]
    return write_nifti(path, img)


def _brain_captioning(cfg: dict[str, Any], predicted: dict[str, np.ndarray], shapes: dict[str, np.ndarray],
                      captions: list[str]) -> np.ndarray | None:
    """img2img (+ ControlNet-depth) images from predicted latents, depth maps and decoded captions (uint8,
    n x H x W x 3), or None when ``decoding.brain_captioning.kind`` is none.

    ``predicted`` holds flattened predictions of the first test images; ``shapes`` the stored targets (their
    per-image shapes restore the predictions')."""
    spec = cfg["decoding"]["brain_captioning"]
    if spec["kind"] == "none":
        return None
    from ..decoders.diffusion import Img2ImgReconstructor

    n = min(spec["n_images"], len(captions))
    latent_shape = shapes["vae_latent"].shape[1:]
    pipe = Img2ImgReconstructor.from_pretrained(spec["model_path"], controlnet=spec["controlnet_path"],
                                                device=resolve_device(cfg))
    if pipe.latent_shape[0] != latent_shape[0]:
        raise InputFileError(spec["model_path"], f"the pipeline's latents have {pipe.latent_shape[0]} channels, "
                                                 f"but decoding.targets.vae_latent gives {latent_shape[0]}: extract "
                                                 "the target with this pipeline's own VAE (its vae/ folder).")
    depth = None
    if spec["controlnet_path"]:
        depth = predicted["depth"][:n].reshape(n, *shapes["depth"].shape[1:])
    result = pipe.reconstruct(predicted["vae_latent"][:n].reshape(n, *latent_shape).astype(np.float32),
                              prompt=list(captions[:n]), seed=spec["seed"], strength=spec["strength"],
                              num_inference_steps=spec["steps"], guidance_scale=spec["guidance_scale"], depth=depth,
                              controlnet_conditioning_scale=spec["controlnet_conditioning_scale"])
    return result.to_numpy()


# --------------------------------------------------------------------------- report
def run_decoding_report(cfg: dict[str, Any], decode_dirs: list[str | os.PathLike], out_scores: str | os.PathLike,
                        out_report: str | os.PathLike) -> Path:
    """Concatenate the subjects' tables and write the HTML report with images, captions and metrics."""
    from ..report.decoding import write_decoding_report

    dirs = [Path(d) for d in decode_dirs]
    scores = pd.concat([read_table(d / "scores.csv") for d in dirs], ignore_index=True)
    scores.insert(0, "dataset", cfg["dataset"]["name"])
    write_table(out_scores, scores, provenance(cfg, [d / "scores.csv" for d in dirs], stage="decoding_report"))
    return write_decoding_report(cfg, dirs, scores, Path(out_report))
