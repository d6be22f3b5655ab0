"""The ``timeseries`` kind (the user's own preprocessed data) and the dataset registry.

Reading: TSV, NPY and HDF5 files of the same planted data give the same
responses, on the clock the config states; bad files get errors naming the
file (and the cell). Registry: a toy kind declared by an installed package's
entry point, in one file with its schema fragment, runs the whole workflow.
(The timeseries kind reproducing the Alice scores exactly: tests/test_alice_analysis.py.)
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign._validation import ConfigError, InputFileError
from brainalign.config import validate_config
from brainalign.datasets.registry import get_kind, kind_names
from brainalign.datasets.timeseries import read_timeseries

REPO = Path(__file__).resolve().parent.parent
UNITS = ["IFG", "MTG", "AG", "V1"]
TR, ONSET, N = 1.5, 4.5, 80


def _planted(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N, len(UNITS))).astype(np.float32)


def _write(folder: Path, fmt: str, subjects=("sub-01", "sub-02"), runs=(1, 2)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, subject in enumerate(subjects):
        for run in runs:
            data = _planted(10 * k + run)
            path = folder / f"{subject}_run-{run}.{fmt}"
            if fmt == "tsv":
                pd.DataFrame(data.astype(np.float64), columns=UNITS).to_csv(path, sep="\t", index=False,
                                                                           float_format="%.9g")
            elif fmt == "npy":
                np.save(path, data)
            else:
                with h5py.File(path, "w") as f:
                    f.create_dataset("responses", data=data)
                    f["responses"].attrs["unit_names"] = UNITS
    words = [(run, ONSET + 2.0 + 0.7 * i, f"w{i}") for run in runs for i in range(60)]
    pd.DataFrame({"onset": [w[1] for w in words], "duration": 0.3, "word": [w[2] for w in words],
                  "run": [w[0] for w in words]}).to_csv(folder / "words.tsv", sep="\t", index=False)


def _config(folder: Path, fmt: str, **dataset) -> dict:
    return validate_config({
        "dataset": {"name": "mine", "kind": "timeseries", "responses": f"{{subject}}_run-{{run}}.{fmt}",
                    "events": "words.tsv", "sampling_interval": TR, "first_sample_onset": ONSET,
                    **({"unit_names": UNITS} if fmt == "npy" else {}), **dataset},
        "feature_sets": {"word_rate": {"kind": "word_rate"}},
    }, folder / "config.yaml")


@pytest.mark.parametrize("fmt", ["tsv", "npy", "h5"])
def test_every_format_reads_the_planted_data_on_the_stated_clock(tmp_path, fmt):
    _write(tmp_path, fmt)
    cfg = _config(tmp_path, fmt)
    kind = get_kind(cfg)
    assert kind.modality == "roi" and kind.subjects(cfg) == ["sub-01", "sub-02"]
    resp, inputs = kind.responses(cfg, "sub-02")
    np.testing.assert_array_equal(resp.data, np.concatenate([_planted(11), _planted(12)]))
    assert resp.unit_names == UNITS == resp.unit_rois and resp.sampling == TR
    np.testing.assert_array_equal(resp.runs, np.repeat([1, 2], N))
    np.testing.assert_allclose(resp.times, np.tile(ONSET + TR * np.arange(N), 2))
    assert inputs == [tmp_path / f"sub-02_run-{r}.{fmt}" for r in (1, 2)]
    tr, frames = kind.timing(cfg)
    assert tr == TR and sorted(frames) == [1, 2]
    np.testing.assert_allclose(frames[2], ONSET + TR * np.arange(N))
    events, sources = kind.events(cfg)
    assert len(events) == 120 and sources == [tmp_path / "words.tsv"]


def test_subjects_are_found_in_nested_patterns(tmp_path):
    for subject in ("sub-01", "sub-xy"):
        _write(tmp_path / subject, "tsv", subjects=(subject,))
    (tmp_path / "words.tsv").write_bytes((tmp_path / "sub-01" / "words.tsv").read_bytes())
    # A decoy whose two {subject} parts disagree is not a subject.
    (tmp_path / "sub-01" / "sub-zz_run-1.tsv").write_text("x\n1\n")
    cfg = _config(tmp_path, "tsv", responses="{subject}/{subject}_run-{run}.tsv")
    assert get_kind(cfg).subjects(cfg) == ["sub-01", "sub-xy"]


@pytest.mark.parametrize("content, message", [
    ("IFG\tMTG\n1\t2\n3\tx\n", "'x'"),
    ("IFG\tMTG\n1\t2\n3\tn/a\n", "no value at row 1"),
    ("IFG\tMTG\n1\t2\n3\tinf\n", "row 1"),
    ("IFG\tIFG\n1\t2\n", "more than once"),
    ("", "empty"),
], ids=["text", "missing", "infinite", "duplicate-unit", "empty"])
def test_bad_tsv_cells_name_the_file_and_the_cell(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(InputFileError, match=message) as err:
        read_timeseries(path)
    assert str(path) in str(err.value)


def test_bad_arrays_name_the_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(5))
    with pytest.raises(InputFileError, match=r"shape \(5,\)"):
        read_timeseries(tmp_path / "a.npy")
    np.save(tmp_path / "b.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(InputFileError, match="row 0, column 1"):
        read_timeseries(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", np.zeros((3, 2)))
    with pytest.raises(InputFileError, match="2 columns but 3 unit names"):
        read_timeseries(tmp_path / "c.npy", ["a", "b", "c"])
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["other"] = np.zeros((3, 2))
    with pytest.raises(InputFileError, match="no dataset 'responses'.*dataset.h5_key"):
        read_timeseries(tmp_path / "d.h5")
    (tmp_path / "e.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="unknown extension"):
        read_timeseries(tmp_path / "e.csv")


def test_a_missing_run_or_other_units_name_the_file(tmp_path):
    _write(tmp_path, "tsv")
    cfg = _config(tmp_path, "tsv")
    (tmp_path / "sub-02_run-2.tsv").unlink()
    with pytest.raises(InputFileError, match="does not exist") as err:
        get_kind(cfg).responses(cfg, "sub-02")
    assert "sub-02_run-2.tsv" in str(err.value)
    pd.DataFrame(_planted(0), columns=["IFG", "MTG", "AG", "V2"]).to_csv(tmp_path / "sub-01_run-2.tsv", sep="\t",
                                                                         index=False)
    with pytest.raises(InputFileError, match="differ from those of the subject's first run") as err:
        get_kind(cfg).responses(cfg, "sub-01")
    assert "sub-01_run-2.tsv" in str(err.value)


@pytest.mark.parametrize("dataset, field", [
    ({"responses": "{subject}.tsv"}, "dataset.responses"),
    ({"events": "nowhere.tsv"}, "dataset.events"),
    ({"sampling_interval": None}, "dataset.sampling_interval"),
    ({"sampling_interval": 0}, "dataset.sampling_interval"),
    ({"h5_key": "a b"}, "dataset.h5_key"),
], ids=["pattern-without-run", "missing-events", "no-sampling-interval", "zero-interval", "bad-h5-key"])
def test_bad_config_fields_are_named(tmp_path, dataset, field):
    _write(tmp_path, "tsv")
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "tsv", **dataset)
    assert err.value.field == field and str(tmp_path / "config.yaml") in str(err.value)


def test_the_template_is_valid_once_its_files_exist(tmp_path):
    template = (REPO / "workflows" / "templates" / "timeseries.yaml").read_text()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "words.tsv").write_text("onset\tduration\tword\trun\n1.0\t0.2\tgo\t1\n")
    (tmp_path / "my.yaml").write_text(template)
    from brainalign.config import load_config

    cfg = load_config(tmp_path / "my.yaml")
    assert cfg["dataset"]["kind"] == "timeseries"
    assert cfg["dataset"]["responses"] == str(tmp_path / "data" / "{subject}_run-{run}.tsv")


# --------------------------------------------------------------------------- registry
TOY_KIND = '''
"""A toy dataset kind: two subjects whose responses are the word rate, HRF-convolved, plus noise."""

import numpy as np
import pandas as pd

from brainalign.datasets.registry import DatasetKind
from brainalign.io import Responses


class ToyKind(DatasetKind):
    name = "toy"
    modality = "roi"
    schema = {"toy_noise": {"type": "number", "minimum": 0, "description": "Noise SD."}}

    def subjects(self, cfg):
        return ["sub-a", "sub-b"]

    def events(self, cfg):
        onsets = 10.0 + np.cumsum(np.random.default_rng(0).uniform(0.2, 3.0, 300))
        return pd.DataFrame({"onset": onsets, "duration": 0.2, "word": "word", "run": 1}), []

    def timing(self, cfg, events=None):
        return 2.0, {1: 2.0 * np.arange(400)}

    def responses(self, cfg, subject, raw=None):
        from brainalign.features.design import hrf_convolve

        events, _ = self.events(cfg)
        rate = hrf_convolve(events["onset"], np.zeros(len(events)), np.ones(len(events)), 2.0 * np.arange(400))
        rng = np.random.default_rng(1 if subject == "sub-a" else 2)
        data = rate / rate.std() + cfg["dataset"].get("toy_noise", 1.0) * rng.standard_normal((400, 2))
        return Responses(data=data.astype(np.float32), sampling=2.0, times=2.0 * np.arange(400),
                         runs=np.ones(400, np.int64), unit_names=["u1", "u2"], unit_rois=["u1", "u2"],
                         subject=subject, modality="fmri"), []

    def credit(self, cfg):
        return "a toy kind declared by an installed package."
'''


def test_a_kind_from_an_installed_package_runs_the_workflow(tmp_path, snakemake):
    """One file (with its schema fragment) and an entry point: the registry, schema and rules take it up."""
    site = tmp_path / "site"
    (site / "toy_kind-0.1.dist-info").mkdir(parents=True)
    (site / "toy_kind.py").write_text(textwrap.dedent(TOY_KIND))
    (site / "toy_kind-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-kind\nVersion: 0.1\n")
    (site / "toy_kind-0.1.dist-info" / "entry_points.txt").write_text(
        "[brainalign.dataset_kinds]\ntoy = toy_kind:ToyKind\n")
    cfg = {"dataset": {"name": "toy_run", "kind": "toy", "toy_noise": 0.5},
           # One feature set: nothing to compare, comparisons.csv is an empty table (issue #21).
           "feature_sets": {"word_rate": {"kind": "word_rate"}},
           "statistics": {"n_permutations": 0}}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    env = {**snakemake.env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    import subprocess

    proc = subprocess.run(snakemake.command(tmp_path, "--config", f"config_path={tmp_path / 'toy.yaml'}"),
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results" / "toy_run"
    scores = pd.read_csv(results / "scores.csv")
    means = scores[(scores["fold"] == "mean") & (scores["feature_set"] == "word_rate")].groupby("subject")["score"].mean()
    assert set(means.index) >= {"sub-a", "sub-b"} and (means[["sub-a", "sub-b"]] > 0.5).all(), means
    assert "a toy kind declared by an installed package." in (results / "report.html").read_text()
    assert pd.read_csv(results / "comparisons.csv").empty
    # The terminal's last words say where the report is and the best model per ROI (issue #21).
    assert "brainalign: done.\n  scores: results/toy_run/scores.csv\n  report: results/toy_run/report.html" in proc.stdout
    assert "best model per ROI" in proc.stdout and "word_rate (layer 0 most often), r = " in proc.stdout
    # The score job's log shows its progress over layers.
    assert "score word_rate: 100%" in (results / "logs" / "score" / "word_rate.log").read_text()
    assert "toy" not in kind_names()  # this process never saw the package


def test_only_the_datasets_package_reads_the_dataset_kind():
    """Kind-string branches are gone: outside brainalign/datasets/ no code reads ``dataset.kind`` or names a
    kind, except where a kind's name is data (the config schema, docs, tests)."""
    import re

    # "bids" and "timeseries" are also BIDS words (a layout; fMRIPrep's confounds suffix).
    names = [name for name in kind_names() if name not in ("bids", "timeseries")]
    reads = re.compile(r"""(dataset"\]|ds)\[["']kind["']\]|\.get\(["']kind["']\)""")
    named = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, names)))
    offenders = []
    files = [*(REPO / "brainalign").rglob("*.py"), *(REPO / "workflows" / "rules").glob("*.smk"),
             REPO / "Snakefile", *(REPO / "decoders").rglob("*.py"), *(REPO / "kernels").rglob("*.py")]
    for path in files:
        if "datasets" in path.relative_to(REPO).parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if reads.search(code) or named.search(code):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("dataset, field", [
    ({"recordings": "{subject}_raw.fif"}, "dataset.recordings"),
    ({"recording_events": "{run}_events.tsv"}, "dataset.recording_events"),
    ({"datatype": None}, "dataset.datatype"),
], ids=["recordings-without-run", "events-without-subject", "no-datatype"])
def test_recordings_kind_names_bad_fields(tmp_path, dataset, field):
    with pytest.raises(ConfigError) as err:
        validate_config({"dataset": {"name": "meg", "kind": "recordings", "datatype": "meg",
                                     "recordings": "{subject}/run-{run}_raw.fif",
                                     "recording_events": "{subject}/run-{run}_events.tsv", **dataset},
                         "feature_sets": {"minilm": {"kind": "transformer", "layers": [3]}},
                         "electrophysiology": {"target_feature_set": "minilm", "target_layer": "3"}},
                        tmp_path / "meg.yaml")
    assert err.value.field == field


