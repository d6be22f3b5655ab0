"""brainalign.datasets."""
