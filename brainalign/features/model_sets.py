"""Word-level features of the configured model families (transformer units, SUMA, RNNs), with localization.

One function per family turns a feature-set instance of the config into an
HDF5 file of the *Features* contract, through the chunked, resumable
extraction of :mod:`brainalign.features.activations`. When the instance has a
``localize`` section, the localizer (:mod:`brainalign.features.localizer`) runs
on the same hooked modules and a ``localized`` layer (the selected units,
concatenated in module order) is added beside them; its mask and statistics
are cached and stored in the file (group ``localizer``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..io import _json
from .activations import extract_causal, extract_transformer, tensor_sha256
from .localizer import (
    cached_localizer,
    encode_last_tokens,
    load_localizer_stimuli,
    localize,
)

__all__ = ["transformer_units", "suma_features", "rnn_features", "load_tokenizer", "read_head_functions"]


def load_tokenizer(path: str | os.PathLike | None):
    """A tokenizer from a local folder; None = MiniLM's WordPiece (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from ..models.hf import default_model_path

    folder = default_model_path() if path is None else Path(path)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def transformer_units(spec: dict[str, Any], words: list[str], groups: np.ndarray, out: Path, cache: Path,
                      name: str, times: np.ndarray, prov: dict[str, Any], threads: int, progress: bool,
                      device: str = "cpu") -> Path:
    """Layers, heads and/or MLP units of a ``transformers`` model (with optional attention statistics)."""
    from ..models.hf import load_model

    loaded = load_model(spec["model_path"])
    loaded.model.to(device)
    layers = None if spec["layers"] == "all" else spec["layers"]
    path = extract_transformer(
        loaded, words, groups, out, cache, model_name=name, units=spec["units"], layers=layers,
        pooling=spec["pooling"], context_words=spec["context_words"], attention_stats=spec["attention_stats"],
        batch_size=spec["batch_size"], times=times, prov=prov, progress=progress,
    )
    if "heads" in spec["units"]:
        _add_head_functions(path, _with_lm_head(loaded).to(device), loaded.tokenizer)
    return path


def _with_lm_head(loaded: Any) -> Any:
    """The causal-LM class of a decoder checkpoint (its unembedding serves the successor score), else the model."""
    architectures = getattr(loaded.model.config, "architectures", None) or []
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return loaded.model
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(loaded.path), local_files_only=True,
                                                attn_implementation="eager").eval()


def _add_head_functions(out: Path, model: Any, tokenizer: Any) -> None:
    """Store every head's functional scores (previous-token, induction, copy, successor) in an extraction file."""
    from .head_functions import head_function_scores

    table = head_function_scores(model, tokenizer)
    with h5py.File(out, "a") as f:
        grp = f.require_group("head_functions")
        for column in table.columns:
            grp.create_dataset(column, data=table[column].to_numpy(), track_times=False)
        grp.attrs["successor_reason"] = table.attrs["successor_reason"]
        grp.attrs["copy_steps"] = int(table.attrs["copy_steps"])


def read_head_functions(path: str | os.PathLike) -> pd.DataFrame | None:
    """The head function scores stored by the features stage (None when the file has none)."""
    with h5py.File(path, "r") as f:
        if "head_functions" not in f:
            return None
        grp = f["head_functions"]
        table = pd.DataFrame({name: grp[name][()] for name in ("layer", "head", "previous_token", "induction", "copy",
                                                               "successor")})
        table.attrs["successor_reason"] = str(grp.attrs["successor_reason"])
    return table


def _append_layer(out: Path, name: str, values: np.ndarray) -> None:
    """Append one feature layer to an extraction file (kept in the contract's layer order)."""
    import json

    with h5py.File(out, "a") as f:
        f["layers"].create_dataset(name, data=np.asarray(values, np.float32), compression="gzip",
                                   compression_opts=1, track_times=False)
        f.attrs["layer_order"] = _json(json.loads(f.attrs["layer_order"]) + [name])


