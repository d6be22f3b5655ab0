"""The shipped SLURM profile stops before submitting anything until the user's account and partition are set
(issue #21): placeholders, not another cluster's values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.workflow
def test_the_slurm_profile_names_the_placeholders_to_set(tmp_path):
    profile = (REPO / "workflows" / "profiles" / "slurm" / "config.yaml").read_text()
    assert "SET_ME_slurm_account" in profile and "SET_ME_slurm_partition" in profile
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "-d", str(tmp_path),
               "--profile", str(REPO / "workflows" / "profiles" / "slurm"),
               "--configfile", str(REPO / "workflows" / "configs" / "simulated_ci.yaml")]
    proc = subprocess.run(command, capture_output=True, text=True)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "slurm_account and slurm_partition are still placeholders" in said
    assert "workflows/profiles/slurm/config.yaml" in said
    assert not (tmp_path / "results").exists()
    # Set (here on the command line), the same dry run plans the jobs.
    proc = subprocess.run([*command, "--default-resources", "slurm_partition=p", "slurm_account=a"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
