"""When the fast backend runs what: its dispatch policy, one object.

A layer of the ``fast`` backend (:mod:`seqlab.kernels.dispatch`) runs one of
four ways: the compiled time loop around numpy's BLAS, a Python time loop
around ``torch.mm``, the batch cut into parts that run on the cores at once,
or (full-length LSTM batches) the ``torch.nn`` module itself, where torch
runs oneDNN's fused kernel. :class:`KernelPolicy` holds the thresholds that
choose, each default beside the measurement it comes from, and the part
sizes. :func:`current_policy` is the one in force; :func:`use_policy` sets
another for a block (tests force each driver that way), and
:func:`seqlab.kernels.dispatch.fast_forward` takes one as an argument.

Symbols: B batch, T steps, H hidden size, G gates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

import seqlab.kernels.parallel as parallel
from seqlab.recurrence.spec import GATE_COUNT


@dataclass(frozen=True)
class KernelPolicy:
    """The fast backend's thresholds (multiply-adds: MACs) and part sizes.

    Attributes:
        python_loop_min_macs: per-step products of at least this many
            multiply-adds (B * G*H * H) run through torch.mm from Python (its
            threads pay off there); smaller ones stay inside the compiled loop,
            around numpy's BLAS (the least overhead per call).
        lstm_handover_macs: full-length LSTM batches whose per-step product has
            at least this many multiply-adds (B * 4H * H) go to the module
            itself, for training too: there torch runs oneDNN's fused LSTM,
            which the step loop does not reach (training at T=100, step loop
            against nn.LSTM: 0.87-1.01x at B=16, H=64; 0.75-0.84x at B=32,
            H=64; 0.82-0.85x at B=8, H=128; 0.63-0.72x at B=16-32, H=128;
            about 1.0x at B=64, H=128; below the threshold, at B=8, H=64, even:
            0.89-1.16x over sessions; benchmarks/fast_backend_parts.py). With
            variable lengths torch leaves oneDNN for a packed loop, and the step
            loop is 1.8-6.8x faster, so those stay in the step loop.
        part_rows: rows per part when a batch is cut into parts, for H up to
            128; above, H * H / 2048 rows, so that each row of a part reuses a
            similar share of W_hh per step (training at T=100, F=64: parts of 8
            rows best at H=64-128, of 32 rows at H=256, where 8 were 0.74x the
            step loop).
        chunk_steps: steps per chunk of a part's backward sweep: a chunk's
            gradients become dL/dx and weight-gradient updates while they are
            still in cache (B=64, T=250, H=128: chunks of 8-64 steps within 10%
            of each other; the whole sequence at once was 1.6x slower).
        parts_min_batch, parts_min_macs, parts_max_hidden: per mode, when a
            training layer runs in parts: at least two usable cores, a batch of
            at least ``parts_min_batch`` rows (and two parts), a per-step
            product of at least ``parts_min_macs`` multiply-adds (B * G*H * H)
            and H at most ``parts_max_hidden`` (None: any). From
            benchmarks/fast_backend_parts.py (``parts`` cases, T=100, F=64,
            against the same step without parts, four runs; BENCHMARKS.md):
            GRU 1.3-1.9x at B=128, H=128 and B=256, H=64, 0.9-1.4x at B=64,
            H=128 and 1.1-1.2x at B=64, H=256; below 2^21 multiply-adds the
            runs disagree (B=64, H=64: 0.72-1.29x; B=32, H=128: 0.79-1.06x).
            LSTM (without parts: torch's oneDNN kernel) 1.0-1.3x from B=64 with
            B * 4H * H >= 2^21 up to H=128; 0.54-1.14x below that (B=16-64,
            H=64-128) and 0.74-0.86x at B=64, H=256.
        infer_parts_min_macs, infer_parts_max_hidden: inference runs in parts
            for GRU only, from this many multiply-adds over the whole sequence
            (B * T * 3H * H) up to this H: 1.10-1.52x there, 0.78-1.07x on less
            work and at H=256; LSTM inference in parts was 0.70-0.82x torch's
            oneDNN kernel.
        workers: threads that run parts (None: the usable cores,
            :func:`seqlab.kernels.parallel.workers`).
    """

    python_loop_min_macs: int = 1 << 20
    lstm_handover_macs: int = 1 << 18
    part_rows: int = 8
    chunk_steps: int = 32
    parts_min_batch: dict[str, int] = field(default_factory=lambda: {"gru": 32, "lstm": 64})
    parts_min_macs: dict[str, int] = field(default_factory=lambda: {"gru": 1 << 21, "lstm": 1 << 21})
    parts_max_hidden: dict[str, int | None] = field(default_factory=lambda: {"gru": None, "lstm": 128})
    infer_parts_min_macs: int = 1 << 29
    infer_parts_max_hidden: int = 128
    workers: int | None = None

    def cores(self) -> int:
        """Threads that run parts."""
        return parallel.workers() if self.workers is None else self.workers

    def rows_per_part(self, H: int) -> int:
        return max(self.part_rows, H * H // 2048)

    def python_loop(self, mode: str, B: int, H: int) -> bool:
        """Whether the time loop runs from Python around torch.mm (else compiled, around numpy's BLAS)."""
        return B * GATE_COUNT[mode] * H * H >= self.python_loop_min_macs

    def lstm_to_torch(self, B: int, H: int, training: bool) -> bool:
        """Whether a full-length LSTM batch (not run in parts) goes to torch's fused kernel."""
        return not training or B * 4 * H * H >= self.lstm_handover_macs

    def use_parts(self, mode: str, B: int, T: int, H: int, training: bool = True) -> bool:
        """Whether a layer runs in parts on several cores."""
        if mode not in self.parts_min_macs or self.cores() < 2:
            return False
        if not training:
            return mode == "gru" and H <= self.infer_parts_max_hidden and B * T * 3 * H * H >= self.infer_parts_min_macs
        limit = self.parts_max_hidden[mode]
        return (B >= max(self.parts_min_batch[mode], 2 * self.rows_per_part(H))
                and B * GATE_COUNT[mode] * H * H >= self.parts_min_macs[mode] and (limit is None or H <= limit))


def part_bounds(B: int, n_workers: int, rows: int) -> list[tuple[int, int]]:
    """(first row, rows) of each part: at least ``n_workers`` parts of about ``rows`` rows, sizes within one."""
    P = min(B, max(n_workers, -(-B // rows)))
    sizes = [B // P + (p < B % P) for p in range(P)]
    starts = np.cumsum([0] + sizes[:-1])
    return [(int(r0), n) for r0, n in zip(starts, sizes)]


DEFAULT_POLICY = KernelPolicy()
_current = [DEFAULT_POLICY]


def current_policy() -> KernelPolicy:
    return _current[-1]


@contextlib.contextmanager
def use_policy(policy: KernelPolicy | None):
    """Run the block under ``policy`` (None: the one in force)."""
    _current.append(policy or _current[-1])
    try:
        yield _current[-1]
    finally:
        _current.pop()
