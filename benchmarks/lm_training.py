"""Language-model training throughput per cell and backend, and the CI-sized Natural Stories config's training time.

Part 1 — tokens per second of training steps (forward, backward, AdamW update;
``brainalign.models.training.train_lm`` does exactly these) for every
head-wise cell on the PyTorch reference kernels, SUMA's decoder and the small
GPT-2, at the two sizes of ``workflows/configs/naturalstories{_ci}.yaml``.
The anchor, in the same run, is ``torch.nn.LSTM`` of the same hidden size
(dense recurrence, PyTorch's own fused CPU kernel) under the same embedding and
output layer; the ratio is ours / anchor. The Triton backend runs on CPU only
in its interpreter (``TRITON_INTERPRET=1``): it is timed at a tiny size to show
it trains, not as a speed.

Part 2 — wall time of ``run_train_lm`` for every model of
``workflows/configs/naturalstories_ci.yaml`` (one process, its ``threads``).

Usage::

    python benchmarks/lm_training.py [--steps 20] [--device cpu|cuda] [--skip-ci]

With ``--device cuda`` (a GPU node) the head-wise cells use ``backend="auto"``
(Triton where the head size is supported) and timings synchronise the device.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {"ci": dict(vocab=3002, seq_len=32, batch=32, n_heads=4, head_dim=16, d_model=64, suma_heads=8, n_embd=64),
         "full": dict(vocab=10002, seq_len=64, batch=32, n_heads=4, head_dim=32, d_model=256, suma_heads=32, n_embd=128)}


class _DenseLSTM:
    """The anchor: embedding → torch.nn.LSTM (hidden = n_heads * head_dim) → output layer."""

    def __new__(cls, vocab: int, hidden: int):
        import torch
        from torch import nn

        class DenseLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab, hidden)
                self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
                self.head = nn.Linear(hidden, vocab, bias=False)

            def forward(self, ids):
                return {"logits": self.head(self.rnn(self.embed(ids))[0])}

        torch.manual_seed(0)
        return DenseLSTM()


def _models(size: dict, device: str, backend: str):
    from brainalign.models.lm import build_language_model

    hidden = dict(n_layers=1, n_heads=size["n_heads"], head_dim=size["head_dim"], backend=backend)
    out = {f"{cell} ({backend})": build_language_model(cell, size["vocab"], **hidden) for cell in ("lstm", "gru", "slstm", "elman")}
    out["suma (decoder only)"] = build_language_model("suma", size["vocab"], d_model=size["d_model"], n_heads=size["suma_heads"])
    out["gpt2 (2 layers)"] = build_language_model("gpt2", size["vocab"], n_layer=2, n_head=4, n_embd=size["n_embd"],
                                                  n_positions=size["seq_len"])
    out["anchor: torch.nn.LSTM"] = _DenseLSTM(size["vocab"], size["n_heads"] * size["head_dim"])
    return {name: m.to(device) for name, m in out.items()}


def _tokens_per_second(model, size: dict, steps: int, device: str) -> float:
    import torch

    from brainalign.models.lm import next_token_logits

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, size["vocab"], (size["batch"], size["seq_len"] + 1), generator=gen).to(device)

    def step():
        logits = next_token_logits(model, batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * size["batch"] * size["seq_len"] / (time.perf_counter() - start)


def throughput(steps: int, device: str) -> None:
    import torch

    backend = "auto" if device == "cuda" else "torch"
    for label, size in SIZES.items():
        print(f"\n### {label} size: vocab {size['vocab']}, seq_len {size['seq_len']}, batch {size['batch']}, "
              f"RNN {size['n_heads']} heads x {size['head_dim']}, SUMA d_model {size['d_model']}, GPT-2 n_embd "
              f"{size['n_embd']}; {torch.get_num_threads()} threads, {device}\n")
        print("| model | tokens/s | ratio to the anchor |\n|---|---|---|")
        rates = {name: _tokens_per_second(m, size, steps, device) for name, m in _models(size, device, backend).items()}
        anchor = rates["anchor: torch.nn.LSTM"]
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} | {rate / anchor:.2f} |")


def triton_interpreter() -> None:
    """The Triton backend trains (interpreter on CPU): one tiny step per cell, timed for the record only."""
    import torch

    from brainalign.models.lm import build_language_model

    size = dict(vocab=50, seq_len=8, batch=2)
    print("\n### Triton backend in the interpreter (TRITON_INTERPRET=1): B = 2, T = 8, 2 heads x 16\n")
    print("| cell | tokens/s (interpreter) | max abs diff of logits vs torch backend |\n|---|---|---|")
    for cell in ("lstm", "gru", "slstm", "elman"):
        ours = build_language_model(cell, size["vocab"], n_layers=1, n_heads=2, head_dim=16, backend="triton")
        ref = build_language_model(cell, size["vocab"], n_layers=1, n_heads=2, head_dim=16, backend="torch")
        ids = torch.randint(0, size["vocab"], (2, 8), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = float((ours(ids)["logits"] - ref(ids)["logits"]).abs().max())
        rate = _tokens_per_second(ours, size, 1, "cpu")
        print(f"| {cell} | {rate:,.1f} | {diff:.1e} |")


def ci_config_training() -> None:
    import yaml

    from brainalign.config import validate_config
    from brainalign.pipeline.reading import run_train_lm

    path = REPO / "workflows" / "configs" / "naturalstories_ci.yaml"
    cfg = validate_config(yaml.safe_load(path.read_text()), path)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "brainalign_lm_bench"
    print(f"\n### CI-sized config ({path.name}): run_train_lm per model, threads {cfg['threads']}\n")
    print("| model | wall (s) | steps | held-out perplexity |\n|---|---|---|---|")
    total = 0.0
    for name in cfg["language"]["models"]:
        start = time.perf_counter()
        run_train_lm(cfg, name, out / f"{name}.safetensors", out / f"{name}_history.csv", cfg["threads"], progress=False)
        wall = time.perf_counter() - start
        total += wall
        import pandas as pd

        hist = pd.read_csv(out / f"{name}_history.csv")
        print(f"| {name} | {wall:.1f} | {int(hist['step'].max())} | {hist['valid_perplexity'].min():.1f} |")
    print(f"| **all** | **{total:.1f}** | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--skip-ci", action="store_true")
    args = parser.parse_args()
    if args.device == "cpu":
        # Before Triton is imported: its CPU interpreter (the reference backend is named explicitly elsewhere).
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"Python {platform.python_version()}; date {time.strftime('%Y-%m-%d')}")
    throughput(args.steps, args.device)
    if args.device == "cpu":
        triton_interpreter()
    if not args.skip_ci:
        ci_config_training()


if __name__ == "__main__":
    main()
