"""Compiled per-step gate math for RNN, GRU and LSTM (float32, numba).

The recurrence is latency-bound: each step is one small matrix product
(B, H) x (H, G*H) plus element-wise gate math. The product goes to BLAS;
the gate math of a step is one compiled call written as short loops over
contiguous rows that the compiler vectorises (tanh and sigmoid come from a
rational approximation accurate to about 3e-7; libm's would not
vectorise). Every quantity the backward pass needs is written during the
forward step, so a backward step is one fused pass plus one product.

Three drivers share these step functions: ``*_sequence`` runs the whole
time loop in compiled code (no per-step Python cost: best for small batches
and hidden sizes); :mod:`seqlab.kernels.drivers` calls the step functions
from Python around ``torch.mm`` (large products, which then use torch's
BLAS threads); and ``*_part_*`` run a whole layer for a part of the batch,
several parts at once on threads (large batches; see "Parts" below).

Conventions: arrays are float32, C-contiguous, time-major (T, B, ...) (the
part kernels' x, out, d_out and dx are batch-first); the
batch is sorted by length, longest first, so the sequences still running at
step t are the first ``active[t]`` rows, and rows past it are neither read
nor written (``pack_padded_sequence`` semantics). Symbols: T steps,
B batch, H hidden size, G gates (1 RNN, 3 GRU, 4 LSTM).
"""

from __future__ import annotations

import numpy as np
from numba import njit

JIT = dict(fastmath=True, error_model="numpy", cache=True, nogil=True)
CLAMP = np.float32(7.99881172180175781)


@njit(inline="always", **JIT)
def fast_tanh(x):
    """tanh by Eigen's float32 rational approximation (max error ~3e-7)."""
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