def _add_localized(out: Path, result: Any, modules: list[str]) -> None:
    """Append the ``localized`` layer and the localizer's statistics to an extraction file."""
    with h5py.File(out, "r") as f:
        parts = [f["layers"][m][()][:, result.mask[m]] for m in modules]
    _append_layer(out, "localized", np.concatenate(parts, axis=1))
    with h5py.File(out, "a") as f:
        grp = f.create_group("localizer")
        for m in modules:
            sub = grp.create_group(m)
            for field in ("t", "p", "q", "mask"):
                sub.create_dataset(field, data=getattr(result, field)[m], track_times=False)
        grp.attrs["settings"] = _json(result.settings)


def _last_token_batches(run: Any, ids_list: list[list[int]], batch_size: int = 64,
                        device: str = "cpu") -> dict[str, np.ndarray]:
    """Unit activations at each string's last token, strings right-padded in batches (causal models)."""
    import torch

    rows: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for start in range(0, len(ids_list), batch_size):
            batch = ids_list[start:start + batch_size]
            width = max(len(ids) for ids in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, seq in enumerate(batch):
                ids[r, :len(seq)] = torch.tensor(seq)
                mask[r, :len(seq)] = 1
            out = run(ids.to(device), mask.to(device))
            last = torch.tensor([len(seq) - 1 for seq in batch])
            for name, tensor in out.items():
                rows.setdefault(name, []).append(tensor[torch.arange(len(batch)), last].float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in rows.items()}


def _finish(tmp: Path, out: Path) -> Path:
    os.replace(tmp, out)
    return out


def suma_features(spec: dict[str, Any], seed: int, words: list[str], groups: np.ndarray, out: Path, cache: Path,
                  name: str, times: np.ndarray, prov: dict[str, Any], progress: bool, device: str = "cpu") -> Path:
    """SUMA's hooked units per word: ``norm``, ``attn`` (last cycle), ``all`` (both) and, with
    ``localize``, ``localized``."""
    import torch

    from ..models.suma import SUMA

    tokenizer = load_tokenizer(spec["tokenizer_path"])
    model = SUMA(len(tokenizer), d_model=spec["d_model"] or 4096, n_heads=spec["n_heads"] or 512,
                 num_cycles=spec["num_cycles"], init_std=spec["init_std"], seed=seed, head_chunk=16)
    identity = {"architecture": "SUMA", "vocab_size": len(tokenizer), "d_model": model.d_model,
                "n_heads": model.n_heads, "num_cycles": model.num_cycles, "init_std": model.init_std, "seed": seed,
                "tokenizer": getattr(tokenizer, "name_or_path", ""), "weights_sha256": tensor_sha256(model)}
    model.to(device)  # after the hash: the identity is the CPU-initialised weights

    def run_story(ids: list[int]) -> dict[str, Any]:
        res = model(torch.tensor([ids], device=device))
        return {"norm": res["norm"][0], "attn": res["attn"][0]}

    part = out.with_name(out.name + ".units")
    extract_causal(run_story, tokenizer, words, groups, part, cache, model_name=name, identity=identity,
                   times=times, prov=prov, progress=progress)
    with h5py.File(part, "r") as f:
        both = np.concatenate([f["layers"]["norm"][()], f["layers"]["attn"][()]], axis=1)
    _append_layer(part, "all", both)  # the 2 * d_model candidate units together
    if spec.get("localize"):

        def encode(ids_list: list[list[int]]) -> dict[str, np.ndarray]:
            def run(ids: Any, mask: Any) -> dict[str, Any]:
                res = model(ids, mask)
                return {"norm": res["norm"], "attn": res["attn"]}

            return _last_token_batches(run, ids_list, device=device)

        _add_localized(part, _localizer(spec, identity, tokenizer, encode, cache), ["norm", "attn"])
    return _finish(part, out)


def _localizer(spec: dict[str, Any], identity: dict[str, Any], tokenizer: Any, encode: Any, cache: Path) -> Any:
    loc = spec["localize"]
    sentences, nonwords = load_localizer_stimuli(loc["stimuli_dir"])
    top_k = loc["top_k"] if loc["top_k"] < 1 else int(loc["top_k"])
    key = {"model": identity, "top_k": top_k, "variant": loc["variant"], "max_tokens": loc["max_tokens"],
           "n_sentences": len(sentences), "n_nonwords": len(nonwords)}
    return cached_localizer(cache, key, lambda: localize(
        encode_last_tokens(encode, tokenizer, sentences, loc["max_tokens"]),
        encode_last_tokens(encode, tokenizer, nonwords, loc["max_tokens"]), top_k=top_k, variant=loc["variant"]))


def rnn_features(spec: dict[str, Any], seed: int, words: list[str], groups: np.ndarray, out: Path, cache: Path,
                 name: str, times: np.ndarray, prov: dict[str, Any], progress: bool, device: str = "cpu") -> Path:
    """An untrained head-wise RNN LM's states per word: ``L<k>`` (hidden state h of layer k, all heads),
    ``L<k>.c`` (the LSTM/sLSTM cell state), with ``units`` including ``heads`` each head's hidden
    state ``k.hHH``, and with ``localize`` a ``localized`` layer over the ``L<k>``."""
    import torch

    from ..models.rnn import HeadwiseRNNLM

    tokenizer = load_tokenizer(spec["tokenizer_path"])
    model = HeadwiseRNNLM(len(tokenizer), cell=spec["cell"], n_layers=spec["n_layers"], n_heads=spec["n_heads"] or 4,
                          head_dim=spec["head_dim"], seed=seed, backend=spec["backend"])
    # The backend changes float rounding only, so it is not part of the identity (cache key).
    identity = {"architecture": "HeadwiseRNNLM", "cell": spec["cell"], "n_layers": model.n_layers,
                "n_heads": model.n_heads, "head_dim": model.head_dim, "seed": seed, "vocab_size": len(tokenizer),
                "tokenizer": getattr(tokenizer, "name_or_path", ""), "weights_sha256": tensor_sha256(model)}
    model.to(device)  # after the hash: the identity is the CPU-initialised weights
    from ..kernels import resolve_backend

    backend = resolve_backend(device, model.head_dim, spec["backend"], cell=spec["cell"], n_heads=model.n_heads)
    prov = {**prov, "settings": {**prov.get("settings", {}), "kernel_backend": backend}}

    def run_story(ids: list[int]) -> dict[str, Any]:
        res = model(torch.tensor([ids], device=device))
        out_states = {}
        for k, states in enumerate(res["states"], start=1):
            out_states[f"L{k}"] = states[0, 0].reshape(len(ids), -1)
            if spec["cell"] in ("lstm", "slstm"):
                out_states[f"L{k}.c"] = states[1, 0].reshape(len(ids), -1)
        if "heads" in spec["units"]:
            for k, states in enumerate(res["states"], start=1):
                for h in range(model.n_heads):
                    out_states[f"{k}.h{h:02d}"] = states[0, 0, :, h]
        return out_states

    part = out.with_name(out.name + ".units")
    extract_causal(run_story, tokenizer, words, groups, part, cache, model_name=name, identity=identity,
                   times=times, prov=prov, progress=progress)
    if spec.get("localize"):
        modules = [f"L{k}" for k in range(1, model.n_layers + 1)]

        def encode(ids_list: list[list[int]]) -> dict[str, np.ndarray]:
            def run(ids: Any, mask: Any) -> dict[str, Any]:
                res = model(ids)  # causal: right padding never reaches earlier positions
                return {m: res["states"][k][0].flatten(-2) for k, m in enumerate(modules)}

            return _last_token_batches(run, ids_list, device=device)

        _add_localized(part, _localizer(spec, identity, tokenizer, encode, cache), modules)
    return _finish(part, out)
