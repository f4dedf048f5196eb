"""The NumPy reference engine against torch.nn, finite differences and itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.reference import ReferenceRNN, cells

TORCH = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def torch_run(mode, x, h0, c0, lengths, module):
    """torch.nn's outputs, final states and gradients for loss = <out,G1> + <h_n,G2> + <c_n,G3>."""
    x = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(h0, requires_grad=True)
    c0 = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    inp = x if lengths is None else pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, state = module(inp, (h0, c0) if mode == "lstm" else h0)
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    h_n, c_n = state if mode == "lstm" else (state, None)
    return x, h0, c0, out, h_n, c_n


CASES = [
    # mode, F, H, layers, bidirectional, proj, nonlinearity, variable lengths
    *[(m, 3, 4, l, b, 0, "tanh", v) for m, l, b, v in itertools.product(["rnn", "gru", "lstm"], [1, 2], [False, True], [False, True])],
    ("rnn", 2, 5, 2, True, 0, "relu", True),
    ("lstm", 3, 5, 1, False, 2, "tanh", False),
    ("lstm", 3, 6, 2, True, 3, "tanh", True),
    ("gru", 7, 1, 3, True, 0, "tanh", True),
    ("gru", 16, 32, 2, True, 0, "tanh", True),
    ("lstm", 16, 32, 2, True, 8, "tanh", True),
]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("mode,F,H,layers,bidi,proj,act,variable", CASES)
def test_matches_torch_outputs_states_and_all_gradients(mode, F, H, layers, bidi, proj, act, variable, dtype, tol):
    rng = np.random.default_rng(hash((mode, F, H, layers, bidi, proj, act, variable)) % 2**32)
    B, T, D, P = 3, 6, 2 if bidi else 1, proj or H
    kwargs = dict(num_layers=layers, bidirectional=bidi, batch_first=True)
    if mode == "rnn":
        kwargs["nonlinearity"] = act
    if proj:
        kwargs["proj_size"] = proj
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    module = TORCH[mode](F, H, **kwargs).to(torch_dtype)
    ref = ReferenceRNN(mode, F, H, layers, bidi, act, proj, dtype=dtype)
    ref.load_state_dict(module.state_dict())

    x = rng.normal(size=(B, T, F)).astype(dtype)
    h0 = rng.normal(size=(layers * D, B, P)).astype(dtype)
    c0 = rng.normal(size=(layers * D, B, H)).astype(dtype) if mode == "lstm" else None
    lengths = np.array([6, 2, 4]) if variable else None
    tx, th0, tc0, out, h_n, c_n = torch_run(mode, x, h0, c0, lengths, module)
    r_out, r_h_n, r_c_n = ref.forward(x, h0, c0, lengths)

    close = lambda a, b: np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol, atol=tol)  # noqa: E731
    close(r_out, out)
    close(r_h_n, h_n)
    if mode == "lstm":
        close(r_c_n, c_n)

    G1, G2 = rng.normal(size=out.shape).astype(dtype), rng.normal(size=h_n.shape).astype(dtype)
    G3 = rng.normal(size=c_n.shape).astype(dtype) if mode == "lstm" else None
    loss = (out * torch.tensor(G1)).sum() + (h_n * torch.tensor(G2)).sum()
    if mode == "lstm":
        loss = loss + (c_n * torch.tensor(G3)).sum()
    loss.backward()
    grads = ref.backward(G1, G2, G3)
    close(grads["x"], tx.grad)
    close(grads["h0"], th0.grad)
    if mode == "lstm":
        close(grads["c0"], tc0.grad)
    for name, param in module.named_parameters():
        close(grads[name], param.grad)


def test_finite_differences_check_the_backward_pass():
    rng = np.random.default_rng(0)
    for mode, proj in (("rnn", 0), ("gru", 0), ("lstm", 2)):
        ref = ReferenceRNN(mode, 2, 3, num_layers=2, bidirectional=True, proj_size=proj, seed=1)
        x = rng.normal(size=(2, 4, 2))
        lengths = np.array([4, 3])
        G = rng.normal(size=(2, 4, 2 * (proj or 3)))

        def loss():
            out, h_n, _ = ref.forward(x, lengths=lengths)
            return float((out * G).sum() + h_n.sum())

        loss()
        P = proj or 3
        grads = ref.backward(G, np.ones((4, 2, P)))
        eps = 1e-6
        for name in ("weight_hh_l0", "bias_ih_l1_reverse", "weight_ih_l1"):
            param = ref.params[name]
            for index in [tuple(rng.integers(0, s) for s in param.shape) for _ in range(3)]:
                old = param[index]
                param[index] = old + eps
                up = loss()
                param[index] = old - eps
                down = loss()
                param[index] = old
                assert abs((up - down) / (2 * eps) - grads[name][index]) < 1e-7, (mode, name, index)
        for index in [(0, 1, 0), (1, 2, 1), (1, 0, 0)]:
            old = x[index]
            x[index] = old + eps
            up = loss()
            x[index] = old - eps
            down = loss()
            x[index] = old
            assert abs((up - down) / (2 * eps) - grads["x"][index]) < 1e-7


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_step_by_step_cell_loop_equals_whole_sequence(mode):
    rng = np.random.default_rng(1)
    ref = ReferenceRNN(mode, 3, 4, proj_size=2 if mode == "lstm" else 0)
    x = rng.normal(size=(2, 5, 3))
    out, h_n, c_n = ref.forward(x)
    p = ref.params
    args = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    h = np.zeros((2, ref.state_size))
    c = np.zeros((2, 4))
    for t in range(5):
        if mode == "rnn":
            h, _ = cells.rnn_forward(x[:, t], h, *args)
        elif mode == "gru":
            h, _ = cells.gru_forward(x[:, t], h, *args)
        else:
            h, c, _ = cells.lstm_forward(x[:, t], h, c, *args, p["weight_hr_l0"])
        np.testing.assert_array_equal(out[:, t], h)
    np.testing.assert_array_equal(h_n[0], h)
    if mode == "lstm":
        np.testing.assert_array_equal(c_n[0], c)


