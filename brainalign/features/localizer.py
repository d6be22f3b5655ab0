"""The language localizer: units that respond more to sentences than to nonword strings.

Fedorenko et al. (2010) stimuli: 240 twelve-word sentences (``stim14 == "S"``)
and 240 nonword strings (``"N"``), words in ``stim2 .. stim13``, lower-cased.
Each string's activation is the **last content token** of every hooked module
(Brain-Score's definition; with encoders that add special tokens we read the
last real token, not ``[SEP]``), after truncating the string to
``max_tokens`` tokens. Per unit, Welch's t-test of sentences against nonwords
(``scipy.stats.ttest_ind(..., equal_var=False)``); the localized set is the
**global** top-k t-values across all hooked modules (``k`` an integer, or a
fraction of all units). Two published variants differ in the activations
tested: ``"raw"`` (Brain-Score Language 2.3.0) and ``"absolute"`` (the SUMA
authors' later code, which also stores Benjamini–Hochberg q-values); both
select by top-k t. q-values are stored in either case.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import BrainalignError, InputFileError
from ..io import _json, atomic_path

__all__ = ["load_localizer_stimuli", "LocalizerResult", "localize", "cached_localizer", "encode_last_tokens"]


def load_localizer_stimuli(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Sentences and nonword strings from the ``langloc_fmri_run*_stim_set*.csv`` files.

    Returns
    -------
    sentences, nonwords : list of str
        Lower-cased strings of the 12 words, in file order (240 each for the
        published set).
    """
    folder = Path(folder)
    files = sorted(folder.glob("langloc_fmri_run*_stim_set*.csv"))
    if not files:
        raise InputFileError(folder, "no 'langloc_fmri_run*_stim_set*.csv' file in this folder.")
    sentences, nonwords = [], []
    seen = set()
    for path in files:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        cols = [f"stim{k}" for k in range(2, 14)] + ["stim14"]
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise InputFileError(path, f"missing column(s) {missing}.")
        for _, row in table.iterrows():
            text = " ".join(row[f"stim{k}"].strip() for k in range(2, 14)).lower()
            kind = row["stim14"].strip().upper()
            if (text, kind) in seen:
                continue
            seen.add((text, kind))
            if kind == "S":
                sentences.append(text)
            elif kind == "N":
                nonwords.append(text)
    if not sentences or not nonwords:
        raise InputFileError(folder, f"found {len(sentences)} sentences and {len(nonwords)} nonword strings.")
    return sentences, nonwords


@dataclass
class LocalizerResult:
    """Per-unit statistics and the selected units, per hooked module.

    Attributes
    ----------
    t, p, q : dict of str to ndarray (n_units_module,)
        Welch t (sentences − nonwords), two-sided p, Benjamini–Hochberg q
        (over all units of all modules).
    mask : dict of str to ndarray of bool
        The selected units (global top-k of t).
    settings : dict
    """

    t: dict[str, np.ndarray]
    p: dict[str, np.ndarray]
    q: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]
    settings: dict[str, Any]

    @property
    def n_selected(self) -> int:
        return int(sum(m.sum() for m in self.mask.values()))


def localize(sentences: dict[str, np.ndarray], nonwords: dict[str, np.ndarray], top_k: int | float = 4096,
             variant: str = "raw") -> LocalizerResult:
    """Welch t per unit and the global top-k across modules.

    Parameters
    ----------
    sentences, nonwords : dict of str to ndarray (n_strings, n_units)
        Activations per hooked module (same modules and units in both).
    top_k : int or float
        Units kept: an int ≥ 1, or a fraction in (0, 1] of all units.
    variant : {"raw", "absolute"}
        Test raw activations, or their absolute values.

    Returns
    -------
    LocalizerResult
    """
    from scipy import stats

    if variant not in ("raw", "absolute"):
        raise BrainalignError(f"variant must be 'raw' or 'absolute', got {variant!r}.")
    names = list(sentences)
    if list(nonwords) != names:
        raise BrainalignError("sentences and nonwords must have the same modules.")
    t, p = {}, {}
    for name in names:
        a, b = np.asarray(sentences[name], np.float64), np.asarray(nonwords[name], np.float64)
        if variant == "absolute":
            a, b = np.abs(a), np.abs(b)
        res = stats.ttest_ind(a, b, axis=0, equal_var=False)
        t[name] = np.nan_to_num(res.statistic, nan=-np.inf)
        p[name] = np.nan_to_num(res.pvalue, nan=1.0)
    all_t = np.concatenate([t[n] for n in names])
    n_total = all_t.size
    if isinstance(top_k, float) and not float(top_k).is_integer() or (isinstance(top_k, float) and top_k <= 1):
        if not 0 < top_k <= 1:
            raise BrainalignError(f"a fractional top_k must be in (0, 1], got {top_k}.")
        k = int(round(top_k * n_total))
    else:
        k = int(top_k)
    if not 1 <= k <= n_total:
        raise BrainalignError(f"top_k selects {k} units of {n_total}.")
    # Global top-k by t; ties broken by unit order (stable sort) for determinism.
    order = np.argsort(-all_t, kind="stable")[:k]
    selected = np.zeros(n_total, bool)
    selected[order] = True
    q_all = stats.false_discovery_control(np.concatenate([p[n] for n in names]))
    mask, q, start = {}, {}, 0
    for name in names:
        size = t[name].size
        mask[name] = selected[start:start + size]
        q[name] = q_all[start:start + size]
        start += size
    return LocalizerResult(t, p, q, mask, {"top_k": top_k, "k": k, "variant": variant, "test": "Welch t"})


def encode_last_tokens(encode_ids: Callable[[list[list[int]]], dict[str, np.ndarray]], tokenizer: Any,
                       texts: Sequence[str], max_tokens: int = 12) -> dict[str, np.ndarray]:
    """Tokenize strings (at most ``max_tokens`` content tokens, right-truncated) and encode them.

    ``encode_ids(list of token-id lists)`` returns module → (n_strings, n_units)
    at each string's last content token.
    """
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens] for text in texts]
    return encode_ids(ids)


def cached_localizer(cache_dir: str | os.PathLike, key: dict[str, Any],
                     compute: Callable[[], LocalizerResult]) -> LocalizerResult:
    """Load a localizer result cached under ``key`` (model, seed, settings), or compute and cache it."""
    import hashlib

    path = Path(cache_dir) / f"localizer_{hashlib.sha256(_json(key).encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            fields = {f: {n: z[f"{f}|{n}"] for n in names} for f in ("t", "p", "q", "mask")}
            import json

            return LocalizerResult(fields["t"], fields["p"], fields["q"],
                                   {n: m.astype(bool) for n, m in fields["mask"].items()},
                                   json.loads(str(z["settings"])))
    result = compute()
    arrays = {"names": np.array(list(result.t)), "settings": np.array(_json(result.settings)),
              "key": np.array(_json(key))}
    for field in ("t", "p", "q", "mask"):
        for name, values in getattr(result, field).items():
            arrays[f"{field}|{name}"] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return result
