"""File-name patterns of users' own data: ``data/{subject}_run-{run}.tsv``.

``{subject}`` matches a label (a letter or digit, then letters, digits, ``_``,
``.`` or ``-``; a second ``{subject}`` must repeat it) and ``{run}`` a run
number (digits).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._validation import ConfigError

__all__ = ["check_pattern", "fill", "pattern_matches"]

_LABEL = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def check_pattern(pattern: str, field: str, config: str | os.PathLike | None) -> None:
    """Raise :class:`ConfigError` on ``field`` unless ``pattern`` holds both ``{subject}`` and ``{run}``."""
    if "{subject}" not in pattern or "{run}" not in pattern:
        raise ConfigError(config, field, f"{pattern!r} must hold both {{subject}} and {{run}}.")


def fill(pattern: str, subject: str, run: int | str) -> Path:
    """The path of ``subject``'s run ``run``."""
    return Path(pattern.replace("{subject}", subject).replace("{run}", str(run)))


def pattern_matches(pattern: str, field: str, subject: str | None = None, run: int | None = None,
                    ) -> list[tuple[str, int]]:
    """Sorted (subject, run) of the existing files matching ``pattern``, with ``subject``/``run`` fixed if given.

    Raises :class:`ConfigError` on ``field`` when the folder before the first
    placeholder does not exist, or nothing matches.
    """
    text = pattern if subject is None else pattern.replace("{subject}", subject)
    text = text if run is None else text.replace("{run}", str(run))
    regex, groups = "^", []
    for piece in re.split(r"(\{subject\}|\{run\})", text):
        if piece == "{subject}":
            regex += "(?P=subject)" if "subject" in groups else f"(?P<subject>{_LABEL})"
            groups.append("subject")
        elif piece == "{run}":
            regex += "(?P=run)" if "run" in groups else r"(?P<run>\d+)"
            groups.append("run")
        else:
            regex += re.escape(piece)
    compiled = re.compile(regex + "$")
    # The folder to search: the deepest one before the first placeholder.
    prefix = re.split(r"\{subject\}|\{run\}", text)[0]
    folder = Path(prefix) if prefix.endswith(os.sep) else Path(prefix).parent
    if not folder.is_dir():
        raise ConfigError(None, field, f"the folder {folder} does not exist.")
    found = set()
    for path in folder.rglob("*"):
        match = compiled.match(str(path))
        if match:
            found.add((match.group("subject") if "subject" in groups else subject,
                       int(match.group("run")) if "run" in groups else run))
    if not found:
        raise ConfigError(None, field, f"no file matches {text}.")
    return sorted(found)
