"""Package discovery for brainalign; every other setting lives in pyproject.toml.

Packages are found, not listed (a hand-kept list once shipped wheels without
``brainalign.backend``). ``kernels/`` and ``decoders/`` live at the top level of
the repository (the design card's layout) but install *inside* the brainalign
namespace, as ``brainalign.kernels`` and ``brainalign.decoders``: Hugging Face
publishes a top-level ``kernels`` package that transformers probes for, so they
must never install as top-level packages. ``[tool.setuptools.packages.find]``
cannot map a found folder to another name, hence this file.
"""

from setuptools import find_packages, setup

#: Repository folder -> the package it installs as.
MAPPED = {"kernels": "brainalign.kernels", "decoders": "brainalign.decoders"}


def packages() -> list[str]:
    """Every package under brainalign/, kernels/ and decoders/ (a folder with ``__init__.py``)."""
    found = find_packages(include=["brainalign", "brainalign.*"])
    for folder, name in MAPPED.items():
        found += [name + sub[len(folder):] for sub in find_packages(include=[folder, f"{folder}.*"])]
    return sorted(found)


setup(
    packages=packages(),
    package_dir={"brainalign": "brainalign", **{name: folder for folder, name in MAPPED.items()}},
)
