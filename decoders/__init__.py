"""Decoders from brain-predicted embeddings, installed as ``brainalign.decoders``.

Mapped into the ``brainalign`` namespace by ``pyproject.toml`` (never a
top-level ``decoders`` package, which could shadow another distribution's).
Submodules (imported on demand, so importing the package stays light):

- :mod:`brainalign.decoders.captioning`: GIT conditioned on predicted
  image-encoder tokens, and a ClipCap prefix captioner;
- :mod:`brainalign.decoders.diffusion`: unCLIP image variation from predicted
  image embeddings, img2img from a predicted VAE latent with optional
  ControlNet-depth guidance;
- :mod:`brainalign.decoders.selectivity`: BrainSCUBA's projection of voxel
  weights onto natural-image embeddings, for per-voxel/ROI captions.
"""

__all__: list[str] = []
