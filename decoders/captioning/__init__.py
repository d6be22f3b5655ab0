"""Captions from predicted image-encoder embeddings: GIT and ClipCap.

Brain activity is decoded elsewhere into *predicted* image-encoder
embeddings; the two captioners here turn such embeddings into text.

:class:`GitCaptioner`
    Wraps a pretrained ``transformers.GitForCausalLM`` (GIT, Wang et al.
    2022), as MindEye2 (Scotti et al. 2024) does. GIT encodes an image with a
    CLIP vision transformer, projects the encoder's last hidden states with
    ``git.visual_projection`` (linear + LayerNorm) and prepends them to the
    text tokens of its decoder. Here the vision transformer is replaced, for
    the duration of each call, by a stand-in module that returns the
    predicted hidden states unchanged, so the rest of GIT (projection,
    bidirectional image-token attention, causal text, ``model.generate``
    with its greedy and beam search) runs as published.
:class:`ClipCapCaptioner`
    ClipCap (Mokady et al. 2021): a mapping network (MLP or small
    transformer) turns one embedding into ``prefix_length`` input embeddings
    of a GPT-2-like decoder, trained with teacher forcing (decoder frozen by
    default); captions are generated from the prefix with
    ``model.generate(inputs_embeds=...)``.

Both accept NumPy arrays or torch tensors and default to at most 20 new
tokens (MindEye2's setting). Generation is deterministic (no sampling) unless
``do_sample=True`` is passed through to ``generate``.

Tested against ``transformers`` 5.x.
"""
from __future__ import annotations

from .clipcap import ClipCapCaptioner
from .git import GitCaptioner

__all__ = ["ClipCapCaptioner", "GitCaptioner"]
