"""Parts of the fast backend's training step, timed on their own.

    python benchmarks/fast_backend_parts.py [--repeats N]

- ``gate_step``: one compiled gate-math step (forward and backward) at
  B=64, H=128, arrays hot in cache, against one per-step recurrent product
  through ``torch.mm`` for scale.
- ``padded_product``: dL/dx = dA W_ih for F=90 as is and with W_ih's columns
  padded to 96 (what the backend does).
- ``train``: a whole training step (forward + backward) next to
  ``torch.nn``: seqlab as it runs by default and with the step loop forced
  (for LSTMs from ``KernelPolicy.lstm_handover_macs`` the default is torch's own oneDNN
  kernel); the LSTM sizes around the hand-over show where it pays.
- ``lengths``: training on variable lengths (T/2..T), torch on a packed
  sequence against seqlab (such batches are not handed over), and seqlab on
  the same batch at full length for scale.
- ``parts``: training (GRU, LSTM) and inference (GRU) with the batch in
  parts on the cores at once, against the same step without parts (the step
  loop, or torch's oneDNN LSTM where the backend hands over) and torch.nn, on
  a grid of batch and hidden sizes; the thresholds of the dispatch policy
  (``seqlab.kernels.policy.KernelPolicy``: ``parts_min_macs``,
  ``parts_max_hidden``, ``part_rows``) come from it.

Medians of alternating runs in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.kernels import cpu_kernels as K
from seqlab.kernels import dispatch, drivers
from seqlab.kernels.policy import DEFAULT_POLICY


def timed(fns: dict, repeats: int, inner: int = 1) -> dict:
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


def gate_steps(repeats: int) -> None:
    B, H = 64, 128
    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    gru = (f32(B, 3 * H), f32(B, 3 * H), f32(3 * H), f32(B, H)) + tuple(np.zeros((B, H), np.float32) for _ in range(4))
    gru_back = (f32(B, H), f32(B, H), f32(B, H), f32(B, H), f32(B, 3 * H), np.zeros((B, 3 * H), np.float32),
                np.zeros((B, 3 * H), np.float32))
    lstm = (f32(B, 4 * H), f32(B, 4 * H), f32(4 * H), f32(B, H), f32(B, H)) + tuple(
        np.zeros((B, H), np.float32) for _ in range(3))
    gates = rng.uniform(0, 1, size=(B, 4 * H)).astype(np.float32)
    lstm_back = (f32(B, H), f32(B, H), f32(B, H), gates, f32(B, H), f32(B, H), np.zeros((B, 4 * H), np.float32))
    h, w, out = torch.randn(B, H), torch.randn(H, 3 * H), torch.empty(B, 3 * H)
    fns = {
        "gru_forward": lambda: K.gru_step(*gru, B), "gru_backward": lambda: K.gru_back_step(*gru_back, B),
        "lstm_forward": lambda: K.lstm_step(*lstm, B), "lstm_backward": lambda: K.lstm_back_step(*lstm_back, B),
        "torch_mm_64x128x384": lambda: torch.mm(h, w, out=out),
    }
    for name, seconds in timed(fns, repeats, inner=250).items():
        print(f"case=gate_step_{name}_B{B}_H{H} us={seconds * 1e6:.1f}", flush=True)


def padded_product(repeats: int) -> None:
    T, B, F, H = 250, 64, 90, 128
    for G, mode in ((3, "gru"), (4, "lstm")):
        dA, w = torch.randn(T * B, G * H), torch.randn(G * H, F)
        results = timed({"as_is": lambda: dA @ w, "padded": lambda: drivers._product_padded(dA, w)}, repeats)
        print(f"case=dx_{mode}_F{F} as_is_ms={results['as_is'] * 1e3:.2f} padded_ms={results['padded'] * 1e3:.2f} "
              f"speedup={results['as_is'] / results['padded']:.2f}", flush=True)


def training_steps(repeats: int) -> None:
    cases = [(nn.GRU, 64, 250, 90, 128), (nn.LSTM, 64, 250, 90, 128)] + [
        (nn.LSTM, B, 100, 64, H) for B, H in ((8, 64), (16, 64), (32, 64), (8, 128), (16, 128), (32, 128))]
    handover = DEFAULT_POLICY.lstm_handover_macs
    in_the_loop = replace(DEFAULT_POLICY, lstm_handover_macs=1 << 62)

    def step_loop():
        dispatch.fast_forward(module, x, policy=in_the_loop)[0].sum().backward()

    for cls, B, T, F, H in cases:
        torch.manual_seed(0)
        module = cls(F, H, batch_first=True)
        x = torch.randn(B, T, F, requires_grad=True)
        fns = {"torch": lambda: module(x)[0].sum().backward(),
               "seqlab": lambda: dispatch.fast_forward(module, x)[0].sum().backward()}
        handed_over = (cls is nn.LSTM and B * 4 * H * H >= handover
                       and not DEFAULT_POLICY.use_parts("lstm", B, T, H))
        if handed_over:
            fns["step_loop"] = step_loop
        results = timed(fns, repeats)
        line = (f"case={cls.__name__.lower()}_train_B{B}_T{T}_F{F}_H{H} torch_ms={results['torch'] * 1e3:.1f} "
                f"seqlab_ms={results['seqlab'] * 1e3:.1f} speedup={results['torch'] / results['seqlab']:.2f}")
        if handed_over:
            line += (f" (handed to torch) step_loop_ms={results['step_loop'] * 1e3:.1f} "
                     f"step_loop_speedup={results['torch'] / results['step_loop']:.2f}")
        print(line, flush=True)


def variable_lengths(repeats: int) -> None:
    """Training on a batch of lengths T/2..T: torch on a packed sequence against seqlab, and seqlab on the
    same batch at full length for scale."""
    cases = [(nn.LSTM, 8, 100, 32, 64), (nn.LSTM, 32, 100, 64, 128), (nn.LSTM, 16, 100, 64, 256),
             (nn.LSTM, 64, 250, 90, 128), (nn.GRU, 64, 250, 90, 128)]
    for cls, B, T, F, H in cases:
        torch.manual_seed(0)
        module = cls(F, H, batch_first=True)
        x = torch.randn(B, T, F, requires_grad=True)
        lengths = torch.randint(T // 2, T + 1, (B,))

        def run_torch():
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            pad_packed_sequence(module(packed)[0], batch_first=True, total_length=T)[0].sum().backward()

        results = timed({"torch": run_torch,
                         "seqlab": lambda: dispatch.fast_forward(module, x, lengths)[0].sum().backward(),
                         "seqlab_full": lambda: dispatch.fast_forward(module, x)[0].sum().backward()}, repeats)
        print(f"case={cls.__name__.lower()}_train_lengths_B{B}_T{T}_F{F}_H{H} torch_ms={results['torch'] * 1e3:.1f} "
              f"seqlab_ms={results['seqlab'] * 1e3:.1f} speedup={results['torch'] / results['seqlab']:.2f} "
              f"seqlab_full_length_ms={results['seqlab_full'] * 1e3:.1f}", flush=True)


def parts(repeats: int) -> None:
    """With and without the batch in parts, training and GRU inference, across sizes."""
    no_parts = replace(DEFAULT_POLICY, parts_min_macs={})
    forced = replace(DEFAULT_POLICY, parts_min_macs={"gru": 0, "lstm": 0}, parts_max_hidden={"gru": None, "lstm": None})

    def run(module, x, policy, train):
        if train:
            dispatch.fast_forward(module, x, policy=policy)[0].sum().backward()
        else:
            with torch.no_grad():
                dispatch.fast_forward(module, x, policy=policy)

    def run_torch(module, x, train):
        if train:
            module(x)[0].sum().backward()
        else:
            with torch.no_grad():
                module(x)

    sizes = [(B, 100, 64, H) for B, H in ((16, 128), (32, 64), (32, 128), (64, 64), (64, 128), (128, 64),
                                           (128, 128), (256, 64), (32, 256), (64, 256))] + [(64, 250, 90, 128)]
    for cls, train in ((nn.GRU, True), (nn.LSTM, True), (nn.GRU, False)):
        for B, T, F, H in sizes:
            torch.manual_seed(0)
            module = cls(F, H, batch_first=True)
            x = torch.randn(B, T, F, requires_grad=train)
            mode = cls.__name__.lower()
            used = DEFAULT_POLICY.use_parts(mode, B, T, H, train)
            results = timed({"torch": lambda: run_torch(module, x, train),
                             "no_parts": lambda: run(module, x, no_parts, train),
                             "parts": lambda: run(module, x, forced, train)}, repeats)
            print(f"case=parts_{mode}_{'train' if train else 'infer'}_B{B}_T{T}_F{F}_H{H} "
                  f"torch_ms={results['torch'] * 1e3:.1f} no_parts_ms={results['no_parts'] * 1e3:.1f} "
                  f"parts_ms={results['parts'] * 1e3:.1f} "
                  f"parts_speedup={results['no_parts'] / results['parts']:.2f} "
                  f"default={'parts' if used else 'no_parts'}", flush=True)


SECTIONS = {"gate_step": gate_steps, "padded_product": padded_product, "train": training_steps,
            "lengths": variable_lengths, "parts": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append",
                        help="run only this section (may be given more than once)")
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats}")
    for name in args.only or SECTIONS:
        SECTIONS[name](args.repeats)


if __name__ == "__main__":
    main()
