"""Configs are plain data, and a workflow never writes outside results/ or over a running run's config.

Against the real Snakemake (dry runs, and one run refused before any job):
YTE templates, path-unsafe names, one config per dataset name at a time.
The error messages of each refused config are in tests/test_error_catalogue.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from brainalign.cli import main
from brainalign.config import dump_config, load_config, read_config_file, validate_config
from brainalign.pipeline.workflow_lock import DatasetInUseError, claim_dataset_config

REPO = Path(__file__).resolve().parent.parent
CI_CONFIG = REPO / "workflows" / "configs" / "simulated_ci.yaml"
YTE_TEMPLATE = "__use_yte__: true\n?if __import__('os').system('touch pwned') == 0:\n  threads: 1\n"


def _snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
                           "-d", str(workdir), *args], cwd=workdir, check=False, capture_output=True, text=True,
                          env=env, timeout=timeout)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".snakemake" not in p.parts)


def _ci_config(folder: Path, name: str = "ci.yaml", **encoder) -> Path:
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    cfg["encoder"] = {**cfg.get("encoder", {}), **encoder}
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


# --------------------------------------------------------------------------- YTE templates
def test_configfile_runs_a_template_config_path_never_does(tmp_path):
    """What docs/reliability.md says about --configfile, checked against the real Snakemake."""
    config = tmp_path / "template.yaml"
    config.write_text(YTE_TEMPLATE + CI_CONFIG.read_text())
    # --configfile: Snakemake evaluates the template while loading it; the workflow then refuses it.
    proc = _snakemake(tmp_path, "-n", "--configfile", str(config))
    assert proc.returncode != 0
    assert "YTE templates are not accepted" in proc.stdout + proc.stderr
    assert (tmp_path / "pwned").exists(), "Snakemake no longer evaluates YTE: update docs/reliability.md"
    (tmp_path / "pwned").unlink()
    # config_path, and `brainalign run`: refused without ever being evaluated.
    proc = _snakemake(tmp_path, "-n", "--config", f"config_path={config}")
    assert proc.returncode != 0 and "YTE templates are not accepted" in proc.stdout + proc.stderr
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["run", str(config), "--snakefile", str(REPO / "Snakefile"), "-n"]) == 2
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "results").exists()


def test_brainalign_run_is_snakemake_with_config_path(tmp_path, capfd):
    config = _ci_config(tmp_path)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        # "--" ends brainalign's own options wherever it stands; Snakemake never sees it.
        status = main(["run", str(config), "--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--", "-n",
                       "--config", "threads=1"])
    finally:
        os.chdir(cwd)
    out, err = capfd.readouterr()
    assert status == 0, err
    assert f"--cores 1 -n --config config_path={config.resolve()} threads=1" in err
    assert "resolved_config" in out + err  # the plan writes the resolved config; the dry run did not
    assert not (tmp_path / "results").exists()


def test_config_path_and_configfile_together_are_refused(tmp_path):
    config = _ci_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "--configfile", str(config), "--config", f"config_path={config}")
    assert proc.returncode != 0
    assert "either with --configfile or with --config config_path=FILE" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- plain data
def test_billion_laughs_is_refused_at_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 12)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.process_time()
    with pytest.raises(Exception, match="anchors and aliases are not accepted"):
        read_config_file(path)
    assert time.process_time() - start < 5  # CPU time, not wall time: seconds, not the 98 s before


def test_shared_references_in_a_dict_are_bounded():
    """A config built in Python with shared references (the dict form of a YAML bomb)."""
    level = ["x"] * 9
    for _ in range(8):
        level = [level] * 9
    with pytest.raises(Exception, match="more than 100000 values"):
        validate_config({"dataset": {"name": "x", "kind": "simulated"}, "feature_sets": {}, "bomb": level})


def test_dump_config_reads_back(tmp_path):
    cfg = load_config(CI_CONFIG)
    shared = {"a": 1}
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config({**cfg, "x": shared, "y": shared}))
    assert read_config_file(path) == {**cfg, "x": shared, "y": shared}


# --------------------------------------------------------------------------- nothing outside results/
def test_dry_run_of_unsafe_names_writes_nothing(tmp_path):
    repo_like = tmp_path / "repo"
    repo_like.mkdir()
    for name, sets in ((["..", {}]), (["ok", {"../../../../x": {"kind": "word_rate"}}])):
        cfg = yaml.safe_load(CI_CONFIG.read_text())
        cfg["dataset"]["name"] = name
        cfg["feature_sets"].update(sets)
        config = tmp_path / "unsafe.yaml"
        config.write_text(yaml.safe_dump(cfg))
        before = _listing(tmp_path)
        proc = _snakemake(repo_like, "-n", "--config", f"config_path={config}")
        assert proc.returncode != 0
        assert "is not allowed" in proc.stdout + proc.stderr
        assert _listing(tmp_path) == before


def test_dry_run_writes_nothing_even_with_a_changed_config(tmp_path):
    first = _ci_config(tmp_path, "a.yaml")
    assert _snakemake(tmp_path, "-n", "--config", f"config_path={first}").returncode == 0
    assert not (tmp_path / "results").exists()
    # An existing resolved config that differs: a dry run reports it, leaves it.
    resolved = tmp_path / "results" / "simulated_ci" / "config.yaml"
    resolved.parent.mkdir(parents=True)
    resolved.write_text("old: config\n")
    proc = _snakemake(tmp_path, "-n", "--config", f"config_path={first}")
    assert proc.returncode == 0, proc.stderr
    assert "nothing is written" in proc.stderr
    assert resolved.read_text() == "old: config\n"


# --------------------------------------------------------------------------- one config per dataset name
_HOLDER = textwrap.dedent("""
    import sys, time
    from brainalign.pipeline.workflow_lock import claim_dataset_config
    claim_dataset_config(None, sys.argv[1], open(sys.argv[2]).read())
    print("claimed", flush=True)
    time.sleep(600)
