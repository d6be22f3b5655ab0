"""Tests of brainalign.stimuli.textgrid: the Praat TextGrid parser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from brainalign._validation import InputFileError
from brainalign.stimuli.textgrid import TEXTGRID_COLUMNS, read_textgrid

LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "word"
        xmin = 0
        xmax = 2.5
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = "sp"
        intervals [2]:
            xmin = 0.5
            xmax = 1.25
            text = "Alice"
        intervals [3]:
            xmin = 1.25
            xmax = 2
            text = "say ""hi"""
        intervals [4]:
            xmin = 2
            xmax = 2.5
            text = ""
    item [2]:
        class = "TextTier"
        name = "bell"
        xmin = 0
        xmax = 2.5
        points: size = 1
        points [1]:
            number = 1.0
            mark = "ding"
'''

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
2
"TextTier"
"bell"
0
2.5
1
1.0
"ding"
"IntervalTier"
"word"
0
2.5
4
0
0.5
"sp"
0.5
1.25
"Alice"
1.25
2
"say ""hi"""
2
2.5
""
'''

EXPECTED = pd.DataFrame(
    {
        "onset": [0.0, 0.5, 1.25, 2.0],
        "duration": [0.5, 0.75, 0.75, 0.5],
        "text": pd.Series(["sp", "Alice", 'say "hi"', ""], dtype=object),
    }
)


def _write(tmp_path: Path, text: str, name: str = "story.TextGrid", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _error(path: Path, tier: str = "word") -> str:
    with pytest.raises(InputFileError) as info:
        read_textgrid(path, tier=tier)
    message = str(info.value)
    assert path.name in message, message
    return message


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("text", [LONG, SHORT], ids=["long", "short"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_reads_both_layouts_and_encodings(tmp_path, text, encoding):
    path = _write(tmp_path, text, encoding=encoding)
    table = read_textgrid(path, tier="word")
    assert list(table.columns) == TEXTGRID_COLUMNS
    pd.testing.assert_frame_equal(table, EXPECTED)


def test_utf16_big_endian_and_non_ascii(tmp_path):
    text = LONG.replace('"Alice"', '"Ãlice – 愛"')
    path = _write(tmp_path, text, encoding="utf-16")  # Python writes a BOM
    assert read_textgrid(path)["text"][1] == "Ãlice – 愛"
    path = tmp_path / "be.TextGrid"
    path.write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    assert read_textgrid(path)["text"][1] == "Ãlice – 愛"


def test_crlf_line_endings(tmp_path):
    path = _write(tmp_path, LONG.replace("\n", "\r\n"))
    pd.testing.assert_frame_equal(read_textgrid(path), EXPECTED)


def test_multiline_text_and_short_header(tmp_path):
    text = SHORT.replace('"ooTextFile"', '"ooTextFile short"').replace('"Alice"', '"two\nlines"')
    table = read_textgrid(_write(tmp_path, text))
    assert table["text"][1] == "two\nlines"


def test_empty_tier(tmp_path):
    text = '''File type = "ooTextFile"
Object class = "TextGrid"

0
1
<exists>
1
"IntervalTier"
"word"
0
1
0
'''
    table = read_textgrid(_write(tmp_path, text))
    assert table.shape == (0, 3)
    assert list(table.columns) == TEXTGRID_COLUMNS


# --------------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    message = _error(tmp_path / "nothere.TextGrid")
    assert "does not exist" in message


def test_empty_file(tmp_path):
    message = _error(_write(tmp_path, ""))
    assert "empty" in message
    message = _error(_write(tmp_path, "  \n\n", name="blank.TextGrid"))
    assert "empty" in message


def test_bad_header(tmp_path):
    message = _error(_write(tmp_path, "onset\tduration\tword\n1\t2\tthe\n", name="events.TextGrid"))
    assert "not a TextGrid" in message and "File type" in message
    wrong_class = LONG.replace('"TextGrid"', '"Sound"', 1)
    message = _error(_write(tmp_path, wrong_class, name="sound.TextGrid"))
    assert "not a TextGrid" in message and "Object class" in message


def test_not_utf(tmp_path):
    path = tmp_path / "latin1.TextGrid"
    path.write_bytes(LONG.replace('"Alice"', '"Alïce"').encode("latin-1"))
    message = _error(path)
    assert "not UTF-8/UTF-16 text" in message
    binary = tmp_path / "binary.TextGrid"
    binary.write_bytes(b"ooBinaryFile\x08TextGrid\x00\x01\x02\xff\xfe\xfd")
    assert "not UTF-8/UTF-16 text" in _error(binary)


def test_no_such_tier_lists_tiers(tmp_path):
    message = _error(_write(tmp_path, LONG), tier="phone")
    assert "no tier named 'phone'" in message
    assert "'word'" in message and "'bell'" in message


def test_point_tier(tmp_path):
    message = _error(_write(tmp_path, LONG), tier="bell")
    assert "tier 'bell'" in message and "point tier" in message


def test_xmax_before_xmin_names_interval(tmp_path):
    text = LONG.replace("xmin = 1.25\n            xmax = 2\n", "xmin = 1.25\n            xmax = 1\n")
    message = _error(_write(tmp_path, text))
    assert "interval 3" in message and "'xmax'" in message and "'xmin'" in message


@pytest.mark.parametrize("text", [LONG, SHORT], ids=["long", "short"])
def test_truncated_file(tmp_path, text):
    cut = text[: text.index('"Alice"') + len('"Alice"') + 1]
    message = _error(_write(tmp_path, cut))
    assert "truncated" in message
    assert "interval 3 of 4 declared" in message
    assert "'word'" in message


def test_truncated_inside_string(tmp_path):
    cut = LONG[: LONG.index('"Alice"') + 3]
    message = _error(_write(tmp_path, cut))
    assert "never closed" in message and "interval 2" in message and "'text'" in message


def test_fewer_intervals_than_declared_before_next_tier(tmp_path):
    text = LONG.replace("intervals: size = 4", "intervals: size = 5")
    message = _error(_write(tmp_path, text))
    assert "interval 5 of 5 declared" in message and "'xmin'" in message


def test_non_numeric_field(tmp_path):
    text = LONG.replace("xmax = 1.25", "xmax = soon")
    message = _error(_write(tmp_path, text))
    assert "interval 2" in message and "'xmax'" in message and "soon" in message
    assert "line 21" in message


def test_more_values_than_declared(tmp_path):
    text = LONG.replace("size = 2\n", "size = 1\n", 1)
    message = _error(_write(tmp_path, text))
    assert "unexpected" in message and "'size'" in message


def test_unknown_tier_class(tmp_path):
    text = LONG.replace('"TextTier"', '"FancyTier"')
    message = _error(_write(tmp_path, text))
    assert "tier 2" in message and "'class'" in message and "FancyTier" in message


def test_duplicate_tier_names(tmp_path):
    text = LONG.replace('name = "bell"', 'name = "word"')
    message = _error(_write(tmp_path, text))
    assert "2 tiers are named 'word'" in message


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_alice_textgrid(alice_dir):
    path = alice_dir / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
    table = read_textgrid(path, tier="word")
    assert len(table) == 2423
    assert table["text"].iloc[1] == "Alice"
    assert table["onset"].iloc[1] == pytest.approx(20.05891632653599)
    assert (table["duration"] >= 0).all()
    assert table["onset"].is_monotonic_increasing
