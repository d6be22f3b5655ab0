"""The encoder and metric core imports only numpy, scipy (and torch for its backend).

It must run on a bare GPU machine: no pandas, h5py, scikit-learn, nilearn or
transformers may be pulled in by importing it.
"""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "brainalign.encoders.cv", "brainalign.encoders.ridge", "brainalign.encoders.ridge_cv",
    "brainalign.encoders.banded", "brainalign.encoders.ridge_core", "brainalign.backend", "brainalign.metrics.correlation",
    "brainalign.metrics.ceilings", "brainalign.metrics.brainscore", "brainalign.metrics.rsa",
    "brainalign.metrics.cka", "brainalign.metrics.identification", "brainalign.metrics.stats",
    "brainalign.metrics.cv_permutation",
]
FORBIDDEN = ["pandas", "h5py", "sklearn", "nilearn", "transformers", "matplotlib", "yaml"]


def test_core_imports_only_numpy_scipy():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the core imported {out.stdout.strip()}"
