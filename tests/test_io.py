"""Tests of brainalign.io: atomic writes, contract round trips, determinism, bad files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from brainalign._validation import InputFileError, check_finite
from brainalign.io import (
    Features,
    Responses,
    atomic_path,
    config_hash,
    provenance,
    read_features,
    read_responses,
    read_table,
    sha256_file,
    write_features,
    write_responses,
    write_table,
    write_text,
)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _responses(seed: int = 0, n: int = 20, confounds: bool = True) -> Responses:
    rng = np.random.default_rng(seed)
    return Responses(
        data=rng.standard_normal((n, 3)).astype(np.float32),
        sampling=2.0,
        times=20.0 + 2.0 * np.arange(n),
        runs=np.repeat([1, 2], n // 2),
        unit_names=["LATL", "vox-1", "vox-2"],
        unit_rois=["LATL", "ROI_B", "ROI_B"],
        subject="s18",
        modality="fmri",
        unit_coords=rng.standard_normal((3, 3)) if confounds else None,
        confounds=rng.standard_normal((n, 2)) if confounds else None,
        confound_names=["trans_x", "rot_z"] if confounds else [],
    )


PROV = {"stage": "test", "settings": {"seed": 1}}


# --------------------------------------------------------------------------- atomic_path
def test_atomic_path_leaves_nothing_when_body_raises(tmp_path):
    target = tmp_path / "out" / "result.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".result.h5.")
            tmp.write_bytes(b"half written")
            raise RuntimeError("boom")
    assert _listing(target.parent) == []  # neither the file nor a hidden temp file


def test_atomic_path_keeps_old_file_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new but interrupted\n")
            raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert _listing(tmp_path) == ["table.csv"]
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # not replaced before the body ends
    assert target.read_text() == "new\n"
    assert _listing(tmp_path) == ["table.csv"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_failed_hdf5_write_leaves_no_file(tmp_path):
    class Unserialisable:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    # The error is raised mid-write, after the HDF5 datasets were created.
    bad = Features({"0": np.ones((3, 2))}, "m", settings={"x": Unserialisable()})
    with pytest.raises(RuntimeError, match="cannot serialise"):
        write_features(tmp_path / "f.h5", bad, PROV)
    assert _listing(tmp_path) == []


def test_write_text(tmp_path):
    path = write_text(tmp_path / "a" / "b.txt", "héllo\n")
    assert path.read_bytes() == "héllo\n".encode("utf-8")


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("confounds", [True, False])
def test_responses_round_trip(tmp_path, confounds):
    resp = _responses(confounds=confounds)
    path = write_responses(tmp_path / "r.h5", resp, PROV)
    back = read_responses(path)
    assert back.data.dtype == np.float32 and np.array_equal(back.data, resp.data)
    assert np.array_equal(back.times, resp.times) and np.array_equal(back.runs, resp.runs)
    assert back.unit_names == resp.unit_names and back.unit_rois == resp.unit_rois
    assert back.subject == "s18" and back.modality == "fmri" and back.sampling == 2.0
    assert back.excluded == ""
    if confounds:
        assert np.array_equal(back.confounds, resp.confounds)
        assert np.array_equal(back.unit_coords, resp.unit_coords)
        assert back.confound_names == ["trans_x", "rot_z"]
    else:
        assert back.confounds is None and back.unit_coords is None
    with h5py.File(path, "r") as f:
        assert f.attrs["contract"] == "responses/1"
        assert json.loads(f.attrs["provenance"]) == PROV


def test_excluded_responses_round_trip_skip_finite_check(tmp_path):
    resp = _responses(confounds=False)
    resp.data[3, 1] = np.nan
    resp.excluded = "subject 's18' has NaN or infinite values."
    back = read_responses(write_responses(tmp_path / "r.h5", resp, PROV))
    assert back.excluded == resp.excluded
    assert np.isnan(back.data[3, 1])
    resp.excluded = ""
    path = write_responses(tmp_path / "bad.h5", resp, PROV)
    with pytest.raises(InputFileError) as info:
        read_responses(path)
    assert str(path) in str(info.value) and "row=3, column=1" in str(info.value)


def test_responses_shape_checks():
    with pytest.raises(InputFileError, match="times"):
        Responses(np.zeros((4, 2)), 2.0, np.zeros(3), np.ones(4), ["a", "b"], ["a", "b"], "s1")
    with pytest.raises(InputFileError, match="unit_rois"):
        Responses(np.zeros((4, 2)), 2.0, np.zeros(4), np.ones(4), ["a", "b"], ["a"], "s1")
    with pytest.raises(InputFileError, match="confounds"):
        Responses(np.zeros((4, 2)), 2.0, np.zeros(4), np.ones(4), ["a", "b"], ["a", "b"], "s1",
                  confounds=np.zeros((3, 1)))


def test_features_round_trip_and_layer_selection(tmp_path):
    rng = np.random.default_rng(3)
    layers = {str(k): rng.standard_normal((7, 5)).astype(np.float32) for k in (0, 1, 10, 2)}
    feats = Features(layers, "minilm", {"context_words": 8, "model": {"n_layers": 6}},
                     times=np.linspace(0, 3, 7))
    path = write_features(tmp_path / "f.h5", feats, PROV)
    back = read_features(path)
    assert back.layer_names == ["0", "1", "10", "2"]  # the written order, not sorted
    for name in layers:
        assert back.layers[name].dtype == np.float32
        assert np.array_equal(back.layers[name], layers[name])
    assert back.model == "minilm" and back.settings == feats.settings
    assert np.array_equal(back.times, feats.times)
    sub = read_features(path, ["2", "0"])
    assert sub.layer_names == ["2", "0"]
    with pytest.raises(InputFileError) as info:
        read_features(path, ["7"])
    assert str(path) in str(info.value) and "'7'" in str(info.value)
    # kind= is part of the contract: a features file is not a design file.
    with pytest.raises(InputFileError, match="contract"):
        read_features(path, kind="design")
    design = write_features(tmp_path / "d.h5", feats, PROV, kind="design")
    assert np.array_equal(read_features(design, kind="design").layers["10"], layers["10"])


def test_features_with_nan_name_layer_row_column(tmp_path):
    arr = np.zeros((4, 3), dtype=np.float32)
    arr[2, 1] = np.inf
    path = write_features(tmp_path / "f.h5", Features({"5": arr}, "m"), PROV)
    with pytest.raises(InputFileError) as info:
        read_features(path)
    msg = str(info.value)
    assert str(path) in msg and "layers/5" in msg and "row=2, column=1" in msg


def test_table_round_trip(tmp_path):
    table = pd.DataFrame({
        "subject": ["s1", "s2", "NA"],  # "NA" must stay a string
        "layer": [0, 1, 2],
        "fold": ["0", "mean", "1"],
        "score": [0.1, -0.25, 1 / 3],
    })
    path = write_table(tmp_path / "t.csv", table, PROV)
    assert json.loads((tmp_path / "t.csv.json").read_text()) == PROV
    back = read_table(path, required=["subject", "score"])
    assert back["subject"].tolist() == ["s1", "s2", "NA"]
    assert back["fold"].astype(str).tolist() == ["0", "mean", "1"]
    np.testing.assert_array_equal(back["score"].to_numpy(), table["score"].to_numpy())
    np.testing.assert_array_equal(back["layer"].to_numpy(), [0, 1, 2])
    with pytest.raises(InputFileError) as info:
        read_table(path, required=["ceiling"])
    assert str(path) in str(info.value) and "ceiling" in str(info.value)
    with pytest.raises(InputFileError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    tsv = tmp_path / "x.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    assert read_table(tsv).columns.tolist() == ["a", "b"]


# --------------------------------------------------------------------------- determinism
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_writes_are_byte_identical(tmp_path):
    cfg = {"dataset": {"name": "x"}, "b": [1, 2]}
    inp = tmp_path / "input.txt"
    inp.write_text("data")
    prov = provenance(cfg, [inp], stage="test", seed=3)
    assert "time" not in json.dumps(prov).lower()
    resp = _responses()
    feats = Features({"0": np.arange(6, dtype=np.float32).reshape(3, 2)}, "m", {"a": 1},
                     times=np.arange(3.0))
    table = pd.DataFrame({"a": [1.5, 2.25], "b": ["x", "y"]})
    digests = []
    for run in ("one", "two"):
        folder = tmp_path / run
        write_responses(folder / "r.h5", resp, provenance(cfg, [inp], stage="test", seed=3))
        write_features(folder / "f.h5", feats, provenance(cfg, [inp], stage="test", seed=3))
        write_table(folder / "t.csv", table, provenance(cfg, [inp], stage="test", seed=3))
        digests.append({p.name: _digest(p) for p in sorted(folder.iterdir())})
        os.utime(inp, (1, 1))  # a changed mtime must not change anything
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"r.h5", "f.h5", "t.csv", "t.csv.json"}


def test_provenance_contents(tmp_path):
    inp = tmp_path / "events.tsv"
    inp.write_bytes(b"abc")
    cfg = {"z": 1, "a": {"b": 2}}
    prov = provenance(cfg, [inp], stage="x")
    assert prov["inputs"] == {"events.tsv": hashlib.sha256(b"abc").hexdigest()}
    assert prov["inputs"]["events.tsv"] == sha256_file(inp)
    assert prov["settings"] == {"stage": "x"}
    assert prov["config"] == cfg
    canonical = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    assert prov["config_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert config_hash({"a": {"b": 2}, "z": 1}) == prov["config_sha256"]  # key order irrelevant
    assert "numpy" in prov["packages"] and "python" in prov["packages"]


# --------------------------------------------------------------------------- bad files
def test_read_non_hdf5_file(tmp_path):
    path = tmp_path / "features.h5"
    path.write_text("this is not HDF5\n")
    for reader in (read_features, read_responses):
        with pytest.raises(InputFileError) as info:
            reader(path)
        assert str(path) in str(info.value) and "HDF5" in str(info.value)


def test_read_missing_hdf5_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(InputFileError) as info:
        read_responses(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)


def test_read_wrong_contract(tmp_path):
    feats_path = write_features(tmp_path / "f.h5", Features({"0": np.ones((2, 2))}, "m"), PROV)
    with pytest.raises(InputFileError) as info:
        read_responses(feats_path)
    msg = str(info.value)
    assert str(feats_path) in msg and "'contract'" in msg and "responses/1" in msg
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(InputFileError) as info:
        read_features(plain)
    assert str(plain) in str(info.value) and "'contract'" in str(info.value)


def test_responses_file_missing_dataset(tmp_path):
    path = write_responses(tmp_path / "r.h5", _responses(), PROV)
    with h5py.File(path, "a") as f:
        del f["times"]
    with pytest.raises(InputFileError) as info:
        read_responses(path)
    assert str(path) in str(info.value) and "times" in str(info.value)


def _replace_dataset(path: Path, name: str, values: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, data=values)


def _set_attr(path: Path, name: str, value: object) -> None:
    with h5py.File(path, "a") as f:
        f.attrs[name] = value


_TEXT = np.array([[b"1.5", b"2", b"x"]] * 20)


@pytest.mark.parametrize("edit, expected", [
    (lambda p: _replace_dataset(p, "data", _TEXT), ("dataset 'data'", "text", "real numbers")),
    (lambda p: _replace_dataset(p, "data", np.ones((20, 3), complex)), ("dataset 'data'", "complex numbers")),
    (lambda p: _replace_dataset(p, "runs", np.array([b"run-1"] * 20)), ("dataset 'runs'", "text")),
    (lambda p: _replace_dataset(p, "runs", np.full(20, 1.5)), ("dataset 'runs'", "non-integer")),
    (lambda p: _replace_dataset(p, "confounds", _TEXT[:, :2]), ("dataset 'confounds'", "text")),
    (lambda p: _replace_dataset(p, "times", np.arange(19.0)), ("times", "(19,)", "(20,)")),
    (lambda p: _set_attr(p, "unit_names", json.dumps(["LATL", "vox-1"])),
     ("attribute 'unit_names'", "2 name(s)", "3 columns")),
    (lambda p: _set_attr(p, "unit_rois", json.dumps(["LATL", "ROI_B", "ROI_B", "ROI_C"])),
     ("attribute 'unit_rois'", "4 name(s)", "3 columns")),
    (lambda p: _set_attr(p, "unit_names", "LATL, vox-1, vox-2"), ("attribute 'unit_names'", "not valid JSON")),
    (lambda p: _set_attr(p, "unit_names", json.dumps([1, 2, 3])), ("attribute 'unit_names'", "list of strings")),
    (lambda p: _set_attr(p, "sampling", "fast"), ("attribute 'sampling'", "'fast'", "number > 0")),
    (lambda p: _set_attr(p, "sampling", 0.0), ("attribute 'sampling'", "number > 0")),
], ids=["text-data", "complex-data", "text-runs", "fractional-runs", "text-confounds", "times-length",
        "unit-names-length", "unit-rois-length", "unit-names-not-json", "unit-names-not-strings",
        "sampling-text", "sampling-zero"])
def test_malformed_responses_name_the_file_and_field(tmp_path, edit, expected):
    path = write_responses(tmp_path / "r.h5", _responses(), PROV)
    edit(path)
    with pytest.raises(InputFileError) as info:
        read_responses(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    for text in expected:
        assert text in msg, (text, msg)


def test_responses_without_units_are_refused(tmp_path):
    path = write_responses(tmp_path / "r.h5", _responses(confounds=False), PROV)
    _replace_dataset(path, "data", np.zeros((20, 0), np.float32))
    _set_attr(path, "unit_names", "[]")
    _set_attr(path, "unit_rois", "[]")
    with pytest.raises(InputFileError) as info:
        read_responses(path)
    assert str(path) in str(info.value) and "dataset 'data'" in str(info.value) and "empty" in str(info.value)


@pytest.mark.parametrize("values, expected", [
    (np.array([[b"0.5", b"1"]] * 4), ("text", "real numbers")),
    (np.zeros((4, 0), np.float32), ("(4, 0)", "empty")),
    (np.zeros((0, 2), np.float32), ("(0, 2)", "empty")),
    (np.ones((4, 2), bool), ("booleans",)),
], ids=["text", "zero-columns", "zero-rows", "booleans"])
def test_malformed_feature_layers_name_the_file_and_layer(tmp_path, values, expected):
    path = write_features(tmp_path / "f.h5", Features({"0": np.ones((4, 2)), "3": np.ones((4, 2))}, "m"), PROV)
    _replace_dataset(path, "layers/3", values)
    with pytest.raises(InputFileError) as info:
        read_features(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "dataset 'layers/3'" in msg
    for text in expected:
        assert text in msg, (text, msg)
    assert read_features(path, ["0"]).layers["0"].shape == (4, 2)  # other layers stay readable


@pytest.mark.parametrize("name, value, expected", [
    ("layer_order", "0, 3", "not valid JSON"),
    ("layer_order", "[]", "lists no layer"),
    ("settings", "[1, 2]", "JSON object"),
])
def test_malformed_feature_attributes_name_the_file(tmp_path, name, value, expected):
    path = write_features(tmp_path / "f.h5", Features({"0": np.ones((4, 2))}, "m"), PROV)
    _set_attr(path, name, value)
    with pytest.raises(InputFileError) as info:
        read_features(path)
    assert str(path) in str(info.value) and f"attribute {name!r}" in str(info.value)
    assert expected in str(info.value)


def test_check_finite_names_row_and_column():
    a = np.ones((5, 4))
    assert check_finite(a, "x.h5", "dataset 'data'") is not None
    a[3, 2] = np.nan
    a[4, 0] = np.inf
    with pytest.raises(InputFileError) as info:
        check_finite(a, "x.h5", "dataset 'data'")
    msg = str(info.value)
    assert msg.startswith("x.h5: dataset 'data'")
    assert "2 NaN or infinite value(s)" in msg and "row=3, column=2" in msg
    with pytest.raises(InputFileError, match="row=1"):
        check_finite(np.array([0.0, np.nan]), None, "vector")
