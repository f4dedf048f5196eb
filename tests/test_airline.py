"""Seed 004's airline experiment: the hand-written RNN cell against nn.RNN, and the experiment's outputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import run_cli
from seqlab.experiments.airline import HandRNN


def test_hand_written_cell_equals_nn_rnn_in_outputs_states_and_gradients():
    torch.manual_seed(0)
    cell, reference = HandRNN(2, 5).double(), nn.RNN(2, 5, batch_first=True).double()
    reference.load_state_dict(cell.state_dict())  # the same parameter names and shapes
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    h0 = torch.randn(1, 3, 5, dtype=torch.float64)
    (out, h_n), (ref_out, ref_h_n) = cell(x, h0), reference(x, h0)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h_n, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (ref_out * weights).sum().backward()
    for name, param in cell.named_parameters():
        torch.testing.assert_close(param.grad, getattr(reference, name).grad, rtol=1e-12, atol=1e-12)


def test_airline_cli_writes_train_and_test_errors_and_refuses_bad_flags(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "airline-rnn", "--iterations", "3", "--hidden-size", "4", "--out", tmp_path)
    assert status == 0 and "test/train" in out
    summary = json.loads((tmp_path / "airline.json").read_text())
    assert set(summary["models"]) == {"cell", "rnn", "mlp"}
    assert summary["train_months"] + summary["test_months"] == 144  # 96 train, the 48 after them test
    for result in summary["models"].values():
        assert result["test_over_train"] == pytest.approx(result["test_rmse"] / result["train_rmse"])
    assert summary["cell_vs_rnn_at_same_weights"]["outputs"] < 1e-12
    assert summary["cell_vs_rnn_at_same_weights"]["gradients"] < 1e-12
    assert (tmp_path / "airline_rnn.png").stat().st_size > 0
    status, _, err = run_cli(capsys, "airline-rnn", "--train-months", "140", "--out", tmp_path)
    assert status == 2 and "--train-months: expected 24..132 of the 144 months" in err