def test_a_subject_lacking_a_run_is_named(tmp_path):
    from brainalign.datasets.registry import get_kind

    for subject, runs in (("sub-01", (1, 2)), ("sub-02", (1,))):
        for run in runs:
            (tmp_path / subject).mkdir(exist_ok=True)
            (tmp_path / subject / f"run-{run}_raw.fif").write_bytes(b"")
            (tmp_path / subject / f"run-{run}_events.tsv").write_text("onset\tword\n1.0\tgo\n")
    cfg = validate_config({"dataset": {"name": "meg", "kind": "recordings", "datatype": "meg",
                                       "recordings": "{subject}/run-{run}_raw.fif",
                                       "recording_events": "{subject}/run-{run}_events.tsv"},
                           "feature_sets": {"minilm": {"kind": "transformer", "layers": [3]}},
                           "electrophysiology": {"target_feature_set": "minilm", "target_layer": "3"}},
                          tmp_path / "meg.yaml")
    kind = get_kind(cfg)
    assert kind.subjects(cfg) == ["sub-01", "sub-02"]
    events, sources = kind.events(cfg)
    assert list(events["run"]) == [1, 2] and sources == [tmp_path / "sub-01" / f"run-{r}_events.tsv" for r in (1, 2)]
    with pytest.raises(InputFileError, match="this events file of run-2_raw.fif does not exist") as err:
        kind.recordings(cfg, "sub-02", None)
    assert str(tmp_path / "sub-02" / "run-2_events.tsv") in str(err.value)
