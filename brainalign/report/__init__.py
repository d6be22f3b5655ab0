"""brainalign.report."""