@njit(inline="always", **JIT)
def fast_sigmoid(x):
    """sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    return np.float32(0.5) + np.float32(0.5) * fast_tanh(np.float32(0.5) * x)


# ----------------------------------------------------------------------------
# GRU: r = s(.), z = s(.), n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = n + z (h - n)


@njit(**JIT)
def gru_step(gi, gh, b_hh, h, out, h_prev, z_s, dn_s, bt):
    """One step for rows < bt. gi (B,3H) = W_i x + b_i; gh (B,3H) = W_h h (its r, z part is overwritten).

    h (B,H) is updated in place; out, h_prev, z_s, dn_s (B,H) are this
    step's slices. gi is overwritten with the coefficients that turn dL/dh'
    into dL/d(W_h h + b_h) for r, z, n (it is not needed again, and reusing
    it saves memory traffic); dn_s holds dL/d(n pre-activation) per unit dL/dh'.
    Each loop writes one array and reads few, so that the compiler vectorises
    it (more arrays per loop defeat its aliasing checks); out and z_s hold
    intermediate values (W_hn h + b_hn, then n) before their own.
    """
    H = h.shape[1]
    H2 = 2 * H
    one = np.float32(1.0)
    for b in range(bt):
        g_i, g_h, hb, hp, zb, dnb, ob = gi[b], gh[b], h[b], h_prev[b], z_s[b], dn_s[b], out[b]
        for k in range(H2):
            g_h[k] = fast_sigmoid(g_i[k] + g_h[k] + b_hh[k])  # r, z
        r, z = g_h[:H], g_h[H:H2]
        i_r, i_z, i_n, h_n, b_n = g_i[:H], g_i[H:H2], g_i[H2:], g_h[H2:], b_hh[H2:]
        for j in range(H):
            ob[j] = h_n[j] + b_n[j]  # W_hn h + b_hn
        for j in range(H):
            zb[j] = fast_tanh(i_n[j] + r[j] * ob[j])  # n
        for j in range(H):
            dnb[j] = (one - z[j]) * (one - zb[j] * zb[j])
        for j in range(H):
            i_r[j] = dnb[j] * ob[j] * r[j] * (one - r[j])
        for j in range(H):
            i_n[j] = dnb[j] * r[j]
        for j in range(H):
            hp[j] = hb[j]
        for j in range(H):
            i_z[j] = (hp[j] - zb[j]) * z[j] * (one - z[j])
        for j in range(H):
            ob[j] = zb[j] + z[j] * (hp[j] - zb[j])  # h' = n + z (h - n)
        for j in range(H):
            zb[j] = z[j]
        for j in range(H):
            hb[j] = ob[j]


@njit(**JIT)
def gru_step_infer(gi, gh, b_hh, h, out, bt):
    """:func:`gru_step` without what the backward pass needs (inference): h (B,H) in place, out (B,H)."""
    H = h.shape[1]
    H2 = 2 * H
    for b in range(bt):
        g_i, g_h, hb, ob = gi[b], gh[b], h[b], out[b]
        for k in range(H2):
            g_h[k] = fast_sigmoid(g_i[k] + g_h[k] + b_hh[k])  # r, z
        r, z, i_n, h_n, b_n = g_h[:H], g_h[H:H2], g_i[H2:], g_h[H2:], b_hh[H2:]
        for j in range(H):
            ob[j] = fast_tanh(i_n[j] + r[j] * (h_n[j] + b_n[j]))  # n
        for j in range(H):
            ob[j] = ob[j] + z[j] * (hb[j] - ob[j])
        for j in range(H):
            hb[j] = ob[j]


@njit(**JIT)
def gru_back_step(d_out, dh, z_s, dn_s, coef, dgh, dgi, bt):
    """dh (B,H) holds dL/dh' on entry, the direct part z * dL/dh' on exit; fills dgh, dgi (B,3H).

    The caller adds dgh @ W_hh to dh to finish dL/dh.
    """
    H = dh.shape[1]
    H2 = 2 * H
    for b in range(bt):
        d, do, cb, gh_b, gi_b = dh[b], d_out[b], coef[b], dgh[b], dgi[b]
        zb, dnb = z_s[b], dn_s[b]
        c_r, c_z, c_n = cb[:H], cb[H:H2], cb[H2:]
        g_r, g_z, g_n = gh_b[:H], gh_b[H:H2], gh_b[H2:]
        for j in range(H):
            d[j] = d[j] + do[j]
        for j in range(H):
            g_r[j] = c_r[j] * d[j]
        for j in range(H):
            g_z[j] = c_z[j] * d[j]
        for j in range(H):
            g_n[j] = c_n[j] * d[j]
        for j in range(H2):
            gi_b[j] = gh_b[j]
        i_n = gi_b[H2:]
        for j in range(H):
            i_n[j] = dnb[j] * d[j]
        for j in range(H):
            d[j] = d[j] * zb[j]


# ----------------------------------------------------------------------------
# LSTM: i, f, o = s(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')


@njit(**JIT)
def lstm_step(gi, gh, b_hh, h, c, out, h_prev, c_s, bt):
    """One step for rows < bt; gi (B,4H) is overwritten with i, f, g, o; c_s (B,H) keeps c'."""
    H = h.shape[1]
    H2, H3 = 2 * H, 3 * H
    for b in range(bt):
        a, g_h, hb, cb, hp, ob, cs = gi[b], gh[b], h[b], c[b], h_prev[b], out[b], c_s[b]
        for k in range(H2):
            a[k] = fast_sigmoid(a[k] + g_h[k] + b_hh[k])  # i, f
        i, f, g, o = a[:H], a[H:H2], a[H2:H3], a[H3:]
        for j in range(H):
            g[j] = fast_tanh(g[j] + g_h[H2 + j] + b_hh[H2 + j])
        for j in range(H):
            o[j] = fast_sigmoid(o[j] + g_h[H3 + j] + b_hh[H3 + j])
        for j in range(H):
            hp[j] = hb[j]
        for j in range(H):
            cs[j] = f[j] * cb[j] + i[j] * g[j]
        for j in range(H):
            ob[j] = o[j] * fast_tanh(cs[j])
        for j in range(H):
            hb[j] = ob[j]
        for j in range(H):
            cb[j] = cs[j]


