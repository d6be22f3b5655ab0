"""BIDS MEG/EEG datasets written with mne-bids.

The MEG-MASC config on simulated MEG in MEG-MASC's BIDS layout: two subjects,
four stories (BIDS tasks 0-3) of session 0, magnetometer data in FIF, events
TSVs whose ``trial_type`` holds MEG-MASC's dict strings. The config is
``workflows/configs/meg_masc.yaml`` with only the path, the file extension and
CPU-sized training changed.

An EEG dataset as a reviewer writes one with ``mne_bids.write_raw_bids``: word
events as MNE hierarchical tags (``word/<w>``) in ``trial_type``, a single run,
words whose windows cross the recording's edges; and the workflow rerunning
the stages whose BIDS files were edited.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign._validation import InputFileError
from brainalign.datasets.meeg_bids import find_recordings, read_bids_words
from brainalign.datasets.simulated_bids import split_story
from brainalign.datasets.simulated_meeg import (
    planted_sources,
    simulate_meeg_run,
    write_raw_fif,
)
from brainalign.io import read_epochs

REPO = Path(__file__).resolve().parent.parent
N_WORDS = 240


def _write_meg_masc(root: Path, tmp: Path) -> pd.DataFrame:
    import mne
    import mne_bids

    story = split_story(N_WORDS, 4, seed=3)
    Z = planted_sources(np.random.default_rng(0).standard_normal((N_WORDS, 16)), 4, seed=0)
    for s in range(2):
        for task in range(4):
            rows = (story["run"] == task + 1).to_numpy()
            raw = simulate_meeg_run(story[rows], Z[rows], subject_index=s, run=task + 1, modality="meg",
                                    sfreq=200.0, onset_offset=1.0 + s)
            fif = write_raw_fif(tmp / f"s{s}t{task}_raw.fif", raw)
            path = mne_bids.BIDSPath(subject=f"{s + 1:02d}", session="0", task=str(task), datatype="meg",
                                     root=root)
            mne_bids.write_raw_bids(mne.io.read_raw_fif(fif, verbose="error"), path, overwrite=True,
                                    verbose="error")
            # MEG-MASC's events: a dict per row in trial_type, plus non-word rows (sounds).
            events = path.copy().update(suffix="events", extension=".tsv").fpath
            table = pd.read_csv(events, sep="\t")
            table["trial_type"] = [f"{{'kind': 'word', 'word': {w!r}, 'story': 'lw1'}}" for w in table["trial_type"]]
            sound = pd.DataFrame({"onset": [0.5], "duration": [0.0], "trial_type": ["{'kind': 'sound'}"],
                                  "value": [0], "sample": [100]})
            pd.concat([sound, table]).to_csv(events, sep="\t", index=False)
    return story


@pytest.fixture(scope="module")
def meg_masc(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("meg masc ä")  # a space and a non-ASCII letter in the path
    story = _write_meg_masc(base / "MEG-MASC", base)
    cfg = yaml.safe_load((REPO / "workflows" / "configs" / "meg_masc.yaml").read_text())
    cfg["dataset"].update(bids_dir=str(base / "MEG-MASC"), extension=".fif")
    cfg["electrophysiology"].update(sfreq=40.0)
    cfg["contrastive"].update(hidden=16, depth=2, spatial_channels=16, epochs=2)
    cfg["threads"] = 1
    config = base / "meg_masc_ci.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return base, config, story


def test_reads_meg_masc_events(meg_masc):
    base, _, story = meg_masc
    ds = {"bids_dir": str(base / "MEG-MASC"), "datatype": "meg", "extension": ".fif", "task": None,
          "sessions": "all", "runs": "all"}
    recordings = find_recordings(ds, "sub-01")
    assert [r.key for r in recordings] == [("0", str(t), "") for t in range(4)]
    words = read_bids_words(recordings[0].events)
    expected = story[story["run"] == 1]
    assert list(words["word"]) == list(expected["word"])  # the sound row is skipped
    np.testing.assert_allclose(words["onset"], expected["onset"] + 1.0, atol=1 / 200)


def test_missing_word_column_is_a_clear_error(tmp_path):
    path = tmp_path / "sub-01_task-0_events.tsv"
    path.write_text("onset\tduration\tvalue\n1.0\t0\t1\n")
    with pytest.raises(InputFileError, match=r"events\.tsv.*dataset\.word_column"):
        read_bids_words(path)


@pytest.mark.workflow
def test_meg_masc_config_runs(meg_masc, snakemake):
    base, config, story = meg_masc
    workdir = base / "work"
    snakemake(workdir, "--configfile", str(config))
    results = workdir / "results" / "meg_masc"
    events = pd.read_csv(results / "stimuli" / "events.tsv", sep="\t")
    assert list(events["word"]) == list(story["word"])
    ep = read_epochs(results / "epochs" / "sub-02.h5")
    assert ep.X.shape[:2] == (N_WORDS, 32)  # every word; the 32 magnetometers
    assert ep.positions.shape == (32, 2)
    scores = pd.read_csv(results / "decoding" / "scores.csv")
    assert set(scores["subject"]) == {"sub-01", "sub-02", "pooled"}
    assert (scores["n_candidates"] == 60).all()  # the fourth story's words
    report = (results / "report.html").read_text()
    assert "Test data: whole run(s) [4] of [1, 2, 3, 4]; test epochs: sub-01 60, sub-02 60" in report
    assert "crossing a recording&#x27;s edge (drop_edge_epochs True): sub-01 0, sub-02 0." in report


# --------------------------------------------------------------------------- an EEG dataset written by mne-bids
# As a reviewer writes one: a simulated Raw whose annotations are MNE hierarchical
# event tags ("word/<w>", plus a non-word "sound/beep"), saved with
# mne_bids.write_raw_bids (EDF), so trial_type holds the tags. One run of 8
# sentences of 5 words (0.4 s apart, 1.5 s pause between sentences) in 28 s (a
# whole number of EDF records); the first word's window starts before the
# recording and the last three end after it.
SFREQ = 250.0
N_SENTENCES, SENTENCE_LENGTH = 8, 5
EEG_CHANNELS = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "F3", "F4"]


def _reviewer_words() -> tuple[np.ndarray, list[str]]:
    onsets, words, t = [], [], 0.3
    for s in range(N_SENTENCES):
        for k in range(SENTENCE_LENGTH):
            onsets.append(round(t, 3))
            words.append("and/or" if (s, k) == (2, 1) else f"w{s}{k}")  # a word holding a '/'
            t += 0.4
        t += 1.5
    return np.asarray(onsets), words


def _write_reviewer_eeg(root: Path) -> tuple[np.ndarray, list[str], float]:
    """The dataset (sub-01, task listen, one run); returns word onsets, words and the recording's duration."""
    import mne
    import mne_bids

    onsets, words = _reviewer_words()
    duration = 28.0
    n = int(round(duration * SFREQ))
    data = np.random.default_rng(0).standard_normal((len(EEG_CHANNELS), n)) * 1e-6
    data[EEG_CHANNELS.index("Cz")] = np.arange(n) / SFREQ * 1e-6  # a clock: 1 µV per second since the first sample
    raw = mne.io.RawArray(data, mne.create_info(EEG_CHANNELS, SFREQ, "eeg"), verbose="error")
    raw.set_montage(mne.channels.make_standard_montage("biosemi16"), verbose="error")
    descriptions = [f"word/{w}" for w in words] + ["sound/beep"]
    raw.set_annotations(mne.Annotations(np.r_[onsets, 5.0], np.zeros(len(descriptions)), descriptions))
    path = mne_bids.BIDSPath(subject="01", task="listen", datatype="eeg", root=root)
    mne_bids.write_raw_bids(raw, path, format="EDF", allow_preload=True, overwrite=True, verbose="error")
    return onsets, words, duration


