"""Activation extraction throughput: every layer and every head of MiniLM in one pass (issue #5).

Same 2,000-word story (the simulated generator's, seed 0), same left context
windows (32 words), same length-sorted batches of 32 windows, in one process
with 2 threads:

- ``bare``: the model's forward pass alone (``model(input_ids, attention_mask)``),
  nothing read out — the anchor;
- ``ours``: :func:`brainalign.features.activations.extract_transformer` with
  ``units=("layers", "heads")``: 7 hidden states + 6 x 12 head outputs per word,
  pooled, cached per chunk and assembled into the compressed HDF5 file;
- ``ours + attention statistics``: the same with ``attention_stats=True``
  (the model must then return its attention weights).

Each row is run ``--repeats`` times (interleaved) and the fastest kept.

Usage::

    python benchmarks/extraction.py [--words 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from brainalign.datasets.simulated import generate_story
    from brainalign.features.activations import extract_transformer
    from brainalign.features.words import word_windows
    from brainalign.models.hf import load_model

    threadpool_limits(2)
    torch.set_num_threads(2)
    loaded = load_model(None)
    words = generate_story(args.words, 0)["word"].astype(str).tolist()
    groups = np.ones(len(words), int)
    seqs, _ = word_windows(loaded.tokenizer, words, groups, 32, loaded.identity["max_length"])
    order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
    n_tokens = sum(len(s) for s in seqs)

    def bare() -> None:
        with torch.inference_mode():
            for s in range(0, len(order), 32):
                batch = order[s:s + 32]
                width = max(len(seqs[i]) for i in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):
                    ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
                    mask[r, :len(seqs[i])] = 1
                loaded.model(input_ids=ids, attention_mask=mask)

    def ours(stats: bool):
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                extract_transformer(loaded, words, groups, Path(tmp) / "f.h5", Path(tmp) / "cache", model_name="m",
                                    units=("layers", "heads"), context_words=32, batch_size=32,
                                    attention_stats=stats, progress=False)
        return run

    rows = {"bare forward pass (anchor)": bare, "**ours**: 7 layers + 72 heads, pooled, HDF5": ours(False),
            "**ours** + attention statistics": ours(True)}
    best = {name: np.inf for name in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    anchor = best["bare forward pass (anchor)"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 2 threads; "
          f"torch {torch.__version__}; {len(words)} words, {n_tokens} tokens in 32-word windows; "
          f"best of {args.repeats}\n")
    print("| row | time (s) | words/s | time / bare forward |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {len(words) / seconds:.0f} | {seconds / anchor:.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
