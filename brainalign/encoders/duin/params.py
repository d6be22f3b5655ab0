"""Du-IN's hyper-parameters: checking the constructor parameters and the patch geometry.

``_check_params`` validates every parameter of
:class:`~brainalign.encoders.duin.DuINWordDecoder` (and draws a seed for
``random_state=None``); ``_patch_len`` and ``_temporal_stride`` turn the
sampling rate and patch duration into samples per patch and the stride of
the temporal convolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from brainalign._validation import BrainalignError, Boolean, Constraint, Interval, NoneValue, TorchDevice, check_params


#: The constructor parameters of :class:`~brainalign.encoders.duin.DuINWordDecoder` and their allowed values.
PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "sfreq": [Interval("real", 0, None, "neither")],
    "patch_ms": [Interval("real", 0, None, "neither")],
    "d_model": [Interval("int", 1, None)],
    "n_layers": [Interval("int", 0, None)],
    "n_heads": [Interval("int", 1, None)],
    "dropout": [Interval("real", 0.0, 1.0, "left")],
    "codebook_size": [Interval("int", 0, None)],
    "codebook_dim": [Interval("int", 1, None)],
    "pretrain_epochs": [Interval("int", 0, None)],
    "mask_ratio": [Interval("real", 0.0, 1.0, "neither")],
    "epochs": [Interval("int", 1, None)],
    "batch_size": [Interval("int", 1, None)],
    "lr": [Interval("real", 0, None, "neither")],
    "weight_decay": [Interval("real", 0.0, None)],
    "val_fraction": [Interval("real", 0.0, 1.0, "left")],
    "patience": [Interval("int", 1, None)],
    "random_state": [Interval("int", 0, None), NoneValue()],
    "verbose": [Boolean()],
    "device": [TorchDevice()],
}


def _check_params(p: dict[str, Any]) -> dict[str, Any]:
    """Check ``p`` (``get_params()``) against :data:`PARAMETER_CONSTRAINTS` and the rules that tie
    parameters together; return them normalised (floats, ints, a drawn seed, a torch device)."""
    check_params("DuINWordDecoder", p, PARAMETER_CONSTRAINTS)
    out: dict[str, Any] = {}
    for name in ("sfreq", "patch_ms", "dropout", "mask_ratio", "lr", "weight_decay", "val_fraction"):
        out[name] = float(p[name])
    for name in ("d_model", "n_layers", "n_heads", "codebook_size", "codebook_dim", "pretrain_epochs", "epochs",
                 "batch_size", "patience"):
        out[name] = int(p[name])
    if out["d_model"] % out["n_heads"]:
        raise BrainalignError(
            f"'d_model' ({out['d_model']}) must be divisible by 'n_heads' ({out['n_heads']})."
        )
    if out["pretrain_epochs"] > 0 and out["codebook_size"] == 0:
        raise BrainalignError(
            f"'pretrain_epochs' is {out['pretrain_epochs']} but 'codebook_size' is 0: the "
            "pre-training stages need a codebook (e.g. codebook_size=64), or set "
            "pretrain_epochs=0."
        )
    if out["codebook_size"] == 1:
        raise BrainalignError("'codebook_size' must be 0 (no VQ stage) or >= 2, got 1.")
    rs = p["random_state"]
    out["random_state"] = int(np.random.SeedSequence().generate_state(1)[0]) if rs is None else int(rs)
    out["verbose"] = bool(p["verbose"])
    out["device"] = torch.device(p["device"])
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
