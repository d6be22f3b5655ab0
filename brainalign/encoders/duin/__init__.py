"""Du-IN-style sEEG word decoder (Zheng et al., 2024), sized for a CPU.

Du-IN decodes spoken or read words from a few stereo-EEG contacts (about ten
bipolar channels over vSMC/STG, 3 s epochs, per-channel z-score). Its
pipeline, reproduced here at a smaller scale:

1. **Channel fusion**, one bias-free linear layer per subject, mapping that
   subject's ``n_channels`` contacts (standardised per channel with
   statistics fitted on the training inputs) onto ``d_model`` virtual
   channels at every time sample, so subjects with different electrode counts
   share the rest of the network.
2. **Convolutional patch tokenizer**: a small depth-wise temporal convolution
   (kernel ``max(5, 2 * stride + 1)`` samples, zero padded) with stride
   ``stride`` = the largest divisor of the patch length that leaves at least
   10 samples per patch (1 up to 19 samples per patch, 2 at 200 Hz, 10 at
   1 kHz, so everything after this conv runs at 100-190 Hz), GELU, then a
   ``Conv1d`` with kernel = stride = one patch (``patch_ms``, 100 ms by
   default; ``patch_len / stride`` samples of the filtered signal) that emits
   one ``d_model`` token per patch, and LayerNorm. The fusion (bias-free) and
   the depth-wise conv are both linear, so they are computed as ONE
   convolution of the input with their product kernel
   (``_DuINNet.subject_kernel``; the same map, checked in the tests), which
   is several times cheaper than filtering ``d_model`` fused channels at the
   full rate.
3. A learned positional embedding (initialised N(0, 1), the scale of the
   LayerNorm-ed tokens, so that position is visible from the first epoch:
   with N(0, 0.02) a mean-pooled model learned time-locked patterns far more
   slowly), and ``n_layers`` pre-norm transformer encoder layers
   (:class:`torch.nn.TransformerEncoderLayer`, ``batch_first``,
   ``norm_first``, feed-forward width ``2 * d_model``, GELU) with a final
   LayerNorm.
4. Mean pooling over tokens, dropout and a linear classifier over the words.

Optional self-supervised pre-training (``codebook_size > 0`` and
``pretrain_epochs > 0``), on the inputs of the training split only (labels
unused):

* **Stage 1, VQ-VAE.** The encoder's tokens are projected to
  ``codebook_dim``, L2-normalised and quantised to the nearest entry of an
  L2-normalised codebook (``codebook_size x codebook_dim``, initialised from
  randomly chosen encoder outputs). Gradients pass the quantiser by the
  straight-through estimator. The codebook is **updated by its loss** (not by
  EMA): ``loss = recon + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2`` with
  commitment weight ``beta = 0.25``. A decoder (linear lift, positional
  embedding, one transformer layer, then one linear head per subject)
  reconstructs every patch of the subject's standardised input signal
  (all channels x patch samples); ``recon`` is their mean squared error.
* **Stage 2, masked code prediction.** The code index of every patch is
  computed once with the frozen stage-1 model. A fraction ``mask_ratio`` of
  each trial's tokens is replaced by a learned mask token before the
  transformer, and a linear head predicts the masked patches' code indices
  (cross-entropy). The encoder continues from its stage-1 weights.
* **Stage 3**, always run, trains (fine-tunes) the encoder and the classifier.

Each pre-training stage runs ``pretrain_epochs`` epochs.

Scale. The paper uses 1 kHz input, an 8-layer transformer and a 2048 x 64
codebook; the defaults here (``d_model=64``, 2 layers, no pre-training) take
about 0.6-1 s per epoch on one CPU thread for 600 trials x 10 channels x 3 s
at 200 Hz, and early stopping usually ends training after 20-45 of the at
most ``epochs=60`` epochs (15-40 s on synthetic data).
"""

from __future__ import annotations

# The package's modules, each with one job (each imports only those above it):
#   params    hyper-parameter checks and patch geometry
#   data      input checks, label helpers, per-subject packing of trials
#   network   the torch modules (channel fusion, tokenizer, transformer, VQ heads)
#   training  the three training stages (a mixin of DuINWordDecoder)
#   estimator DuINWordDecoder: fit, predict, score, save, load
# The constants are not in __all__ but stay importable from here, as before the split.
from .estimator import DuINWordDecoder
from .network import POS_INIT_STD, TEMPORAL_KERNEL  # noqa: F401
from .training import COMMITMENT_BETA  # noqa: F401

__all__ = ["DuINWordDecoder"]