def _reviewer_config(root: Path, **electro) -> dict:
    from brainalign.config import validate_config

    return validate_config({
        "dataset": {"name": "reviewer", "kind": "meeg_bids", "bids_dir": str(root), "datatype": "eeg",
                    "event_category": "word"},
        "feature_sets": {"m": {"kind": "transformer", "layers": [0]}},
        "electrophysiology": {"target_feature_set": "m", "target_layer": "0", "sfreq": 125.0, "baseline": None,
                              **electro},
        "contrastive": {"hidden": 8, "depth": 1, "spatial_channels": 4, "epochs": 1, "batch_size": 8},
    })


@pytest.fixture(scope="module")
def reviewer_eeg(tmp_path_factory) -> tuple[Path, np.ndarray, list[str], float]:
    root = tmp_path_factory.mktemp("reviewer eeg ä") / "bids"
    return (root, *_write_reviewer_eeg(root))


def _events_tsv(root: Path) -> Path:
    return root / "sub-01" / "eeg" / "sub-01_task-listen_events.tsv"


def test_mne_bids_event_tags_are_words_of_their_category(reviewer_eeg):
    import mne_bids

    from brainalign.preprocess.meeg import read_word_events

    root, onsets, words, _ = reviewer_eeg
    table = pd.read_csv(_events_tsv(root), sep="\t")
    assert "word/w00" in set(table["trial_type"]) and "sound/beep" in set(table["trial_type"])
    for column in ("trial_type", "word"):  # 'word' is absent: trial_type is read
        got = read_bids_words(_events_tsv(root), column, event_category="word")
        assert list(got["word"]) == words  # 'sound/beep' is not a word; 'word/and/or' is 'and/or'
        np.testing.assert_allclose(got["onset"], onsets)
    # The same words from the annotations mne-bids restores from the TSV.
    raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="01", task="listen", datatype="eeg", root=root),
                                 verbose="error")
    got = read_word_events(raw, event_category="word")
    assert list(got["word"]) == words
    np.testing.assert_allclose(got["onset"], onsets, atol=1 / SFREQ)
    got = read_word_events(raw, events_tsv=_events_tsv(root), word_column="trial_type", event_category="word")
    assert list(got["word"]) == words
    with pytest.raises(InputFileError, match=r"column 'trial_type': no words \(all 41 row\(s\) are not tagged "
                                             r"'stim/<word>'\)"):
        read_word_events(raw, events_tsv=_events_tsv(root), word_column="trial_type", event_category="stim")


