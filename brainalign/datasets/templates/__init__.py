"""Commented config templates, one per built-in dataset kind (``brainalign init KIND``).

Each ``<kind>.yaml`` of this folder is package data: it ships in the wheel and
loads with :func:`brainalign.config.load_config` once the files its
placeholder paths (under ``data/``) name exist.

Examples
--------
>>> from brainalign.datasets.templates import config_template
>>> config_template("simulated").splitlines()[0].startswith("# The simulated")
True
"""

from __future__ import annotations

from pathlib import Path

from ..._validation import BrainalignError

__all__ = ["TEMPLATE_DIR", "config_template", "template_kinds"]

#: The folder of the templates.
TEMPLATE_DIR = Path(__file__).resolve().parent


def template_kinds() -> list[str]:
    """The dataset kinds that have a template, sorted."""
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))


def config_template(kind: str) -> str:
    """The commented config template of a dataset kind.

    Parameters
    ----------
    kind : str
        A ``dataset.kind`` (:func:`template_kinds`).

    Returns
    -------
    str
        The YAML text.

    Raises
    ------
    BrainalignError
        For a kind without a template, listing those with one.
    """
    if kind not in template_kinds():
        raise BrainalignError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(template_kinds())}.")
    return (TEMPLATE_DIR / f"{kind}.yaml").read_text(encoding="utf-8")
