"""NIfTI in and out: brainalign.preprocess.nifti."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("nilearn")

from nibabel.affines import apply_affine

from brainalign._validation import InputFileError
from brainalign.preprocess.nifti import (
    VolumeGrid,
    load_bold_responses,
    read_score_map,
    write_score_map,
)

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
AFFINE = np.array(
    [[2.0, 0, 0, -10.0], [0, 2.0, 0, -8.0], [0, 0, 2.5, 4.0], [0, 0, 0, 1]]
)
SHAPE = (6, 5, 4)
N_VOL = 40


def nib_file(name: str) -> Path:
    path = NIB_DATA / name
    if not path.exists():
        pytest.skip(f"nibabel test file {name} not found at {path}")
    return path


def make_bold(tr: float = 2.0, seed: int = 0, affine=AFFINE) -> nib.Nifti1Image:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(SHAPE + (N_VOL,)).astype(np.float32) + 100
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    return img


def save(img, path: Path) -> Path:
    nib.save(img, str(path))
    return path


# --------------------------------------------------------------------------- real files
def test_example4d_shape_tr_coords():
    path = nib_file("example4d.nii.gz")
    img = nib.load(str(path))
    resp, grid = load_bold_responses(path)
    assert grid.shape == img.shape[:3]
    np.testing.assert_allclose(grid.affine, img.affine)
    assert resp.n_samples == img.shape[3]
    # The header's time unit is seconds and pixdim[4] is stored verbatim.
    assert resp.sampling == pytest.approx(float(img.header.get_zooms()[3]))
    assert resp.n_units == grid.mask.sum() == grid.n_units
    ijk = np.argwhere(grid.mask)
    for u in (0, resp.n_units // 2, resp.n_units - 1):
        np.testing.assert_allclose(resp.unit_coords[u], apply_affine(img.affine, ijk[u]), atol=1e-4)
        np.testing.assert_allclose(resp.data[:, u], img.get_fdata()[tuple(ijk[u])], rtol=1e-5)


def test_functional_nii_tr_and_times():
    path = nib_file("functional.nii")
    img = nib.load(str(path))
    resp, _grid = load_bold_responses(path, subject="sub-02", run=3)
    assert resp.sampling == pytest.approx(float(img.header.get_zooms()[3]))
    np.testing.assert_allclose(resp.times, np.arange(img.shape[3]) * resp.sampling)
    assert set(resp.runs) == {3} and resp.subject == "sub-02"
    assert resp.unit_names[0] == "v0" and set(resp.unit_rois) == {"mask"}


def test_3d_real_file_is_rejected():
    path = nib_file("anatomical.nii")
    with pytest.raises(InputFileError, match="4-D") as err:
        load_bold_responses(path)
    assert "anatomical.nii" in str(err.value) and "'dim'" in str(err.value)
    assert str(tuple(nib.load(str(path)).shape)) in str(err.value)


# --------------------------------------------------------------------------- synthetic
def test_mask_extraction_equals_numpy_indexing(tmp_path):
    img = make_bold()
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:4, 2:5, 1:3] = 1
    mask[0, 0, 0] = 1
    resp, grid = load_bold_responses(
        save(img, tmp_path / "bold.nii.gz"),
        mask=save(nib.Nifti1Image(mask, AFFINE), tmp_path / "mask.nii.gz"),
    )
    expected = img.get_fdata()[mask.astype(bool)].T
    np.testing.assert_allclose(resp.data, expected, rtol=1e-6)
    assert resp.unit_names == [f"v{i}" for i in range(int(mask.sum()))]
    np.testing.assert_allclose(resp.unit_coords, apply_affine(AFFINE, np.argwhere(mask)))
    np.testing.assert_array_equal(grid.mask, mask.astype(bool))
    assert resp.sampling == 2.0


def test_default_mask_is_non_constant_voxels():
    img = make_bold()
    data = img.get_fdata()
    data[0] = 0.0  # a constant background slab
    resp, grid = load_bold_responses(nib.Nifti1Image(data, AFFINE), tr=1.5)
    assert not grid.mask[0].any() and grid.mask[1:].all()
    assert resp.sampling == 1.5


def test_tr_in_milliseconds_header_is_converted():
    img = make_bold(tr=2000.0)
    img.header.set_xyzt_units("mm", "msec")
    resp, _ = load_bold_responses(img)
    assert resp.sampling == pytest.approx(2.0)


def test_labels_extraction_equals_hand_means():
    img = make_bold()
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[:3] = 1
    labels[3:, :2] = 4
    labels[3:, 2:, :2] = 7
    resp, grid = load_bold_responses(img, labels=nib.Nifti1Image(labels, AFFINE))
    data = img.get_fdata()
    expected = np.stack([data[labels == k].mean(axis=0) for k in (1, 4, 7)], axis=1)
    np.testing.assert_allclose(resp.data, expected, rtol=1e-5)
    assert resp.unit_names == resp.unit_rois == ["label_1", "label_4", "label_7"]
    np.testing.assert_allclose(
        resp.unit_coords[1], apply_affine(AFFINE, np.argwhere(labels == 4)).mean(axis=0)
    )
    np.testing.assert_array_equal(grid.label_ids, [1, 4, 7])


def test_labels_on_coarser_grid_are_resampled_nearest(caplog):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    img = make_bold(affine=affine)
    # Coarse grid: 4 mm voxels, origin shifted by -1 mm so no fine voxel centre
    # falls half-way between two coarse ones (no rounding ties).
    coarse_affine = np.diag([4.0, 4.0, 4.0, 1.0])
    coarse_affine[:3, 3] = -1.0
    coarse = np.arange(1, 4 * 4 * 3 + 1, dtype=np.int16).reshape(4, 4, 3)
    with caplog.at_level(logging.INFO, logger="brainalign"):
        resp, grid = load_bold_responses(img, labels=nib.Nifti1Image(coarse, coarse_affine))
    assert "resampling the label image" in caplog.text
    # Hand nearest neighbour: fine voxel -> mm -> coarse voxel, rounded.
    fine_ijk = np.argwhere(np.ones(SHAPE, bool))
    coarse_ijk = np.rint(
        apply_affine(np.linalg.inv(coarse_affine), apply_affine(affine, fine_ijk))
    ).astype(int)
    hand = coarse[tuple(coarse_ijk.T)].reshape(SHAPE)
    np.testing.assert_array_equal(grid.labels, hand)
    data = img.get_fdata()
    ids = np.unique(hand)
    assert resp.unit_names == [f"label_{k}" for k in ids]
    expected = np.stack([data[hand == k].mean(axis=0) for k in ids], axis=1)
    np.testing.assert_allclose(resp.data, expected, rtol=1e-5)


def test_confounds_are_stored():
    conf = np.random.default_rng(1).standard_normal((N_VOL, 2))
    resp, _ = load_bold_responses(make_bold(), confounds=conf, confound_names=["tx", "ty"])
    np.testing.assert_allclose(resp.confounds, conf)
    assert resp.confound_names == ["tx", "ty"]


# --------------------------------------------------------------------------- errors
def _err(tmp_path, **kwargs) -> str:
    with pytest.raises(InputFileError) as err:
        load_bold_responses(**kwargs)
    return str(err.value)


def test_error_not_4d(tmp_path):
    path = save(nib.Nifti1Image(np.ones(SHAPE, np.float32), AFFINE), tmp_path / "vol3d.nii.gz")
    msg = _err(tmp_path, bold=path)
    assert "vol3d.nii.gz" in msg and "4-D" in msg and "(6, 5, 4)" in msg and "'dim'" in msg


def test_error_tr_missing(tmp_path):
    path = save(make_bold(tr=0.0), tmp_path / "notr_bold.nii.gz")
    msg = _err(tmp_path, bold=path)
    assert "notr_bold.nii.gz" in msg and "pixdim[4]" in msg and "tr=" in msg
    resp, _ = load_bold_responses(path, tr=0.8)  # given explicitly: fine
    assert resp.sampling == 0.8


def test_error_mask_on_other_grid(tmp_path):
    bold = save(make_bold(), tmp_path / "bold.nii.gz")
    other = np.diag([3.0, 3.0, 3.0, 1.0])
    mask = save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), other), tmp_path / "wrong_mask.nii")
    msg = _err(tmp_path, bold=bold, mask=mask)
    assert "wrong_mask.nii" in msg and "bold.nii.gz" in msg
    assert "(4, 4, 4)" in msg and "(6, 5, 4)" in msg and "not resampled" in msg
    # Same shape, other affine: still refused.
    mask2 = save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), other), tmp_path / "shifted_mask.nii")
    msg = _err(tmp_path, bold=bold, mask=mask2)
    assert "shifted_mask.nii" in msg and "affine" in msg and "3." in msg


def test_error_empty_mask(tmp_path):
    bold = save(make_bold(), tmp_path / "bold.nii.gz")
    mask = save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), AFFINE), tmp_path / "empty_mask.nii")
    msg = _err(tmp_path, bold=bold, mask=mask)
    assert "empty_mask.nii" in msg and "no voxels" in msg


def test_error_non_binary_mask(tmp_path):
    bold = save(make_bold(), tmp_path / "bold.nii.gz")
    mask = save(nib.Nifti1Image(np.full(SHAPE, 2, np.uint8), AFFINE), tmp_path / "prob_mask.nii")
    msg = _err(tmp_path, bold=bold, mask=mask)
    assert "prob_mask.nii" in msg and "binary" in msg


def test_error_nan_voxels(tmp_path):
    img = make_bold()
    data = img.get_fdata(dtype=np.float32)
    data[2, 3, 1, 5] = np.nan
    bold = save(nib.Nifti1Image(data, AFFINE, img.header), tmp_path / "nan_bold.nii.gz")
    msg = _err(tmp_path, bold=bold)
    assert "nan_bold.nii.gz" in msg and "NaN" in msg and "(2, 3, 1)" in msg
    # With a mask that excludes the NaN voxel, reading works.
    mask = np.zeros(SHAPE, np.uint8)
    mask[0] = 1
    resp, _ = load_bold_responses(bold, mask=nib.Nifti1Image(mask, AFFINE))
    assert np.isfinite(resp.data).all()
    # Labels covering it: error.
    msg = _err(tmp_path, bold=bold, labels=nib.Nifti1Image(np.ones(SHAPE, np.int16), AFFINE))
    assert "nan_bold.nii.gz" in msg and "NaN" in msg


def test_error_missing_and_bad_files(tmp_path):
    msg = _err(tmp_path, bold=tmp_path / "absent_bold.nii.gz")
    assert "absent_bold.nii.gz" in msg and "does not exist" in msg
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti")
    msg = _err(tmp_path, bold=junk)
    assert "junk.nii.gz" in msg and "NIfTI" in msg


def test_error_mask_and_labels_together():
    img = make_bold()
    m = nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE)
    with pytest.raises(InputFileError, match="not both"):
        load_bold_responses(img, mask=m, labels=m)


# --------------------------------------------------------------------------- score maps
@pytest.mark.parametrize("name", ["map.nii.gz", "map.nii", "dir with space/scöre map.nii.gz"])
def test_score_map_round_trip(tmp_path, name):
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:5, 1:4, :3] = 1
    resp, grid = load_bold_responses(make_bold(), mask=nib.Nifti1Image(mask, AFFINE))
    values = np.random.default_rng(2).standard_normal(resp.n_units).astype(np.float32)
    out = write_score_map(values, grid, tmp_path / name)
    assert out.exists()
    data, affine = read_score_map(out)
    np.testing.assert_allclose(affine, AFFINE)
    assert data.shape == SHAPE and data.dtype == np.float32
    np.testing.assert_array_equal(data[mask.astype(bool)], values)
    assert (data[~mask.astype(bool)] == 0).all()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left


def test_score_map_several_maps_and_parcels(tmp_path):
    labels = np.zeros(SHAPE, np.int16)
    labels[:2] = 3
    labels[4:] = 9
    _resp, grid = load_bold_responses(make_bold(), labels=nib.Nifti1Image(labels, AFFINE))
    values = np.array([[1.0, 2.0], [5.0, 6.0]], np.float32)
    data, _ = read_score_map(write_score_map(values, grid, tmp_path / "parcels.nii.gz"))
    assert data.shape == SHAPE + (2,)
    np.testing.assert_array_equal(data[labels == 3], np.tile([1.0, 2.0], ((labels == 3).sum(), 1)))
    np.testing.assert_array_equal(data[labels == 9][:, 1], 6.0)
    assert (data[labels == 0] == 0).all()


def test_score_map_deterministic_bytes(tmp_path):
    grid = VolumeGrid(affine=AFFINE, shape=SHAPE, mask=np.ones(SHAPE, bool))
    vals = np.arange(grid.n_units, dtype=np.float32)
    a = write_score_map(vals, grid, tmp_path / "a.nii.gz").read_bytes()
    b = write_score_map(vals, grid, tmp_path / "b.nii.gz").read_bytes()
    assert a == b


def test_score_map_bad_inputs(tmp_path):
    grid = VolumeGrid(affine=AFFINE, shape=SHAPE, mask=np.ones(SHAPE, bool))
    with pytest.raises(InputFileError, match=r"expected \(120,\)"):
        write_score_map(np.zeros(7), grid, tmp_path / "m.nii.gz")
    with pytest.raises(InputFileError, match="'.nii' or '.nii.gz'"):
        write_score_map(np.zeros(120), grid, tmp_path / "m.mgz")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    grid = VolumeGrid(affine=AFFINE, shape=SHAPE, mask=np.ones(SHAPE, bool))

    def boom(self):
        raise OSError("disk full")

    monkeypatch.setattr(nib.Nifti1Image, "to_bytes", boom)
    target = tmp_path / "out dir" / "failed.nii.gz"
    with pytest.raises(OSError, match="disk full"):
        write_score_map(np.zeros(grid.n_units), grid, target)
    assert not target.exists()
    assert os.listdir(target.parent) == []
