"""Thread pinning reaches the BLAS libraries loaded after it (scipy's own OpenBLAS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from brainalign.backend.threads import THREAD_VARIABLES

SCRIPT = """
import json, sys
import numpy  # numpy's OpenBLAS is loaded before pinning, as in the command line
from brainalign.backend.threads import pin_threads
pin_threads(int(sys.argv[1]))
import scipy.linalg  # scipy's OpenBLAS loads after it
from threadpoolctl import threadpool_info
print(json.dumps({info["filepath"]: info["num_threads"] for info in threadpool_info()}))
"""


@pytest.mark.parametrize("n_threads", [1, 2])
def test_libraries_loaded_after_pinning_use_the_pinned_count(n_threads):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(n_threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    counts = json.loads(out)
    assert any("scipy" in path for path in counts), counts  # scipy's own BLAS was seen
    assert set(counts.values()) == {n_threads}, counts


def test_the_command_line_pins_before_the_stage_runs(monkeypatch):
    from brainalign import cli

    seen = []
    monkeypatch.setattr("brainalign.backend.threads.pin_threads", seen.append)
    monkeypatch.setattr(cli, "_cmd_validate", lambda args: seen.append("stage"), raising=True)
    cli.main(["validate", "--config", "no-such-config.yaml"])
    assert seen == [1, "stage"]
