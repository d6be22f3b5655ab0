"""brainalign.models."""
