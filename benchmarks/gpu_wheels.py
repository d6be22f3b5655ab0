"""Fetch the wheels an offline GPU node needs for ``benchmarks/gpu_check.py`` (run where pip has internet).

The node is assumed to provide Python 3.12, torch, triton, numpy, scipy, h5py,
scikit-learn, pandas and transformers (with their own dependencies: PyYAML,
tqdm, safetensors, packaging). This script downloads, without dependencies,
the listed subset the check imports besides those — each pinned to the version
installed here; binary ones for manylinux 2.17 to 2.28, which a node running
torch's CUDA 13 builds has — plus a wheel of brainalign itself, into ``gpu_wheels/``
(ignored by git), and refuses the set if it holds a torch, triton or nvidia-*
wheel or weighs more than 60 MiB.

On the node::

    pip install --no-index --no-deps gpu_wheels/*.whl
    python benchmarks/gpu_check.py --out gpu_check

Usage::

    python benchmarks/gpu_wheels.py [--dest gpu_wheels] [--python 3.12]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Imported by the check and missing on the node (config validation, fMRI and M/EEG stages, the anchors, the VAE).
PACKAGES = ["jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "attrs", "nilearn", "nibabel",
            "himalaya", "flashrnn", "diffusers", "pillow", "importlib-metadata", "zipp",
            # the M/EEG stages: MNE and what it imports at run time
            "mne", "pooch", "decorator", "lazy-loader", "jinja2", "markupsafe", "platformdirs"]
FORBIDDEN = ("torch", "triton", "nvidia")
LIMIT_MIB = 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO / "gpu_wheels")
    parser.add_argument("--python", default="3.12", help="the node's Python version")
    args = parser.parse_args()
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    abi = "cp" + args.python.replace(".", "")
    pins = [f"{name}=={version(name)}" for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python, "--implementation", "cp", "--abi", abi, "--abi", "none",
                    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_27_x86_64", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "any", "--dest", str(args.dest), *pins], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(args.dest), str(REPO)], check=True)
    wheels = sorted(args.dest.glob("*.whl"))
    bad = [w.name for w in wheels if w.name.lower().startswith(FORBIDDEN)]
    total = sum(w.stat().st_size for w in wheels) / 2**20
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
    print(f"{total:7.2f} MiB in {len(wheels)} wheels (limit {LIMIT_MIB} MiB)")
    if bad or total > LIMIT_MIB:
        print(f"refused: {'forbidden wheels ' + ', '.join(bad) if bad else f'over {LIMIT_MIB} MiB'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
