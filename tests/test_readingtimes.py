"""Reading-time scores: Futrell2018 |r| by hand, the regression gain against scikit-learn, Natural Stories by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneGroupOut

from brainalign._validation import BrainalignError
from brainalign.metrics.readingtimes import (
    FUTRELL2018_CEILING,
    futrell2018_score,
    regression_gain,
    sentence_initial,
    spillover_design,
)


def test_sentence_initial_follows_sentence_final_punctuation_and_story_starts():
    words = ["If", "you", "mountains.'", "It", "is", "here?", "Yes", "A", "b"]
    story = [1, 1, 1, 1, 1, 1, 1, 2, 2]
    assert sentence_initial(words, story).tolist() == [True, False, False, True, False, False, True, True, False]


def test_futrell2018_score_reproduces_a_hand_computed_r():
    # Scored words 2..5: x dev (-1.5, -.5, .5, 1.5), y dev (-1, -2, 2, 1): r = 5 / sqrt(5 * 10).
    surprisal = [9.0, 2, 3, 4, 5]
    rt = [100.0, 12, 11, 15, 14]
    score = futrell2018_score(surprisal, rt, [True, False, False, False, False])
    assert score.raw == pytest.approx(1 / math.sqrt(2), abs=1e-15)
    assert score.normalized == pytest.approx(score.raw / FUTRELL2018_CEILING, abs=1e-15)
    assert score.n_words == 4
    # |r|: a negative correlation scores the same.
    assert futrell2018_score(-np.array(surprisal), rt, [True, False, False, False, False]).raw == pytest.approx(score.raw)


def test_futrell2018_score_drops_missing_words_and_says_how_many():
    score = futrell2018_score([np.nan, 2, 3, np.nan, 5, 1], [1.0, 12, 11, 15, 14, 9], [True] + [False] * 5)
    r = stats.pearsonr([2, 3, 5, 1], [12, 11, 14, 9])[0]
    assert score.raw == pytest.approx(abs(r), abs=1e-12)
    assert (score.n_words, score.n_dropped_missing) == (4, 1)
    with pytest.raises(BrainalignError, match="constant"):
        futrell2018_score([1.0, 1, 1, 1], [1.0, 2, 3, 4], [False] * 4)


def _planted_table(n_stories=6, n_words=150, effect=8.0, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for story in range(1, n_stories + 1):
        surprisal = rng.gamma(2.0, 3.0, n_words)
        length = rng.integers(1, 12, n_words).astype(float)
        freq = -surprisal * 0.3 + rng.normal(0, 1, n_words)
        lag1 = np.concatenate([[np.nan], surprisal[:-1]])
        rt = 300 + 6 * length - 4 * freq + effect * surprisal + 0.5 * effect * np.nan_to_num(lag1) + rng.normal(0, 40, n_words)
        initial = np.zeros(n_words, bool)
        initial[::15] = True
        rows.append(pd.DataFrame({"story": story, "rt": rt, "surprisal": surprisal, "length": length,
                                  "log_frequency": freq, "position": np.arange(1.0, n_words + 1),
                                  "sentence_initial": initial}))
    return pd.concat(rows, ignore_index=True)


def _sklearn_gain(table: pd.DataFrame, predictor: str, spillover: int) -> float:
    """Leave-one-story-out OLS with scikit-learn: mean held-out Gaussian log-likelihood gain per word."""
    X = spillover_design(table, ["length", "log_frequency", "position"], spillover, "story")
    P = spillover_design(table, [predictor], spillover, "story")
    rows = (np.isfinite(X).all(axis=1) & np.isfinite(P).all(axis=1) & ~table["sentence_initial"]).to_numpy()
    y, groups = table["rt"].to_numpy()[rows], table["story"].to_numpy()[rows]

    def loglik(design):
        out = np.empty_like(y)
        for train, test in LeaveOneGroupOut().split(design, y, groups):
            fit = LinearRegression().fit(design[train], y[train])
            var = np.mean((y[train] - fit.predict(design[train])) ** 2)
            out[test] = -0.5 * np.log(2 * np.pi * var) - (y[test] - fit.predict(design[test])) ** 2 / (2 * var)
        return out

    base = X.to_numpy()[rows]
    return float(np.mean(loglik(np.column_stack([base, P.to_numpy()[rows]])) - loglik(base)))


@pytest.mark.parametrize("spillover", [0, 2])
def test_regression_gain_equals_scikit_learn_leave_one_story_out(spillover):
    table = _planted_table()
    gain = regression_gain(table, "surprisal", spillover=spillover, n_permutations=0)
    assert gain.delta_loglik == pytest.approx(_sklearn_gain(table, "surprisal", spillover), rel=1e-9, abs=1e-12)
    assert gain.delta_loglik > 0.05 and gain.delta_r2 > 0.05
    assert len(gain.per_group) == 6 and gain.per_group["n_words"].sum() == gain.n_words


def test_regression_gain_permutation_test_separates_a_planted_effect_from_none():
    planted = regression_gain(_planted_table(), "surprisal", n_permutations=99, random_state=1)
    assert planted.p_value == pytest.approx(0.01)  # every permutation below the observed gain
    null_table = _planted_table(effect=0.0, seed=3)
    null_table["surprisal"] = np.random.default_rng(5).permutation(null_table["surprisal"].to_numpy())
    none = regression_gain(null_table, "surprisal", n_permutations=99, random_state=1)
    assert none.delta_loglik < 0.01 and none.p_value > 0.05
    again = regression_gain(null_table, "surprisal", n_permutations=99, random_state=1)
    assert np.array_equal(again.null, none.null)


def test_regression_gain_refuses_interleaved_stories_and_missing_columns():
    table = _planted_table(n_stories=2, n_words=20)
    with pytest.raises(BrainalignError, match="contiguous"):
        regression_gain(table.iloc[np.r_[0:10, 20:30, 10:20, 30:40]], "surprisal", n_permutations=0)
    with pytest.raises(BrainalignError, match="no column"):
        regression_gain(table.drop(columns="length"), "surprisal", n_permutations=0)


def test_natural_stories_words_ngrams_and_gpt3_match_the_files_by_hand(naturalstories_dir):
    from brainalign.datasets.naturalstories import gpt3_surprisal, load_words, ngram_surprisal

    words = load_words(naturalstories_dir)
    assert len(words) == 10256 and sorted(words["story"].unique()) == list(range(1, 11))
    first = words.iloc[:10]
    assert first["word"].tolist()[:3] == ["If", "you", "were"] and first["sentence_initial"].tolist()[:2] == [True, False]
    # freqs-3.tsv, 1.3.word: "were" 553145 / 25245107.
    trigram = ngram_surprisal(naturalstories_dir, words, 3)
    assert trigram.iloc[2] == pytest.approx(-math.log2(553145 / 25245107), abs=1e-12)
    # freqs-2.tsv, 1.49.word "spun" has count 0: backs off to the unigram.
    assert trigram.attrs["backoff"] > 0 and np.isfinite(trigram.iloc[48])
    gpt3 = gpt3_surprisal(naturalstories_dir, words)
    # all_stories_gpt3.csv: " you" -0.7762714; " England" -1.6299113 + "," -0.9145297 (natural log).
    assert gpt3.iloc[1] == pytest.approx(0.7762714 / math.log(2), abs=1e-12)
    assert gpt3.iloc[9] == pytest.approx((1.6299113 + 0.9145297) / math.log(2), abs=1e-12)
    assert np.isnan(gpt3.iloc[0]) and gpt3.isna().sum() == 10  # each story's first word
    score = futrell2018_score(gpt3, words["rt"], words["sentence_initial"])
    keep = ~words["sentence_initial"] & gpt3.notna()
    assert score.raw == pytest.approx(abs(stats.pearsonr(gpt3[keep], words["rt"][keep])[0]), abs=1e-12)