@njit(**JIT)
def lstm_back_step(d_out, dh, dc, gates, c_prev, c_new, dga, bt):
    """dh, dc (B,H): dL/dh', dL/dc' on entry; dc becomes dL/dc. Fills dga (B,4H).

    gates (B,4H) are i, f, g, o of the step; c_prev, c_new (B,H) its cells.
    One array written per loop (see :func:`gru_step`); tanh(c') is computed twice
    rather than stored.
    """
    H = dh.shape[1]
    H2, H3 = 2 * H, 3 * H
    one = np.float32(1.0)
    for b in range(bt):
        a, da, d, dcb, do, cp, cn = gates[b], dga[b], dh[b], dc[b], d_out[b], c_prev[b], c_new[b]
        i, f, g, o = a[:H], a[H:H2], a[H2:H3], a[H3:]
        di, df, dg, do_ = da[:H], da[H:H2], da[H2:H3], da[H3:]
        for j in range(H):
            d[j] = d[j] + do[j]
        for j in range(H):
            do_[j] = d[j] * fast_tanh(cn[j]) * o[j] * (one - o[j])
        for j in range(H):
            tc = fast_tanh(cn[j])
            dcb[j] = dcb[j] + d[j] * o[j] * (one - tc * tc)  # dL/dc'
        for j in range(H):
            di[j] = dcb[j] * g[j] * i[j] * (one - i[j])
        for j in range(H):
            df[j] = dcb[j] * cp[j] * f[j] * (one - f[j])
        for j in range(H):
            dg[j] = dcb[j] * i[j] * (one - g[j] * g[j])
        for j in range(H):
            dcb[j] = dcb[j] * f[j]


# ----------------------------------------------------------------------------
# Elman RNN: h' = act(W_i x + b_i + W_h h + b_h)


@njit(**JIT)
def rnn_step(gi, gh, b_hh, h, out, h_prev, relu, bt):
    H = h.shape[1]
    zero = np.float32(0.0)
    for b in range(bt):
        g_i, g_h, hb, hp, ob = gi[b], gh[b], h[b], h_prev[b], out[b]
        for j in range(H):
            hp[j] = hb[j]
        if relu:
            for j in range(H):
                a = g_i[j] + g_h[j] + b_hh[j]
                ob[j] = a if a > zero else zero
        else:
            for j in range(H):
                ob[j] = fast_tanh(g_i[j] + g_h[j] + b_hh[j])
        for j in range(H):
            hb[j] = ob[j]


