"""MEG/EEG preprocessing for speech decoding (the Défossez et al. 2023 chain).

The default chain of Défossez et al. (2023, *Decoding speech perception from
non-invasive brain recordings*, code: brainmagick) is

1. no band-pass (high-pass 0 Hz; :func:`band_pass` is available but off),
2. resample to 120 Hz (:func:`resample`),
3. windows of −0.5 … 2.5 s around each word onset (:func:`epoch_words`), MEG
   shifted by +150 ms (``shift=0.15``),
4. baseline: the mean of the 0.5 s before onset, per channel and epoch,
5. a per-channel robust scaler (median and interquartile range, fitted on the
   training epochs; :class:`RobustScaler`),
6. clamp at ±20 (:func:`clamp`).

Its brain module starts with a spatial attention over 2-D sensor positions
(:func:`sensor_positions_2d`).

Every function taking a recording accepts a file path (any format
:func:`mne.io.read_raw` reads) or an in-memory :class:`mne.io.BaseRaw`; the
caller's object is never modified (functions that change data work on a
copy). Errors about a recording are :class:`~brainalign._validation.InputFileError`
naming the file (``source`` overrides the name, e.g. for a Raw built in
memory) and the field (channel, event index, column).

Times are in seconds, frequencies in hertz, data in the SI units MNE uses
(T, T/m, V).
"""

from __future__ import annotations

# The package's modules, each with one job (a module imports only those listed above it):
#   edf         checks of an EDF/BDF file's header before MNE reads it
#   reading     read_raw, and a Raw (or the file to name in messages) from a path or a Raw
#   events      word onsets from a BIDS events TSV or the annotations
#   epochs      windows around word onsets, which of them fit in the recording, baseline
#   filtering   zero-phase Butterworth band-pass
#   resampling  polyphase resampling of arrays and recordings
#   scaling     the per-channel robust scaler and clamp
#   channels    finding, dropping and interpolating bad channels
#   layout      2-D sensor positions for a spatial-attention layer
from .channels import find_bad_channels, handle_bad_channels
from .epochs import (
    baseline_correct,
    check_epochs_in_recording,
    epoch_words,
    windows_inside_recording,
)
from .events import read_word_events, tagged_word
from .filtering import band_pass, band_pass_array
from .layout import sensor_positions_2d
from .reading import read_raw
from .resampling import resample, resample_array
from .scaling import RobustScaler, clamp

__all__ = [
    "RobustScaler",
    "band_pass",
    "band_pass_array",
    "baseline_correct",
    "check_epochs_in_recording",
    "clamp",
    "epoch_words",
    "find_bad_channels",
    "handle_bad_channels",
    "read_raw",
    "read_word_events",
    "resample",
    "resample_array",
    "sensor_positions_2d",
    "tagged_word",
    "windows_inside_recording",
]
