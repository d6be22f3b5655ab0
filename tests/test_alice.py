"""Tests of brainalign.datasets.alice: the Brennan et al. (2016) loader.

Error handling is tested on small synthetic folders with the authors' layout
(written in tmp_path); the real data, when present, check counts and timing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brainalign._validation import BrainalignError, InputFileError
from brainalign.datasets.alice import (
    ALICE_CITATION,
    ALICE_FIRST_VOLUME_ONSET,
    ALICE_MOTION_NAMES,
    ALICE_ROIS,
    ALICE_TR,
    check_usable,
    list_alice_subjects,
    load_alice_events,
    load_alice_responses,
    load_alice_word_rate,
)
from brainalign.io import Responses

N = 362


def _matrix_text(matrix: np.ndarray) -> str:
    return "".join(" ".join(f"{v: .7e}" for v in row) + "\n" for row in matrix)


def _fake_alice(root: Path, subjects=("s2", "s10", "s1"), sizes=("6mm", "10mm")) -> Path:
    """Write a synthetic dataset with the authors' layout and return its root."""
    rng = np.random.default_rng(0)
    data = root / "alice_data_shared"
    for size in sizes:
        (data / size).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            (data / size / f"{subject}-timecourses.txt").write_text(
                _matrix_text(100 + rng.standard_normal((N, 6)))
            )
    for subject in subjects:
        (data / f"{subject}-rp_run01.txt").write_text(_matrix_text(rng.standard_normal((N + 10, 6))))
        (data / f"{subject}-rate.txt").write_text("".join(f"{v:.5g}\n" for v in rng.random(N)))
    return root


@pytest.fixture
def fake(tmp_path) -> Path:
    return _fake_alice(tmp_path / "alice")


def _tc(root: Path, subject: str = "s1", size: str = "6mm") -> Path:
    return root / "alice_data_shared" / size / f"{subject}-timecourses.txt"


def _replace_line(path: Path, index: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = new + "\n"
    path.write_text("".join(lines))


def _error(func, *args, **kwargs) -> str:
    with pytest.raises(InputFileError) as info:
        func(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- constants
def test_constants():
    assert ALICE_ROIS == ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
    assert ALICE_TR == 2.0 and ALICE_FIRST_VOLUME_ONSET == 20.0
    assert ALICE_CITATION["doi"] == "10.1016/j.bandl.2016.04.008"
    assert ALICE_CITATION["licence"] == "CC BY 4.0"
    for key in ("authors", "title", "journal", "year", "pages", "source"):
        assert ALICE_CITATION[key]


# --------------------------------------------------------------------------- synthetic
def test_list_subjects_sorted_by_number(fake):
    assert list_alice_subjects(fake) == ["s1", "s2", "s10"]
    assert list_alice_subjects(fake, roi_size="10mm") == ["s1", "s2", "s10"]


def test_unknown_roi_size_lists_folders(fake):
    message = _error(list_alice_subjects, fake, roi_size="8mm")
    assert "alice_data_shared" in message and "'8mm'" in message
    assert "['10mm', '6mm']" in message
    assert "'8mm'" in _error(load_alice_responses, fake, "s1", roi_size="8mm")


def test_wrong_data_dir(tmp_path):
    assert "does not exist" in _error(list_alice_subjects, tmp_path / "nope")
    message = _error(list_alice_subjects, tmp_path)
    assert "alice_data_shared" in message


def test_load_synthetic(fake):
    resp = load_alice_responses(fake, "s2")
    assert isinstance(resp, Responses)
    assert resp.data.shape == (N, 6) and resp.data.dtype == np.float32
    assert resp.subject == "s2" and resp.modality == "fmri" and resp.sampling == 2.0
    assert resp.unit_names == ALICE_ROIS and resp.unit_rois == ALICE_ROIS
    assert resp.confound_names == ALICE_MOTION_NAMES
    rp = np.loadtxt(fake / "alice_data_shared" / "s2-rp_run01.txt")
    np.testing.assert_array_equal(resp.confounds, rp[10:])
    np.testing.assert_array_equal(resp.runs, np.ones(N))
    assert load_alice_responses(fake, 2).subject == "s2"
    with pytest.raises(BrainalignError, match="'s18'"):
        load_alice_responses(fake, "subject-two")


def test_missing_timecourse_file(fake):
    message = _error(load_alice_responses, fake, "s99")
    assert "s99-timecourses.txt" in message and "does not exist" in message


def test_wrong_column_count(fake):
    _replace_line(_tc(fake), 5, "1 2 3 4 5")
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-timecourses.txt" in message
    assert "row 5 (line 6) has 5 column(s), expected 6" in message


def test_non_numeric_entry_names_row(fake):
    _replace_line(_tc(fake), 7, "1 2 3 oops 5 6")
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-timecourses.txt" in message
    assert "non-numeric entry 'oops' at row 7 (line 8), column 'LIPL'" in message


@pytest.mark.parametrize(("value", "kind"), [("nan", "NaN"), ("-inf", "infinite")])
def test_non_finite_names_row_and_column(fake, value, kind):
    _replace_line(_tc(fake), 9, f"1 2 {value} 4 5 6")
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-timecourses.txt" in message
    assert f"column 'LPTL' is {kind} at row 9" in message


def test_wrong_row_count(fake):
    path = _tc(fake)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:300]))
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-timecourses.txt" in message and "300 rows, expected 362" in message


def test_empty_timecourse_file(fake):
    _tc(fake).write_text("")
    assert "s1-timecourses.txt: ROI time courses file is empty" in _error(load_alice_responses, fake, "s1")