@njit(**JIT)
def rnn_back_step(d_out, dh, out, dga, relu, bt):
    H = dh.shape[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for b in range(bt):
        d, do, y, da = dh[b], d_out[b], out[b], dga[b]
        if relu:
            for j in range(H):
                da[j] = (d[j] + do[j]) if y[j] > zero else zero
        else:
            for j in range(H):
                da[j] = (d[j] + do[j]) * (one - y[j] * y[j])


# ----------------------------------------------------------------------------
# Whole-sequence drivers (no per-step Python cost)


@njit(**JIT)
def gru_sequence(gi, h, w_hh_t, b_hh, active, reverse, out, h_prev, z_s, dn_s, gh):
    """h_prev (T, B, H) keeps the state before each step; with one step (1, B, H) it is scratch only."""
    T = gi.shape[0]
    keep = h_prev.shape[0] == T
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = active[t]
        if bt:
            np.dot(h[:bt], w_hh_t, gh[:bt])
            gru_step(gi[t], gh, b_hh, h, out[t], h_prev[t if keep else 0], z_s[t], dn_s[t], bt)


@njit(**JIT)
def gru_back_sequence(d_out, dh, w_hh, active, reverse, z_s, dn_s, coef, dgh, dgi, tmp):
    T = d_out.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = active[t]
        if bt:
            gru_back_step(d_out[t], dh, z_s[t], dn_s[t], coef[t], dgh[t], dgi[t], bt)
            np.dot(dgh[t, :bt], w_hh, tmp[:bt])
            dh[:bt] += tmp[:bt]


@njit(**JIT)
def lstm_sequence(gi, h, c, w_hh_t, b_hh, active, reverse, out, h_prev, c_s, gh):
    """h_prev as in :func:`gru_sequence`."""
    T = gi.shape[0]
    keep = h_prev.shape[0] == T
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = active[t]
        if bt:
            np.dot(h[:bt], w_hh_t, gh[:bt])
            lstm_step(gi[t], gh, b_hh, h, c, out[t], h_prev[t if keep else 0], c_s[t], bt)


@njit(**JIT)
def lstm_back_sequence(d_out, dh, dc, w_hh, active, reverse, gates, c_prev, c_s, dga, tmp):
    T = d_out.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = active[t]
        if bt:
            lstm_back_step(d_out[t], dh, dc, gates[t], c_prev[t], c_s[t], dga[t], bt)
            np.dot(dga[t, :bt], w_hh, tmp[:bt])
            dh[:bt] = tmp[:bt]


@njit(**JIT)
def rnn_sequence(gi, h, w_hh_t, b_hh, active, reverse, relu, out, h_prev, gh):
    T = gi.shape[0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = active[t]
        if bt:
            np.dot(h[:bt], w_hh_t, gh[:bt])
            rnn_step(gi[t], gh, b_hh, h, out[t], h_prev[t], relu, bt)


@njit(**JIT)
def rnn_back_sequence(d_out, dh, w_hh, active, reverse, relu, out, dga, tmp):
    T = d_out.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        bt = active[t]
        if bt:
            rnn_back_step(d_out[t], dh, out[t], dga[t], relu, bt)
            np.dot(dga[t, :bt], w_hh, tmp[:bt])
            dh[:bt] = tmp[:bt]


# ----------------------------------------------------------------------------
# Parts: some rows of a batch through a whole layer on one core.
#
# A part's arrays are part-major (T, n, ...) and contiguous, so the input
# projection is one product per part; the backward sweep works in chunks of
# a few steps and turns each chunk into dL/dx and weight-gradient updates
# while the chunk is still in the core's cache. Parts share nothing they
# write, so several run at once on threads (numba releases Python's lock).
# x, out, d_out and dx are the layer's batch-first (B, T, ...) arrays in the
# caller's row order; ``rows`` (n,) names the part's rows in them, longest
# sequence first, and a part's arrays may hold fewer steps than x (the
# steps up to its longest sequence).


@njit(**JIT)
def gather_rows(src, rows, dst):
    """dst (T, n, K) = the rows ``rows`` (n,) of a batch-first src (B, T, K), part-major: steps 0..T-1."""
    for t in range(dst.shape[0]):
        for i in range(dst.shape[1]):
            a, b = src[rows[i], t], dst[t, i]
            for k in range(b.shape[0]):
                b[k] = a[k]


@njit(**JIT)
def scatter_rows(src, dst, t0, rows):
    """Steps t0 .. t0+C of the rows ``rows`` (n,) of a batch-first dst (B, T, K) = src (C, n, K)."""
    for t in range(src.shape[0]):
        for i in range(src.shape[1]):
            a, b = src[t, i], dst[rows[i], t0 + t]
            for k in range(a.shape[0]):
                b[k] = a[k]


@njit(**JIT)
def add_rows(acc, m):
    """acc (R, K) += m (R, K)."""
    for i in range(acc.shape[0]):
        a, b = acc[i], m[i]
        for k in range(a.shape[0]):
            a[k] += b[k]


@njit(**JIT)
def add_column_sums(acc, m):
    """acc (K,) += the column sums of m (R, K)."""
    for i in range(m.shape[0]):
        b = m[i]
        for k in range(acc.shape[0]):
            acc[k] += b[k]


@njit(**JIT)
def input_projection(x, rows, xp, w_ih_t, b_ih, gi):
    """xp (T, n, F) = the part's rows of x; gi (T, n, GH) = xp W_ih^T + b_ih."""
    gather_rows(x, rows, xp)
    T, n, F = xp.shape
    G = gi.shape[2]
    gi2 = gi.reshape(T * n, G)
    np.dot(xp.reshape(T * n, F), w_ih_t, gi2)
    for r in range(T * n):
        g = gi2[r]
        for k in range(G):
            g[k] += b_ih[k]


@njit(**JIT)
def add_outer(acc, g, h):
    """acc (G, H) += g (G,) outer h (H,)."""
    for k in range(acc.shape[0]):
        a, gk = acc[k], g[k]
        for j in range(acc.shape[1]):
            a[j] += gk * h[j]


@njit(**JIT)
def chunk_gradients(xp, out_p, w_ih, reverse, t0, t1, dgi, dgh, need_dx, dxc, dx, rows, dw_ih, dw_hh, db_ih,
                    db_hh, tmp_ih, tmp_hh):
    """Steps t0..t1-1 of a part: dx rows, and dW_ih, dW_hh, db_ih, db_hh accumulated.

    The state before step t is the output of the step before it (out_p is
    zero past each row's length); where a row starts from h0 instead, the
    part's backward loop adds that term to dW_hh (:func:`add_outer`).
    """
    T, n, F = xp.shape
    H, G = out_p.shape[2], dgh.shape[2]
    m = (t1 - t0) * n
    gi2 = dgi[:t1 - t0].reshape(m, G)
    gh2 = dgh[:t1 - t0].reshape(m, G)
    if need_dx:
        np.dot(gi2, w_ih, dxc[:t1 - t0].reshape(m, F))
        scatter_rows(dxc[:t1 - t0], dx, t0, rows)
    np.dot(gi2.T, xp[t0:t1].reshape(m, F), tmp_ih)
    add_rows(dw_ih, tmp_ih)
    if reverse:  # steps a..b-1 follow steps a+1..b
        a, b = t0, min(t1, T - 1)
    else:  # steps a..b-1 follow steps a-1..b-2
        a, b = max(t0, 1), t1
    if b > a:
        k = (b - a) * n
        before = out_p[a + 1:b + 1] if reverse else out_p[a - 1:b - 1]
        np.dot(dgh[a - t0:b - t0].reshape(k, G).T, before.reshape(k, H), tmp_hh)
        add_rows(dw_hh, tmp_hh)
    add_column_sums(db_ih, gi2)
    if db_hh.shape[0]:
        add_column_sums(db_hh, gh2)


@njit(**JIT)
def sweep_chunk(c, chunk, T, reverse):
    """Steps t0..t1-1 of the c-th chunk of a backward sweep, which runs against the recurrence: from
    step T-1 for the forward direction, from step 0 for the reverse one."""
    if reverse:
        t0 = c * chunk
        return t0, min(T, t0 + chunk)
    t1 = T - c * chunk
    return max(0, t1 - chunk), t1


@njit(**JIT)
def rows_started(active, t, reverse):
    """Rows of step t that also ran the step before it; the rest of the first active[t] start at t."""
    T = active.shape[0]
    before = t + 1 if reverse else t - 1
    return active[before] if 0 <= before < T else 0


@njit(**JIT)
def gru_part_forward(x, rows, xp, w_ih_t, b_ih, h, w_hh_t, b_hh, active, reverse, gi, out_p, z_s, dn_s, gh,
                     out):
    """One part of :func:`gru_sequence`, input projection included; its outputs go to out's rows.

    The state before each step is not stored: the backward pass reads it
    from out_p.
    """
    input_projection(x, rows, xp, w_ih_t, b_ih, gi)
    scratch = np.empty((1,) + h.shape, np.float32)
    gru_sequence(gi, h, w_hh_t, b_hh, active, reverse, out_p, scratch, z_s, dn_s, gh)
    scatter_rows(out_p, out, 0, rows)


@njit(**JIT)
def gru_part_backward(d_out, rows, dop, dh, h0, w_hh, w_ih, active, reverse, z_s, dn_s, coef, xp, out_p, chunk,
                      need_dx, dx, dw_ih, dw_hh, db_ih, db_hh):
    """One part of :func:`gru_back_sequence`, then dL/dx and the weight gradients, chunk by chunk.

    dop (T, n, H) receives the part's rows of d_out; dh (n, H) holds dL/dh_n
    on entry and dL/dh0 on exit; h0 (n, H) is the part's initial state;
    dw_ih, dw_hh, db_ih, db_hh (zero on entry) receive this part's sums.
    """
    gather_rows(d_out, rows, dop)
    T, n, H = out_p.shape
    G, F = coef.shape[2], xp.shape[2]
    dgh = np.empty((chunk, n, G), np.float32)
    dgi = np.empty((chunk, n, G), np.float32)
    dxc = np.empty((chunk if need_dx else 0, n, F), np.float32)
    tmp = np.empty((n, H), np.float32)
    tmp_ih = np.empty((G, F), np.float32)
    tmp_hh = np.empty((G, H), np.float32)
    for c in range((T + chunk - 1) // chunk):
        t0, t1 = sweep_chunk(c, chunk, T, reverse)
        for s in range(t1 - t0):
            t = t0 + s if reverse else t1 - 1 - s
            bt = active[t]
            j = t - t0
            if bt:
                gru_back_step(dop[t], dh, z_s[t], dn_s[t], coef[t], dgh[j], dgi[j], bt)
                np.dot(dgh[j, :bt], w_hh, tmp[:bt])
                add_rows(dh[:bt], tmp[:bt])
                for b in range(rows_started(active, t, reverse), bt):
                    add_outer(dw_hh, dgh[j, b], h0[b])
            dgh[j, bt:] = 0.0  # rows past their length add nothing to the chunk's products
            dgi[j, bt:] = 0.0
        chunk_gradients(xp, out_p, w_ih, reverse, t0, t1, dgi, dgh, need_dx, dxc, dx, rows, dw_ih, dw_hh, db_ih,
                        db_hh, tmp_ih, tmp_hh)


@njit(**JIT)
def lstm_part_forward(x, rows, xp, w_ih_t, b_ih, h, c, w_hh_t, b_hh, active, reverse, gi, out_p, c_s, gh, out):
    """One part of :func:`lstm_sequence`, input projection included; its outputs go to out's rows."""
    input_projection(x, rows, xp, w_ih_t, b_ih, gi)
    scratch = np.empty((1,) + h.shape, np.float32)
    lstm_sequence(gi, h, c, w_hh_t, b_hh, active, reverse, out_p, scratch, c_s, gh)
    scatter_rows(out_p, out, 0, rows)


@njit(**JIT)
def lstm_part_backward(d_out, rows, dop, dh, dc, h0, c0, w_hh, w_ih, active, reverse, gates, c_s, xp, out_p,
                       chunk, need_dx, dx, dw_ih, dw_hh, db):
    """One part of :func:`lstm_back_sequence`, then dL/dx and the weight gradients, chunk by chunk.

    dh, dc (n, H) hold dL/dh_n, dL/dc_n on entry and dL/dh0, dL/dc0 on
    exit; h0, c0 (n, H) are the part's initial state. The cell before step t
    is c_s of the step before, or c0 where a row starts. dop (T, n, H)
    receives the part's rows of d_out.
    """
    gather_rows(d_out, rows, dop)
    T, n, H = out_p.shape
    G, F = gates.shape[2], xp.shape[2]
    dga = np.empty((chunk, n, G), np.float32)
    dxc = np.empty((chunk if need_dx else 0, n, F), np.float32)
    c_prev = np.empty((n, H), np.float32)
    tmp_ih = np.empty((G, F), np.float32)
    tmp_hh = np.empty((G, H), np.float32)
    none = np.empty(0, np.float32)
    for c in range((T + chunk - 1) // chunk):
        t0, t1 = sweep_chunk(c, chunk, T, reverse)
        for s in range(t1 - t0):
            t = t0 + s if reverse else t1 - 1 - s
            bt = active[t]
            j = t - t0
            if bt:
                running = rows_started(active, t, reverse)
                before = t + 1 if reverse else t - 1
                for b in range(bt):
                    src = c_s[before, b] if b < running else c0[b]
                    dst = c_prev[b]
                    for k in range(H):
                        dst[k] = src[k]
                lstm_back_step(dop[t], dh, dc, gates[t], c_prev, c_s[t], dga[j], bt)
                for b in range(running, bt):
                    add_outer(dw_hh, dga[j, b], h0[b])
                np.dot(dga[j, :bt], w_hh, dh[:bt])
            dga[j, bt:] = 0.0
        chunk_gradients(xp, out_p, w_ih, reverse, t0, t1, dga, dga, need_dx, dxc, dx, rows, dw_ih, dw_hh, db, none,
                        tmp_ih, tmp_hh)


@njit(**JIT)
def gru_part_infer(x, rows, xp, w_ih_t, b_ih, h, w_hh_t, b_hh, active, reverse, gi, gh, out):
    """:func:`gru_part_forward` without what the backward pass needs (inference)."""
    input_projection(x, rows, xp, w_ih_t, b_ih, gi)
    T, n = gi.shape[0], gi.shape[1]
    out_p = np.zeros((T, n, h.shape[1]), np.float32)
    for s in range(T):
        t = T - 1 - s if reverse else s
        bt = active[t]
        if bt:
            np.dot(h[:bt], w_hh_t, gh[:bt])
            gru_step_infer(gi[t], gh, b_hh, h, out_p[t], bt)
    scatter_rows(out_p, out, 0, rows)

