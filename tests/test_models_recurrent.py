"""Recurrent zoo models: packing, bidirectional final states, heads, checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.models import build_model, count_parameters, reverse_padded
from seqlab.models.recurrent import RecurrentEncoder

RECURRENT = [
    ("rnn", {}),
    ("rnn", {"nonlinearity": "relu", "num_layers": 2}),
    ("gru", {"num_layers": 2}),
    ("lstm", {}),
    ("lstm", {"proj_size": 3, "num_layers": 2}),
    ("bigru", {}),
    ("bigru", {"num_layers": 2}),
    ("bilstm", {"proj_size": 4}),
    ("bilstm", {"num_layers": 2}),
    ("gru", {"reset_after": False, "num_layers": 2}),
    ("bigru", {"reset_after": False, "merge": "sum"}),
]
HEADS = ["last", "mean", "attention", "step"]


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name,options", RECURRENT)
def test_padded_packed_batch_matches_each_sequence_alone(name, options, head):
    torch.manual_seed(1)
    model = build_model(name, 5, 3, hidden_size=7, head=head, **options).double().eval()
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    x[torch.arange(6)[None, :] >= lengths[:, None]] = 99.0  # padding must never be read
    batched = model(x, lengths)
    for i, length in enumerate(lengths.tolist()):
        alone = model(x[i : i + 1, :length])
        if head == "step":
            torch.testing.assert_close(batched[i, :length], alone[0], rtol=1e-10, atol=1e-10)
        else:
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_bidirectional_final_state_matches_two_one_way_runs(mode):
    """forward half = state after the last valid step; backward half = after reading all of it reversed."""
    torch.manual_seed(2)
    encoder = RecurrentEncoder(mode, 4, 6, bidirectional=True).double()
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[mode]
    forward_rnn = cls(4, 6, batch_first=True).double()
    backward_rnn = cls(4, 6, batch_first=True).double()
    weights = encoder.rnn.state_dict()
    forward_rnn.load_state_dict({k: v for k, v in weights.items() if not k.endswith("_reverse")})
    backward_rnn.load_state_dict({k.removesuffix("_reverse"): v for k, v in weights.items() if k.endswith("_reverse")})
    lengths = torch.tensor([5, 3])
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    _, final, _ = encoder(x, lengths)
    assert final.shape == (2, 12)
    for i, length in enumerate(lengths.tolist()):
        seq = x[i : i + 1, :length]
        out_f, _ = forward_rnn(seq)
        out_b, _ = backward_rnn(torch.flip(seq, dims=[1]))
        torch.testing.assert_close(final[i, :6], out_f[0, -1])
        torch.testing.assert_close(final[i, 6:], out_b[0, -1])


def test_encoder_parameters_use_torch_names_and_move_both_ways():
    model = build_model("bilstm", 3, 2, hidden_size=5, num_layers=2, proj_size=2)
    names = set(model.encoder.rnn.state_dict())
    assert {"weight_ih_l0", "weight_hh_l1_reverse", "weight_hr_l0", "bias_hh_l1"} <= names
    reference = nn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(model.encoder.rnn.state_dict())
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(reference(x)[0], model.encoder(x)[0])


def test_sum_merge_adds_the_directions_that_concat_places_side_by_side():
    torch.manual_seed(4)
    concat = RecurrentEncoder("gru", 3, 4, num_layers=2, bidirectional=True).double()
    summed = RecurrentEncoder("gru", 3, 4, num_layers=2, bidirectional=True, merge="sum").double()
    summed.load_state_dict(concat.state_dict())
    x, lengths = torch.randn(3, 5, 3, dtype=torch.float64), torch.tensor([5, 2, 4])
    (out_c, final_c, state_c), (out_s, final_s, state_s) = concat(x, lengths), summed(x, lengths)
    assert summed.output_size == 4 and out_s.shape == (3, 5, 4)
    torch.testing.assert_close(out_s, out_c[..., :4] + out_c[..., 4:])
    torch.testing.assert_close(final_s, final_c[:, :4] + final_c[:, 4:])
    torch.testing.assert_close(state_s, state_c)
    assert build_model("bigru", 3, 2, hidden_size=4, merge="sum").fc.in_features == 4
    with pytest.raises(SeqlabError, match="model.merge: expected concat for a unidirectional model"):
        build_model("gru", 3, 2, merge="sum")


@pytest.mark.parametrize("name,options", [("lstm", {"num_layers": 2}), ("gru", {"reset_after": False})])
def test_unbatched_input_equals_a_batch_of_one(name, options):
    """(T, F) in, torch.nn's unbatched convention out: (C,) and (T, C) and states without the batch axis."""
    torch.manual_seed(5)
    x = torch.randn(6, 3)
    for head in ("last", "step"):
        model = build_model(name, 3, 2, hidden_size=4, head=head, **options).eval()
        torch.testing.assert_close(model(x), model(x[None])[0])
    outputs, final, state = model.encoder(x)
    batched = model.encoder(x[None])
    torch.testing.assert_close(outputs, batched[0][0])
    torch.testing.assert_close(final, batched[1][0])
    h_n = state[0] if name == "lstm" else state
    assert h_n.shape == (model.encoder.num_layers, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\) or \(T, 3\), got \(6, 5\)"):
        model(torch.randn(6, 5))


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_bias_false_matches_torch_nn(mode):
    model = build_model(mode, 3, 2, hidden_size=4, bias=False, num_layers=2)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[mode]
    reference = cls(3, 4, num_layers=2, bias=False, batch_first=True)
    reference.load_state_dict(model.encoder.rnn.state_dict())  # no bias_* keys on either side
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(reference(x)[0], model.encoder(x)[0])
    assert count_parameters(model.encoder) == count_parameters(reference)


