"""Every sensing model trains end to end through the CLI, on UT-HAR-shaped data and on digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from seqlab.data.synthetic import write_deap, write_ut_har

MODELS = ["cnn-gru", "cnn-gru-parallel", "cnn-lstm-parallel", "ablstm", "cnn1d-lstm", "cnn1d-gru", "tcn"]


@pytest.fixture(scope="module")
def ut_har(tmp_path_factory):
    return write_ut_har(tmp_path_factory.mktemp("ut") / "UT_HAR", sizes=(21, 7, 14))


@pytest.mark.parametrize("model", MODELS)
def test_trains_on_ut_har_shaped_data(model, ut_har, tmp_path, capsys):
    out = tmp_path / model
    status, _, err = run_cli(capsys, "train", "--data", f"ut-har:{ut_har}", "--model", model, "--epochs", "2",
                             "--batch-size", "8", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["steps"] == 250 and metrics["data"]["features"] == 90 and metrics["data"]["test"] == 14
    assert (out / "attention.png").is_file() == (model == "ablstm")  # attention models plot their weights
    assert run_cli(capsys, "eval", "--run", out)[0] == 0  # rebuilt from the run folder alone
    assert json.loads((out / "eval.json").read_text())["test"]["accuracy"] == metrics["test"]["accuracy"]


@pytest.mark.parametrize("model", MODELS)
def test_trains_on_digits(model, tmp_path, capsys):
    # two epochs at a constant rate: a one-cycle schedule spends much of so short a budget warming up
    status, _, err = run_cli(capsys, "train", "--data", "digits", "--model", model, "--epochs", "2",
                             "--set", "train.schedule=constant", "--quiet", "--out", tmp_path / model)
    assert status == 0, err
    assert json.loads((tmp_path / model / "metrics.json").read_text())["test"]["accuracy"] > 0.2  # chance: 0.1


def test_text_lstm_trains_on_token_ids(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 20, size=120)
    y = np.arange(120) % 2
    X = np.zeros((120, 20), dtype=np.int64)
    for i, (n, label) in enumerate(zip(lengths, y)):
        X[i, :n] = rng.integers(1, 10, size=n) + 10 * label  # the class decides the id range
    np.savez(tmp_path / "tokens.npz", X=X, y=y, lengths=lengths)
    out = tmp_path / "text"
    status, _, err = run_cli(capsys, "train", "--data", tmp_path / "tokens.npz", "--model", "text-lstm",
                             "--epochs", "15", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
    status, _, err = run_cli(capsys, "predict", "--run", out, "--input", tmp_path / "tokens.npz",
                             "--out", tmp_path / "p.csv")
    assert status == 0, err


def test_deap_preset_trains_through_the_cli(tmp_path, capsys):
    folder = write_deap(tmp_path / "deap", subjects=2, samples=128 * 13)
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--config", "deap-cnn1d-gru", "--data", f"deap:{folder}",
                             "--epochs", "2", "--quiet", "--out", out)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["classes"] == 4 and metrics["data"]["features"] == 32
