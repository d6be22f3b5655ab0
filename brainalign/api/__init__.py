"""The notebook entry point: model features against brain responses in one call.

:func:`score_alignment` takes features (arrays, a features file, or a model
with the words heard) and responses (arrays, tables, NIfTI images, MNE
objects, the workflow's files) and returns a tidy table of cross-validated
encoding scores, noise ceilings and normalized scores::

    from brainalign import score_alignment
    scores = score_alignment(features, responses, events=words)
"""

from .scoring import FEW_SUBJECTS, CeilingWarning, score_alignment

__all__ = ["score_alignment", "CeilingWarning", "FEW_SUBJECTS"]
