"""brainalign.metrics."""
