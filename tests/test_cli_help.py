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