def test_event_tags_without_their_category_are_refused(reviewer_eeg):
    from brainalign._validation import ConfigError
    from brainalign.config import validate_config

    root = reviewer_eeg[0]
    with pytest.raises(InputFileError, match=r"events\.tsv: column 'trial_type' holds hierarchical event tags "
                                             r"such as 'word/w00'.*dataset\.event_category.*"
                                             r"categories found: \['sound', 'word'\]"):
        read_bids_words(_events_tsv(root), "trial_type")
    with pytest.raises(InputFileError, match=r"events\.tsv: column 'trial_type': no event of category 'stim' "
                                             r"\(values 'stim/<word>'.*categories found: \['sound', 'word'\]"):
        read_bids_words(_events_tsv(root), "trial_type", event_category="stim")
    cfg = _reviewer_config(root)
    for bad in ("word/", "/word"):
        cfg["dataset"]["event_category"] = bad
        with pytest.raises(ConfigError, match="dataset.event_category"):
            validate_config(cfg)


def test_edge_epochs_are_dropped_counted_and_word_index_stays_right(reviewer_eeg, tmp_path, caplog):
    import h5py
    import mne_bids

    from brainalign.pipeline.electro import run_epochs
    from brainalign.pipeline.stages import run_stimuli
    from brainalign.stimuli.events import read_events

    root, onsets, words, duration = reviewer_eeg
    cfg = _reviewer_config(root)
    assert cfg["electrophysiology"]["drop_edge_epochs"] is True  # the default
    events_path = run_stimuli(cfg, tmp_path / "events.tsv")
    events = read_events(events_path)
    assert list(events["word"]) == words
    with caplog.at_level("WARNING", logger="brainalign"):
        ep = read_epochs(run_epochs(cfg, "sub-01", events_path, tmp_path / "sub-01.h5"))
    tmin, tmax = cfg["electrophysiology"]["tmin"], cfg["electrophysiology"]["tmax"]
    raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="01", task="listen", datatype="eeg", root=root),
                                 verbose="error")
    assert raw.n_times / raw.info["sfreq"] == duration
    outside = (onsets + tmin < 0) | (onsets + tmax > duration)  # no window ends within a sample of an edge
    np.testing.assert_array_equal(np.flatnonzero(outside), [0, 37, 38, 39])
    np.testing.assert_array_equal(ep.dropped_word_index, np.flatnonzero(outside))
    np.testing.assert_array_equal(ep.word_index, np.flatnonzero(~outside))
    assert ep.X.shape == (36, len(EEG_CHANNELS), 375)
    # The clock channel at each epoch's onset reads the onset of the word word_index points to.
    clock = ep.X[:, ep.ch_names.index("Cz"), np.argmin(np.abs(ep.times))] * 1e6
    np.testing.assert_allclose(clock, events["onset"].to_numpy()[ep.word_index], atol=1.5 / 125)
    with h5py.File(tmp_path / "sub-01.h5") as f:
        assert json.loads(f.attrs["provenance"])["settings"]["edge_epochs_dropped"] == {"1": 4}
    assert "4 of 40 word(s) dropped" in caplog.text and "'w74' at 26.400 s" in caplog.text

    strict = _reviewer_config(root, drop_edge_epochs=False)
    with pytest.raises(InputFileError, match=r"_eeg\.edf: event 0 \(onset 0\.3 s\).*4 of 40 event\(s\) are "
                                             r"outside\. Set electrophysiology\.drop_edge_epochs: true"):
        run_epochs(strict, "sub-01", events_path, tmp_path / "strict.h5")
    assert not (tmp_path / "strict.h5").exists()


