"""brainalign.features."""
