"""Shared fixtures: the real datasets in ../shared/data and strict mode.

Tests that need ``../shared/data`` skip with a stated reason when it is absent,
so that a user's clone still passes. With ``BRAINALIGN_STRICT=1`` (set by
``.ci/run``) a missing dataset is a failure instead, so CI always runs them.
"""

from __future__ import annotations

import os
from pathlib import Path

# Triton kernels run in its CPU interpreter here (no GPU); the variable must be
# set before Triton compiles anything, i.e. before any test imports it.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPO.parent / "shared" / "data"))
STRICT = os.environ.get("BRAINALIGN_STRICT", "0") == "1"


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (or fail in strict mode)."""
    if path.exists():
        return path
    message = f"{what} not found at {path} (set BRAINALIGN_SHARED_DATA or clone beside ../shared)"
    if STRICT:
        pytest.fail(f"BRAINALIGN_STRICT=1 and {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_path(SHARED_DATA, "the shared datasets folder")


@pytest.fixture(scope="session")
def mne_misc_dir(shared_data: Path) -> Path:
    """MNE's misc test files: the ERP CORE P3 evokeds and the ECoG/sEEG sample."""
    return require_path(shared_data / "mne_misc", "mne_misc (ERP CORE P3, ECoG sample)")


@pytest.fixture(scope="session")
def alice_dir(shared_data: Path) -> Path:
    return require_path(shared_data / "brennan2016_alice", "the Alice (Brennan 2016) dataset")


@pytest.fixture(scope="session")
def langloc_dir(shared_data: Path) -> Path:
    return require_path(shared_data / "fedorenko2010_langloc", "the Fedorenko (2010) localizer stimuli")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