def test_single_run_holds_out_its_last_sentences_after_a_gap(reviewer_eeg, tmp_path):
    from brainalign._validation import ConfigError
    from brainalign.io import Features, write_features
    from brainalign.pipeline.electro import _word_split, run_contrastive, run_epochs
    from brainalign.pipeline.stages import run_stimuli
    from brainalign.stimuli.events import read_events

    root, onsets, _, _ = reviewer_eeg
    cfg = _reviewer_config(root)
    events_path = run_stimuli(cfg, tmp_path / "events.tsv")
    events = read_events(events_path)
    np.testing.assert_array_equal(events["sentence"].astype(int), np.repeat(np.arange(N_SENTENCES), SENTENCE_LENGTH))
    train, test, description = _word_split(cfg, events)
    # 20 % of 40 words: the sentence start nearest word 32 is word 30 (sentences 6 and 7 are held out).
    np.testing.assert_array_equal(np.flatnonzero(test), np.arange(30, 40))
    # No training window shares a sample with a test window (windows as cut at 125 Hz) ...
    ep = cfg["electrophysiology"]
    start = np.floor((onsets + ep["tmin"]) * ep["sfreq"] + 0.5).astype(int)
    length = int(round((ep["tmax"] - ep["tmin"]) * ep["sfreq"]))
    assert start[train].max() + length <= start[test].min()
    # ... and only the words whose window reaches within two samples of the first test window are left out.
    gap = ~train & ~test
    np.testing.assert_array_equal(np.flatnonzero(gap), [27, 28, 29])
    assert (start[gap] + length + 2 > start[test].min()).all()
    assert description.startswith("within run 1, the only run: the last 10 of 40 words")

    # End to end: the split survives epoching (words 0 and 37-39 have no epoch) and decoding.
    epochs = run_epochs(cfg, "sub-01", events_path, tmp_path / "sub-01.h5")
    rng = np.random.default_rng(0)
    features = write_features(tmp_path / "m.h5", Features({"0": rng.standard_normal((len(events), 6))}, "m"), {})
    out = run_contrastive(cfg, [epochs], events_path, features, tmp_path / "decoding", progress=False)
    scores = pd.read_csv(out / "scores.csv")
    assert (scores["n_windows"] == 7).all()  # test words 30-36
    settings = json.loads((out / "scores.csv.json").read_text())["settings"]
    assert settings["n_train_epochs"] == {"sub-01": 26} and settings["n_test_epochs"] == {"sub-01": 7}
    assert settings["edge_epochs_dropped"] == {"sub-01": 4}
    assert settings["test_split"] == description

    with pytest.raises(ConfigError, match=r"electrophysiology\.test_runs.*leaves no run for training \(a single "
                                          r"run: set test_runs to null"):
        _word_split(_reviewer_config(root, test_runs=[1]), events)
    with pytest.raises(ConfigError, match=r"electrophysiology\.test_fraction.*leaves no training word"):
        _word_split(_reviewer_config(root, tmax=25.0), events)
    one_sentence = events.assign(sentence=0)
    with pytest.raises(ConfigError, match=r"electrophysiology\.test_runs.*single run \(run 1, 40 words; a "
                                          r"sentence ends at each pause longer than 1 s\) holding a single sentence"):
        _word_split(cfg, one_sentence)


