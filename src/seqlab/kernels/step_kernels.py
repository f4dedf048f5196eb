"""One recurrent step for a single stream (batch 1), compiled: the streaming hot path.

At batch 1 a step is ~170 kFLOP (GRU, F=90, H=128): far too little for a
BLAS call or a framework dispatch to pay off, so these loops do the
products row by row (contiguous, vectorised) and the gate math in place.
Weights are PyTorch's (W_ih (G*H, F), W_hh (G*H, H)), float32, C-contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from seqlab.kernels.cpu_kernels import JIT, fast_sigmoid, fast_tanh


@njit(inline="always", **JIT)
def _affine(W, b, v, out):
    """out = W v + b, row by row."""
    for i in range(W.shape[0]):
        row = W[i]
        total = np.float32(0.0)
        for j in range(row.shape[0]):
            total += row[j] * v[j]
        out[i] = total + b[i]


@njit(**JIT)
def gru_step1(x, h, w_ih, w_hh, b_ih, b_hh, gi, gh):
    """h <- GRU(x, h) in place; gi, gh (3H,) are scratch."""
    H = h.shape[0]
    _affine(w_ih, b_ih, x, gi)
    _affine(w_hh, b_hh, h, gh)
    for j in range(H):
        r = fast_sigmoid(gi[j] + gh[j])
        z = fast_sigmoid(gi[H + j] + gh[H + j])
        n = fast_tanh(gi[2 * H + j] + r * gh[2 * H + j])
        h[j] = n + z * (h[j] - n)


@njit(**JIT)
def lstm_step1(x, h, c, w_ih, w_hh, b_ih, b_hh, gi, gh):
    """(h, c) <- LSTM(x, h, c) in place (no projection); gi, gh (4H,) are scratch."""
    H = h.shape[0]
    _affine(w_ih, b_ih, x, gi)
    _affine(w_hh, b_hh, h, gh)
    for j in range(H):
        i = fast_sigmoid(gi[j] + gh[j])
        f = fast_sigmoid(gi[H + j] + gh[H + j])
        g = fast_tanh(gi[2 * H + j] + gh[2 * H + j])
        o = fast_sigmoid(gi[3 * H + j] + gh[3 * H + j])
        c[j] = f * c[j] + i * g
        h[j] = o * fast_tanh(c[j])


@njit(**JIT)
def rnn_step1(x, h, w_ih, w_hh, b_ih, b_hh, relu, gi, gh):
    H = h.shape[0]
    _affine(w_ih, b_ih, x, gi)
    _affine(w_hh, b_hh, h, gh)
    for j in range(H):
        a = gi[j] + gh[j]
        h[j] = (a if a > 0 else np.float32(0.0)) if relu else fast_tanh(a)


@njit(**JIT)
def head_step1(w, b, h, out):
    _affine(w, b, h, out)
