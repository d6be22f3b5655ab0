"""brainalign: measure how well models align with the brain.

The package follows the data flow: raw data (:mod:`brainalign.datasets`,
:mod:`brainalign.stimuli`) → preprocessed responses (:mod:`brainalign.preprocess`)
→ features (:mod:`brainalign.models`, :mod:`brainalign.features`) → encoders
(:mod:`brainalign.encoders`) → scores (:mod:`brainalign.metrics`) → report
(:mod:`brainalign.report`). :mod:`brainalign.pipeline` ties the stages together
for the command line and the Snakemake workflow.
"""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("brainalign")
logger.addHandler(logging.NullHandler())
