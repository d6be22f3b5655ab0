"""Every option of every command has help text (issue #21: most had none)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from brainalign.cli import _parser


def test_every_option_of_every_command_has_help():
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [(name, action.option_strings or action.dest) for name, sub in commands.choices.items()
               for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    missing += [(name, "(command)") for name in commands.choices
                if not any(a.dest == name and a.help for a in commands._choices_actions)]
    assert missing == []


def test_a_commands_help_prints_its_options_explained():
    out = subprocess.run([sys.executable, "-m", "brainalign", "score", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "design matrix (HDF5, from `brainalign design`)" in " ".join(out.split())


def test_a_workflow_step_logs_its_start_and_end(tmp_path):
    """Every job log of a good run has at least these two lines (issue #21: 16 of 17 were empty)."""
    from pathlib import Path

    config = Path(__file__).resolve().parent.parent / "workflows" / "configs" / "simulated_ci.yaml"
    proc = subprocess.run([sys.executable, "-m", "brainalign", "stimuli", "--config", str(config), "--out",
                           str(tmp_path / "events.tsv")], capture_output=True, text=True, check=True)
    assert f"INFO brainalign: stimuli started (config {config})" in proc.stderr
    assert "INFO brainalign: stimuli done in" in proc.stderr
    quiet = subprocess.run([sys.executable, "-m", "brainalign", "validate", "--config", str(config)],
                           capture_output=True, text=True, check=True)
    assert "started" not in quiet.stderr  # what a person reads stays as it was
