"""The API reference is generated from the docstrings and kept in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_api_reference_is_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "make_api.py"), "--check"])
    assert proc.returncode == 0, "docs/api.md is stale: run `python docs/make_api.py`"


def test_every_public_function_is_documented():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import make_api
    finally:
        sys.path.pop(0)
    text = make_api.render()
    assert "(undocumented)" not in text