""")


def _hold(workdir: Path, config_file: Path, resolved: str) -> subprocess.Popen:
    """A process that claims the dataset as a running workflow does, until killed."""
    text = workdir / "held.yaml"
    text.write_text(resolved)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(config_file), str(text)], cwd=workdir,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"  # blocks until the claim is taken, however slow
    return proc


def test_claim_refuses_another_config_while_a_run_lives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_file = Path("results/d/config.yaml")
    holder = _hold(tmp_path, config_file, "a: 1\n")
    try:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text("a: 1\n")  # as the running workflow's rule wrote it
        with pytest.raises(DatasetInUseError, match="field 'dataset.name'.*another running workflow"):
            claim_dataset_config(None, config_file, "a: 2\n", source="b.yaml")
        assert config_file.read_text() == "a: 1\n"
        assert claim_dataset_config(None, config_file, "a: 1\n") is False  # the same config joins
    finally:
        holder.kill()
        holder.wait()
    # The holder died (as a SIGKILLed run does): the next run claims the name, removes the stale file.
    assert claim_dataset_config(None, config_file, "a: 2\n") is True
    assert not config_file.exists()


def test_second_workflow_with_another_config_is_refused(tmp_path):
    """Real Snakemake, no dry run: refused before any job, and the running run's config.yaml is untouched."""
    first, second = _ci_config(tmp_path, "a.yaml", outer_folds=4), _ci_config(tmp_path, "b.yaml", outer_folds=3)
    resolved = dump_config(load_config(first))
    config_file = tmp_path / "results" / "simulated_ci" / "config.yaml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(resolved)
    holder = _hold(tmp_path, Path("results/simulated_ci/config.yaml"), resolved)
    try:
        before = _listing(tmp_path / "results")
        proc = _snakemake(tmp_path, "--config", f"config_path={second}")
        assert proc.returncode != 0
        assert f"{second}: field 'dataset.name'" in proc.stdout + proc.stderr
        assert config_file.read_text() == resolved
        assert _listing(tmp_path / "results") == before
        # The same config as the running one is accepted (a dry run here).
        assert _snakemake(tmp_path, "-n", "--config", f"config_path={first}").returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_version_is_the_packages(capsys):
    import tomllib

    import brainalign

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"brainalign {brainalign.__version__}" == f"brainalign {declared}"
