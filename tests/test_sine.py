"""The seeds' sine experiment: three cells, rollouts from one value with carried state."""

from __future__ import annotations

import json

import numpy as np
import torch

from conftest import run_cli
from seqlab.experiments.sine import generate, sine_wave, train_one_step


def test_generate_feeds_predictions_back_with_the_state():
    _, wave = sine_wave()
    model, _ = train_one_step("gru", wave, 5, 4, 0.01, 0)
    rollout = generate(model, 0.5, 6)
    x = torch.tensor(rollout[:-1], dtype=torch.float32).view(1, -1, 1)
    whole = model(x).detach().numpy().ravel()  # the same inputs in one pass
    np.testing.assert_allclose(rollout[1:], whole, rtol=1e-5, atol=1e-6)


def test_sine_command_reports_rmse_per_cell_and_plots(tmp_path, capsys):
    status, out, err = run_cli(capsys, "sine", "--out", tmp_path)
    assert status == 0, err
    summary = json.loads((tmp_path / "sine.json").read_text())
    assert set(summary["models"]) == {"rnn", "lstm", "gru"} and summary["iterations"] == 300
    for cell in ("lstm", "gru"):
        assert summary["models"][cell]["rollout_rmse"] < 0.2  # a 100-step rollout stays on the wave
    assert (tmp_path / "sine_rollout.png").is_file() and "rollout_rmse" in out
