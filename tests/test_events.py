"""Tests of brainalign.stimuli.events: the events contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign._validation import BrainalignError, InputFileError
from brainalign.stimuli.events import (
    EVENT_COLUMNS,
    read_events,
    textgrid_to_events,
    validate_events,
    write_events,
)

SHORT_TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

0
4
<exists>
1
"IntervalTier"
"word"
0
4
7
0
0.5
"sp"
0.5
1
" Alice "
1
1.5
""
1.5
2
"   "
2
2.5
"SP"
2.5
3
"was"
3
4
"sp"
'''


def _events(**overrides) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "onset": [0.5, 1.0, 1.5, 0.2, 0.9],
            "duration": [0.4, 0.5, 0.3, 0.6, 0.1],
            "word": ["Alice", "was", "beginning", "Down", "the"],
            "run": [1, 1, 1, 2, 2],
        }
    )
    for column, value in overrides.items():
        table[column] = value
    return table


def _error(df: pd.DataFrame, path: str | None = "events.tsv") -> str:
    with pytest.raises(InputFileError) as info:
        validate_events(df, path)
    message = str(info.value)
    if path is not None:
        assert path in message, message
    return message


# --------------------------------------------------------------------------- validate
def test_validate_normalises_types_and_order():
    raw = _events()[["word", "run", "duration", "onset"]]
    raw["run"] = raw["run"].astype(float)
    raw["extra"] = range(5)
    raw.index = range(10, 15)
    out = validate_events(raw)
    assert list(out.columns) == EVENT_COLUMNS + ["extra"]
    assert out["onset"].dtype == np.float64 and out["duration"].dtype == np.float64
    assert out["run"].dtype == np.int64
    assert list(out.index) == list(range(5))
    assert out["word"].tolist() == ["Alice", "was", "beginning", "Down", "the"]


def test_missing_column_lists_found():
    message = _error(_events().drop(columns="run"))
    assert "'run'" in message and "missing" in message and "'onset'" in message


def test_empty_table():
    message = _error(_events().iloc[0:0])
    assert "empty" in message


@pytest.mark.parametrize(
    ("column", "row", "value", "expected"),
    [
        ("onset", 3, np.nan, "column 'onset' is NaN at row 3"),
        ("onset", 2, np.inf, "column 'onset' is infinite at row 2"),
        ("onset", 1, "soon", "column 'onset' is not a number at row 1"),
        ("duration", 4, np.nan, "column 'duration' is NaN at row 4"),
        ("duration", 0, -0.1, "column 'duration' is negative at row 0"),
        ("run", 2, 0, "column 'run' is 0 at row 2"),
        ("run", 1, 1.5, "column 'run' is not a whole number at row 1"),
        ("run", 0, np.nan, "column 'run' is NaN at row 0"),
        ("word", 3, "", "column 'word' is empty at row 3"),
        ("word", 2, "  ", "column 'word' is empty at row 2"),
        ("word", 1, None, "column 'word' is missing (NaN) at row 1"),
    ],
)
def test_bad_cells_name_file_column_and_row(column, row, value, expected):
    df = _events()
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    assert expected in _error(df)


def test_onsets_must_not_decrease_within_run():
    df = _events(onset=[0.5, 1.0, 0.9, 0.2, 0.9])
    message = _error(df)
    assert "column 'onset' decreases at row 2 in run 1" in message
    # A new run may restart the clock, and runs may interleave.
    validate_events(_events(onset=[0.5, 1.0, 1.5, 0.2, 0.3]))
    interleaved = _events(run=[1, 2, 1, 2, 1], onset=[0.1, 0.0, 0.2, 0.1, 0.3])
    validate_events(interleaved)


def test_equal_onsets_allowed():
    validate_events(_events(onset=[0.5, 0.5, 0.5, 0.2, 0.2]))


def test_words_that_look_missing_are_kept(tmp_path):
    df = _events(word=["null", "NA", "nan", "n/a", "None"])
    path = write_events(tmp_path / "events.tsv", df)
    assert read_events(path)["word"].tolist() == ["null", "NA", "nan", "n/a", "None"]


def test_validate_without_path_and_not_a_dataframe():
    assert "column 'onset' is NaN at row 0" in _error(_events(onset=[np.nan] * 5), path=None)
    with pytest.raises(InputFileError, match="DataFrame"):
        validate_events([1, 2, 3])  # type: ignore[arg-type]


def test_stimulus_id_optional_but_checked():
    out = validate_events(_events(stimulus_id=["a"] * 5))
    assert out["stimulus_id"].tolist() == ["a"] * 5
    assert "column 'stimulus_id' is empty at row 0" in _error(_events(stimulus_id=[""] + ["a"] * 4))


# --------------------------------------------------------------------------- read / write
def test_write_read_roundtrip(tmp_path):
    df = _events(stimulus_id=["alice"] * 3 + ["rabbit"] * 2)
    df.loc[0, "onset"] = 0.1 + 0.2  # 0.30000000000000004 must survive
    df.loc[1, "word"] = "Ma'am"
    path = write_events(tmp_path / "sub" / "events.tsv", df, provenance={"b": 1, "a": [2]})
    assert path.exists()
    back = read_events(path)
    pd.testing.assert_frame_equal(back, validate_events(df))
    assert back.loc[0, "onset"] == 0.1 + 0.2
    sidecar = json.loads((tmp_path / "sub" / "events.tsv.json").read_text())
    assert sidecar == {"a": [2], "b": 1}
    assert list(Path(tmp_path / "sub").glob("*.part")) == []


def test_write_is_deterministic(tmp_path):
    first = write_events(tmp_path / "a.tsv", _events()).read_bytes()
    second = write_events(tmp_path / "b.tsv", _events()).read_bytes()
    assert first == second
    assert first.startswith(b"onset\tduration\tword\trun\n0.5\t0.4\tAlice\t1\n")
    assert b"\r" not in first


def test_write_rejects_invalid_and_leaves_no_file(tmp_path):
    path = tmp_path / "events.tsv"
    with pytest.raises(InputFileError, match="events.tsv: column 'duration' is negative at row 1"):
        write_events(path, _events(duration=[0.1, -1, 0.1, 0.1, 0.1]))
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_read_names_file_line_and_column(tmp_path):
    path = tmp_path / "sub-01_events.tsv"
    path.write_text("onset\tduration\tword\trun\n0.5\t0.2\tAlice\t1\nn/a\t0.2\twas\t1\n")
    with pytest.raises(InputFileError) as info:
        read_events(path)
    message = str(info.value)
    assert "sub-01_events.tsv" in message
    assert "column 'onset' is NaN at row 1 (line 3)" in message


def test_read_errors(tmp_path):
    with pytest.raises(InputFileError, match="missing.tsv: events file does not exist"):
        read_events(tmp_path / "missing.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty.tsv: events file is empty"):
        read_events(empty)
    header_only = tmp_path / "header.tsv"
    header_only.write_text("onset\tduration\tword\trun\n")
    with pytest.raises(InputFileError, match="header.tsv: events table is empty"):
        read_events(header_only)
    csv = tmp_path / "comma.tsv"
    csv.write_text("onset,duration,word,run\n0,1,a,1\n")
    with pytest.raises(InputFileError, match="comma.tsv: .*missing required column"):
        read_events(csv)
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("onset\tduration\tword\trun\n0\t1\tAlïce\t1\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="latin.tsv: events file is not UTF-8"):
        read_events(latin)


def test_read_with_bom(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("onset\tduration\tword\trun\n0\t1\tthe\t1\n".encode("utf-8-sig"))
    assert list(read_events(path).columns) == EVENT_COLUMNS


# --------------------------------------------------------------------------- TextGrid
def test_textgrid_to_events(tmp_path):
    path = tmp_path / "story.TextGrid"
    path.write_text(SHORT_TEXTGRID)
    events = textgrid_to_events(path, run=2)
    assert list(events.columns) == EVENT_COLUMNS
    assert events["word"].tolist() == ["Alice", "SP", "was"]  # 'sp' is case-sensitive
    assert events["onset"].tolist() == [0.5, 2.0, 2.5]
    assert events["duration"].tolist() == [0.5, 0.5, 0.5]
    assert events["run"].tolist() == [2, 2, 2]
    kept = textgrid_to_events(path, drop=("",))
    assert kept["word"].tolist() == ["sp", "Alice", "SP", "was", "sp"]


def test_textgrid_to_events_errors(tmp_path):
    path = tmp_path / "story.TextGrid"
    path.write_text(SHORT_TEXTGRID)
    with pytest.raises(InputFileError, match="story.TextGrid: column 'word' is empty at row 2"):
        textgrid_to_events(path, drop=())
    with pytest.raises(InputFileError, match="story.TextGrid: tier 'word' has no intervals left"):
        textgrid_to_events(path, drop=("sp", "", "SP", "was", "Alice"))
    with pytest.raises(BrainalignError, match="'run'"):
        textgrid_to_events(path, run=0)
    with pytest.raises(InputFileError, match="story.TextGrid: no tier named 'phones'"):
        textgrid_to_events(path, tier="phones")


@pytest.mark.shared_data
def test_alice_textgrid_to_events(alice_dir):
    path = alice_dir / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
    events = textgrid_to_events(path)
    assert len(events) == 2127
    assert events["word"].iloc[0] == "Alice"
    assert events["onset"].iloc[0] == pytest.approx(20.0589, abs=1e-4)
    assert not events["word"].isin(["sp", ""]).any()
