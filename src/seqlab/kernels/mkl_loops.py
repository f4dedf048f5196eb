"""Whole time loops in compiled code around MKL's packed matrix products.

The recurrent product of each step, (rows, H) x (H, G*H) forward and
(rows, G*H) x (G*H, H) backward, is small, and the same weight matrix is
used at every step. MKL (which x86 builds of torch carry inside
``libtorch_cpu``) can pack such a matrix once into its internal layout
(``cblas_sgemm_pack``) and then multiply by it repeatedly
(``cblas_sgemm_compute``) with no per-call repacking. Calling these from
numba keeps the whole loop, products and gate math, in compiled code with no
Python call per step; the products use torch's threads.

``AVAILABLE`` is False where the symbols are missing (builds without MKL);
:mod:`seqlab.kernels.fast_rnn` then uses its other drivers. Setting the
environment variable ``SEQLAB_NO_MKL`` turns this path off.

These functions are compiled at their first use in a process (about a
second each); they are not cached on disk because they hold the address of a
library function, which differs from process to process.

Arrays follow :mod:`seqlab.kernels.cpu_kernels` (float32, C-contiguous,
time-major, batch sorted by length). Each loop covers rows ``lo..hi-1``;
at step t the rows running are ``lo..min(active[t], hi)-1``.

Measured and left out: two halves of the batch on two threads, each with
one-thread products, ran the GRU forward loop in 13 ms instead of 18 in
isolation, but lost that and more inside a training step, next to torch's
idle OpenMP threads, which keep spinning for milliseconds after each
parallel operation.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import torch
from numba import njit

from seqlab.kernels import cpu_kernels as K

ROW_MAJOR, NO_TRANS, TRANS, PACKED, B_MATRIX = 101, 111, 112, 151, 162


def _load():
    if os.environ.get("SEQLAB_NO_MKL"):
        return None
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path)
        compute, pack, size = lib.cblas_sgemm_compute, lib.cblas_sgemm_pack, lib.cblas_sgemm_pack_get_size
    except (OSError, AttributeError):
        return None
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    compute.restype, compute.argtypes = None, [i, i, i, i, i, i, p, i, p, i, f, p, i]
    pack.restype, pack.argtypes = None, [i, i, i, i, i, i, f, p, i, p]
    size.restype, size.argtypes = ctypes.c_size_t, [i, i, i, i]
    return compute, pack, size


_FUNCTIONS = _load()
AVAILABLE = _FUNCTIONS is not None
if AVAILABLE:
    _compute, _pack, _pack_size = _FUNCTIONS


def pack(w: np.ndarray, transpose: bool, rows: int) -> np.ndarray:
    """MKL's packed form of the right-hand matrix ``w.T if transpose else w`` for products with up to
    ``rows`` rows on the left. ``w`` is float32 and C-contiguous."""
    k, n = (w.shape[1], w.shape[0]) if transpose else w.shape
    dest = np.empty(_pack_size(B_MATRIX, rows, n, k) // 4 + 1, np.float32)
    _pack(ROW_MAJOR, B_MATRIX, TRANS if transpose else NO_TRANS, rows, n, k, 1.0,
          w.ctypes.data, w.shape[1], dest.ctypes.data)
    return dest


JIT = dict(fastmath=True, error_model="numpy", nogil=True, cache=False)


@njit(**JIT)
def _product(a, packed, c, m, n, k, beta):
    """c[:m] = a[:m] (m, k) x B (k, n) + beta * c[:m], B packed; a and c C-contiguous rows."""
    _compute(ROW_MAJOR, NO_TRANS, PACKED, m, n, k, a.ctypes.data, k, packed.ctypes.data, n, beta, c.ctypes.data, n)


@njit(**JIT)
def _rows(active_t, lo, hi):
    return min(active_t, hi) - lo


@njit(**JIT)
def gru_forward(gi, h, w_hh_t, b_hh, active, reverse, out, h_prev, z_s, dn_s, gh, lo, hi):
    T, H, GH = gi.shape[0], h.shape[1], gh.shape[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            _product(h[lo:], w_hh_t, gh[lo:], bt, GH, H, 0.0)
            K.gru_step(gi[t][lo:], gh[lo:], b_hh, h[lo:], out[t][lo:], h_prev[t][lo:], z_s[t][lo:], dn_s[t][lo:], bt)


@njit(**JIT)
def gru_infer(gi, h, w_hh_t, b_hh, active, reverse, out, gh, lo, hi):
    T, H, GH = gi.shape[0], h.shape[1], gh.shape[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            _product(h[lo:], w_hh_t, gh[lo:], bt, GH, H, 0.0)
            K.gru_step_infer(gi[t][lo:], gh[lo:], b_hh, h[lo:], out[t][lo:], bt)


@njit(**JIT)
def gru_backward(d_out, dh, w_hh, active, reverse, z_s, dn_s, coef, dgh, dgi, lo, hi):
    T, H, GH = d_out.shape[0], dh.shape[1], dgh.shape[2]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            K.gru_back_step(d_out[t][lo:], dh[lo:], z_s[t][lo:], dn_s[t][lo:], coef[t][lo:], dgh[t][lo:],
                            dgi[t][lo:], bt)
            _product(dgh[t][lo:], w_hh, dh[lo:], bt, H, GH, 1.0)  # dh += dgh W_hh


@njit(**JIT)
def lstm_forward(gi, h, c, w_hh_t, b_hh, active, reverse, out, h_prev, c_s, gh, lo, hi):
    T, H, GH = gi.shape[0], h.shape[1], gh.shape[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            _product(h[lo:], w_hh_t, gh[lo:], bt, GH, H, 0.0)
            K.lstm_step(gi[t][lo:], gh[lo:], b_hh, h[lo:], c[lo:], out[t][lo:], h_prev[t][lo:], c_s[t][lo:], bt)


@njit(**JIT)
def lstm_backward(d_out, dh, dc, w_hh, active, reverse, gates, c_prev, c_s, dga, lo, hi):
    T, H, GH = d_out.shape[0], dh.shape[1], dga.shape[2]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            K.lstm_back_step(d_out[t][lo:], dh[lo:], dc[lo:], gates[t][lo:], c_prev[t][lo:], c_s[t][lo:],
                             dga[t][lo:], bt)
            _product(dga[t][lo:], w_hh, dh[lo:], bt, H, GH, 0.0)  # dh = dga W_hh


@njit(**JIT)
def rnn_forward(gi, h, w_hh_t, b_hh, active, reverse, relu, out, h_prev, gh, lo, hi):
    T, H = gi.shape[0], h.shape[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            _product(h[lo:], w_hh_t, gh[lo:], bt, H, H, 0.0)
            K.rnn_step(gi[t][lo:], gh[lo:], b_hh, h[lo:], out[t][lo:], h_prev[t][lo:], relu, bt)


@njit(**JIT)
def rnn_backward(d_out, dh, w_hh, active, reverse, relu, out, dga, lo, hi):
    T, H = d_out.shape[0], dh.shape[1]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = _rows(active[t], lo, hi)
        if bt > 0:
            K.rnn_back_step(d_out[t][lo:], dh[lo:], out[t][lo:], dga[t][lo:], relu, bt)
            _product(dga[t][lo:], w_hh, dh[lo:], bt, H, H, 0.0)  # dh = dga W_hh
