"""Model names resolve from the local Hugging Face cache, offline; otherwise the error says how to make a model
available (issue #21: ``load_model("gpt2")`` said only that a folder does not exist)."""

from __future__ import annotations

import pytest

from brainalign._validation import InputFileError
from brainalign.models.hf import load_causal_lm, load_model, resolve_model_dir


def _cache_with(tmp_path, repo: str, save) -> None:
    """A hub cache as huggingface_hub lays it out: models--org--name/{refs/main, snapshots/<revision>/...}."""
    folder = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    save(snapshot)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(snapshot.name)


def test_a_cached_hub_name_loads_offline(tmp_path, monkeypatch):
    from transformers import BertConfig, BertModel, BertTokenizerFast, GPT2Config, GPT2LMHeadModel

    def save_bert(folder):
        BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16)).save_pretrained(folder)
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
        BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)

    def save_gpt2(folder):
        GPT2LMHeadModel(GPT2Config(vocab_size=30, n_embd=8, n_layer=1, n_head=2)).save_pretrained(folder)
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
        BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)

    _cache_with(tmp_path, "org/tiny-bert", save_bert)
    _cache_with(tmp_path, "tiny-gpt2", save_gpt2)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    loaded = load_model("org/tiny-bert")
    assert loaded.path.parent.name == "snapshots" and loaded.identity["n_layers"] == 1
    model, _ = load_causal_lm("tiny-gpt2")
    assert model.config.n_layer == 1
    # A folder is still a folder, whatever the cache holds.
    assert resolve_model_dir(loaded.path) == loaded.path


def test_an_unavailable_model_says_how_to_make_it_available_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(InputFileError) as err:
        load_model("gpt2")
    message = str(err.value)
    assert "does not exist as a folder, and 'gpt2' is not in the local Hugging Face cache" in message
    assert str(tmp_path / "empty" / "hub") in message
    assert "huggingface-cli download gpt2" in message and "save_pretrained" in message
    with pytest.raises(InputFileError, match="does not exist"):  # a path, not a name: the plain error
        load_causal_lm(tmp_path / "missing")


def test_a_hub_name_in_a_config_stays_a_name(tmp_path):
    """Relative paths in a config are resolved against its folder, but 'gpt2' (no such folder there) is a name."""
    import copy
    from pathlib import Path

    import yaml

    from brainalign.config import load_config

    (tmp_path / "local_model").mkdir()
    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "workflows" / "configs" / "simulated_ci.yaml")
                         .read_text())
    for key, value in (("a", "gpt2"), ("b", "local_model")):
        raw["feature_sets"][key] = {**copy.deepcopy(raw["feature_sets"]["minilm"]), "model_path": value}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg["feature_sets"]["a"]["model_path"] == "gpt2"
    assert cfg["feature_sets"]["b"]["model_path"] == str((tmp_path / "local_model").resolve())
