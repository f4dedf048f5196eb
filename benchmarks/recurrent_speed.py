"""torch.nn against seqlab's fast backend, side by side in one process.

    python benchmarks/recurrent_speed.py [--repeats N] [--quick]

One line per case:
    case=<name> torch_ms=<x> seqlab_ms=<y> speedup=<x/y> gflops=<achieved> peak_gflops=<matmul peak>

``train`` cases time forward + backward of the recurrent layer (loss = sum
of outputs) with the gradient for the input as well (as for a layer with
another layer below it); ``train_data`` cases feed data that needs no
gradient (the first layer of a model); ``infer`` cases time a forward pass
under ``torch.no_grad()``.
Each case alternates the two implementations and reports medians; gflops
counts the multiply-adds of the input and recurrent products (backward as
twice the forward) for seqlab's time; peak_gflops is a 2048^3 float32
matmul measured in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from seqlab.kernels.dispatch import fast_forward

GATES = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}
LARGE = (64, 250, 90, 128)
CASES = [
    # name, module class, (B, T, F, H), kind: "train" (input gradient too), "data" (none), "infer"
    ("gru_train_B64_T250_F90_H128", nn.GRU, LARGE, "train"),
    ("lstm_train_B64_T250_F90_H128", nn.LSTM, LARGE, "train"),
    ("gru_train_data_B64_T250_F90_H128", nn.GRU, LARGE, "data"),
    ("lstm_train_data_B64_T250_F90_H128", nn.LSTM, LARGE, "data"),
    ("gru_infer_B64_T250_F90_H128", nn.GRU, LARGE, "infer"),
    ("lstm_infer_B64_T250_F90_H128", nn.LSTM, LARGE, "infer"),
    ("gru_train_B1_T100_F8_H16", nn.GRU, (1, 100, 8, 16), "train"),
    ("lstm_train_B1_T100_F8_H16", nn.LSTM, (1, 100, 8, 16), "train"),
    ("gru_train_B4_T100_F16_H32", nn.GRU, (4, 100, 16, 32), "train"),
    ("lstm_train_B4_T100_F16_H32", nn.LSTM, (4, 100, 16, 32), "train"),
    ("gru_train_B8_T100_F32_H64", nn.GRU, (8, 100, 32, 64), "train"),
    ("lstm_train_B8_T100_F32_H64", nn.LSTM, (8, 100, 32, 64), "train"),
    ("gru_infer_B1_T100_F8_H16", nn.GRU, (1, 100, 8, 16), "infer"),
    ("lstm_infer_B8_T100_F32_H64", nn.LSTM, (8, 100, 32, 64), "infer"),
]


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


def forward_flops(cls, B, T, F, H) -> float:
    G = GATES[cls]
    return 2.0 * B * T * G * H * (F + H)


def bench_case(cls, shape, kind: str, repeats: int) -> tuple[float, float]:
    B, T, F, H = shape
    torch.manual_seed(0)
    module = cls(F, H, batch_first=True)
    x = torch.randn(B, T, F, requires_grad=kind == "train")

    def run_torch():
        if kind != "infer":
            module(x)[0].sum().backward()
        else:
            with torch.no_grad():
                module(x)

    def run_seqlab():
        if kind != "infer":
            fast_forward(module, x)[0].sum().backward()
        else:
            with torch.no_grad():
                fast_forward(module, x)

    for fn in (run_torch, run_seqlab, run_torch, run_seqlab):  # warm-up, JIT compilation
        fn()
    torch_times, seqlab_times = [], []
    for _ in range(repeats):
        for fn, times in ((run_torch, torch_times), (run_seqlab, seqlab_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(torch_times) * 1e3, statistics.median(seqlab_times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per implementation and case")
    parser.add_argument("--quick", action="store_true", help="only the four large training cases, 5 repeats")
    args = parser.parse_args()
    cases = CASES[:4] if args.quick else CASES
    repeats = 5 if args.quick else args.repeats
    peak = matmul_peak_gflops()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats} alternating runs")
    for name, cls, shape, kind in cases:
        torch_ms, seqlab_ms = bench_case(cls, shape, kind, repeats)
        flops = forward_flops(cls, *shape) * (3 if kind == "train" else 1)
        if kind == "data":  # no dL/dx: the backward pass is the recurrent and weight products
            flops += 2.0 * shape[0] * shape[1] * GATES[cls] * shape[3] * (shape[2] + 2 * shape[3])
        print(f"case={name} torch_ms={torch_ms:.3f} seqlab_ms={seqlab_ms:.3f} speedup={torch_ms / seqlab_ms:.2f} "
              f"gflops={flops / seqlab_ms / 1e6:.1f} peak_gflops={peak:.1f}", flush=True)


if __name__ == "__main__":
    main()
