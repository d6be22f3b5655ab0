"""MindEye2-style brain → embedding model (Scotti et al. 2023, 2024), sized for a CPU.

:class:`BrainToEmbedding` maps one fMRI response pattern (a vector of voxel
betas) to a target embedding, e.g. the CLIP image embedding of the stimulus,
in two forms: a *regression* output in target units (trained with MSE; this is
what drives a generator such as a diffusion prior or an image/caption
decoder) and a *projected* output trained contrastively for retrieval.

Architecture (:class:`BrainToEmbeddingModule`)::

    x (batch, n_voxels_s), z-scored per voxel with subject s's training statistics
      → per-subject Linear(n_voxels_s → shared_dim)       (MindEye2's "ridge" layer)
      → n_blocks × residual [LayerNorm → Linear → GELU → Dropout]
      → LayerNorm → regression head Linear(shared_dim → n_tokens · token_dim)
            = regression output (z-scored target units; MSE)
      → projector, per token: 3 × [LayerNorm → GELU → Linear], hidden shared_dim
            = projected output (contrastive loss, cosine retrieval)

As in MindEye1/2, the projector sits on top of the regression output (token by
token), so the contrastive loss also shapes the regression.

Losses (MindEye1's schedule, kept in MindEye2): for the first
``int(mixco_fraction · epochs)`` epochs, **BiMixCo** -- a random half of each
batch's inputs is mixed, ``x̃_i = λ_i x_i + (1 - λ_i) x_{π(i)}`` with
``λ_i ~ Beta(0.15, 0.15)`` and ``π`` a random permutation (within subject:
voxel spaces differ), and the contrastive loss uses the soft labels ``λ_i`` on
target ``i`` and ``1 - λ_i`` on target ``π(i)``, in both directions
(:func:`bimixco_loss`); then **SoftCLIP** -- soft labels from the targets'
own similarities (:func:`soft_clip_loss`). The total loss is
``contrastive + mse_weight · MSE(regression, target)``.

Differences from MindEye2, by design: far smaller widths (``shared_dim=256``
instead of 4096, projector hidden ``shared_dim`` instead of 2048); pre-norm
residual blocks with a final LayerNorm (MindEye2: Linear → LayerNorm → GELU →
Dropout, post-norm); constant learning rate with AdamW (MindEye2: one-cycle
schedule); a plain MSE regression head instead of the diffusion prior and the
low-level (blurry image) branch; targets z-scored per dimension; the MSE under
BiMixCo regresses the *mixed* target ``λ y_i + (1 - λ) y_π(i)`` (MindEye1's
prior saw the unmixed target); mixing stays within a subject (MindEye2 also
mixes within a subject, but concatenates the per-subject permutations without
offsetting them); and a sample paired with itself (``π(i) = i``) gets soft
label 1, not ``1 - λ`` as in MindEye1's ``mixco_nce``. Training stops early on
a validation loss (see :class:`BrainToEmbedding`); MindEye2 trains a fixed
number of epochs.
"""

from __future__ import annotations

# The constants are not in __all__ but stay importable from here, as before the split.
from .estimator import N_DRAWS, N_WAY, BrainToEmbedding  # noqa: F401
from .losses import MIXCO_BETA, MIXCO_SELECT, bimixco_loss, draw_mixco, soft_clip_loss  # noqa: F401
from .network import BrainToEmbeddingModule, LogitScale, ResidualMLPBlock

__all__ = [
    "BrainToEmbedding",
    "BrainToEmbeddingModule",
    "LogitScale",
    "ResidualMLPBlock",
    "bimixco_loss",
    "draw_mixco",
    "soft_clip_loss",
]
