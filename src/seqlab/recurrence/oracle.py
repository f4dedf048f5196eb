"""The float64 oracle: one time step of RNN, GRU and LSTM in NumPy, forward and backward.

Every implementation of a recurrence in seqlab (the torch modules, the fast
and batch-1 kernels, the step model, the exported graphs) is held to these
functions, stepped by :class:`seqlab.reference.ReferenceRNN`
(``tests/test_recurrence.py``). The equations in each docstring are the
code, symbol for symbol, and those of :mod:`seqlab.recurrence.spec`. Symbols:
    B batch, F input features, H hidden size, P state width (H, or the LSTM
    projection size), x (B, F) input, h (B, P) previous state, c (B, H)
    previous cell. Weights are PyTorch's: W_ih (G*H, F), W_hh (G*H, P),
    b_ih, b_hh (G*H,), W_hr (P, H), with gates stacked in PyTorch's order
    (GRU r, z, n; LSTM i, f, g, o).

Each ``*_forward`` returns the new state(s) and a cache; each
``*_backward`` takes the gradients with respect to the new state(s) and
returns those with respect to x, the previous state(s) and, accumulated
into ``grads``, the weights.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free form of 1 / (1 + exp(-a))


def _accumulate(grads: dict, W_ih_grad_input, x, W_hh_grad_input, h):
    """dW_ih += dA_i^T x, db_ih += sum dA_i, dW_hh += dA_h^T h, db_hh += sum dA_h."""
    grads["W_ih"] += W_ih_grad_input.T @ x
    grads["b_ih"] += W_ih_grad_input.sum(axis=0)
    grads["W_hh"] += W_hh_grad_input.T @ h
    grads["b_hh"] += W_hh_grad_input.sum(axis=0)


# ----------------------------------------------------------------------------
# Elman RNN


def rnn_forward(x, h, W_ih, W_hh, b_ih, b_hh, nonlinearity="tanh"):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu."""
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, H)
    h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return h_new, (x, h, a, h_new)


def rnn_backward(dh_new, cache, W_ih, W_hh, grads, nonlinearity="tanh"):
    """da = dh' * act'(a); dx = da W_ih; dh = da W_hh."""
    x, h, a, h_new = cache
    da = dh_new * (1.0 - h_new**2) if nonlinearity == "tanh" else dh_new * (a > 0)  # (B, H)
    _accumulate(grads, da, x, da, h)
    return da @ W_ih, da @ W_hh


# ----------------------------------------------------------------------------
# GRU


def gru_forward(x, h, W_ih, W_hh, b_ih, b_hh, update="torch", reset_after=True):
    """GRU step; by default PyTorch's form (the reset gate applies after W_hn h + b_hn).

        r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))   reset_after=True (PyTorch, cuDNN)
        n  = tanh(W_in x + b_in + W_hn (r * h) + b_hn)   reset_after=False (Cho et al. 2014, d2l)
        h' = (1 - z) * n + z * h        update="torch" (Cho et al. 2014, PyTorch)
        h' = z * n + (1 - z) * h        update="flipped" (the other convention)

    The two update conventions are the same model with z's weights and
    biases negated, since sigmoid(-a) = 1 - sigmoid(a). The two reset
    placements are different models once h is not zero.
    """
    H = W_ih.shape[0] // 3
    gi = x @ W_ih.T + b_ih  # (B, 3H)
    gh = h @ W_hh[: 2 * H].T + b_hh[: 2 * H]  # (B, 2H)
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H : 2 * H] + gh[:, H:])
    hn = (h if reset_after else r * h) @ W_hh[2 * H :].T + b_hh[2 * H :]  # W_hn h + b_hn, or W_hn (r h) + b_hn
    n = np.tanh(gi[:, 2 * H :] + (r * hn if reset_after else hn))
    h_new = (1.0 - z) * n + z * h if update == "torch" else z * n + (1.0 - z) * h
    return h_new, (x, h, r, z, n, hn)


def gru_backward(dh_new, cache, W_ih, W_hh, grads, update="torch", reset_after=True):
    x, h, r, z, n, hn = cache
    H = h.shape[1]
    if update == "torch":
        dn, dz, dh = dh_new * (1.0 - z), dh_new * (h - n), dh_new * z
    else:
        dn, dz, dh = dh_new * z, dh_new * (n - h), dh_new * (1.0 - z)
    da_n = dn * (1.0 - n**2)  # through tanh
    da_z = dz * z * (1.0 - z)
    if reset_after:
        da_r = da_n * hn * r * (1.0 - r)  # through r * (W_hn h + b_hn), then sigmoid
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
        _accumulate(grads, dgi, x, dgh, h)
        return dgi @ W_ih, dh + dgh @ W_hh
    d_rh = da_n @ W_hh[2 * H :]  # (B, H): through W_hn (r * h)
    da_r = d_rh * h * r * (1.0 - r)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H); dL/d(W_hh-side pre-activations) is the same
    grads["W_ih"] += dgi.T @ x
    grads["b_ih"] += dgi.sum(axis=0)
    grads["W_hh"][: 2 * H] += dgi[:, : 2 * H].T @ h
    grads["W_hh"][2 * H :] += da_n.T @ (r * h)
    grads["b_hh"] += dgi.sum(axis=0)
    return dgi @ W_ih, dh + dgi[:, : 2 * H] @ W_hh[: 2 * H] + d_rh * r


# ----------------------------------------------------------------------------
# LSTM


def lstm_forward(x, h, c, W_ih, W_hh, b_ih, b_hh, W_hr=None):
    """LSTM step (optionally with an output projection W_hr).

        i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
        f  = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o  = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g
        m  = o * tanh(c')
        h' = W_hr m   (h' = m without projection)
    """
    H = W_ih.shape[0] // 4
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    g = np.tanh(a[:, 2 * H : 3 * H])
    o = sigmoid(a[:, 3 * H :])
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    m = o * tanh_c  # (B, H)
    h_new = m @ W_hr.T if W_hr is not None else m  # (B, P)
    return h_new, c_new, (x, h, c, i, f, g, o, tanh_c, m)


def lstm_backward(dh_new, dc_new, cache, W_ih, W_hh, grads, W_hr=None):
    x, h, c, i, f, g, o, tanh_c, m = cache
    if W_hr is not None:
        grads["W_hr"] += dh_new.T @ m
        dm = dh_new @ W_hr  # (B, H)
    else:
        dm = dh_new
    do = dm * tanh_c
    dc = dc_new + dm * o * (1.0 - tanh_c**2)
    di, df, dg, dc_prev = dc * g, dc * c, dc * i, dc * f
    da = np.concatenate(
        [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g**2), do * o * (1.0 - o)], axis=1
    )  # (B, 4H)
    _accumulate(grads, da, x, da, h)
    return da @ W_ih, da @ W_hh, dc_prev
