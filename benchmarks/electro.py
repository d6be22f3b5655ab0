"""Electrophysiology throughput (issue #7): preprocessing in channel-seconds per second, training time per epoch.

Preprocessing, on one simulated recording (64 BioSemi electrodes at 1 kHz,
``--seconds`` long; sEEG: 12 contacts at 1 kHz):

- MEG/EEG chain as Défossez et al.: read FIF, resample to 120 Hz, epoch
  -0.5..2.5 s at every word with baseline. ``ours`` =
  :mod:`brainalign.preprocess.meeg`; anchor = MNE's own chain on the same file
  (``raw.resample(120)`` + ``mne.Epochs(..., baseline=(-0.5, 0))``).
- sEEG chain: bipolar pairs, 70-150 Hz envelope, 100 Hz. ``ours`` =
  :mod:`brainalign.preprocess.seeg`; anchor = MNE
  (``set_bipolar_reference`` + ``filter`` + ``apply_hilbert(envelope=True)`` + ``resample``).

Training: seconds per epoch of the contrastive brain module (CI-sized windows:
32 channels x 120 samples; and the paper-rate 360 samples) and of the Du-IN
word decoder (10 bipolar channels x 100 samples), one thread, 1,200 windows.

Usage::

    python benchmarks/electro.py [--seconds 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mne
    import torch

    torch.set_num_threads(1)
    from brainalign.datasets.simulated_meeg import planted_sources, simulate_meeg_run, simulate_seeg_run, write_raw_fif
    from brainalign.preprocess import meeg, seeg

    n_words = int((args.seconds - 6) / 0.35)
    words = pd.DataFrame({"onset": 2.0 + 0.35 * np.arange(n_words), "word": ["w"] * n_words})
    Z = planted_sources(np.random.default_rng(0).standard_normal((n_words, 16)), 8, seed=0)
    tmp = Path(tempfile.mkdtemp())
    eeg = write_raw_fif(tmp / "eeg_raw.fif", simulate_meeg_run(words, Z, subject_index=0, run=1,
                                                               montage="biosemi64", sfreq=1000.0))
    ieeg = write_raw_fif(tmp / "seeg_raw.fif", simulate_seeg_run(words, Z, subject_index=0, run=1, n_shafts=2,
                                                                 contacts_per_shaft=6, sfreq=1000.0))
    onsets = words["onset"].to_numpy()

    def ours_meeg():
        raw = meeg.resample(meeg.read_raw(eeg), 120.0)
        meeg.epoch_words(raw, onsets, tmin=-0.5, tmax=2.5, baseline=(-0.5, 0.0))

    def mne_meeg():
        raw = mne.io.read_raw_fif(eeg, preload=True, verbose="error").resample(120.0, verbose="error")
        ev = np.c_[np.round(onsets * 120).astype(int), np.zeros(n_words, int), np.ones(n_words, int)]
        mne.Epochs(raw, ev, tmin=-0.5, tmax=2.5 - 1 / 120, baseline=(-0.5, 0.0), preload=True, verbose="error")

    def ours_seeg():
        raw = seeg.bipolar_reference(meeg.read_raw(ieeg))
        seeg.downsample(seeg.high_gamma_envelope(raw, (70.0, 150.0)), 100.0)

    def mne_seeg():
        raw = mne.io.read_raw_fif(ieeg, preload=True, verbose="error")
        pairs = seeg.bipolar_pairs(raw.ch_names)
        raw = mne.set_bipolar_reference(raw, [a for a, _ in pairs], [c for _, c in pairs], verbose="error")
        raw.filter(70.0, 150.0, method="iir", iir_params=dict(order=4, ftype="butter", output="sos"),
                   picks="all", verbose="error")
        raw.apply_hilbert(envelope=True, picks="all", verbose="error").resample(100.0, verbose="error")

    rows = []
    for label, n_ch, ours, anchor in (("MEG/EEG (64 ch, resample + epochs)", 64, ours_meeg, mne_meeg),
                                      ("sEEG (12 contacts, bipolar + high gamma)", 12, ours_seeg, mne_seeg)):
        t_ours, t_anchor = _best(ours, args.repeats), _best(anchor, args.repeats)
        rate = n_ch * args.seconds
        rows.append((label, rate / t_ours, rate / t_anchor, t_anchor / t_ours))

    from brainalign.encoders.contrastive import ContrastiveEncoder
    from brainalign.encoders.duin import DuINWordDecoder

    rng = np.random.default_rng(0)
    train = []
    for n_times in (120, 360):
        X = rng.standard_normal((1200, 32, n_times)).astype(np.float32)
        Y = rng.standard_normal((1200, 384)).astype(np.float32)
        pos = {"s": rng.uniform(0, 1, (32, 2))}
        model = ContrastiveEncoder(hidden=32, depth=3, n_time_bins=6, epochs=3, patience=None,
                                   val_fraction=0.2, random_state=0)
        t = time.perf_counter()
        model.fit(X, Y, subjects=np.array(["s"] * 1200), groups=np.arange(1200) // 10, positions=pos)
        train.append((f"contrastive, 32 ch x {n_times} samples", (time.perf_counter() - t) / 3))
    X = rng.standard_normal((1200, 10, 100)).astype(np.float32)
    y = rng.integers(0, 12, 1200)
    model = DuINWordDecoder(sfreq=100.0, epochs=3, patience=100, random_state=0)
    t = time.perf_counter()
    model.fit(X, y)
    train.append(("Du-IN word decoder, 10 ch x 100 samples", (time.perf_counter() - t) / 3))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"mne {mne.__version__}, torch {torch.__version__}; {args.seconds:.0f} s recordings, best of {args.repeats}")
    print("| chain | ours (channel-s/s) | MNE (channel-s/s) | speed-up |")
    print("|---|---|---|---|")
    for label, ours, anchor, ratio in rows:
        print(f"| {label} | {ours:,.0f} | {anchor:,.0f} | {ratio:.2f}x |")
    print("\n| model (1,200 windows, 1 thread) | s per epoch |")
    print("|---|---|")
    for label, sec in train:
        print(f"| {label} | {sec:.2f} |")


if __name__ == "__main__":
    main()
