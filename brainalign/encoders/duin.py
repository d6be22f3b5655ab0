"""Du-IN-style sEEG word decoder (Zheng et al., 2024), sized for a CPU.

Du-IN decodes spoken or read words from a few stereo-EEG contacts (about ten
bipolar channels over vSMC/STG, 3 s epochs, per-channel z-score). Its
pipeline, reproduced here at a smaller scale:

1. **Channel fusion**, one bias-free linear layer per subject, mapping that
   subject's ``n_channels`` contacts (standardised per channel with
   statistics fitted on the training inputs) onto ``d_model`` virtual
   channels at every time sample, so subjects with different electrode counts
   share the rest of the network.
2. **Convolutional patch tokenizer**: a small depth-wise temporal convolution
   (kernel ``max(5, 2 * stride + 1)`` samples, zero padded) with stride
   ``stride`` = the largest divisor of the patch length that leaves at least
   10 samples per patch (1 up to 19 samples per patch, 2 at 200 Hz, 10 at
   1 kHz, so everything after this conv runs at 100-190 Hz), GELU, then a
   ``Conv1d`` with kernel = stride = one patch (``patch_ms``, 100 ms by
   default; ``patch_len / stride`` samples of the filtered signal) that emits
   one ``d_model`` token per patch, and LayerNorm. The fusion (bias-free) and
   the depth-wise conv are both linear, so they are computed as ONE
   convolution of the input with their product kernel
   (``_DuINNet.subject_kernel``; the same map, checked in the tests), which
   is several times cheaper than filtering ``d_model`` fused channels at the
   full rate.
3. A learned positional embedding (initialised N(0, 1), the scale of the
   LayerNorm-ed tokens, so that position is visible from the first epoch:
   with N(0, 0.02) a mean-pooled model learned time-locked patterns far more
   slowly), and ``n_layers`` pre-norm transformer encoder layers
   (:class:`torch.nn.TransformerEncoderLayer`, ``batch_first``,
   ``norm_first``, feed-forward width ``2 * d_model``, GELU) with a final
   LayerNorm.
4. Mean pooling over tokens, dropout and a linear classifier over the words.

Optional self-supervised pre-training (``codebook_size > 0`` and
``pretrain_epochs > 0``), on the inputs of the training split only (labels
unused):

* **Stage 1, VQ-VAE.** The encoder's tokens are projected to
  ``codebook_dim``, L2-normalised and quantised to the nearest entry of an
  L2-normalised codebook (``codebook_size x codebook_dim``, initialised from
  randomly chosen encoder outputs). Gradients pass the quantiser by the
  straight-through estimator. The codebook is **updated by its loss** (not by
  EMA): ``loss = recon + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2`` with
  commitment weight ``beta = 0.25``. A decoder (linear lift, positional
  embedding, one transformer layer, then one linear head per subject)
  reconstructs every patch of the subject's standardised input signal
  (all channels x patch samples); ``recon`` is their mean squared error.
* **Stage 2, masked code prediction.** The code index of every patch is
  computed once with the frozen stage-1 model. A fraction ``mask_ratio`` of
  each trial's tokens is replaced by a learned mask token before the
  transformer, and a linear head predicts the masked patches' code indices
  (cross-entropy). The encoder continues from its stage-1 weights.
* **Stage 3**, always run, trains (fine-tunes) the encoder and the classifier.

Each pre-training stage runs ``pretrain_epochs`` epochs.

Scale. The paper uses 1 kHz input, an 8-layer transformer and a 2048 x 64
codebook; the defaults here (``d_model=64``, 2 layers, no pre-training) take
about 0.6-1 s per epoch on one CPU thread for 600 trials x 10 channels x 3 s
at 200 Hz, and early stopping usually ends training after 20-45 of the at
most ``epochs=60`` epochs (15-40 s on synthetic data).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.nn import functional as F

from brainalign._validation import BrainalignError, check_int
from brainalign.encoders._base import EstimatorMixin
from brainalign.io import atomic_path

__all__ = ["DuINWordDecoder"]

#: Commitment-loss weight of the VQ-VAE (van den Oord et al., 2017).
COMMITMENT_BETA = 0.25
#: Kernel (samples) of the depth-wise temporal convolution before patching.
TEMPORAL_KERNEL = 5
#: Standard deviation of the learned positional embeddings at initialisation.
POS_INIT_STD = 1.0
#: Version of the ``save`` format (JSON sidecar + safetensors weights).
_FORMAT_VERSION = 1

_HISTORY_KEYS = (
    "vq_recon_loss",
    "vq_codebook_loss",
    "vq_commit_loss",
    "vq_perplexity",
    "mask_loss",
    "mask_acc",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
)


# --------------------------------------------------------------------------- #
# parameter validation
# --------------------------------------------------------------------------- #


def _float_param(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else math.nan
    if (
        not ok
        or not math.isfinite(v)
        or (v <= low if low_open else v < low)
        or (v >= high if high_open else v > high)
    ):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise BrainalignError(
            f"'{name}' must be a finite number in {lo}{low}, {high}{hi}, got {value!r}."
        )
    return v


def _check_params(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["sfreq"] = _float_param("sfreq", p["sfreq"], 0.0, low_open=True)
    out["patch_ms"] = _float_param("patch_ms", p["patch_ms"], 0.0, low_open=True)
    out["d_model"] = check_int("d_model", p["d_model"], 1)
    out["n_layers"] = check_int("n_layers", p["n_layers"], 0)
    out["n_heads"] = check_int("n_heads", p["n_heads"], 1)
    if out["d_model"] % out["n_heads"]:
        raise BrainalignError(
            f"'d_model' ({out['d_model']}) must be divisible by 'n_heads' ({out['n_heads']})."
        )
    out["dropout"] = _float_param("dropout", p["dropout"], 0.0, 1.0, high_open=True)
    out["codebook_size"] = check_int("codebook_size", p["codebook_size"], 0)
    out["codebook_dim"] = check_int("codebook_dim", p["codebook_dim"], 1)
    out["pretrain_epochs"] = check_int("pretrain_epochs", p["pretrain_epochs"], 0)
    if out["pretrain_epochs"] > 0 and out["codebook_size"] == 0:
        raise BrainalignError(
            f"'pretrain_epochs' is {out['pretrain_epochs']} but 'codebook_size' is 0: the "
            "pre-training stages need a codebook (e.g. codebook_size=64), or set "
            "pretrain_epochs=0."
        )
    if out["codebook_size"] == 1:
        raise BrainalignError("'codebook_size' must be 0 (no VQ stage) or >= 2, got 1.")
    out["mask_ratio"] = _float_param(
        "mask_ratio", p["mask_ratio"], 0.0, 1.0, low_open=True, high_open=True
    )
    out["epochs"] = check_int("epochs", p["epochs"], 1)
    out["batch_size"] = check_int("batch_size", p["batch_size"], 1)
    out["lr"] = _float_param("lr", p["lr"], 0.0, low_open=True)
    out["weight_decay"] = _float_param("weight_decay", p["weight_decay"], 0.0)
    out["val_fraction"] = _float_param(
        "val_fraction", p["val_fraction"], 0.0, 1.0, high_open=True
    )
    out["patience"] = check_int("patience", p["patience"], 1)
    rs = p["random_state"]
    if rs is None:
        out["random_state"] = int(np.random.SeedSequence().generate_state(1)[0])
    else:
        out["random_state"] = check_int("random_state", rs, 0)
    if not isinstance(p["verbose"], (bool, np.bool_)):
        raise BrainalignError(f"'verbose' must be True or False, got {p['verbose']!r}.")
    out["verbose"] = bool(p["verbose"])
    try:
        out["device"] = torch.device(p["device"])
    except (TypeError, RuntimeError, ValueError):
        raise BrainalignError(
            f"'device' must be a torch device name such as 'cpu' or 'cuda:0', got {p['device']!r}."
        ) from None
    return out


def _temporal_stride(patch_len: int) -> int:
    """Stride of the temporal conv: the largest divisor ``r`` of ``patch_len`` with
    ``patch_len / r >= 10``, so a patch keeps at least 10 internal samples (1 below
    20 samples per patch; 2 at 200 Hz and 100 ms; 10 at 1 kHz)."""
    return max(r for r in range(1, max(1, patch_len // 10) + 1) if patch_len % r == 0)


def _patch_len(sfreq: float, patch_ms: float) -> int:
    n = round(sfreq * patch_ms / 1000.0)
    if n < 1:
        raise BrainalignError(
            f"'patch_ms'={patch_ms} at 'sfreq'={sfreq} Hz is less than one sample; use a "
            "longer patch or a higher sampling rate."
        )
    return n


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
def _as_trials(X: Any, name: str = "X") -> list[np.ndarray]:
    """A list of float32 (n_channels_i, n_times_i) arrays, checked finite, one per trial."""
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        arr = np.asarray(X.detach().cpu() if torch.is_tensor(X) else X)
        if arr.ndim != 3:
            raise BrainalignError(
                f"'{name}' must be 3-D (n_trials, n_channels, n_times) or a list of 2-D "
                f"(n_channels, n_times) trials, got an array of shape {arr.shape}."
            )
        trials = list(arr)
    elif isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
        trials = list(X)
    else:
        raise BrainalignError(
            f"'{name}' must be an array (n_trials, n_channels, n_times) or a list of "
            f"(n_channels, n_times) arrays, got {type(X).__name__}."
        )
    if not trials:
        raise BrainalignError(f"'{name}' must contain at least one trial, got 0.")
    out = []
    for i, t in enumerate(trials):
        a = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t)
        if a.dtype.kind not in "biuf":
            raise BrainalignError(
                f"'{name}' trial {i} must hold real numbers, got dtype {a.dtype}."
            )
        if a.ndim != 2:
            raise BrainalignError(
                f"'{name}' trial {i} must be 2-D (n_channels, n_times), got shape {a.shape}."
            )
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise BrainalignError(f"'{name}' trial {i} is empty (shape {a.shape}).")
        if not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise BrainalignError(
                f"'{name}' trial {i} contains NaN or infinite values (first at channel "
                f"{bad[0]}, sample {bad[1]})."
            )
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out


def _as_labels(v: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(v)
    if arr.ndim != 1:
        raise BrainalignError(
            f"'{name}' must be 1-D (n_trials,), got shape {arr.shape}."
        )
    if arr.shape[0] != n:
        raise BrainalignError(
            f"'{name}' has {arr.shape[0]} entries but 'X' has {n} trials; they must match."
        )
    return arr


def _unique(arr: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.unique(arr)
    except TypeError:
        types = sorted({type(a).__name__ for a in arr})
        raise BrainalignError(
            f"'{name}' mixes label types that cannot be sorted ({types})."
        ) from None


def _py(v: Any) -> Any:
    """A Python scalar for dict keys and JSON (numpy scalars unwrapped)."""
    return v.item() if isinstance(v, np.generic) else v


def _json_labels(values: np.ndarray, name: str) -> list[Any]:
    out = []
    for v in values:
        v = _py(v)
        if not isinstance(v, (bool, int, float, str)):
            raise BrainalignError(
                f"Cannot save '{name}': label {v!r} of type {type(v).__name__} is not a JSON "
                "scalar (use int, float, bool or str labels)."
            )
        out.append(v)
    return out


# --------------------------------------------------------------------------- #
# torch modules
# --------------------------------------------------------------------------- #
class _SubjectFusion(nn.Module):
    """Per-subject standardisation (fitted mean/std per channel) + channel fusion.

    The fusion has no bias: its input is standardised (zero mean per channel),
    and the shared temporal convolution that follows carries one.
    """

    def __init__(self, n_channels: int, d_model: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_channels, 1))
        self.register_buffer("std", torch.ones(n_channels, 1))
        self.linear = nn.Linear(n_channels, d_model, bias=False)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, C, T) -> (b, d, T)
        return torch.einsum("dc,bct->bdt", self.linear.weight, self.standardize(x))


class _DuINNet(nn.Module):
    """Encoder + classifier, and optionally the VQ-VAE and masked-code heads."""

    def __init__(
        self,
        n_channels: list[int],
        n_classes: int,
        patch_len: int,
        n_patches: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        codebook_size: int,
        codebook_dim: int,
        vq: bool,
    ):
        super().__init__()
        self.patch_len = patch_len
        self.n_patches = n_patches
        self.fusion = nn.ModuleList(_SubjectFusion(c, d_model) for c in n_channels)
        self.stride = _temporal_stride(patch_len)
        k = max(TEMPORAL_KERNEL, 2 * self.stride + 1)
        self.temporal = nn.Conv1d(
            d_model, d_model, k, stride=self.stride, padding=k // 2, groups=d_model
        )
        self.patchify = nn.Conv1d(
            d_model, d_model, patch_len // self.stride, stride=patch_len // self.stride
        )
        self.token_norm = nn.LayerNorm(d_model)
        self.pos = nn.Parameter(torch.randn(n_patches, d_model) * POS_INIT_STD)
        self.drop = nn.Dropout(dropout)
        self.transformer = self._stack(d_model, n_heads, dropout, n_layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))
        self.vq = vq
        if vq:
            self.vq_proj = nn.Linear(d_model, codebook_dim)
            self.codebook = nn.Parameter(torch.randn(codebook_size, codebook_dim))
            self.dec_in = nn.Linear(codebook_dim, d_model)
            self.dec_pos = nn.Parameter(torch.randn(n_patches, d_model) * POS_INIT_STD)
            self.decoder = self._stack(d_model, n_heads, dropout, 1)
            self.recon = nn.ModuleList(
                nn.Linear(d_model, c * patch_len) for c in n_channels
            )
            self.mask_token = nn.Parameter(torch.zeros(d_model))
            self.code_head = nn.Linear(d_model, codebook_size)

    @staticmethod
    def _stack(d_model: int, n_heads: int, dropout: float, n_layers: int) -> nn.Module:
        if n_layers == 0:
            return nn.LayerNorm(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        return nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    #: Parameters outside the encoder: the classifier and the pre-training parts.
    _NON_ENCODER = (
        "head.",
        "vq_proj.",
        "codebook",
        "dec_in.",
        "dec_pos",
        "decoder.",
        "recon.",
        "mask_token",
        "code_head.",
    )

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Fusion, tokenizer, positional embedding and transformer parameters."""
        return [
            p
            for name, p in self.named_parameters()
            if not name.startswith(self._NON_ENCODER)
        ]

    def tokens(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """Patch tokens (B, N, d) before the transformer; batch in ``groups`` order."""
        z = self.patchify(F.gelu(self.temporal_features(groups)))  # (B, d, N)
        return self.token_norm(z.transpose(1, 2))

    def subject_kernel(self, s: int) -> torch.Tensor:
        """Kernel (d, C_s, k) of the fusion followed by the depth-wise temporal conv.

        Both maps are linear and the fusion has no bias, so their composition is
        one convolution of the standardised input with the product kernel
        ``W[j, c] * w[j, t]`` (zero padding included); it is much cheaper than
        running the ``d_model``-channel fused signal through a depth-wise conv.
        """
        return self.fusion[s].linear.weight[:, :, None] * self.temporal.weight

    def temporal_features(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """Fused, temporally filtered signal (B, d, n_times / stride), before GELU."""
        out = [
            F.conv1d(
                self.fusion[s].standardize(x),
                self.subject_kernel(s),
                self.temporal.bias,
                stride=self.stride,
                padding=self.temporal.padding[0],
            )
            for s, x in groups
        ]
        return torch.cat(out, 0)

    def encode(
        self, groups: list[tuple[int, torch.Tensor]], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        tok = self.tokens(groups)
        if mask is not None:
            tok = torch.where(mask[..., None], self.mask_token.to(tok.dtype), tok)
        return self.transformer(self.drop(tok + self.pos))

    def forward(self, groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        return self.head(self.encode(groups).mean(dim=1))

    # ---- VQ-VAE --------------------------------------------------------- #
    def quantize_input(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vq_proj(h), dim=-1)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest (cosine) code of each normalised token: ``(z_q, indices)``."""
        book = F.normalize(self.codebook, dim=-1)
        sim = z_e @ book.T  # (B, N, K); argmax of cosine = argmin of L2 on the sphere
        idx = sim.argmax(dim=-1)
        return book[idx], idx

    def reconstruct(
        self, z: torch.Tensor, subj: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """Per-subject reconstructions (b_s, N, C_s * patch_len) from quantised tokens."""
        h = self.decoder(self.drop(self.dec_in(z) + self.dec_pos))
        out, start = [], 0
        for s, b in subj:
            out.append(self.recon[s](h[start : start + b]))
            start += b
        return out


# --------------------------------------------------------------------------- #
# data packing
# --------------------------------------------------------------------------- #
class _Packed:
    """Trials stored per subject as (n_s, C_s, T) tensors, addressed by global index."""

    def __init__(
        self,
        trials: list[np.ndarray],
        subj_idx: np.ndarray,
        n_subjects: int,
        n_times: int,
    ):
        self.subj = subj_idx.astype(np.int64)
        self.local = np.zeros(len(trials), dtype=np.int64)
        self.xs: list[torch.Tensor | None] = [None] * n_subjects
        for s in range(n_subjects):
            members = np.flatnonzero(self.subj == s)
            self.local[members] = np.arange(members.size)
            if members.size:
                self.xs[s] = torch.from_numpy(
                    np.stack([trials[i][:, :n_times] for i in members])
                )

    def __len__(self) -> int:
        return self.subj.size

    def batch(
        self, idx: np.ndarray, device: torch.device
    ) -> tuple[list[tuple[int, torch.Tensor]], np.ndarray]:
        """Group a batch by subject: ``(groups, order)`` with ``order`` the trials' global
        indices in the groups' concatenation order."""
        order = idx[np.argsort(self.subj[idx], kind="stable")]
        groups = []
        for s in np.unique(self.subj[order]):
            loc = self.local[order[self.subj[order] == s]]
            groups.append((int(s), self.xs[s][torch.from_numpy(loc)].to(device)))
        return groups, order


# --------------------------------------------------------------------------- #
# estimator
# --------------------------------------------------------------------------- #
class DuINWordDecoder(EstimatorMixin):
    """Du-IN-style word classifier for sEEG epochs (per-subject fusion + transformer).

    Parameters
    ----------
    sfreq : float, default=200.0
        Sampling rate of the input, in Hz.
    patch_ms : float, default=100.0
        Patch (token) length in ms; ``round(sfreq * patch_ms / 1000)`` samples.
        Trials are cropped at the end to a whole number of patches (the
        remainder, less than one patch, is discarded); a trial shorter than one
        patch is an error.
    d_model : int, default=64
        Width of the virtual channels (channel fusion output), tokens and
        transformer.
    n_layers : int, default=2
        Transformer encoder layers (0: tokens go straight to pooling).
    n_heads : int, default=4
        Attention heads; must divide ``d_model``.
    dropout : float, default=0.1
        Dropout in the transformer, on the tokens and before the classifier.
    codebook_size : int, default=0
        Number of VQ codes; 0 disables the VQ stages.
    codebook_dim : int, default=32
        Dimension of a code vector.
    pretrain_epochs : int, default=0
        Epochs of *each* pre-training stage (VQ-VAE, then masked code
        prediction); they run only when ``codebook_size > 0`` and this is > 0.
    mask_ratio : float, default=0.5
        Fraction of each trial's tokens masked in stage 2, in (0, 1).
    epochs : int, default=60
        Maximum epochs of supervised training (stage 3).
    batch_size : int, default=64
        Trials per mini-batch (all stages).
    lr : float, default=1e-3
        AdamW learning rate (all stages).
    weight_decay : float, default=1e-2
        AdamW weight decay.
    val_fraction : float, default=0.15
        Fraction of each class held out (stratified) for early stopping, in
        [0, 1); 0 trains for ``epochs`` epochs and keeps the last weights.
    patience : int, default=10
        Stop after this many epochs without a better validation accuracy
        (equal accuracy with lower validation loss counts as better); the best
        weights are restored.
    random_state : int or None, default=0
        Seed of the split, the initialisation, the batches, the masks and
        dropout. The same seed and inputs give bit-identical predictions on the
        same machine and thread count. ``None`` draws a fresh seed.
    verbose : bool, default=False
        Show tqdm progress bars.
    device : str, default="cpu"
        Torch device for training and inference.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted unique labels.
    subjects_ : ndarray of shape (n_subjects,)
        Sorted unique subject labels (``[0]`` when ``subjects=None`` in ``fit``).
    n_channels_ : dict
        Subject label -> number of channels.
    module_ : torch.nn.Module
        The network (in eval mode after ``fit``).
    history_ : dict of str -> list of float
        Per-epoch curves: ``vq_recon_loss``, ``vq_codebook_loss``,
        ``vq_commit_loss``, ``vq_perplexity`` (stage 1), ``mask_loss``,
        ``mask_acc`` (stage 2; on masked tokens), ``train_loss``, ``train_acc``,
        ``val_loss``, ``val_acc`` (stage 3). Lists of stages that did not run
        are empty.
    best_epoch_ : int
        0-based stage-3 epoch whose weights were kept.
    patch_len_ : int
        Patch length in samples.
    n_patches_ : int
        Tokens per trial.

    Notes
    -----
    Inputs should be in consistent units per channel; each subject's channels
    are standardised with the mean and standard deviation (over trials and
    time) of the trials given to ``fit`` (labels are not used), and these
    statistics are part of the saved model. All trials must have the same
    number of whole patches.
    """

    _estimator_type = "classifier"

    def __init__(
        self,
        *,
        sfreq: float = 200.0,
        patch_ms: float = 100.0,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.1,
        codebook_size: int = 0,
        codebook_dim: int = 32,
        pretrain_epochs: int = 0,
        mask_ratio: float = 0.5,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        val_fraction: float = 0.15,
        patience: int = 10,
        random_state: int | None = 0,
        verbose: bool = False,
        device: str = "cpu",
    ):
        self.sfreq = sfreq
        self.patch_ms = patch_ms
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.pretrain_epochs = pretrain_epochs
        self.mask_ratio = mask_ratio
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ #
    # scikit-learn protocol
    # ------------------------------------------------------------------ #
    def _subject_index(self, subjects: Any, n: int) -> np.ndarray:
        """Map subject labels of ``n`` trials to indices into ``subjects_``."""
        if subjects is None:
            if len(self.subjects_) != 1:
                raise BrainalignError(
                    f"'subjects' is required: this {type(self).__name__} was fit on "
                    f"{len(self.subjects_)} subjects ({list(map(_py, self.subjects_))})."
                )
            return np.zeros(n, dtype=np.int64)
        arr = _as_labels(subjects, "subjects", n)
        lookup = {_py(s): i for i, s in enumerate(self.subjects_)}
        out = np.empty(n, dtype=np.int64)
        for i, s in enumerate(arr):
            key = _py(s)
            if key not in lookup:
                raise BrainalignError(
                    f"'subjects' entry {i} is subject {key!r}, which was not seen in 'fit' "
                    f"(known subjects: {list(lookup)})."
                )
            out[i] = lookup[key]
        return out

    def _prepare(self, X: Any, subjects: Any) -> _Packed:
        """Validate prediction inputs against the fitted shapes and pack them."""
        trials = _as_trials(X)
        sidx = self._subject_index(subjects, len(trials))
        for i, (t, s) in enumerate(zip(trials, sidx)):
            label = _py(self.subjects_[s])
            expected = self.n_channels_[label]
            if t.shape[0] != expected:
                raise BrainalignError(
                    f"'X' trial {i} of subject {label!r} has {t.shape[0]} channels, but that "
                    f"subject was fit with {expected} (n_channels_)."
                )
            n_p = t.shape[1] // self.patch_len_
            if n_p != self.n_patches_:
                raise BrainalignError(
                    f"'X' trial {i} has {t.shape[1]} samples = {n_p} whole patches of "
                    f"{self.patch_len_} samples, but the model was fit on "
                    f"{self.n_patches_} patches ({self.n_patches_ * self.patch_len_} samples)."
                )
        return _Packed(
            trials, sidx, len(self.subjects_), self.n_patches_ * self.patch_len_
        )

    # ------------------------------------------------------------------ #
    # fit
    # ------------------------------------------------------------------ #
    def fit(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> DuINWordDecoder:
        """Train the decoder (optionally with VQ-VAE and masked-code pre-training).

        Parameters
        ----------
        X : array-like of shape (n_trials, n_channels, n_times) or list of arrays
            sEEG epochs sampled at ``sfreq`` Hz. With subjects of different
            channel counts, a list of per-trial (n_channels_i, n_times) arrays;
            channel counts must agree within a subject.
        y : array-like of shape (n_trials,)
            Word labels (any sortable hashable type).
        subjects : array-like of shape (n_trials,), optional
            Subject label of each trial; ``None`` means one subject (label 0).

        Returns
        -------
        self : DuINWordDecoder
        """
        p = _check_params(self.get_params())
        trials = _as_trials(X)
        n = len(trials)
        y_arr = _as_labels(y, "y", n)
        classes = _unique(y_arr, "y")
        if classes.size < 2:
            raise BrainalignError(
                f"'y' must contain at least 2 classes, got {classes.tolist()!r}."
            )
        y_idx = np.searchsorted(classes, y_arr).astype(np.int64)

        if subjects is None:
            subj_arr = np.zeros(n, dtype=np.int64)
        else:
            subj_arr = _as_labels(subjects, "subjects", n)
        subjects_ = _unique(subj_arr, "subjects")
        s_idx = np.searchsorted(subjects_, subj_arr).astype(np.int64)
        n_channels: dict[Any, int] = {}
        for i, (t, s) in enumerate(zip(trials, s_idx)):
            label = _py(subjects_[s])
            if label not in n_channels:
                n_channels[label] = t.shape[0]
            elif t.shape[0] != n_channels[label]:
                raise BrainalignError(
                    f"'X' trial {i} of subject {label!r} has {t.shape[0]} channels, but earlier "
                    f"trials of subject {label!r} have {n_channels[label]}; channels must match "
                    "within a subject."
                )

        patch_len = _patch_len(p["sfreq"], p["patch_ms"])
        n_times = np.array([t.shape[1] for t in trials])
        short = np.flatnonzero(n_times < patch_len)
        if short.size:
            i = int(short[0])
            raise BrainalignError(
                f"'X' trial {i} has {n_times[i]} samples, fewer than one patch "
                f"({patch_len} samples = {p['patch_ms']} ms at {p['sfreq']} Hz)."
            )
        n_patches_all = n_times // patch_len
        if np.any(n_patches_all != n_patches_all[0]):
            i = int(np.flatnonzero(n_patches_all != n_patches_all[0])[0])
            raise BrainalignError(
                f"'X' trial {i} has {n_patches_all[i]} whole patches but trial 0 has "
                f"{n_patches_all[0]}; all trials must have the same number of "
                f"{patch_len}-sample patches."
            )
        n_patches = int(n_patches_all[0])
        packed = _Packed(trials, s_idx, len(subjects_), n_patches * patch_len)

        train_idx, val_idx = self._split(y_idx, p["val_fraction"], p["random_state"])
        vq = p["codebook_size"] > 0 and p["pretrain_epochs"] > 0
        device = p["device"]
        fork_devices = [] if device.type != "cuda" else [device.index or 0]
        history: dict[str, list[float]] = {k: [] for k in _HISTORY_KEYS}
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(p["random_state"])
            gen = torch.Generator().manual_seed(p["random_state"])
            net = _DuINNet(
                [n_channels[_py(s)] for s in subjects_],
                classes.size,
                patch_len,
                n_patches,
                p["d_model"],
                p["n_layers"],
                p["n_heads"],
                p["dropout"],
                p["codebook_size"],
                p["codebook_dim"],
                vq,
            )
            self._set_standardization(net, packed)
            net.to(device)
            if vq:
                self._stage_vqvae(net, packed, train_idx, p, gen, history, device)
                codes = self._codes(net, packed, np.arange(n), p["batch_size"], device)
                self._stage_masked(
                    net, packed, train_idx, codes, p, gen, history, device
                )
            best_epoch = self._stage_classify(
                net, packed, y_idx, train_idx, val_idx, p, gen, history, device
            )
        net.eval()
        self.classes_ = classes
        self.subjects_ = subjects_
        self.n_channels_ = n_channels
        self.patch_len_ = patch_len
        self.n_patches_ = n_patches
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.module_ = net
        return self

    @staticmethod
    def _split(
        y_idx: np.ndarray, val_fraction: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stratified split: ``round(val_fraction * n_c)`` (at least 1 if ``n_c >= 2``,
        at most ``n_c - 1``) trials of each class go to validation."""
        rng = np.random.default_rng(seed)
        val = []
        if val_fraction > 0:
            for c in np.unique(y_idx):
                members = np.flatnonzero(y_idx == c)
                if members.size < 2:
                    continue
                k = min(max(1, round(val_fraction * members.size)), members.size - 1)
                val.append(rng.permutation(members)[:k])
        val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
        train_idx = np.setdiff1d(np.arange(y_idx.size), val_idx)
        return train_idx, val_idx

    @staticmethod
    def _set_standardization(net: _DuINNet, packed: _Packed) -> None:
        for s, x in enumerate(packed.xs):
            if x is None:
                continue
            x64 = x.double()
            mean = x64.mean(dim=(0, 2))
            std = x64.std(dim=(0, 2), correction=0)
            std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
            net.fusion[s].mean.copy_(mean.float()[:, None])
            net.fusion[s].std.copy_(std.float()[:, None])

    def _batches(
        self, idx: np.ndarray, batch_size: int, gen: torch.Generator | None
    ) -> list[np.ndarray]:
        if gen is not None:
            idx = idx[torch.randperm(idx.size, generator=gen).numpy()]
        return [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]

    def _progress(self, n: int, desc: str, verbose: bool):
        from tqdm.auto import tqdm

        return tqdm(range(n), desc=desc, unit="epoch", disable=not verbose, leave=False)

    # ---- stage 1 ------------------------------------------------------- #
    def _stage_vqvae(self, net, packed, train_idx, p, gen, history, device) -> None:
        net.eval()
        with torch.no_grad():  # initialise the codebook from random encoder outputs
            groups, _ = packed.batch(train_idx[: max(p["batch_size"], 1)], device)
            z = net.quantize_input(net.encode(groups)).reshape(-1, p["codebook_dim"])
            pick = torch.randint(z.shape[0], (p["codebook_size"],), generator=gen)
            noise = 0.01 * torch.randn(
                p["codebook_size"], p["codebook_dim"], generator=gen
            )
            net.codebook.copy_(z[pick.to(z.device)] + noise.to(z.device))
        params = (
            net.encoder_parameters()
            + list(net.vq_proj.parameters())
            + [net.codebook]
            + list(net.dec_in.parameters())
            + [net.dec_pos]
            + list(net.decoder.parameters())
            + list(net.recon.parameters())
        )
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        K = p["codebook_size"]
        for _ in self._progress(
            p["pretrain_epochs"], "Du-IN stage 1 (VQ-VAE)", p["verbose"]
        ):
            net.train()
            sums = np.zeros(3)
            counts = torch.zeros(K, dtype=torch.float64)
            n_seen = 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, _ = packed.batch(b, device)
                z_e = net.quantize_input(net.encode(groups))
                z_q, idx = net.quantize(z_e)
                codebook_loss = F.mse_loss(z_q, z_e.detach())
                commit_loss = F.mse_loss(z_e, z_q.detach())
                z_st = z_e + (z_q - z_e).detach()
                recon = net.reconstruct(z_st, [(s, x.shape[0]) for s, x in groups])
                recon_loss = 0.0
                for (s, x), r in zip(groups, recon):
                    target = net.fusion[s].standardize(x)  # (b, C, N*P)
                    bsz, C, _ = target.shape
                    target = target.reshape(bsz, C, net.n_patches, net.patch_len)
                    target = target.permute(0, 2, 1, 3).reshape(
                        bsz, net.n_patches, C * net.patch_len
                    )
                    recon_loss = (
                        recon_loss
                        + F.mse_loss(r, target, reduction="sum") / r[0].numel()
                    )
                recon_loss = recon_loss / len(b)
                loss = recon_loss + codebook_loss + COMMITMENT_BETA * commit_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sums += len(b) * np.array(
                    [recon_loss.item(), codebook_loss.item(), commit_loss.item()]
                )
                counts += torch.bincount(idx.reshape(-1).cpu(), minlength=K).double()
                n_seen += len(b)
            probs = counts / counts.sum()
            nz = probs[probs > 0]
            history["vq_recon_loss"].append(float(sums[0] / n_seen))
            history["vq_codebook_loss"].append(float(sums[1] / n_seen))
            history["vq_commit_loss"].append(float(sums[2] / n_seen))
            history["vq_perplexity"].append(float(torch.exp(-(nz * nz.log()).sum())))

    @staticmethod
    def _codes(net, packed, idx, batch_size, device) -> np.ndarray:
        """Code indices (len(idx), n_patches) from the VQ tokenizer in eval mode."""
        out = np.zeros((idx.size, net.n_patches), dtype=np.int64)
        pos = {int(g): k for k, g in enumerate(idx)}
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for i in range(0, idx.size, batch_size):
                groups, order = packed.batch(idx[i : i + batch_size], device)
                _, codes = net.quantize(net.quantize_input(net.encode(groups)))
                out[[pos[int(g)] for g in order]] = codes.cpu().numpy()
        net.train(was_training)
        return out

    # ---- stage 2 ------------------------------------------------------- #
    def _stage_masked(
        self, net, packed, train_idx, codes, p, gen, history, device
    ) -> None:
        params = (
            net.encoder_parameters()
            + [net.mask_token]
            + list(net.code_head.parameters())
        )
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        N = net.n_patches
        n_mask = min(N, max(1, round(p["mask_ratio"] * N)))
        codes_t = torch.from_numpy(codes)
        for _ in self._progress(
            p["pretrain_epochs"], "Du-IN stage 2 (masked codes)", p["verbose"]
        ):
            net.train()
            loss_sum, correct, total, n_seen = 0.0, 0, 0, 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, order = packed.batch(b, device)
                ranks = torch.rand(len(order), N, generator=gen).argsort(dim=1)
                mask = ranks < n_mask
                target = codes_t[torch.from_numpy(order)]
                mask, target = mask.to(device), target.to(device)
                logits = net.code_head(net.encode(groups, mask=mask))
                loss = F.cross_entropy(logits[mask], target[mask])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                loss_sum += loss.item() * len(b)
                n_seen += len(b)
                correct += int((logits[mask].argmax(-1) == target[mask]).sum())
                total += int(mask.sum())
            history["mask_loss"].append(loss_sum / n_seen)
            history["mask_acc"].append(correct / total)

    # ---- stage 3 ------------------------------------------------------- #
    def _stage_classify(
        self, net, packed, y_idx, train_idx, val_idx, p, gen, history, device
    ) -> int:
        params = net.encoder_parameters() + list(net.head.parameters())
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        y_t = torch.from_numpy(y_idx)
        best: tuple[float, float] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch, best_epoch_kept, stale = 0, 0, 0
        bar = self._progress(p["epochs"], "Du-IN stage 3 (classifier)", p["verbose"])
        for epoch in bar:
            net.train()
            loss_sum, correct, n_seen = 0.0, 0, 0
            for b in self._batches(train_idx, p["batch_size"], gen):
                groups, order = packed.batch(b, device)
                target = y_t[torch.from_numpy(order)].to(device)
                logits = net(groups)
                loss = F.cross_entropy(logits, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                loss_sum += loss.item() * len(b)
                correct += int((logits.argmax(-1) == target).sum())
                n_seen += len(b)
            history["train_loss"].append(loss_sum / n_seen)
            history["train_acc"].append(correct / n_seen)
            best_epoch = epoch
            if val_idx.size == 0:
                continue
            logits = self._logits(net, packed, val_idx, p["batch_size"], device)
            val_loss = float(F.cross_entropy(logits, y_t[torch.from_numpy(val_idx)]))
            val_acc = float((logits.argmax(-1).numpy() == y_idx[val_idx]).mean())
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            if (
                best is None
                or val_acc > best[0]
                or (val_acc == best[0] and val_loss < best[1])
            ):
                best, stale = (val_acc, val_loss), 0
                best_state = copy.deepcopy(net.state_dict())
                best_epoch_kept = epoch
            else:
                stale += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best[0]:.3f}")
            if stale >= p["patience"]:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
            best_epoch = best_epoch_kept
        return best_epoch

    @staticmethod
    def _logits(net, packed, idx, batch_size, device) -> torch.Tensor:
        """Eval-mode logits (len(idx), n_classes) on the CPU, in ``idx`` order."""
        was_training = net.training
        net.eval()
        out = None
        pos = {int(g): k for k, g in enumerate(idx)}
        with torch.no_grad():
            for i in range(0, idx.size, batch_size):
                groups, order = packed.batch(idx[i : i + batch_size], device)
                logits = net(groups).float().cpu()
                if out is None:
                    out = torch.empty(idx.size, logits.shape[1])
                out[torch.tensor([pos[int(g)] for g in order])] = logits
        net.train(was_training)
        return out

    # ------------------------------------------------------------------ #
    # prediction
    # ------------------------------------------------------------------ #
    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    def predict_proba(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_trials, n_channels, n_times) or list of arrays
            As in :meth:`fit`; channel counts must match each subject's
            ``n_channels_`` and trials must have ``n_patches_`` whole patches.
        subjects : array-like of shape (n_trials,), optional
            Subject of each trial (required if fit on several subjects).

        Returns
        -------
        proba : ndarray of shape (n_trials, n_classes)
            Softmax probabilities (float64) in ``classes_`` order.
        """
        self._check_fitted()
        packed = self._prepare(X, subjects)
        idx = np.arange(len(packed))
        bs = (
            int(self.batch_size)
            if isinstance(self.batch_size, (int, np.integer)) and self.batch_size > 0
            else 64
        )
        logits = self._logits(self.module_, packed, idx, bs, self._device())
        return torch.softmax(logits.double(), dim=-1).numpy()

    def predict(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """Most probable label of each trial.

        Returns
        -------
        labels : ndarray of shape (n_trials,)
            Entries of ``classes_``.
        """
        self._check_fitted()
        return self.classes_[np.argmax(self.predict_proba(X, subjects), axis=1)]

    def _true_labels(self, y: ArrayLike, n: int) -> np.ndarray:
        y_arr = _as_labels(y, "y", n)
        lookup = {_py(c): i for i, c in enumerate(self.classes_)}
        out = np.empty(n, dtype=np.int64)
        for i, v in enumerate(y_arr):
            key = _py(v)
            if key not in lookup:
                raise BrainalignError(
                    f"'y' entry {i} is {key!r}, which is not one of the fitted classes_."
                )
            out[i] = lookup[key]
        return out

    def score(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> float:
        """Accuracy (fraction of trials whose predicted label equals ``y``)."""
        pred = self.predict(X, subjects)
        y_arr = _as_labels(y, "y", pred.shape[0])
        return float(np.mean([_py(a) == _py(b) for a, b in zip(pred, y_arr)]))

    def confusion_matrix(
        self,
        X: ArrayLike | Sequence[ArrayLike],
        y: ArrayLike,
        subjects: ArrayLike | None = None,
    ) -> np.ndarray:
        """Counts of (true, predicted) label pairs.

        Returns
        -------
        cm : ndarray of shape (n_classes, n_classes), int64
            ``cm[i, j]`` = number of trials of class ``classes_[i]`` predicted as
            ``classes_[j]``. Every entry of ``y`` must be one of ``classes_``.
        """
        self._check_fitted()
        proba = self.predict_proba(X, subjects)
        true = self._true_labels(y, proba.shape[0])
        pred = np.argmax(proba, axis=1)
        K = self.classes_.size
        return (
            np.bincount(true * K + pred, minlength=K * K).reshape(K, K).astype(np.int64)
        )

    def encode_codes(
        self, X: ArrayLike | Sequence[ArrayLike], subjects: ArrayLike | None = None
    ) -> np.ndarray:
        """VQ code index of every patch (needs a model fit with the VQ stages).

        Returns
        -------
        codes : ndarray of shape (n_trials, n_patches_), int64
            Values in ``[0, codebook_size)``.
        """
        self._check_fitted()
        if not self.module_.vq:
            raise BrainalignError(
                "'encode_codes' needs a model fit with the VQ stages (codebook_size > 0 and "
                "pretrain_epochs > 0)."
            )
        packed = self._prepare(X, subjects)
        return self._codes(
            self.module_, packed, np.arange(len(packed)), 64, self._device()
        )

    # ------------------------------------------------------------------ #
    # persistence
    # ------------------------------------------------------------------ #
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights to ``path`` (safetensors) and metadata to ``<path>.json``.

        The JSON sidecar holds the constructor parameters, ``classes_``,
        ``subjects_``, ``n_channels_``, patch geometry, ``history_`` and
        ``best_epoch_``; nothing is pickled. Labels must be JSON scalars.

        Returns
        -------
        path : pathlib.Path
            The weights file.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        path = Path(path)
        params = self.get_params()
        params["device"] = str(params["device"])
        meta = {
            "format": "brainalign.DuINWordDecoder",
            "version": _FORMAT_VERSION,
            "params": params,
            "classes": _json_labels(self.classes_, "classes_"),
            "classes_dtype": self.classes_.dtype.str,
            "subjects": _json_labels(self.subjects_, "subjects_"),
            "subjects_dtype": self.subjects_.dtype.str,
            "n_channels": [self.n_channels_[_py(s)] for s in self.subjects_],
            "patch_len": self.patch_len_,
            "n_patches": self.n_patches_,
            "vq": bool(self.module_.vq),
            "history": self.history_,
            "best_epoch": self.best_epoch_,
        }
        try:
            text = json.dumps(meta, indent=1)
        except (TypeError, ValueError) as err:
            raise BrainalignError(
                f"Cannot save: parameters are not JSON-serialisable ({err})."
            ) from None
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in self.module_.state_dict().items()
        }
        # Atomic: a killed process leaves the previous checkpoint, never half of one.
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
        with atomic_path(self._sidecar(path)) as tmp:
            tmp.write_text(text)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | None = None
    ) -> DuINWordDecoder:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The weights file; ``<path>.json`` must sit beside it.
        device : str, optional
            Overrides the saved ``device`` parameter.
        """
        from safetensors.torch import load_file

        from brainalign._validation import InputFileError

        path = Path(path)
        side = cls._sidecar(path)
        for f in (path, side):
            if not f.is_file():
                raise InputFileError(
                    f, "model file does not exist (DuINWordDecoder.save writes both)."
                )
        try:
            meta = json.loads(side.read_text())
        except json.JSONDecodeError as err:
            raise InputFileError(side, f"is not valid JSON ({err}).") from None
        if meta.get("format") != "brainalign.DuINWordDecoder":
            raise InputFileError(
                side, "field 'format' is not 'brainalign.DuINWordDecoder'."
            )
        params = dict(meta["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        p = _check_params(est.get_params())
        classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        subjects_ = np.asarray(meta["subjects"], dtype=np.dtype(meta["subjects_dtype"]))
        net = _DuINNet(
            list(meta["n_channels"]),
            classes.size,
            int(meta["patch_len"]),
            int(meta["n_patches"]),
            p["d_model"],
            p["n_layers"],
            p["n_heads"],
            p["dropout"],
            p["codebook_size"],
            p["codebook_dim"],
            bool(meta["vq"]),
        )
        try:
            net.load_state_dict(load_file(str(path)))
        except RuntimeError as err:
            raise InputFileError(
                path, f"weights do not match the sidecar's architecture ({err})."
            ) from None
        net.to(p["device"]).eval()
        est.classes_ = classes
        est.subjects_ = subjects_
        est.n_channels_ = {
            _py(s): int(c) for s, c in zip(subjects_, meta["n_channels"])
        }
        est.patch_len_ = int(meta["patch_len"])
        est.n_patches_ = int(meta["n_patches"])
        est.history_ = {k: list(v) for k, v in meta["history"].items()}
        est.best_epoch_ = int(meta["best_epoch"])
        est.module_ = net
        return est