def test_bidirectional_head_sees_both_directions():
    model = build_model("bilstm", 8, 4, hidden_size=16)
    assert model.fc.in_features == 32  # 2H, not H
    projected = build_model("bilstm", 8, 4, hidden_size=16, proj_size=5)
    assert projected.fc.in_features == 10


def test_parameter_count_matches_formula():
    model = build_model("gru", 8, 10, hidden_size=16)
    gru = 3 * (16 * 8 + 16 * 16 + 2 * 16)
    assert count_parameters(model) == gru + 16 * 10 + 10


def test_attention_weights_sum_to_one_on_valid_steps_and_zero_on_padding():
    model = build_model("bigru", 3, 2, hidden_size=4, head="attention").eval()
    lengths = torch.tensor([5, 2, 3])
    model(torch.randn(3, 5, 3), lengths)
    weights = model.attention.last_weights
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    mask = torch.arange(5)[None, :] >= lengths[:, None]
    assert torch.all(weights[mask] == 0)


def test_model_gradients_match_finite_differences():
    torch.manual_seed(3)
    model = build_model("bilstm", 2, 2, hidden_size=3, head="mean").double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    assert torch.autograd.gradcheck(lambda inp: model(inp, lengths), (x,))


@pytest.mark.parametrize(
    "x_shape,lengths,message",
    [
        ((2, 4, 3), None, r"expected input of shape \(B, T, 5\), got \(2, 4, 3\)"),
        ((2, 4), None, r"expected input of shape \(B, T, 5\)"),
        ((2, 4, 5), [0, 3], r"expected lengths in 1..4, got min 0"),
        ((2, 4, 5), [5, 3], r"expected lengths in 1..4, got min 3 max 5"),
        ((2, 4, 5), [3], r"expected lengths of shape \(2,\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(x_shape, lengths, message):
    model = build_model("gru", 5, 2, hidden_size=4)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*x_shape), None if lengths is None else torch.tensor(lengths))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"hidden_size": 0}, r"model.hidden_size \(--hidden-size\): expected a positive integer, got 0"),
        ({"proj_size": 9, "hidden_size": 8}, r"model.proj_size: expected 0 or an integer in 1..7, got 9"),
        ({"hiden_size": 8}, r"unknown key model.hiden_size; valid keys for model: hidden_size"),
        ({"head": "max"}, r"model.head: expected one of last, mean, attention, step, got 'max'"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(SeqlabError, match=message):
        build_model("lstm", 3, 2, **options)


def test_unknown_model_lists_valid_names():
    with pytest.raises(SeqlabError, match=r"unknown model 'transformer'; valid models: rnn, gru, lstm, bigru, bilstm"):
        build_model("transformer", 3, 2)


def test_reverse_padded_builds_torch_bidirectional_lstm_from_two_one_way_lstms():
    """Seed 003's two LSTMs and a reversal equal nn.LSTM(bidirectional=True) on a padded batch with
    reverse_padded; with torch.flip they do not (the backward LSTM reads the padding first)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(6)
    bidirectional = nn.LSTM(3, 4, batch_first=True, bidirectional=True).double()
    forward_lstm, backward_lstm = nn.LSTM(3, 4, batch_first=True).double(), nn.LSTM(3, 4, batch_first=True).double()
    weights = bidirectional.state_dict()
    forward_lstm.load_state_dict({k: v for k, v in weights.items() if not k.endswith("_reverse")})
    backward_lstm.load_state_dict({k.removesuffix("_reverse"): v for k, v in weights.items() if k.endswith("_reverse")})
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    x[torch.arange(6)[None, :] >= lengths[:, None]] = 0.0

    def pack(seq):
        return pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False)

    def unpack(packed):
        return pad_packed_sequence(packed, batch_first=True, total_length=6)[0]

    expected = unpack(bidirectional(pack(x))[0])  # (B, T, 2H)
    out_f = unpack(forward_lstm(pack(x))[0])
    out_b = reverse_padded(unpack(backward_lstm(pack(reverse_padded(x, lengths)))[0]), lengths)
    torch.testing.assert_close(torch.cat([out_f, out_b], dim=2), expected)
    flipped = torch.flip(backward_lstm(torch.flip(x, dims=[1]))[0], dims=[1])  # the seed's version
    assert (flipped[1, :2] - expected[1, :2, 4:]).abs().max() > 1e-3  # row 1 (length 2) read 4 padding steps first
    torch.testing.assert_close(flipped[0], expected[0, :, 4:])  # the full-length row is right either way
    torch.testing.assert_close(reverse_padded(reverse_padded(x, lengths), lengths), x)
    torch.testing.assert_close(reverse_padded(x), torch.flip(x, dims=[1]))


@pytest.mark.parametrize("head", ["last", "mean"])
def test_patched_model_is_the_plain_model_on_steps_put_side_by_side(head):
    """patch p: the same as an unpatched model of input p*F fed the reshaped, zero-padded series, in a padded
    batch and alone; the lengths become ceil(length / p)."""
    torch.manual_seed(4)
    patched = build_model("lstm", 2, 3, hidden_size=5, head=head, patch=3).double().eval()
    plain = build_model("lstm", 6, 3, hidden_size=5, head=head).double().eval()
    plain.load_state_dict(patched.state_dict())
    lengths = torch.tensor([7, 3, 5])
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    x[torch.arange(7)[None, :] >= lengths[:, None]] = 0.0  # padded steps are zero, as the loaders leave them
    batched = patched(x, lengths)
    for i, length in enumerate(lengths.tolist()):
        grouped = -(-length // 3)
        manual = torch.zeros(1, grouped * 3, 2, dtype=torch.float64)
        manual[0, :length] = x[i, :length]
        expected = plain(manual.reshape(1, grouped, 6))[0]
        torch.testing.assert_close(batched[i], expected, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(patched(x[i : i + 1, :length])[0], expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="groups 3 steps"):
        patched.forward_stateful(x)


def test_patch_options_are_checked():
    with pytest.raises(SeqlabError, match=r"model.patch: expected auto or an integer >= 1, got 0"):
        build_model("gru", 3, 2, patch=0)
    with pytest.raises(SeqlabError, match=r"model.patch: expected 1 or auto with head 'step'"):
        build_model("gru", 3, 2, patch=2, head="step")
    assert build_model("gru", 3, 2).patch == 1  # auto outside a classification run: every step on its own
