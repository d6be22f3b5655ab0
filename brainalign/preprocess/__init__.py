"""brainalign.preprocess."""