@pytest.mark.workflow
def test_editing_bids_files_reruns_their_stages(reviewer_eeg, tmp_path, snakemake):
    """The events TSVs are inputs of `stimuli`, a subject's recording files inputs of its `epochs`."""
    import shutil

    root = tmp_path / "bids"
    shutil.copytree(reviewer_eeg[0], root)
    cfg = _reviewer_config(root)
    config = tmp_path / "reviewer.yaml"
    config.write_text(yaml.safe_dump({"dataset": {k: cfg["dataset"][k] for k in ("name", "kind", "bids_dir",
                                                                                   "datatype", "event_category")},
                                      "feature_sets": cfg["feature_sets"],
                                      "electrophysiology": {"target_feature_set": "m", "target_layer": "0",
                                                            "sfreq": 125.0}}))
    workdir = tmp_path / "work"
    target = "results/reviewer/epochs/sub-01.h5"
    snakemake(workdir, target, "--configfile", str(config))

    def planned() -> set[str]:
        proc = snakemake(workdir, target, "-n", "--quiet", "rules", "--configfile", str(config))
        return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()} & {"stimuli", "epochs"}

    assert planned() == set()
    # Snakemake reruns a job for an input that is newer than its outputs and whose content changed.
    later = time.time() + 10  # newer than every output, whatever the file system's time resolution
    os.utime(_events_tsv(root), (later, later))
    assert planned() == set()  # touched, not edited
    channels = root / "sub-01" / "eeg" / "sub-01_task-listen_channels.tsv"
    table = pd.read_csv(channels, sep="\t", keep_default_na=False)
    table.loc[table["name"] == "C4", "status"] = "bad"
    table.to_csv(channels, sep="\t", index=False)
    os.utime(channels, (later, later))
    assert planned() == {"epochs"}
    events = _events_tsv(root)
    table = pd.read_csv(events, sep="\t", keep_default_na=False)
    table.loc[table["trial_type"] == "sound/beep", "onset"] = 6.0  # an edit that keeps the words
    table.to_csv(events, sep="\t", index=False)
    os.utime(events, (later, later))
    assert planned() == {"stimuli", "epochs"}
