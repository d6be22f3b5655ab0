"""Disk faults end in one clear line naming the path, exit status 2, and nothing half-written.

A read-only file system, a full disk, the file-size limit, a parent that is a
file and an output path that is a folder, each through the real command line
(``brainalign stimuli`` writing the events table and its provenance sidecar).
Read-only and full disks are simulated by making the write fail with the
operating system's own error (root ignores file permissions here); the
file-size limit is a real ``RLIMIT_FSIZE`` in a subprocess.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainalign.cli import main
from brainalign.io import write_table


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"name": "disk", "kind": "simulated"},
                                    "simulation": {"n_words": 200},
                                    "feature_sets": {"minilm": {"kind": "transformer"}}}))
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _fail_on(monkeypatch, function: str, code: int) -> None:
    """Make ``os.<function>`` fail with ``code`` for paths under results/ (as the kernel would)."""
    original = getattr(os, function)

    def failing(src, *args, **kwargs):
        if "results" in str(src):
            raise OSError(code, os.strerror(code), str(src))
        return original(src, *args, **kwargs)

    monkeypatch.setattr(os, function, failing)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")])
def test_read_only_or_full_disk(config, tmp_path, monkeypatch, capsys, code, words):
    out = tmp_path / "results" / "stimuli" / "events.tsv"
    out.parent.mkdir(parents=True)
    _fail_on(monkeypatch, "replace", code)
    assert main(["stimuli", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "events.tsv" in err[0], err
    assert errno.errorcode[code] in err[0]
    assert _listing(tmp_path / "results") == ["stimuli"]  # no temporary file, no sidecar


def test_parent_is_a_file(config, tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    out = tmp_path / "results" / "stimuli" / "events.tsv"
    assert main(["stimuli", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "results" in err and ("not a folder" in err or "folder is needed" in err), err
    assert (tmp_path / "results").read_text() == "not a folder"


def test_output_path_is_a_folder(config, tmp_path, capsys):
    out = tmp_path / "results" / "events.tsv"
    out.mkdir(parents=True)
    assert main(["stimuli", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "events.tsv" in err and "is a folder" in err, err
    assert out.is_dir() and not any(out.iterdir())
    assert _listing(tmp_path / "results") == ["events.tsv"]  # no temporary file left beside it


def test_file_size_limit(config, tmp_path):
    """A real RLIMIT_FSIZE: the write fails with EFBIG (SIGXFSZ is ignored) and gets a clear error."""
    out = tmp_path / "results" / "events.tsv"
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000)); "
              "from brainalign.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, "stimuli", "--config", str(config), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "file-size limit" in proc.stderr and "EFBIG" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _listing(tmp_path / "results") == []


def test_write_table_writes_the_sidecar_last(tmp_path, monkeypatch):
    """A table that fails to write leaves no provenance sidecar behind (and no table)."""
    table = pd.DataFrame({"a": [1, 2]})
    real_to_csv = pd.DataFrame.to_csv

    def full_disk(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(OSError):
        write_table(tmp_path / "t.csv", table, {"stage": "x"})
    assert _listing(tmp_path) == []
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    write_table(tmp_path / "t.csv", table, {"stage": "x"})
    assert _listing(tmp_path) == ["t.csv", "t.csv.json"]
