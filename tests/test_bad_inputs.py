"""Bad inputs through the command line: exit status 2, one message naming the file
and the field, and nothing left in the output folder (not even a hidden temp file).

The bad inputs are built in tmp_path: a tiny fake Alice folder with the
authors' layout, events/features/design/responses files written with
brainalign's own writers, and configs.
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
from brainalign.io import Features, Responses, write_features, write_responses
from brainalign.stimuli.events import write_events

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


def _tc(env, subject="s1") -> Path:
    return env["fake"] / "alice_data_shared" / "6mm" / f"{subject}-timecourses.txt"


def _replace_line(path: Path, index: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = new + "\n"
    path.write_text("".join(lines))


def _events(path: Path, n_words: int) -> Path:
    import pandas as pd

    events = pd.DataFrame({"onset": 20.0 + 0.4 * np.arange(n_words), "duration": 0.3,
                           "word": [f"w{i}" for i in range(n_words)], "run": 1})
    return write_events(path, events)


# --------------------------------------------------------------------------- a valid run first
def test_valid_responses_run_writes_one_file(env, capsys):
    out = env["out"] / "s1.h5"
    assert main(["responses", "--config", str(env["config"]), "--subject", "s1",
                 "--out", str(out)]) == 0
    assert _listing(env["out"]) == ["s1.h5"]


# --------------------------------------------------------------------------- Alice raw files
def test_missing_timecourses(env, capsys):
    _tc(env).unlink()
    _fails(capsys, env["out"],
           ["responses", "--config", env["config"], "--subject", "s1", "--out", env["out"] / "s1.h5"],
           str(_tc(env)), "does not exist")


def test_wrong_number_of_columns(env, capsys):
    _replace_line(_tc(env), 4, "1.0 2.0 3.0 4.0 5.0")
    _fails(capsys, env["out"],
           ["responses", "--config", env["config"], "--subject", "s1", "--out", env["out"] / "s1.h5"],
           str(_tc(env)), "row 4 (line 5)", "5 column(s), expected 6")


def test_nan_in_timecourse(env, capsys):
    _replace_line(_tc(env), 9, "100.0 101.0 nan 99.0 100.5 100.2")
    _fails(capsys, env["out"],
           ["responses", "--config", env["config"], "--subject", "s1", "--out", env["out"] / "s1.h5"],
           str(_tc(env)), "column 'LPTL'", "NaN", "row 9 (line 10)")


def test_textgrid_without_word_tier(env, capsys):
    textgrid = env["fake"] / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
    _fails(capsys, env["out"],
           ["stimuli", "--config", env["config"], "--out", env["out"] / "events.tsv"],
           str(textgrid), "no tier named 'word'", "'phone'")


# --------------------------------------------------------------------------- contract files
def test_features_rows_do_not_match_events(env, capsys):
    events = _events(env["inputs"] / "events.tsv", 5)
    feats = env["inputs"] / "word_rate.h5"
    layers = {"0": np.ones((5, 1), np.float32), "1": np.ones((6, 1), np.float32)}
    write_features(feats, Features(layers, "word_rate"), {})
    _fails(capsys, env["out"],
           ["design", "--config", env["config"], "--events", events, "--features", feats,
            "--out", env["out"] / "design.h5"],
           str(feats), "layers/1", "6 rows", "events.tsv", "5 words")


def test_design_volumes_differ_from_responses(env, capsys):
    rng = np.random.default_rng(1)
    design = env["inputs"] / "design.h5"
    write_features(design, Features({"0": rng.standard_normal((100, 1)).astype(np.float32)},
                                    "word_rate"), {}, kind="design")
    responses = []
    for subject in ("s1", "s2"):
        path = env["inputs"] / f"{subject}.h5"
        write_responses(path, Responses(rng.standard_normal((120, 2)), 2.0, 2.0 * np.arange(120),
                                        np.ones(120), ["A", "B"], ["A", "B"], subject), {})
        responses.append(path)
    _fails(capsys, env["out"],
           ["score", "--config", env["config"], "--design", design, "--responses", *responses,
            "--out", env["out"] / "scores.csv"],
           str(design), "layer '0'", "100 volumes", "120")


def test_design_of_unconfigured_feature_set(env, capsys):
    design = env["inputs"] / "design.h5"
    write_features(design, Features({"0": np.ones((120, 1), np.float32)}, "gpt2"), {}, kind="design")
    resp = env["inputs"] / "s1.h5"
    write_responses(resp, Responses(np.random.default_rng(0).standard_normal((120, 2)), 2.0,
                                    2.0 * np.arange(120), np.ones(120), ["A", "B"], ["A", "B"],
                                    "s1"), {})
    _fails(capsys, env["out"],
           ["score", "--config", env["config"], "--design", design, "--responses", resp,
            "--out", env["out"] / "scores.csv"],
           str(design), "'model'", "'gpt2'")


def test_non_hdf5_features(env, capsys):
    events = _events(env["inputs"] / "events.tsv", 5)
    feats = env["inputs"] / "word_rate.h5"
    feats.write_text("onset\tword\n1.0\tAlice\n")
    _fails(capsys, env["out"],
           ["design", "--config", env["config"], "--events", events, "--features", feats,
            "--out", env["out"] / "design.h5"],
           str(feats), "HDF5")


def test_responses_file_with_wrong_contract(env, capsys):
    design = env["inputs"] / "design.h5"
    write_features(design, Features({"0": np.ones((120, 1), np.float32)}, "word_rate"), {},
                   kind="design")
    _fails(capsys, env["out"],
           ["ceiling", "--config", env["config"], "--responses", design, design,
            "--out", env["out"] / "ceiling.csv"],
           str(design), "'contract'", "responses/1")


def test_missing_events_file(env, capsys):
    missing = env["inputs"] / "nope_events.tsv"
    _fails(capsys, env["out"],
           ["features", "--config", env["config"], "--events", missing, "--feature-set",
            "word_rate", "--out", env["out"] / "f.h5", "--no-progress"],
           str(missing), "does not exist")


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
