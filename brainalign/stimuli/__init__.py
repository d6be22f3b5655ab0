"""brainalign.stimuli."""
