"""One layer and direction of the ``fast`` backend: its autograd Functions and inference paths.

:class:`_Layer` is the step-loop driver, time-major: the input projection of
all steps is one large matrix product, the time loop runs in
:mod:`seqlab.kernels.cpu_kernels` (compiled, or from Python around
``torch.mm`` from the policy's ``python_loop_min_macs``), and after the
backward sweep the weight gradients are again single large products
(dW_ih = dA^T X, dW_hh = dA_h^T H_prev, dX = dA W_ih, the last through
:func:`_product_padded`, with ``PAD``). :func:`_infer` is its forward pass
when no gradient is wanted (``_Unsaved`` stands in for the context).

:class:`_Parts` is the parts driver for large GRU and LSTM batches,
batch-first: the batch is cut into parts of a few rows, and each part runs
its input projection, its time loop and its weight-gradient products on one
core, all parts at once (:mod:`seqlab.kernels.parts`,
:mod:`seqlab.kernels.parallel`). :func:`_infer_parts` is its forward pass
for GRU inference. Which driver runs is :mod:`seqlab.kernels.dispatch`'s
choice.

Symbols: B batch, T steps, F input features, H hidden size, G gates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.profiler import record_function

import seqlab.kernels.buffers as buffers
import seqlab.kernels.cpu_kernels as K
import seqlab.kernels.parallel as parallel
from seqlab.kernels.parts import _np, _part_views, _run_forward_parts
from seqlab.kernels.policy import current_policy, part_bounds
from seqlab.recurrence.spec import GATE_COUNT


# Products whose narrow side is a multiple of PAD columns run faster in MKL
# (measured: dL/dx for F = 90 took 14.3 ms as is, 11.2 ms padded to 96).
PAD = 16


def _product_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for a tall a (N, K) and a narrow b (K, M), with b's columns padded to a multiple of PAD."""
    M = b.shape[1]
    if M % PAD == 0:
        return a @ b
    padded = b.new_zeros(b.shape[0], M + PAD - M % PAD)
    padded[:, :M] = b
    return (a @ padded)[:, :M].contiguous()


def _previous_cells(c_s: torch.Tensor, c0: torch.Tensor, active: torch.Tensor, reverse: bool) -> torch.Tensor:
    """The cell before each step: c' of the previous step, or c0 where a row starts."""
    T = c_s.shape[0]
    c_prev = torch.empty_like(c_s)
    if reverse:
        c_prev[:-1] = c_s[1:]
        c_prev[-1] = c0
        # a row whose length is n starts at step n - 1, from c0
        rows = torch.arange(c_s.shape[1])
        later = torch.cat([active[1:], active.new_zeros(1)])  # rows still running at t + 1
        starts = rows[None, :] >= later[:, None]  # (T, B)
        c_prev[starts] = c0.expand(T, -1, -1)[starts]
    else:
        c_prev[1:] = c_s[:-1]
        c_prev[0] = c0
    return c_prev


