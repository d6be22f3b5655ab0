"""``brainalign init KIND``: a commented config template for every dataset kind (issue #21)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from brainalign.cli import INTERACTIVE_COMMANDS, main
from brainalign.config import load_config
from brainalign.datasets.registry import KINDS, kind_names
from brainalign.datasets.templates import TEMPLATE_DIR, config_template, template_kinds

REPO = Path(__file__).resolve().parent.parent
#: A mapping key of a YAML line (block style), with the indentation before it.
KEY = re.compile(r"^\s*(?:- )?(?:[A-Za-z_][\w.-]*|\"[^\"]+\"):(?:\s|$)")
#: Placeholder paths that name files (anything else under data/ is a folder).
FILE_SUFFIXES = (".tsv", ".csv", ".h5", ".nii.gz", ".zip", ".fif")


def _placeholders(node, found: list[str]) -> list[str]:
    """Every ``data/...`` path of a parsed template, patterns with ``{subject}`` left out."""
    if isinstance(node, dict):
        for value in node.values():
            _placeholders(value, found)
    elif isinstance(node, list):
        for value in node:
            _placeholders(value, found)
    elif isinstance(node, str) and node.startswith("data/") and "{" not in node:
        found.append(node)
    return found


def test_every_built_in_kind_has_a_template():
    kind_names()  # the registry, with any kinds of installed packages (they need no template)
    assert template_kinds() == sorted(k for k, target in KINDS.items() if target.startswith("brainalign."))


@pytest.mark.parametrize("kind", template_kinds())
def test_the_written_template_loads_once_its_placeholder_paths_exist(tmp_path, kind, capsys):
    out = tmp_path / "study" / "my.yaml"
    assert main(["init", kind, "-o", str(out)]) == 0
    assert out.read_text() == config_template(kind)
    assert str(out) in capsys.readouterr().err
    paths = _placeholders(yaml.safe_load(out.read_text()), [])
    for rel in paths:
        path = out.parent / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch() if rel.endswith(FILE_SUFFIXES) else path.mkdir(exist_ok=True)
    cfg = load_config(out)
    assert cfg["dataset"]["kind"] == kind
    assert all(str(out.parent / rel) in str(cfg) for rel in paths)  # resolved against the config's folder


@pytest.mark.parametrize("kind", template_kinds())
def test_every_key_of_a_template_is_explained(kind):
    lines = config_template(kind).splitlines()
    bare = [f"line {i + 1}: {line}" for i, line in enumerate(lines)
            if KEY.match(line) and "#" not in line and not (i and lines[i - 1].lstrip().startswith("#"))]
    assert bare == []
    assert lines[0].startswith("# ") and f"brainalign init {kind}" in "\n".join(lines[:4])


@pytest.mark.parametrize("kind", ["simulated", "simulated_meeg", "simulated_seeg", "simulated_images"])
def test_a_simulated_template_validates_as_written(tmp_path, kind, capsys):
    out = tmp_path / "my.yaml"
    main(["init", kind, "-o", str(out)])
    assert main(["validate", "--config", str(out)]) == 0
    assert f"{out}: valid" in capsys.readouterr().out


def test_without_out_the_template_goes_to_stdout_and_nothing_is_logged(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "brainalign", "init", "alice"], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert proc.stdout == config_template("alice") and proc.stderr == "" and list(tmp_path.iterdir()) == []
    assert "init" in INTERACTIVE_COMMANDS


def test_an_existing_file_is_kept_unless_forced(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    out.write_text("dataset: {name: mine}\n")
    assert main(["init", "timeseries", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "already exists" in err and "--force" in err
    assert out.read_text() == "dataset: {name: mine}\n"
    assert main(["init", "timeseries", "-o", str(out), "--force"]) == 0
    assert out.read_text() == config_template("timeseries")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]  # no temporary or lock file left


def test_an_unknown_kind_lists_the_known_ones(capsys):
    assert main(["init", "fmri"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset kind 'fmri'" in err and all(kind in err for kind in template_kinds())


def test_the_templates_are_package_data():
    """Every template ships in the wheel (a pattern of pyproject's package-data covers it)."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for path in TEMPLATE_DIR.glob("*.yaml"):
        rel = path.relative_to(REPO / "brainalign").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns["brainalign"]), rel


def test_the_workflow_folder_keeps_its_timeseries_template():
    """``workflows/templates/timeseries.yaml`` (named in the README) stays the packaged template."""
    assert (REPO / "workflows" / "templates" / "timeseries.yaml").read_text() == config_template("timeseries")
