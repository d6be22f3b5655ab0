"""The data contracts (Responses, Features, Scores) and atomic, provenance-stamped writes.

Every stage of brainalign reads and writes through this module, so that

* every file appears only when complete (written to a temporary file in the
  same directory, then renamed: :func:`atomic_path`);
* every output records its provenance: package versions, the config and its
  hash, the git commit and checksums of its inputs (:func:`provenance`);
* arrays live in HDF5 and tables in CSV, with the layouts documented in
  ``docs/contracts.md``.
"""

from __future__ import annotations

# The package's modules, each with one job (layered: atomic, provenance and hdf5 import nothing of the
# package; the contract modules import them; unit_scores also imports responses):
#   atomic       atomic_path (temporary file + rename, one writer per output), text and provenance sidecars
#   provenance   provenance records and config hashing
#   hdf5         opening contract HDF5 files and checking their items
#   responses    the Responses contract (responses/1)
#   features     the Features contract (features/1, design/1)
#   tables       CSV tables with their sidecar, SCORE_COLUMNS
#   epochs       the Epochs contract (epochs/1)
#   images       the images.h5 and betas/<subject>.h5 contracts (images/1, betas/1)
#   unit_scores  the per-unit arrays of the volume stages (unit_scores/1)
# write_text, config_hash, _json and _open_h5 are not in __all__ but stay importable from here.
from .atomic import OutputBusyError, _json, atomic_path, write_provenance, write_text, write_with_sidecar  # noqa: F401
from .epochs import Epochs, read_epochs, write_epochs
from .features import Features, read_features, write_features
from .hdf5 import _open_h5, contract_of  # noqa: F401
from .images import (
    ImageBank,
    VoxelGeometry,
    load_image_folder,
    read_betas,
    read_images,
    read_voxel_geometry,
    rows_of_image_ids,
    write_betas,
    write_images,
)
from .provenance import config_hash, provenance, sha256_file  # noqa: F401
from .responses import Responses, read_responses, write_responses
from .tables import SCORE_COLUMNS, read_table, write_table
from .unit_scores import read_unit_scores, write_unit_scores

__all__ = [
    "atomic_path",
    "contract_of",
    "OutputBusyError",
    "sha256_file",
    "provenance",
    "write_provenance",
    "write_with_sidecar",
    "Responses",
    "Features",
    "write_responses",
    "read_responses",
    "write_features",
    "read_features",
    "write_table",
    "read_table",
    "SCORE_COLUMNS",
    "Epochs",
    "write_epochs",
    "read_epochs",
    "write_images",
    "read_images",
    "write_betas",
    "read_betas",
    "read_voxel_geometry",
    "ImageBank",
    "load_image_folder",
    "rows_of_image_ids",
    "VoxelGeometry",
    "write_unit_scores",
    "read_unit_scores",
]
