"""The MEG-MASC config on simulated MEG written in MEG-MASC's BIDS layout with mne-bids.

Two subjects, four stories (BIDS tasks 0-3) of session 0, magnetometer data in
FIF, events TSVs whose ``trial_type`` holds MEG-MASC's dict strings. The
config is ``workflows/configs/meg_masc.yaml`` with only the path, the file
extension and CPU-sized training changed.
"""

from __future__ import annotations

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
from brainalign.pipeline.electro import read_epochs

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
    assert (results / "report.html").exists()
