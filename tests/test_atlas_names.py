"""Parcel names: the configs name the language parcels by their anatomy, reports by the config.

The Fedorenko/Ivanova language parcels (``LangParcels_n220_LH``) carry labels
1..6 without names in the file. Each configured name is checked against the
centroid of its label in MNI space: the expected centroids are those a reviewer
measured (issue 15), which agree with the authors' recode of the labels
(ALFA-group/neural-program-comprehension, ``analyses/Main_analyses.Rmd``).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from brainalign.report.html import _dataset_credit

REPO = Path(__file__).resolve().parent.parent
ATLAS = "LangParcels_n220_LH.hdr"

#: Centroid (MNI mm) of each left-hemisphere language parcel, by name.
EXPECTED_CENTROIDS = {
    "LPostTemp": (-53.0, -45.0, 9.0),
    "LAntTemp": (-53.0, -4.0, -16.0),
    "LAngG": (-43.0, -68.0, 25.0),
    "LIFG": (-50.0, 19.0, 20.0),
    "LMFG": (-43.0, 0.0, 51.0),
    "LIFGorb": (-47.0, 27.0, -4.0),
}
TOLERANCE_MM = 3.0  # the parcels' centroids are 25 mm or more apart


def _label_centroids(path: Path) -> dict[int, np.ndarray]:
    """Centroid in mm of every nonzero label: mean voxel index through the affine."""
    img = nib.load(str(path))
    # Analyze/NIfTI scaling stores label k as k +- 1e-4: round.
    labels = np.rint(np.asanyarray(img.dataobj)).astype(int).squeeze()
    return {int(k): nib.affines.apply_affine(img.affine, np.argwhere(labels == k).mean(axis=0))
            for k in np.unique(labels) if k != 0}


def _configs_with_the_atlas() -> dict[str, dict[int, str]]:
    """``atlas_labels`` of every config under workflows/configs that uses the parcels."""
    found = {}
    for path in sorted((REPO / "workflows" / "configs").glob("*.yaml")):
        dataset = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("dataset", {})
        if dataset.get("atlas") and Path(dataset["atlas"]).name == ATLAS:
            found[path.name] = {int(k): str(v) for k, v in dataset.get("atlas_labels", {}).items()}
    return found


@pytest.fixture(scope="module")
def centroids(shared_data: Path) -> dict[int, np.ndarray]:
    return _label_centroids(shared_data / "ivanova2020_langparcels" / "parcels" / ATLAS)


@pytest.mark.shared_data
def test_label_centroids_match_the_expected_anatomy(centroids):
    # Each label lies within a few mm of exactly one expected region.
    assert sorted(centroids) == [1, 2, 3, 4, 5, 6]
    nearest = {}
    for label, xyz in centroids.items():
        dist = {name: np.linalg.norm(xyz - np.array(c)) for name, c in EXPECTED_CENTROIDS.items()}
        nearest[label] = min(dist, key=dist.get)
        assert dist[nearest[label]] < TOLERANCE_MM, (label, xyz.round(1), nearest[label])
    assert nearest == {1: "LPostTemp", 2: "LAntTemp", 3: "LAngG", 4: "LIFG", 5: "LMFG", 6: "LIFGorb"}


@pytest.mark.shared_data
def test_configs_name_each_label_by_its_anatomy(centroids):
    configs = _configs_with_the_atlas()
    assert {"simulated_bids.yaml", "simulated_bids_ci.yaml"} <= set(configs)
    for name, labels in configs.items():
        assert sorted(labels) == sorted(centroids), name
        for label, region in labels.items():
            assert region in EXPECTED_CENTROIDS, (name, label, region)
            distance = np.linalg.norm(centroids[label] - np.array(EXPECTED_CENTROIDS[region]))
            assert distance < TOLERANCE_MM, (
                f"{name}: label {label} is named {region!r}, but its centroid "
                f"{centroids[label].round(1).tolist()} is {distance:.0f} mm from {region}'s")


def test_report_names_planted_parcels_from_atlas_labels():
    cfg = {
        "dataset": {"kind": "simulated_bids", "atlas": "/data/my atlas.nii.gz",
                    "atlas_labels": {"2": "Beta", 10: "Kappa"}},
        "simulation": {"seed": 0, "planted_layer": "3", "planted_feature_set": "minilm",
                       "bids": {"planted_parcels": {"10": 0.5, "2": 1.0, "4": 2.0}, "voxel_size": 4,
                                "n_runs": 2, "motion_amplitude": 2.0}},
    }
    text = _dataset_credit(cfg)
    assert "Beta (label 2, SNR 1), label_4 (label 4, SNR 2), Kappa (label 10, SNR 0.5)" in text
    for old in ("LIFGorb", "LPostTemp"):
        assert old not in text
