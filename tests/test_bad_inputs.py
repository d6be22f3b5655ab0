"""An invalid config through every command: exit status 2, one message naming the
file and the field, and nothing left in the output folder (not even a hidden temp file).

The inputs are built in tmp_path: a tiny fake Alice folder with the authors'
layout and configs. The catalogue of malformed data files (NIfTI, FIF/EDF,
HDF5, TextGrid/events, ...) is tests/test_error_catalogue.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from brainalign.cli import main

N = 362  # volumes of an Alice time course

TEXTGRID_NO_WORD_TIER = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.5
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "phone"
        xmin = 0
        xmax = 2.5
        intervals: size = 2
        intervals [1]:
            xmin = 0
            xmax = 1
            text = "AE1"
        intervals [2]:
            xmin = 1
            xmax = 2.5
            text = "L"
'''


def _matrix_text(matrix: np.ndarray) -> str:
    return "".join(" ".join(f"{v: .7e}" for v in row) + "\n" for row in matrix)


def _fake_alice(root: Path, subjects=("s1", "s2")) -> Path:
    rng = np.random.default_rng(0)
    data = root / "alice_data_shared"
    (data / "6mm").mkdir(parents=True)
    for subject in subjects:
        (data / "6mm" / f"{subject}-timecourses.txt").write_text(
            _matrix_text(100 + rng.standard_normal((N, 6))))
        (data / f"{subject}-rp_run01.txt").write_text(_matrix_text(rng.standard_normal((N + 10, 6))))
    stim = root / "alice_stim_shared"
    stim.mkdir()
    (stim / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid").write_text(TEXTGRID_NO_WORD_TIER)
    return root


def _listing(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def env(tmp_path):
    """A fake Alice folder, a valid Alice config, an empty output folder and an inputs folder."""
    fake = _fake_alice(tmp_path / "alice")
    config = tmp_path / "alice_config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"name": "x", "kind": "alice", "data_dir": str(fake)},
        "feature_sets": {"word_rate": {"kind": "word_rate"}},
    }))
    out = tmp_path / "out"
    out.mkdir()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    return {"fake": fake, "config": config, "out": out, "inputs": inputs}


def _fails(capsys, out_dir: Path, argv: list, *expected: str) -> str:
    """Run the CLI; check status 2, the message, and an untouched output folder."""
    before = _listing(out_dir)
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "brainalign: error:" in captured.err
    for text in expected:
        assert text in captured.err, f"{text!r} not in {captured.err!r}"
    assert captured.out == ""
    assert _listing(out_dir) == before
    return captured.err


# --------------------------------------------------------------------------- a valid run first
def test_valid_responses_run_writes_one_file(env, capsys):
    out = env["out"] / "s1.h5"
    assert main(["responses", "--config", str(env["config"]), "--subject", "s1",
                 "--out", str(out)]) == 0
    assert _listing(env["out"]) == ["s1.h5"]


# --------------------------------------------------------------------------- invalid config
@pytest.fixture
def bad_config(env) -> Path:
    path = env["inputs"] / "bad_config.yaml"
    path.write_text(yaml.safe_dump({
        "dataset": {"name": "x", "kind": "alice", "data_dir": str(env["fake"])},
        "feature_sets": {"word_rate": {"kind": "word_rate"}},
        "encodr": {"gap": 3},
    }))
    return path


COMMANDS = {
    "validate": [],
    "subjects": [],
    "stimuli": ["--out", "{out}/events.tsv"],
    "features": ["--events", "{inputs}/events.tsv", "--feature-set", "word_rate",
                 "--out", "{out}/f.h5"],
    "responses": ["--subject", "s1", "--out", "{out}/s1.h5"],
    "design": ["--events", "{inputs}/events.tsv", "--features", "{inputs}/f.h5",
               "--out", "{out}/design.h5"],
    "score": ["--design", "{inputs}/design.h5", "--responses", "{inputs}/s1.h5",
              "--out", "{out}/scores.csv"],
    "ceiling": ["--responses", "{inputs}/s1.h5", "--out", "{out}/ceiling.csv"],
    "aggregate": ["--scores", "{inputs}/s.csv", "--ceiling", "{inputs}/c.csv",
                  "--out-dir", "{out}/agg"],
    "report": ["--results-dir", "{inputs}", "--out", "{out}/report.html",
               "--figures-dir", "{out}/figures"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_invalid_config_for_every_command(env, bad_config, capsys, command):
    extra = [a.format(out=env["out"], inputs=env["inputs"]) for a in COMMANDS[command]]
    _fails(capsys, env["out"], [command, "--config", bad_config, *extra],
           str(bad_config), "field 'encodr'", "unknown key", "Did you mean 'encoder'?")


def test_invalid_config_through_the_installed_command(env, bad_config):
    exe = shutil.which("brainalign") or str(Path(sys.executable).parent / "brainalign")
    before = _listing(env["out"])
    proc = subprocess.run([exe, "stimuli", "--config", str(bad_config), "--out",
                           str(env["out"] / "events.tsv")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert str(bad_config) in proc.stderr and "'encodr'" in proc.stderr
    assert _listing(env["out"]) == before
