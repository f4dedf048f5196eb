"""The LSTM-FCN family against hand computations and torch.nn: shapes, masking, SE, dimension shuffle, attention."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_waves, run_cli, write_ts
from seqlab.errors import SeqlabError
from seqlab.models import build_model, count_parameters
from seqlab.models.fcn import SqueezeExcite, masked_batch_norm

B, T, F, C = 4, 29, 3, 5
LENGTHS = torch.tensor([29, 11, 20, 7])
VARIANTS = [("lstm-fcn", {}), ("gru-fcn", {}), ("lstm-fcn", {"attention": True, "squeeze_excite": True}),
            ("gru-fcn", {"squeeze_excite": True, "hidden_size": 8})]


def fcn_parameters(features: int, hidden: int, classes: int, gates: int, squeeze_excite: bool) -> int:
    """Counted by hand: convolutions without bias, batch norms, the recurrent layer, SE, the classifier."""
    convs = features * 128 * 8 + 128 * 256 * 5 + 256 * 128 * 3
    norms = 2 * (128 + 256 + 128)
    recurrent = gates * hidden * (features + hidden) + 2 * gates * hidden
    excite = sum(k * (k // 16) + k // 16 + (k // 16) * k + k for k in (128, 256)) if squeeze_excite else 0
    return convs + norms + recurrent + excite + (128 + hidden + 1) * classes


@pytest.mark.parametrize("name,options", VARIANTS)
def test_shapes_and_parameter_count(name, options):
    model = build_model(name, F, C, steps=T, **options)
    assert model(torch.randn(B, T, F)).shape == (B, C)
    assert model(torch.randn(B, T, F), LENGTHS).shape == (B, C)
    hidden = options.get("hidden_size", 64)
    gates = 4 if name == "lstm-fcn" else 3
    attention = (hidden * hidden + hidden + hidden) if options.get("attention") else 0
    assert count_parameters(model) == fcn_parameters(F, hidden, C, gates, options.get("squeeze_excite", False)) + attention


@pytest.mark.parametrize("name,options", VARIANTS)
def test_padding_never_changes_a_rows_output(name, options):
    """A padded batch gives each sequence what it gets alone, at its own length (masked convolutions,
    squeeze-excite and pooling; a packed recurrence)."""
    torch.manual_seed(1)
    model = build_model(name, F, C, steps=T, **options).eval()
    x = torch.randn(B, T, F)
    x[1, 11:] = 100.0  # garbage in the padding must not leak
    with torch.no_grad():
        batch = model(x, LENGTHS)
        for i, length in enumerate(LENGTHS.tolist()):
            alone = model(x[i : i + 1, :length])  # (1, C), no lengths: the whole tensor is the sequence
            torch.testing.assert_close(batch[i], alone[0], atol=1e-5, rtol=1e-5)


def test_masked_batch_norm_trains_on_the_valid_steps_only():
    torch.manual_seed(2)
    norm = nn.BatchNorm1d(6).train()
    x = torch.randn(B, 6, T)
    mask = torch.arange(T)[None, :] < LENGTHS[:, None]  # (B, T)
    out = masked_batch_norm(norm, x, mask)
    valid = x.transpose(1, 2)[mask].numpy()  # (N, 6): every valid step of every sequence
    mean, var = valid.mean(axis=0), valid.var(axis=0)
    expected = (valid - mean) / np.sqrt(var + norm.eps)  # weight 1, bias 0 at initialisation
    np.testing.assert_allclose(out.transpose(1, 2)[mask].detach().numpy(), expected, atol=1e-5)
    assert float(out.detach().transpose(1, 2)[~mask].abs().max()) == 0.0
    n = len(valid)  # running statistics: momentum 0.1 from (0, 1), the unbiased variance
    np.testing.assert_allclose(norm.running_mean.numpy(), 0.1 * mean, atol=1e-6)
    np.testing.assert_allclose(norm.running_var.numpy(), 0.9 + 0.1 * var * n / (n - 1), atol=1e-6)


def test_squeeze_excite_against_a_hand_computation():
    torch.manual_seed(3)
    block = SqueezeExcite(32, reduction=16)
    x = torch.randn(B, 32, T)
    mask = torch.arange(T)[None, :] < LENGTHS[:, None]  # (B, T)
    x = x * mask[:, None, :]
    w1, b1 = block.squeeze.weight.detach().numpy(), block.squeeze.bias.detach().numpy()
    w2, b2 = block.excite.weight.detach().numpy(), block.excite.bias.detach().numpy()
    assert w1.shape == (2, 32) and w2.shape == (32, 2)
    xs = x.numpy()
    for i, length in enumerate(LENGTHS.tolist()):
        s = xs[i, :, :length].mean(axis=1)  # squeeze over the valid steps only
        e = 1 / (1 + np.exp(-(w2 @ np.maximum(w1 @ s + b1, 0) + b2)))
        np.testing.assert_allclose(block(x, mask)[i].detach().numpy(), xs[i] * e[:, None], atol=1e-6)


def test_dimension_shuffle_reads_a_univariate_series_as_one_step_of_t_features():
    torch.manual_seed(4)
    model = build_model("lstm-fcn", 1, C, steps=T, dimension_shuffle=True, hidden_size=8).eval()
    assert model.rnn.rnn.weight_ih_l0.shape == (4 * 8, T)  # the input width is the length
    x = torch.randn(B, T, 1)
    rnn = model.rnn.rnn
    gates = x[:, :, 0] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0  # (B, 4H): one step from h0 = c0 = 0
    i, _, g, o = gates.chunk(4, dim=1)
    h = torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))  # (B, H)
    with torch.no_grad():
        torch.testing.assert_close(model.recurrent(x, None), h)
    multivariate = build_model("gru-fcn", F, C, steps=T, dimension_shuffle=True, hidden_size=8).eval()
    reference = nn.GRU(T, 8, batch_first=True)  # F steps of T values: the variables are the steps
    reference.load_state_dict(multivariate.rnn.rnn.state_dict())
    x = torch.randn(B, T, F)
    with torch.no_grad():
        torch.testing.assert_close(multivariate.recurrent(x, None), reference(x.transpose(1, 2))[1][0])


def test_dimension_shuffle_refuses_what_it_cannot_read():
    model = build_model("lstm-fcn", F, C, steps=T, dimension_shuffle=True).eval()
    with pytest.raises(SeqlabError, match=r"model.dimension_shuffle: .* exactly 29 steps; got lengths 7..29 "
                                          r"\(variable-length data needs dimension_shuffle: false\)"):
        model(torch.randn(B, T, F), LENGTHS)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 29, F\): with dimension_shuffle"):
        model(torch.randn(B, T + 1, F))
    assert model(torch.randn(B, T, F), torch.full((B,), T)).shape == (B, C)  # whole sequences with lengths


def test_attention_weights_sum_to_one_over_valid_steps():
    model = build_model("lstm-fcn", F, C, steps=T, attention=True)
    weights = model.attention_weights(torch.randn(B, T, F), LENGTHS)  # (B, T)
    mask = torch.arange(T)[None, :] < LENGTHS[:, None]
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(B))
    assert float(weights[~mask].abs().max()) == 0.0 and bool((weights[mask] > 0).all())
    with pytest.raises(ValueError, match="attention=True"):
        build_model("lstm-fcn", F, C, steps=T).attention_weights(torch.randn(B, T, F))


def test_lstm_fcn_trains_through_the_cli_on_variable_lengths(tmp_path, capsys):
    names = ["slow", "medium", "fast"]
    for part, n, seed in (("TRAIN", 48, 0), ("TEST", 30, 1)):
        cases, labels = make_waves(n, 24, 2, classes=3, seed=seed, variable=True)
        write_ts(tmp_path / f"Waves_{part}.ts", cases, [names[i] for i in labels], names)
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "Waves_TRAIN.ts", "--model", "lstm-fcn",
                             "--epochs", "3", "--hidden-size", "8", "--batch-size", "8", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.7  # chance is 1/3
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "Waves_TRAIN.ts", "--model", "lstm-fcn",
                             "--set", "model.dimension_shuffle=true", "--epochs", "1", "--quiet",
                             "--out", tmp_path / "shuffled")
    assert status == 2 and "model.dimension_shuffle" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_streaming_is_refused_with_the_reason(tmp_path):
    from test_export import make_run

    from seqlab.export import export_run

    run = make_run(tmp_path / "run", "lstm-fcn", {})
    with pytest.raises(SeqlabError, match=r"model lstm-fcn cannot stream: its FCN branch pools over the whole "
                                          r"sequence .* run seqlab stream --window"):
        export_run(run, "onnx", tmp_path / "step.onnx", streaming=True)
    assert not (tmp_path / "step.onnx").exists()
