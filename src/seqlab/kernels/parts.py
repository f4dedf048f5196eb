"""Scheduling a layer's batch rows into parts that run on the cores at once.

A part (r0, n) is rows r0 .. r0 + n of the batch sorted longest first, and
runs only up to its longest sequence. :func:`_part_views` gives a part's
slice of the flat part-major (T * B, ...) work arrays;
:func:`_run_forward_parts` builds every part's call of a layer's forward
pass and runs them on :func:`seqlab.kernels.parallel.run_parts`'s workers.
The part sizes come from :func:`seqlab.kernels.policy.part_bounds`; the
drivers that use this are :class:`seqlab.kernels.drivers._Parts` and
:func:`seqlab.kernels.drivers._infer_parts`. ``_np`` is the NumPy view of a
tensor that the kernels read and write.

Symbols: B batch, T steps, H hidden size, G gates.
"""

from __future__ import annotations

import numpy as np
import torch

import seqlab.kernels.buffers as buffers
import seqlab.kernels.parallel as parallel
from seqlab.recurrence.spec import GATE_COUNT


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _part_views(T: int, r0: int, n: int, steps: int):
    """A function giving part (r0, n)'s first ``steps`` steps of a flat part-major (T * B, ...) tensor."""
    return lambda t: _np(t)[T * r0:T * (r0 + n)].reshape(T, n, -1)[:steps]


def _run_forward_parts(mode, reverse, a, order, x, h0, c0, w_ih, w_hh, b_ih, b_hh, xp, bounds, n_workers, task):
    """Run a layer's forward pass in parts; ``task`` builds each part's call. Returns (out, h_n, c_n).

    ``a`` (T,) counts the rows still running at each step and ``order`` (B,)
    lists the rows of x longest first; h0, c0 and the returned states are in
    that order, out in x's.
    """
    B, T, _ = x.shape
    G, H = GATE_COUNT[mode], w_hh.shape[1]
    out = (buffers.empty if int(a.min()) == B else buffers.zeros)(B, T, H)  # zero past each length
    gh = x.new_empty(B, G * H)
    h = h0.clone()
    c = c0.clone() if mode == "lstm" else h0.new_zeros(0)
    w_ih_t, w_hh_t = _np(w_ih).T, _np(w_hh.t().contiguous())
    tasks = []
    for r0, n in bounds:
        act = np.clip(a - r0, 0, n)
        steps = int(np.count_nonzero(act))  # up to the part's longest sequence
        part = _part_views(T, r0, n, steps)
        rows = slice(r0, r0 + n)
        inputs = (_np(x), order[rows], part(xp), w_ih_t, _np(b_ih))
        recurrence = (w_hh_t, _np(b_hh), act[:steps], reverse)
        tasks.append(task(part, inputs, _np(h)[rows], _np(c)[rows] if c.numel() else None, recurrence)
                     + (_np(gh)[rows], _np(out)))
    parallel.run_parts(tasks, n_workers)
    return out, h, c