class _Layer(torch.autograd.Function):
    """One layer, one direction: (x (T,B,F), h0, c0, weights) -> (out (T,B,H), h_n, c_n)."""

    @staticmethod
    def forward(ctx, mode, relu, reverse, active, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        T, B, F = x.shape
        H = w_hh.shape[1]
        G = GATE_COUNT[mode]
        steps = range(T - 1, -1, -1) if reverse else range(T)
        python_loop = current_policy().python_loop(mode, B, H)
        a = active.numpy()
        # Only padded positions must read as zero; a full batch has none.
        alloc = x.new_empty if int(a.min()) == B else x.new_zeros
        with torch.no_grad():
            gi = torch.addmm(b_ih, x.reshape(T * B, F), w_ih.t()).view(T, B, G * H)  # (T, B, GH)
            w_hh_t = w_hh.t().contiguous()  # (H, GH)
            out = alloc(T, B, H)
            h_prev = alloc(T, B, H)
            gh = x.new_empty(B, G * H)
            h = h0.clone()
            c = c0.clone() if mode == "lstm" else h0.new_zeros(0)
            n_gi, n_h, n_b, n_gh, n_out, n_hp = _np(gi), _np(h), _np(b_hh), _np(gh), _np(out), _np(h_prev)
            if mode == "gru":
                # gi is overwritten step by step with the backward coefficients
                z_s, dn_s = x.new_empty(T, B, H), x.new_empty(T, B, H)
                n_z, n_dn = _np(z_s), _np(dn_s)
                if python_loop:
                    for t in steps:
                        bt = int(a[t])
                        torch.mm(h[:bt], w_hh_t, out=gh[:bt])
                        K.gru_step(n_gi[t], n_gh, n_b, n_h, n_out[t], n_hp[t], n_z[t], n_dn[t], bt)
                else:
                    K.gru_sequence(n_gi, n_h, _np(w_hh_t), n_b, a, reverse, n_out, n_hp, n_z, n_dn, n_gh)
                saved = (z_s, dn_s, gi)
            elif mode == "lstm":
                # gi is overwritten step by step with the gate activations i, f, g, o
                c_s = alloc(T, B, H)
                n_c, n_cs = _np(c), _np(c_s)
                if python_loop:
                    for t in steps:
                        bt = int(a[t])
                        torch.mm(h[:bt], w_hh_t, out=gh[:bt])
                        K.lstm_step(n_gi[t], n_gh, n_b, n_h, n_c, n_out[t], n_hp[t], n_cs[t], bt)
                else:
                    K.lstm_sequence(n_gi, n_h, n_c, _np(w_hh_t), n_b, a, reverse, n_out, n_hp, n_cs, n_gh)
                saved = (gi, c_s, c0)
            else:
                if python_loop:
                    for t in steps:
                        bt = int(a[t])
                        torch.mm(h[:bt], w_hh_t, out=gh[:bt])
                        K.rnn_step(n_gi[t], n_gh, n_b, n_h, n_out[t], n_hp[t], relu, bt)
                else:
                    K.rnn_sequence(n_gi, n_h, _np(w_hh_t), n_b, a, reverse, relu, n_out, n_hp, n_gh)
                saved = ()
        ctx.mode, ctx.relu, ctx.reverse, ctx.python_loop = mode, relu, reverse, python_loop
        ctx.save_for_backward(active, x, w_ih, w_hh, out, h_prev, *saved)
        return out, h, c

    @staticmethod
    @once_differentiable  # computed outside autograd: a second derivative is an error, not zeros
    @record_function("fast_rnn.backward")  # labelled on torch.profiler's timeline (seqlab profile)
    def backward(ctx, d_out, d_hn, d_cn):
        active, x, w_ih, w_hh, out, h_prev, *saved = ctx.saved_tensors
        T, B, F = x.shape
        H = w_hh.shape[1]
        G = GATE_COUNT[ctx.mode]
        a = active.numpy()
        steps = range(T) if ctx.reverse else range(T - 1, -1, -1)
        d_out = (d_out if d_out is not None else x.new_zeros(T, B, H)).contiguous()
        dh = (d_hn.clone() if d_hn is not None else x.new_zeros(B, H)).contiguous()
        w_hh = w_hh.contiguous()
        tmp = x.new_empty(B, H)
        alloc = x.new_empty if int(a.min()) == B else x.new_zeros
        dgh = alloc(T, B, G * H)  # dL/d(W_hh h + b_hh) per step
        n_do, n_dh, n_dgh, n_tmp, n_w = _np(d_out), _np(dh), _np(dgh), _np(tmp), _np(w_hh)
        dc = None
        if ctx.mode == "gru":
            z_s, dn_s, coef = saved
            dgi = alloc(T, B, G * H)
            n_z, n_dn, n_coef, n_dgi = _np(z_s), _np(dn_s), _np(coef), _np(dgi)
            if ctx.python_loop:
                for t in steps:
                    bt = int(a[t])
                    K.gru_back_step(n_do[t], n_dh, n_z[t], n_dn[t], n_coef[t], n_dgh[t], n_dgi[t], bt)
                    dh[:bt].addmm_(dgh[t, :bt], w_hh)
            else:
                K.gru_back_sequence(n_do, n_dh, n_w, a, ctx.reverse, n_z, n_dn, n_coef, n_dgh, n_dgi, n_tmp)
        elif ctx.mode == "lstm":
            dc = (d_cn.clone() if d_cn is not None and d_cn.numel() else x.new_zeros(B, H)).contiguous()
            gates, c_s, c0 = saved
            c_prev = _previous_cells(c_s, c0, active, ctx.reverse)  # (T, B, H)
            n_dc, n_gates, n_cp, n_cs = _np(dc), _np(gates), _np(c_prev), _np(c_s)
            if ctx.python_loop:
                for t in steps:
                    bt = int(a[t])
                    K.lstm_back_step(n_do[t], n_dh, n_dc, n_gates[t], n_cp[t], n_cs[t], n_dgh[t], bt)
                    torch.mm(dgh[t, :bt], w_hh, out=dh[:bt])
            else:
                K.lstm_back_sequence(n_do, n_dh, n_dc, n_w, a, ctx.reverse, n_gates, n_cp, n_cs, n_dgh, n_tmp)
            dgi = dgh
        else:
            n_out = _np(out)
            if ctx.python_loop:
                for t in steps:
                    bt = int(a[t])
                    K.rnn_back_step(n_do[t], n_dh, n_out[t], n_dgh[t], ctx.relu, bt)
                    torch.mm(dgh[t, :bt], w_hh, out=dh[:bt])
            else:
                K.rnn_back_sequence(n_do, n_dh, n_w, a, ctx.reverse, ctx.relu, n_out, n_dgh, n_tmp)
            dgi = dgh
        dgi2 = dgi.view(T * B, G * H)
        dgh2 = dgh.view(T * B, G * H)
        wanted = ctx.needs_input_grad  # (.., x, h0, c0, w_ih, w_hh, b_ih, b_hh): skip what nobody asked for
        dx = _product_padded(dgi2, w_ih).view(T, B, F) if wanted[4] else None  # (T, B, F)
        if dgi is dgh and all(wanted[7:11]):
            # LSTM and RNN: one product gives every weight and bias gradient, dL/dA^T [x | h_prev | 1 | 0...]
            width = F + H + 1
            parts = [x.reshape(T * B, F), h_prev.view(T * B, H), x.new_ones(T * B, 1)]
            if width % PAD:
                parts.append(x.new_zeros(T * B, PAD - width % PAD))
            dw = dgh2.t() @ torch.cat(parts, dim=1)  # (GH, F + H + 1 + padding)
            db = dw[:, F + H].contiguous()
            return (None, None, None, None, dx, dh, dc, dw[:, :F], dw[:, F:F + H], db, db.clone())
        dw_ih = dgi2.t() @ x.reshape(T * B, F) if wanted[7] else None  # (GH, F)
        dw_hh = dgh2.t() @ h_prev.view(T * B, H) if wanted[8] else None  # (GH, H)
        db_hh = dgh2.sum(0) if wanted[10] or (wanted[9] and dgi is dgh) else None
        db_ih = (db_hh if dgi is dgh else dgi2.sum(0)) if wanted[9] else None  # LSTM, RNN: the same sums
        return (None, None, None, None, dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh)


class _Unsaved:
    """Stands in for the autograd context when nothing will be differentiated."""

    def save_for_backward(self, *tensors) -> None:
        pass


def _infer(mode, relu, reverse, active, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Forward only (no gradient wanted): GRU steps skip what the backward pass would need."""
    T, B, F = x.shape
    H = w_hh.shape[1]
    G = GATE_COUNT[mode]
    if mode != "gru" or not current_policy().python_loop(mode, B, H):
        return _Layer.forward(_Unsaved(), mode, relu, reverse, active, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    a = active.numpy()
    alloc = x.new_empty if int(a.min()) == B else x.new_zeros
    gi = torch.addmm(b_ih, x.reshape(T * B, F), w_ih.t()).view(T, B, G * H)  # (T, B, GH)
    w_hh_t = w_hh.t().contiguous()  # (H, GH)
    out, gh, h = alloc(T, B, H), x.new_empty(B, G * H), h0.clone()
    n_gi, n_h, n_b, n_gh, n_out = _np(gi), _np(h), _np(b_hh), _np(gh), _np(out)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        bt = int(a[t])
        torch.mm(h[:bt], w_hh_t, out=gh[:bt])
        K.gru_step_infer(n_gi[t], n_gh, n_b, n_h, n_out[t], bt)
    return out, h, h0.new_zeros(0)


class _Parts(torch.autograd.Function):
    """One GRU or LSTM layer and direction, the batch cut into parts that run on threads, one core each.

    (active, order, x (B, T, F), h0, c0, weights) -> (out (B, T, H), h_n, c_n):
    batch-first, unlike :class:`_Layer`, and x and out stay in the caller's
    row order, so a model's input and output need neither transposed nor
    sorted copies. ``order`` (B,) lists the rows longest first, the order of
    the parts' rows and of h0, c0, h_n and c_n; ``active`` (T,) counts the
    rows still running at each step. Each part runs its input projection,
    its time loop and, in the backward pass, its weight-gradient products by
    itself, up to its longest sequence, so the cores do not meet once per
    step. The part arrays are part-major and flat (T * B, ...): part (r0, n)
    holds rows T * r0 .. T * (r0 + n). Work arrays come from
    :mod:`seqlab.kernels.buffers`.
    """

    @staticmethod
    def forward(ctx, mode, reverse, active, order, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        B, T, F = x.shape
        H = w_hh.shape[1]
        G = GATE_COUNT[mode]
        a = active.numpy()
        policy = current_policy()
        n_workers = policy.cores()
        bounds = part_bounds(B, n_workers, policy.rows_per_part(H))
        alloc = buffers.empty if int(a.min()) == B else buffers.zeros  # padded positions must read as zero
        with torch.no_grad():
            xp, gi = buffers.empty(T * B, F), buffers.empty(T * B, G * H)
            out_p = alloc(T * B, H)  # also the state before each step, for the backward pass
            if mode == "gru":
                z_s, dn_s = buffers.empty(T * B, H), buffers.empty(T * B, H)
                saved = (z_s, dn_s, gi)
            else:
                c_s = alloc(T * B, H)
                saved = (gi, c_s, c0)

            def task(part, inputs, h, c, recurrence):
                if mode == "gru":
                    return (K.gru_part_forward, *inputs, h, *recurrence, part(gi), part(out_p), part(z_s),
                            part(dn_s))
                return (K.lstm_part_forward, *inputs, h, c, *recurrence, part(gi), part(out_p), part(c_s))

            out, h, c = _run_forward_parts(mode, reverse, a, order.numpy(), x, h0, c0, w_ih, w_hh, b_ih, b_hh, xp,
                                           bounds, n_workers, task)
        ctx.mode, ctx.reverse, ctx.bounds, ctx.n_workers = mode, reverse, bounds, n_workers
        ctx.chunk_steps = policy.chunk_steps  # the backward pass may run after the policy's block
        ctx.save_for_backward(active, order, xp, w_ih, w_hh, out_p, h0, *saved)
        return out, h, c

    @staticmethod
    @once_differentiable  # computed outside autograd: a second derivative is an error, not zeros
    @record_function("fast_rnn.backward")  # labelled on torch.profiler's timeline (seqlab profile)
    def backward(ctx, d_out, d_hn, d_cn):
        active, order, xp, w_ih, w_hh, out_p, h0, *saved = ctx.saved_tensors
        B = sum(n for _, n in ctx.bounds)
        T, F, H = xp.shape[0] // B, xp.shape[1], w_hh.shape[1]
        G = GATE_COUNT[ctx.mode]
        a, n_order = active.numpy(), order.numpy()
        full = int(a.min()) == B
        wanted = ctx.needs_input_grad  # (mode, reverse, active, order, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        if d_out is None:
            d_out = buffers.zeros(B, T, H)
        elif not d_out.is_contiguous():  # e.g. the expanded gradient of a sum
            copy = buffers.empty(B, T, H)
            np.copyto(_np(copy), _np(d_out))  # one thread: torch's would leave its pool spinning (_all_finite)
            d_out = copy
        dop = buffers.empty(T * B, H)
        dh = (d_hn.clone() if d_hn is not None else xp.new_zeros(B, H)).contiguous()
        # dL/dx is zero past each length, where no part writes
        dx = (buffers.empty if full else buffers.zeros)(B, T, F) if wanted[4] else xp.new_empty(0, 0, 0)
        P = len(ctx.bounds)
        dw_ih, dw_hh = xp.new_zeros(P, G * H, F), xp.new_zeros(P, G * H, H)
        db_ih = xp.new_zeros(P, G * H)
        db_hh = xp.new_zeros(P, G * H) if ctx.mode == "gru" else None
        w_ih_n, w_hh_n = _np(w_ih.contiguous()), _np(w_hh.contiguous())
        n_do, n_dx, n_h0 = _np(d_out), _np(dx), _np(h0.contiguous())
        dc = None
        if ctx.mode == "lstm":
            dc = (d_cn.clone() if d_cn is not None and d_cn.numel() else xp.new_zeros(B, H)).contiguous()
            gates, c_s, c0 = saved
            n_c0 = _np(c0.contiguous())
        else:
            z_s, dn_s, coef = saved
        tasks = []
        for p, (r0, n) in enumerate(ctx.bounds):
            act = np.clip(a - r0, 0, n)
            steps = int(np.count_nonzero(act))  # up to the part's longest sequence
            part = _part_views(T, r0, n, steps)
            rows = slice(r0, r0 + n)
            common = (n_do, n_order[rows], part(dop), _np(dh)[rows])
            if ctx.mode == "gru":
                tasks.append((K.gru_part_backward, *common, n_h0[rows], w_hh_n, w_ih_n, act[:steps], ctx.reverse,
                              part(z_s), part(dn_s), part(coef), part(xp), part(out_p), ctx.chunk_steps,
                              bool(wanted[4]), n_dx, _np(dw_ih[p]), _np(dw_hh[p]), _np(db_ih[p]),
                              _np(db_hh[p])))
            else:
                tasks.append((K.lstm_part_backward, *common, _np(dc)[rows], n_h0[rows], n_c0[rows], w_hh_n, w_ih_n,
                              act[:steps], ctx.reverse, part(gates), part(c_s), part(xp), part(out_p),
                              ctx.chunk_steps, bool(wanted[4]), n_dx, _np(dw_ih[p]), _np(dw_hh[p]), _np(db_ih[p])))
        parallel.run_parts(tasks, ctx.n_workers)
        db_ih = db_ih.sum(0)
        db_hh = db_hh.sum(0) if db_hh is not None else db_ih.clone()
        return (None, None, None, None, dx if wanted[4] else None, dh, dc, dw_ih.sum(0), dw_hh.sum(0),
                db_ih, db_hh)


def _infer_parts(mode, reverse, active, order, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """GRU forward only, in parts (like :class:`_Parts`), keeping nothing for a backward pass."""
    B, T, F = x.shape
    H = w_hh.shape[1]
    policy = current_policy()
    n_workers = policy.cores()
    bounds = part_bounds(B, n_workers, policy.rows_per_part(H))
    xp, gi = buffers.empty(T * B, F), buffers.empty(T * B, GATE_COUNT[mode] * H)

    def task(part, inputs, h, c, recurrence):
        return (K.gru_part_infer, *inputs, h, *recurrence, part(gi))

    return _run_forward_parts(mode, reverse, active.numpy(), order.numpy(), x, h0, c0, w_ih, w_hh, b_ih, b_hh, xp,
                              bounds, n_workers, task)
