"""Helpers both captioners share: input conversion and checks, the ``generate`` keywords
they reserve, cutting generated ids at the end token, eval mode, tokenizer loading and
batching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brainalign._validation import BrainalignError

# ``generate`` sets these itself; passing them through ``**generate_kwargs`` is an error.
_RESERVED_GENERATE_KWARGS = frozenset(
    {
        "input_ids",
        "inputs",
        "inputs_embeds",
        "pixel_values",
        "attention_mask",
        "max_new_tokens",
        "max_length",
        "num_beams",
        "return_dict_in_generate",
        "num_return_sequences",
    }
)


def _as_float_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` (NumPy, torch or nested lists) as a finite floating-point tensor."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.bool)):
            raise BrainalignError(f"'{name}' must hold real numbers, got a tensor of dtype {t.dtype}.")
        if not t.is_floating_point():
            t = t.float()
    else:
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise BrainalignError(f"'{name}' must be an array of real numbers ({err}).") from err
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.numel() == 0:
        raise BrainalignError(f"'{name}' must not be empty, got shape {tuple(t.shape)}.")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        first = tuple(int(i) for i in torch.nonzero(~finite)[0])
        raise BrainalignError(
            f"'{name}' contains {int((~finite).sum())} NaN or infinite value(s), the first at index {first}."
        )
    return t


def _check_generate_kwargs(kwargs: dict[str, Any]) -> None:
    bad = sorted(set(kwargs) & _RESERVED_GENERATE_KWARGS)
    if bad:
        raise BrainalignError(
            f"'generate_kwargs' must not set {', '.join(repr(b) for b in bad)}: the captioner sets "
            "them itself (use the 'max_new_tokens' and 'num_beams' arguments)."
        )


def _trim(ids: torch.Tensor, eos_token_ids: set[int]) -> list[list[int]]:
    """Rows of generated ids, each cut before its first end-of-sequence token."""
    rows = []
    for row in ids.tolist():
        out = []
        for tok in row:
            if tok in eos_token_ids:
                break
            out.append(int(tok))
        rows.append(out)
    return rows


def _eos_set(*candidates: Any) -> set[int]:
    out: set[int] = set()
    for c in candidates:
        if c is None:
            continue
        if isinstance(c, torch.Tensor):
            c = c.tolist()
        if isinstance(c, (list, tuple, set)):
            out.update(int(v) for v in c)
        else:
            out.add(int(c))
    return out


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode and restore their ``training`` flags afterwards."""
    flags = [[(m, m.training) for m in mod.modules()] for mod in modules]
    for mod in modules:
        mod.eval()
    try:
        yield
    finally:
        for group in flags:
            for m, was in group:
                m.training = was


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _batches(n: int, batch_size: int | None) -> list[slice]:
    step = n if batch_size is None else batch_size
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]