def test_motion_row_count(fake):
    path = fake / "alice_data_shared" / "s1-rp_run01.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:362]))
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-rp_run01.txt" in message and "362 rows, expected 372" in message


def test_motion_non_finite(fake):
    _replace_line(fake / "alice_data_shared" / "s1-rp_run01.txt", 3, "0 0 0 0 nan 0")
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-rp_run01.txt" in message and "column 'rot_y' is NaN at row 3" in message


def test_no_or_several_motion_files(fake):
    data = fake / "alice_data_shared"
    (data / "s1-rp_run01.txt").rename(data / "s1-motion.txt")
    message = _error(load_alice_responses, fake, "s1")
    assert "s1-rp_*.txt" in message and "no motion-parameter file" in message
    (data / "s1-motion.txt").rename(data / "s1-rp_a.txt")
    (data / "s1-rp_b.txt").write_text((data / "s1-rp_a.txt").read_text())
    message = _error(load_alice_responses, fake, "s1")
    assert "2 motion-parameter files" in message and "s1-rp_a.txt" in message and "s1-rp_b.txt" in message


def test_word_rate_synthetic(fake):
    rate = load_alice_word_rate(fake, "s1")
    assert rate.shape == (N,) and rate.dtype == np.float64
    assert "s7-rate.txt" in _error(load_alice_word_rate, fake, "s7")


def test_check_usable_reasons():
    rng = np.random.default_rng(1)

    def responses(data: np.ndarray) -> Responses:
        n = data.shape[0]
        return Responses(data, 2.0, np.arange(n) * 2.0, np.ones(n), ALICE_ROIS, ALICE_ROIS, "sX")

    assert check_usable(responses(rng.standard_normal((N, 6)))) == (True, "")
    ok, reason = check_usable(responses(np.zeros((N, 6))))
    assert not ok and "zero" in reason and "sX" in reason
    data = rng.standard_normal((N, 6))
    data[:, 4] = 7.0
    ok, reason = check_usable(responses(data))
    assert not ok and "LPreM" in reason and "constant" in reason
    ok, reason = check_usable(responses(rng.standard_normal((10, 6))))
    assert not ok and "10 samples" in reason
    data = rng.standard_normal((N, 6))
    data[3, 1] = np.nan
    ok, reason = check_usable(responses(data))
    assert not ok and "NaN" in reason


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_events(alice_dir):
    events = load_alice_events(alice_dir)
    assert len(events) == 2127
    assert events["word"].iloc[0] == "Alice"
    assert events["onset"].iloc[0] == pytest.approx(20.0589, abs=1e-4)
    assert (events["run"] == 1).all()


@pytest.mark.shared_data
def test_real_subjects_and_usability(alice_dir):
    subjects = list_alice_subjects(alice_dir)
    assert len(subjects) == 28
    assert subjects[0] == "s18" and subjects[-1] == "s53"
    assert list_alice_subjects(alice_dir, roi_size="10mm") == subjects
    unusable = {}
    for subject in subjects:
        ok, reason = check_usable(load_alice_responses(alice_dir, subject))
        if not ok:
            unusable[subject] = reason
    assert list(unusable) == ["s33"]
    assert "zeros" in unusable["s33"]


@pytest.mark.shared_data
@pytest.mark.parametrize("roi_size", ["6mm", "10mm"])
def test_real_responses(alice_dir, roi_size):
    resp = load_alice_responses(alice_dir, "s18", roi_size=roi_size)
    assert resp.data.shape == (362, 6) and resp.data.dtype == np.float32
    assert resp.times[0] == 20.0 and resp.times[-1] == 20.0 + 2 * 361
    np.testing.assert_array_equal(np.diff(resp.times), 2.0)
    assert resp.confounds is not None and resp.confounds.shape == (362, 6)
    rp_file = next((alice_dir / "alice_data_shared").glob("s18-rp_*.txt"))
    np.testing.assert_array_equal(resp.confounds, np.loadtxt(rp_file)[10:])
    tc_file = alice_dir / "alice_data_shared" / roi_size / "s18-timecourses.txt"
    np.testing.assert_array_equal(resp.data, np.loadtxt(tc_file).astype(np.float32))


@pytest.mark.shared_data
def test_real_word_rate_matches_events_on_volume_clock(alice_dir):
    """The authors' word-rate regressor fits our events on the 20 + 2k clock, not a shifted one."""
    from nilearn.glm.first_level import compute_regressor

    events = load_alice_events(alice_dir)
    rate = load_alice_word_rate(alice_dir, "s18")
    assert rate.shape == (362,)
    times = ALICE_FIRST_VOLUME_ONSET + ALICE_TR * np.arange(362)

    def fit(shift: float) -> float:
        onsets = events["onset"].to_numpy() + shift
        condition = np.vstack([onsets, np.zeros_like(onsets), np.ones_like(onsets)])
        regressor, _ = compute_regressor(condition, "spm", times)
        return float(np.corrcoef(regressor[:, 0], rate)[0, 1])

    aligned = fit(0.0)
    assert aligned > 0.95
    assert aligned > fit(-ALICE_TR) + 0.1 and aligned > fit(ALICE_TR) + 0.1


def test_events_synthetic(fake):
    assert "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid" in _error(load_alice_events, fake)
    stim = fake / "alice_stim_shared"
    stim.mkdir()
    (stim / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid").write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n22\n<exists>\n1\n'
        '"IntervalTier"\n"word"\n0\n22\n3\n0\n20\n"sp"\n20\n21\n"Alice"\n21\n22\n""\n'
    )
    events = load_alice_events(fake)
    assert events["word"].tolist() == ["Alice"] and events["onset"].tolist() == [20.0]
