"""Brain-to-model decoders, installed as ``brainalign.decoders``.

Mapped into the ``brainalign`` namespace by ``pyproject.toml`` (never a
top-level ``decoders`` package). Captioning and diffusion decoders arrive
with the decoders issue; nothing is exported yet.
"""

__all__: list[str] = []
