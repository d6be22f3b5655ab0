"""Head-wise RNN kernels against FlashRNN and cuDNN (issue #6). Needs a CUDA GPU for timings.

B = 16, T = 1024, (DH, NH) in {(16,48), (32,24), (64,12), (128,6), (256,3), (768,1)};
ours in bfloat16 (``backend="triton"``), forward and forward+backward; in the
same run: the plain PyTorch loop (``backend="torch"``), ``torch.nn.LSTM``
(cuDNN) of hidden size DH in float16/bfloat16/float32, NH separate cuDNN LSTMs
(the same work as one head-wise layer), and ``flashrnn``'s fused Triton
backend when the package imports. Medians of CUDA-event timings after warm-up.
Before timing, ours is checked against the float64 reference on the GPU.

Without a GPU the script says so and runs the correctness check only (in the
Triton interpreter, tiny shapes), so that the GPU rows stay "not yet measured".

Usage::

    python benchmarks/rnn_kernels.py [--repeats 20] [--sizes 64x12,768x1]
"""

from __future__ import annotations

import argparse
import os
import statistics

SIZES = [(16, 48), (32, 24), (64, 12), (128, 6), (256, 3), (768, 1)]
B, T = 16, 1024


def _check(device: str) -> str:
    import torch

    from brainalign.kernels import headwise_rnn, reference_headwise_rnn

    worst = 0.0
    for cell, g_in, g_rec, g_b in (("lstm", 4, 4, 4), ("gru", 3, 3, 4), ("slstm", 4, 4, 4), ("elman", 1, 1, 1)):
        gen = torch.Generator(device="cpu").manual_seed(0)
        Wx = torch.randn(3, 5, g_in, 2, 16, generator=gen).to(device)
        R = (torch.randn(g_rec, 2, 16, 16, generator=gen) / 4).to(device)
        b = torch.randn(g_b, 2, 16, generator=gen).to(device)
        out, _ = headwise_rnn(Wx, R, b, cell=cell, backend="triton")
        ref, _ = reference_headwise_rnn(Wx.double(), R.double(), b.double(), cell=cell)
        worst = max(worst, float((out.double() - ref).abs().max()))
    return f"correctness (4 cells, float32, vs float64 reference on {device}): max |diff| {worst:.2e}"


def _time(fn, repeats: int) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _rows(DH: int, NH: int, repeats: int) -> dict[str, str]:
    import torch

    from brainalign.kernels import headwise_rnn

    dev = "cuda"
    out: dict[str, str] = {}

    def ours(dtype, backward, backend="triton"):
        Wx = torch.randn(B, T, 4, NH, DH, device=dev, dtype=dtype, requires_grad=backward)
        R = (torch.randn(4, NH, DH, DH, device=dev) / DH**0.5).to(dtype).requires_grad_(backward)
        b = torch.zeros(4, NH, DH, device=dev, dtype=dtype, requires_grad=backward)

        def run():
            y, _ = headwise_rnn(Wx, R, b, cell="lstm", backend=backend)
            if backward:
                y[0].sum().backward()
        return run

    try:
        out["ours bf16 fw"] = f"{_time(ours(torch.bfloat16, False), repeats):.2f}"
        out["ours bf16 fw+bw"] = f"{_time(ours(torch.bfloat16, True), max(3, repeats // 5)):.2f}"
    except ValueError:  # DH above the fused kernel's sizes (tiled path pending)
        out["ours bf16 fw"] = out["ours bf16 fw+bw"] = "not supported yet"
    if NH == 1:  # backend="auto" dispatches a dense LSTM to cuDNN
        out["ours auto (cudnn) bf16 fw"] = f"{_time(ours(torch.bfloat16, False, 'auto'), repeats):.2f}"
        out["ours auto (cudnn) bf16 fw+bw"] = f"{_time(ours(torch.bfloat16, True, 'auto'), max(3, repeats // 5)):.2f}"
    if (DH, NH) in ((64, 12), (768, 1)):
        out["plain loop fw"] = f"{_time(ours(torch.float32, False, 'torch'), 3):.1f}"
    for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        lstm = torch.nn.LSTM(DH, DH, batch_first=True).to(dev, dtype)
        x = torch.randn(B, T, DH, device=dev, dtype=dtype, requires_grad=True)
        out[f"cuDNN {name} fw"] = f"{_time(lambda: lstm(x), repeats):.2f}"
        out[f"cuDNN {name} fw+bw"] = f"{_time(lambda: lstm(x)[0].sum().backward(), max(3, repeats // 5)):.2f}"
    if NH > 1:
        for dtype, name in ((torch.float16, "fp16"), (torch.float32, "fp32")):
            lstms = [torch.nn.LSTM(DH, DH, batch_first=True).to(dev, dtype) for _ in range(NH)]
            xs = [torch.randn(B, T, DH, device=dev, dtype=dtype) for _ in range(NH)]
            out[f"{NH} cuDNN {name} fw"] = f"{_time(lambda: [m(x) for m, x in zip(lstms, xs)], repeats):.2f}"
    try:
        from flashrnn import flashrnn

        Wx = torch.randn(B, T, 4, NH, DH, device=dev, dtype=torch.bfloat16)
        R = (torch.randn(4, NH, DH, DH, device=dev) / DH**0.5).to(torch.bfloat16)
        b = torch.zeros(4, NH, DH, device=dev, dtype=torch.bfloat16)
        out["flashrnn triton_fused fw"] = f"{_time(lambda: flashrnn(Wx, R, b, function='lstm', backend='triton_fused', dtype='bfloat16'), repeats):.2f}"
    except Exception as err:  # noqa: BLE001 - report any failure of the anchor in the table
        out["flashrnn triton_fused fw"] = f"fails ({type(err).__name__})"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default=",".join(f"{d}x{n}" for d, n in SIZES))
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
        print("no CUDA device: GPU rows not measured.")
        print(_check("cpu"))
        return
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; B={B}, T={T}; ms, medians")
    print(_check("cuda"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    table = {f"({d},{n})": _rows(d, n, args.repeats) for d, n in sizes}
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    print("| (DH, NH) | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for size, row in table.items():
        print(f"| {size} | " + " | ".join(row.get(c, "–") for c in columns) + " |")


if __name__ == "__main__":
    main()