def test_reversed_direction_equals_forward_run_on_flipped_sequences():
    rng = np.random.default_rng(2)
    bi = ReferenceRNN("gru", 3, 4, bidirectional=True)
    fw = ReferenceRNN("gru", 3, 4)
    fw.load_state_dict({k.removesuffix("_reverse"): v for k, v in bi.params.items() if k.endswith("_reverse")})
    x = rng.normal(size=(2, 5, 3))
    lengths = np.array([5, 3])
    out, h_n, _ = bi.forward(x, lengths=lengths)
    for i, n in enumerate(lengths):
        o, h, _ = fw.forward(x[i : i + 1, :n][:, ::-1])
        np.testing.assert_allclose(out[i, :n, 4:], o[0, ::-1], atol=1e-12)
        np.testing.assert_allclose(h_n[1, i], h[0, 0], atol=1e-12)
        assert np.all(out[i, n:] == 0)


def test_gru_update_conventions_map_onto_each_other_by_negating_z():
    """h' = z n + (1 - z) h with z's weights negated is PyTorch's h' = (1 - z) n + z h."""
    rng = np.random.default_rng(3)
    torch_style = ReferenceRNN("gru", 3, 4, num_layers=2, gru_update="torch")
    flipped = ReferenceRNN("gru", 3, 4, num_layers=2, gru_update="flipped")
    mapped = {}
    for name, value in torch_style.params.items():
        value = value.copy()
        value[4:8] *= -1  # rows of the update gate z (gate order r, z, n)
        mapped[name] = value
    flipped.load_state_dict(mapped)
    x = rng.normal(size=(2, 6, 3))
    a, ha, _ = torch_style.forward(x)
    b, hb, _ = flipped.forward(x)
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(ha, hb, atol=1e-12)
    same_weights = ReferenceRNN("gru", 3, 4, num_layers=2, gru_update="flipped")
    same_weights.load_state_dict(torch_style.params)
    assert not np.allclose(same_weights.forward(x)[0], a)  # the conventions differ without the mapping


def test_flipped_gru_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    ref = ReferenceRNN("gru", 2, 3, gru_update="flipped")
    x = rng.normal(size=(2, 4, 2))
    G = rng.normal(size=(2, 4, 3))
    ref.forward(x)
    grads = ref.backward(G)
    eps = 1e-6
    W = ref.params["weight_hh_l0"]
    for index in [(4, 1), (7, 2), (0, 0)]:
        old = W[index]
        W[index] = old + eps
        up = (ref.forward(x)[0] * G).sum()
        W[index] = old - eps
        down = (ref.forward(x)[0] * G).sum()
        W[index] = old
        assert abs((up - down) / (2 * eps) - grads["weight_hh_l0"][index]) < 1e-7


def test_state_dict_moves_back_to_torch():
    ref = ReferenceRNN("lstm", 3, 5, num_layers=2, bidirectional=True, proj_size=2, seed=7)
    module = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True).double()
    module.load_state_dict({k: torch.tensor(v) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(5).normal(size=(2, 4, 3))
    np.testing.assert_allclose(ref.forward(x)[0], module(torch.tensor(x))[0].detach().numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"x": np.zeros((2, 4, 5))}, r"expected x of shape \(B, T, 3\), got \(2, 4, 5\)"),
        ({"x": np.zeros((2, 0, 3))}, r"expected at least one time step"),
        ({"x": np.full((2, 4, 3), np.nan)}, r"x contains NaN or Inf"),
        ({"x": np.zeros((2, 4, 3)), "lengths": np.array([0, 4])}, r"expected lengths in 1..4, got min 0"),
        ({"x": np.zeros((2, 4, 3)), "lengths": np.array([2, 5])}, r"expected lengths in 1..4, got min 2 max 5"),
        ({"x": np.zeros((2, 4, 3)), "h0": np.zeros((1, 3, 4))}, r"expected h0 of shape \(1, 2, 4\), got \(1, 3, 4\)"),
    ],
)
def test_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReferenceRNN("gru", 3, 4).forward(**kwargs)


def test_state_dict_shape_mismatch_is_named():
    ref = ReferenceRNN("gru", 3, 4)
    bad = ref.state_dict()
    bad["weight_hh_l0"] = np.zeros((12, 5))
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(12, 4\), got \(12, 5\)"):
        ref.load_state_dict(bad)
