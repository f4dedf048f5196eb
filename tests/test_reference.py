"""The NumPy reference engine (the oracle) against finite differences and itself; the implementations are
held to it in tests/test_recurrence.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.recurrence import oracle as cells
from seqlab.reference import ReferenceRNN


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
