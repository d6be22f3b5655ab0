"""brainalign: measure how well models align with the brain.

The package follows the data flow: raw data (:mod:`brainalign.datasets`,
:mod:`brainalign.stimuli`) → preprocessed responses (:mod:`brainalign.preprocess`)
→ features (:mod:`brainalign.models`, :mod:`brainalign.features`) → encoders
(:mod:`brainalign.encoders`) → scores (:mod:`brainalign.metrics`) → report
(:mod:`brainalign.report`). :mod:`brainalign.pipeline` ties the stages together
for the command line and the Snakemake workflow; :func:`score_alignment`
(:mod:`brainalign.api`) is the one call for a notebook.
"""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("brainalign")
logger.addHandler(logging.NullHandler())

__all__ = ["__version__", "score_alignment", "CeilingWarning"]


def __getattr__(name: str):
    # Imported on first use: `import brainalign` (and every command) stays light.
    if name in ("score_alignment", "CeilingWarning"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'brainalign' has no attribute {name!r}")
