"""Checks of an EDF/BDF file's fixed header, run before MNE reads the file.

MNE reads a truncated EDF without complaint (a cut-off recording silently loses
its end) and reads a channel whose header gives it no scale multiplied by an
arbitrary factor; these checks refuse both, and a header field that is not a
number, with an :class:`~brainalign._validation.InputFileError` naming the file,
the header field and the channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._validation import InputFileError


def _check_edf_header(path: Path) -> None:
    """Check the fixed header of an EDF/BDF file: numeric fields, and a file as long as the header says.

    MNE reads a truncated EDF without complaint (it infers the number of data
    records from the file size), so a cut-off recording would silently lose
    its end; a header field that is not a number gives a bare ``ValueError``;
    a signal whose digital (or physical) minimum equals its maximum has no
    scale, and MNE, after a warning, reads it scaled by an arbitrary factor.
    Here each names the file and the header field (and the channel).
    """
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise InputFileError(path, f"EDF header: the file has {len(head)} bytes, fewer than the 256 bytes of "
                                       "the fixed header (truncated file?).")

        def number(name: str, start: int, stop: int, kind: type = int) -> Any:
            text = head[start:stop].decode("ascii", "replace").strip()
            try:
                return kind(text)
            except ValueError:
                raise InputFileError(path, f"EDF header field {name!r} (bytes {start}-{stop - 1}) is {text!r}, "
                                           "not a number (corrupt header).") from None

        header_bytes = number("number of bytes in header record", 184, 192)
        n_records = number("number of data records", 236, 244)
        number("duration of a data record", 244, 252, float)
        n_signals = number("number of signals", 252, 256)
        signal_header = fh.read(256 * max(n_signals, 0))
        fields = signal_header[216 * n_signals:224 * n_signals]
    _check_edf_scaling(path, signal_header, n_signals)
    try:
        samples = [int(fields[8 * k:8 * k + 8].decode("ascii")) for k in range(n_signals)]
    except ValueError:
        raise InputFileError(path, "EDF header field 'number of samples in each data record' is not a whole "
                                   "number for every signal (corrupt header).") from None
    sample_bytes = 3 if head[:1] == b"\xff" else 2  # BDF stores 24-bit samples
    expected = header_bytes + n_records * sum(samples) * sample_bytes
    size = path.stat().st_size
    if n_records >= 0 and size < expected:
        raise InputFileError(path, f"EDF header field 'number of data records' is {n_records} ({expected} bytes "
                                   f"in all), but the file has {size} bytes: it is truncated.")


def _check_edf_scaling(path: Path, signal_header: bytes, n_signals: int) -> None:
    """Raise naming the first channel whose header gives no scale (digital or physical range of zero).

    A sample's physical value is ``physical min + (digital - digital min) *
    (physical max - physical min) / (digital max - digital min)``: with
    digital min = max the scale is undefined (MNE then uses a range of 1, so
    a 16-bit channel comes out tens of thousands of times too large); with
    physical min = max every value is the same. The EDF specification
    requires digital max > digital min.
    """
    def field(offset: int, width: int, k: int) -> str:
        start = n_signals * offset + width * k
        return signal_header[start:start + width].decode("ascii", "replace").strip()

    for k in range(n_signals):
        label = field(0, 16, k)
        if label in ("EDF Annotations", "BDF Annotations"):
            continue
        values = {}
        for name, offset in (("physical minimum", 104), ("physical maximum", 112), ("digital minimum", 120),
                             ("digital maximum", 128)):
            text = field(offset, 8, k)
            try:
                values[name] = float(text)
            except ValueError:
                raise InputFileError(path, f"EDF header field {name!r} of signal {k} (channel {label!r}) is "
                                           f"{text!r}, not a number (corrupt header).") from None
        low, high = values["digital minimum"], values["digital maximum"]
        if not high > low:
            raise InputFileError(path, f"EDF header fields 'digital minimum' ({low:g}) and 'digital maximum' "
                                       f"({high:g}) of signal {k} (channel {label!r}): the maximum must exceed "
                                       "the minimum, or the channel's samples have no scale (corrupt header; "
                                       "re-export the recording).")
        if values["physical minimum"] == values["physical maximum"]:
            raise InputFileError(path, f"EDF header fields 'physical minimum' and 'physical maximum' of signal {k} "
                                       f"(channel {label!r}) are both {values['physical minimum']:g}: the channel's "
                                       "samples have no scale (corrupt header; re-export the recording).")
