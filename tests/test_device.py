"""The workflow's ``device`` setting: resolution on this machine, clear errors, the stages that read it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from brainalign._validation import ConfigError
from brainalign.backend import device as device_mod
from brainalign.backend.device import check_device, resolve_device, ridge_backend, uses_gpu
from brainalign.cli import main
from brainalign.config import load_config

REPO = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO / "workflows" / "configs" / "simulated_ci.yaml"


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices."""

    def set_count(n: int) -> None:
        monkeypatch.setattr(device_mod, "_available_gpus", lambda: n)

    return set_count


def test_auto_is_the_first_gpu_when_there_is_one_else_the_cpu(gpus):
    gpus(0)
    assert check_device("auto") == "cpu"
    assert check_device("cpu") == "cpu"
    gpus(2)
    assert check_device("auto") == "cuda:0"
    assert check_device("cuda") == "cuda:0"
    assert check_device("cuda:1") == "cuda:1"
    assert check_device("cpu") == "cpu"  # asked for explicitly: never moved to a GPU


@pytest.mark.parametrize("spec,count,message", [
    ("cuda", 0, "field 'device': is 'cuda' but torch sees no CUDA device on this machine"),
    ("cuda:0", 0, "torch sees no CUDA device"),
    ("cuda:2", 2, "is 'cuda:2' but this machine has 2 CUDA device\\(s\\) \\(cuda:0 to cuda:1\\)"),
    ("gpu", 1, "must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ("cuda:x", 1, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
])
def test_a_device_this_machine_lacks_is_a_clear_error(gpus, spec, count, message):
    gpus(count)
    with pytest.raises(ConfigError, match=message):
        check_device(spec)


def test_language_device_defaults_to_the_top_level_device(gpus):
    gpus(0)
    cfg = load_config(CI_CONFIG)
    assert cfg["device"] == "cpu" and cfg["language"]["device"] is None
    assert resolve_device(cfg, field="language.device") == "cpu"
    cfg["device"] = "cuda"
    with pytest.raises(ConfigError, match="field 'device'"):
        resolve_device(cfg, field="language.device")
    cfg["language"]["device"] = "cpu"  # the language models stay on the CPU while the rest would not
    assert resolve_device(cfg, field="language.device") == "cpu"
    cfg["language"]["device"] = "cuda:1"
    with pytest.raises(ConfigError, match="field 'language.device'"):
        resolve_device(cfg, field="language.device")


def test_ridge_backend_follows_the_device():
    assert ridge_backend("cpu") == "numpy"
    assert ridge_backend("cpu", "torch") == "torch"
    assert ridge_backend("cuda:0") == "torch_cuda"
    assert uses_gpu("cuda:1") and uses_gpu("cuda") and not uses_gpu("auto") and not uses_gpu("cpu")


def _config_with(tmp_path: Path, **top) -> Path:
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    cfg.update(top)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("value,message", [
    ("gpu", "field 'device'"),
    ("cuda:123", "field 'device'"),
])
def test_the_schema_refuses_a_malformed_device(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config_with(tmp_path, device=value))


def test_validate_refuses_cuda_on_a_machine_without_a_gpu(tmp_path, gpus, capsys):
    gpus(0)
    path = _config_with(tmp_path, device="cuda")
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "field 'device'" in err and "no CUDA device" in err
    path = _config_with(tmp_path, device="auto")
    assert main(["validate", "--config", str(path)]) == 0
    assert "device cpu" in capsys.readouterr().out


@pytest.mark.workflow
def test_the_slurm_profile_gets_a_gpu_request_exactly_for_the_gpu_rules(tmp_path):
    """Dry runs with the real Snakemake: ``gpu=1`` on the tensor-heavy rules with ``device: cuda``, nowhere else."""
    import re
    import subprocess
    import sys

    def requests(device: str) -> dict[str, set[str]]:
        path = _config_with(tmp_path, device=device)
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                               "-d", str(tmp_path / device), "--config", f"config_path={path}"],
                              capture_output=True, text=True, check=True)
        found: dict[str, set[str]] = {}
        for block in re.split(r"^\[[^\]]+\]$", proc.stdout + proc.stderr, flags=re.M):
            rule = re.search(r"^(?:local)?rule (\w+):$", block, re.M)
            if rule:
                resources = re.search(r"^\s+resources: (.*)$", block, re.M)
                gpu = resources is not None and "gpu=1" in resources.group(1).split(", ")
                found.setdefault(rule.group(1), set()).add("gpu=1" if gpu else "-")
        return found

    on_gpu = requests("cuda")  # the dry run never touches a GPU: the request is decided from the config
    assert on_gpu["features"] == on_gpu["score"] == {"gpu=1"}  # the ROI path's ridge and shifts: torch_cuda
    assert all(v == {"-"} for rule, v in on_gpu.items() if rule not in ("features", "score")), on_gpu
    assert "responses" in on_gpu and "ceiling" in on_gpu
    assert all(v == {"-"} for v in requests("auto").values())
