"""The wheel (any non-editable install) holds every module and the package data.

A hand-kept package list once shipped wheels without ``brainalign.backend``. This
builds the wheel from a copy of the sources (about two seconds, no network: the
test environment's setuptools) and compares its file list with the source tree.
``.ci/wheel`` goes further: it installs the wheel into a fresh environment and
imports every module from there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Source folder -> the package it installs as (kernels/ and decoders/ never top level).
ROOTS = {"brainalign": "brainalign", "kernels": "brainalign/kernels", "decoders": "brainalign/decoders"}


def _source_files() -> set[str]:
    """Where every module and data file of the source tree must land in the wheel."""
    expected = {"brainalign/schemas/config.schema.json"}
    for folder, target in ROOTS.items():
        for py in (REPO / folder).rglob("*.py"):
            if "__pycache__" in py.parts or not (py.parent / "__init__.py").exists():
                continue
            expected.add(f"{target}/{py.relative_to(REPO / folder).as_posix()}")
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    for folder in ROOTS:
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(dist), str(src)],
        check=True, cwd=dist, capture_output=True, timeout=600,
    )
    (path,) = dist.glob("brainalign-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_holds_every_module_and_the_schema(wheel):
    files = set(wheel.namelist())
    missing = sorted(_source_files() - files)
    assert not missing, f"the wheel lacks {missing}"
    assert "brainalign/backend/__init__.py" in files  # the package a hand-kept list once missed


def test_wheel_installs_only_the_brainalign_namespace(wheel):
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"brainalign"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["brainalign"]
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "brainalign = brainalign.cli:main" in wheel.read(entry_points).decode()
