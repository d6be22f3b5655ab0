"""Read Praat TextGrid annotations (word and phone alignments).

Praat writes a TextGrid as text in one of two layouts, which carry the same
sequence of values:

* the *long* layout (``File type = "ooTextFile"``), with one labelled value per
  line (``xmin = 20.06``) and headings such as ``item [1]:`` and
  ``intervals [2]:``;
* the *short* layout, with the bare values only, one per line.

Both are parsed here by one tokenizer that keeps numbers, quoted strings and
``<exists>`` flags, and skips labels and headings. The encoding is UTF-8 (with
or without a byte-order mark) or UTF-16 (Praat writes UTF-16 with a byte-order
mark whenever the text is not plain ASCII). Binary TextGrids are not read.

Every error is an :class:`~brainalign._validation.InputFileError` naming the
file and the tier, interval and field at fault.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._validation import InputFileError, check_fname

__all__ = ["read_textgrid", "TEXTGRID_COLUMNS"]

#: Columns of the table :func:`read_textgrid` returns, in this order.
TEXTGRID_COLUMNS = ["onset", "duration", "text"]

_INTERVAL_TIER = "IntervalTier"
_POINT_TIER = "TextTier"

# One alternative per token kind; the first that matches at a position wins.
_TOKEN_RE = re.compile(
    r"""
      (?P<string>"(?:[^"]|"")*")              # "text", with "" as an escaped quote
    | (?P<open_string>"(?:[^"]|"")*\Z)        # a string cut off by the end of the file
    | (?P<flag><[A-Za-z]+>)                   # <exists> / <absent>
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<bracket>\[[^\]\n]*\])               # item [1]:, intervals [12]:
    | (?P<comment>![^\n]*)                    # short-format comments
    | (?P<equals>=)
    | (?P<punct>:)
    | (?P<word>[A-Za-z_][\w?]*)               # labels: xmin, intervals, size, tiers?
    | (?P<junk>\S+)
    """,
    re.VERBOSE,
)
_SKIPPED = {"bracket", "comment", "punct", "equals"}
_HEADER_RE = re.compile(r'^\s*File\s+type\s*=\s*"ooTextFile(?:\s+short)?"\s*$')
_CLASS_RE = re.compile(r'^\s*Object\s+class\s*=\s*"TextGrid"\s*$')


@dataclass(frozen=True)
class _Token:
    kind: str
    value: str
    line: int


# --------------------------------------------------------------------------- decoding
def _decode(raw: bytes, path: Path) -> str:
    """Decode TextGrid bytes as UTF-8 or UTF-16 (BOM or not); raise otherwise."""
    if raw.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]
    elif len(raw) >= 2 and raw[1:2] == b"\x00" and raw[0:1] != b"\x00":
        candidates = ["utf-16-le"]
    elif len(raw) >= 2 and raw[0:1] == b"\x00" and raw[1:2] != b"\x00":
        candidates = ["utf-16-be"]
    else:
        candidates = ["utf-8"]
    where = ""
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            if encoding == "utf-8":
                line = raw.count(b"\n", 0, err.start) + 1
                where = f" (byte 0x{raw[err.start]:02x} at line {line}, byte offset {err.start})"
            continue
        if "\x00" not in text:
            return text
    raise InputFileError(
        path,
        f"not UTF-8/UTF-16 text{where}: the TextGrid cannot be decoded (binary TextGrid, or a legacy "
        "encoding such as Latin-1?). Re-save it from Praat as a text file.",
    )


def _check_header(text: str, path: Path) -> None:
    """Check the two header lines ``File type`` and ``Object class``."""
    lines = [line for line in text.splitlines() if line.strip()][:2]
    found = " | ".join(line.strip() for line in lines)[:120]
    if len(lines) < 2 or not _HEADER_RE.match(lines[0]) or not _CLASS_RE.match(lines[1]):
        raise InputFileError(
            path,
            'not a TextGrid: the header must be \'File type = "ooTextFile"\' followed by '
            f"'Object class = \"TextGrid\"', found {found!r}.",
        )


# --------------------------------------------------------------------------- tokenizing
def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into value tokens (numbers, strings, flags, junk) with line numbers."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    tokens: list[_Token] = []
    after_equals = False
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        if kind in _SKIPPED:
            after_equals = kind == "equals"
            continue
        if kind == "word" and not after_equals:
            continue  # a label such as ``xmin`` or ``intervals``
        if kind == "word":
            kind = "junk"  # ``xmin = abc``: a value that is not a value
        line = bisect.bisect_left(newlines, match.start()) + 1
        tokens.append(_Token(kind, match.group(), line))
        after_equals = False
    return tokens


class _Reader:
    """Sequential access to the value tokens, with errors naming the file and field."""

    def __init__(self, tokens: list[_Token], path: Path):
        self.tokens = tokens
        self.path = path
        self.pos = 0

    def _next(self, field: str) -> _Token:
        if self.pos >= len(self.tokens):
            raise InputFileError(
                self.path, f"file ends while reading {field} (truncated file?)."
            )
        token = self.tokens[self.pos]
        self.pos += 1
        if token.kind == "open_string":
            raise InputFileError(
                self.path,
                f"{field}: the string opened on line {token.line} is never closed "
                "(truncated file?).",
            )
        return token

    def _fail(self, token: _Token, field: str, expected: str, hint: str = "") -> InputFileError:
        shown = token.value if len(token.value) <= 40 else token.value[:37] + "..."
        return InputFileError(
            self.path, f"{field} on line {token.line}: expected {expected}, found {shown!r}{hint}."
        )

    def number(self, field: str, hint: str = "") -> float:
        token = self._next(field)
        if token.kind != "number":
            raise self._fail(token, field, "a number", hint if token.kind == "string" else "")
        return float(token.value)

    def count(self, field: str) -> int:
        token = self._next(field)
        if token.kind != "number" or not re.fullmatch(r"\+?\d+", token.value):
            raise self._fail(token, field, "a non-negative whole number")
        return int(token.value)

    def string(self, field: str) -> str:
        token = self._next(field)
        if token.kind != "string":
            raise self._fail(token, field, "a quoted string")
        return token.value[1:-1].replace('""', '"')

    def flag(self, field: str) -> str:
        token = self._next(field)
        if token.kind != "flag":
            raise self._fail(token, field, "<exists> or <absent>")
        return token.value


# --------------------------------------------------------------------------- parsing
@dataclass
class _Tier:
    number: int
    kind: str
    name: str
    items: list[tuple[float, float, str]]  # (xmin, xmax, text); xmin == xmax for points


def _read_tier(reader: _Reader, number: int) -> _Tier:
    """Read one tier (class, name, xmin, xmax, size, items)."""
    where = f"tier {number}"
    kind = reader.string(f"{where}: field 'class'")
    name = reader.string(f"{where}: field 'name'")
    where = f"tier {number} ({name!r})"
    reader.number(f"{where}: field 'xmin'")
    reader.number(f"{where}: field 'xmax'")
    if kind == _INTERVAL_TIER:
        size = reader.count(f"{where}: field 'intervals: size'")
        items = [_read_interval(reader, where, k, size) for k in range(1, size + 1)]
    elif kind == _POINT_TIER:
        size = reader.count(f"{where}: field 'points: size'")
        items = [_read_point(reader, where, k, size) for k in range(1, size + 1)]
    else:
        raise InputFileError(
            reader.path,
            f"{where}: field 'class' is {kind!r}, expected {_INTERVAL_TIER!r} or {_POINT_TIER!r}.",
        )
    return _Tier(number, kind, name, items)


def _read_interval(reader: _Reader, where: str, k: int, size: int) -> tuple[float, float, str]:
    here = f"{where}, interval {k} of {size} declared"
    hint = f" (does the tier hold fewer intervals than the {size} declared?)"
    xmin = reader.number(f"{here}: field 'xmin'", hint)
    xmax = reader.number(f"{here}: field 'xmax'")
    text = reader.string(f"{here}: field 'text'")
    return xmin, xmax, text


def _read_point(reader: _Reader, where: str, k: int, size: int) -> tuple[float, float, str]:
    here = f"{where}, point {k} of {size} declared"
    hint = f" (does the tier hold fewer points than the {size} declared?)"
    time = reader.number(f"{here}: field 'number'", hint)
    mark = reader.string(f"{here}: field 'mark'")
    return time, time, mark


def _parse(text: str, path: Path) -> list[_Tier]:
    """Parse the whole TextGrid (after the two header lines) into tiers."""
    # Skip the two header lines (their strings are not values), keeping line numbers.
    lines = text.splitlines(keepends=True)
    header = [i for i, line in enumerate(lines) if line.strip()][:2]
    start = header[-1] + 1
    tokens = [_Token(t.kind, t.value, t.line + start) for t in _tokenize("".join(lines[start:]))]
    reader = _Reader(tokens, path)
    reader.number("field 'xmin' of the TextGrid")
    reader.number("field 'xmax' of the TextGrid")
    if reader.flag("field 'tiers?' of the TextGrid") == "<absent>":
        return []
    n_tiers = reader.count("field 'size' (number of tiers) of the TextGrid")
    tiers = [_read_tier(reader, number) for number in range(1, n_tiers + 1)]
    if reader.pos < len(tokens):
        extra = tokens[reader.pos]
        raise InputFileError(
            path,
            f"unexpected {extra.value[:40]!r} on line {extra.line} after the {n_tiers} declared "
            "tier(s) (is a tier's 'size' too small?).",
        )
    return tiers


def _select_tier(tiers: list[_Tier], tier: str, path: Path) -> _Tier:
    """Return the one tier named ``tier``; it must be an interval tier."""
    matches = [t for t in tiers if t.name == tier]
    if not matches:
        found = ", ".join(f"{t.name!r} ({t.kind})" for t in tiers) or "none"
        raise InputFileError(path, f"no tier named {tier!r}; tiers found: {found}.")
    if len(matches) > 1:
        numbers = ", ".join(str(t.number) for t in matches)
        raise InputFileError(
            path, f"{len(matches)} tiers are named {tier!r} (tiers {numbers}); rename all but one."
        )
    found_tier = matches[0]
    if found_tier.kind != _INTERVAL_TIER:
        raise InputFileError(
            path,
            f"tier {tier!r} is a point tier ({found_tier.kind}), not an interval tier "
            f"({_INTERVAL_TIER}); words need onsets and durations.",
        )
    return found_tier


def _check_intervals(found: _Tier, path: Path) -> None:
    """Raise if an interval ends before it starts."""
    for k, (xmin, xmax, _) in enumerate(found.items, start=1):
        if xmax < xmin:
            raise InputFileError(
                path,
                f"tier {found.name!r}, interval {k}: field 'xmax' ({xmax!r} s) is smaller than "
                f"field 'xmin' ({xmin!r} s).",
            )


# --------------------------------------------------------------------------- public
def read_textgrid(path: str | os.PathLike, tier: str = "word") -> pd.DataFrame:
    """Read one interval tier of a Praat TextGrid.

    Parameters
    ----------
    path : str or path-like
        A text TextGrid, long or short layout, UTF-8 (with or without BOM) or
        UTF-16 (with BOM) encoded.
    tier : str
        Name of the interval tier to read (case-sensitive).

    Returns
    -------
    intervals : pandas.DataFrame of shape (n_intervals, 3)
        One row per interval of the tier, in file order, with columns
        ``onset`` (float, seconds: the interval's ``xmin``), ``duration``
        (float, seconds: ``xmax - xmin``, >= 0) and ``text`` (str, exactly as
        in the file, silences such as ``"sp"`` and ``""`` included).

    Raises
    ------
    InputFileError
        Naming the file, for a missing or empty file, a file that is not
        UTF-8/UTF-16 text or not a TextGrid, a malformed or truncated file
        (naming the tier, interval and field), a missing tier (listing the
        tiers found), a point tier, or an interval whose ``xmax < xmin``.
    """
    path = check_fname(path, "file", "TextGrid")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputFileError(path, "TextGrid file is empty.")
    text = _decode(raw, path).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputFileError(path, "TextGrid file is empty.")
    _check_header(text, path)
    found = _select_tier(_parse(text, path), tier, path)
    _check_intervals(found, path)
    onsets = [xmin for xmin, _, _ in found.items]
    durations = [xmax - xmin for xmin, xmax, _ in found.items]
    texts = [label for _, _, label in found.items]
    return pd.DataFrame(
        {
            "onset": pd.Series(onsets, dtype="float64"),
            "duration": pd.Series(durations, dtype="float64"),
            "text": pd.Series(texts, dtype="object"),
        },
        columns=TEXTGRID_COLUMNS,
    )
