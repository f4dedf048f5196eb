"""Inspections of trained models, each held to an independent oracle: gradients to the NumPy engine's BPTT."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import make_waves, run_cli
from seqlab.config import resolve_config
from seqlab.data.dataset import SequenceSet
from seqlab.inspect import gradient_flow
from seqlab.models import build_model
from seqlab.reference import ReferenceRNN
from seqlab.training import train

STEPS, FEATURES = 12, 2


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    """Two classes of noisy sines, variable length: (train file, data with labels)."""
    folder = tmp_path_factory.mktemp("waves")
    cases, labels = make_waves(60, STEPS, FEATURES, variable=True)
    lengths = np.array([len(c) for c in cases])
    X = np.zeros((len(cases), STEPS, FEATURES), np.float32)
    for i, case in enumerate(cases):
        X[i, : len(case)] = case
    np.savez(folder / "waves.npz", X=X, y=labels, lengths=lengths)
    return folder / "waves.npz"


def _train(path, out, model, **train_options):
    size = {"channels": 8, "levels": 2} if model == "tcn" else {"hidden_size": 8}
    config = resolve_config({"data": {"spec": str(path)}, "model": {"name": model, **size},
                             "train": {"epochs": 1, "batch_size": 16, "patience": 0, **train_options}})
    train(config, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(waves, tmp_path_factory):
    """A GRU trained without clipping, an LSTM clipped at every step, a TCN (no recurrence)."""
    folder = tmp_path_factory.mktemp("runs")
    return {"gru": _train(waves, folder / "gru", "gru", clip=0.0),
            "lstm": _train(waves, folder / "lstm", "lstm", clip=1e-6),
            "tcn": _train(waves, folder / "tcn", "tcn")}


# ----------------------------------------------------------------------------
# dL/dh_t against the NumPy engine


def _reference_flow(model, data: SequenceSet):
    """The same norms from ReferenceRNN (float64): head gradient by hand, then its backward pass."""
    encoder = model.encoder
    D, P = encoder.num_directions, encoder.step_size
    reference = ReferenceRNN(encoder.mode, encoder.input_size, encoder.rnn.hidden_size, encoder.num_layers,
                             bidirectional=D == 2, nonlinearity=getattr(encoder.rnn, "nonlinearity", "tanh"),
                             proj_size=getattr(encoder.rnn, "proj_size", 0))
    reference.load_state_dict(encoder.rnn.state_dict())
    B, T, _ = data.X.shape
    lengths = data.lengths if data.lengths is not None else np.full(B, T)
    out, _, _ = reference.forward(data.X.astype(np.float64), lengths=lengths)  # (B, T, D*P)
    rows = np.arange(B)
    valid = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    if model.head == "last":
        pooled = np.concatenate([out[rows, lengths - 1, :P], out[:, 0, P:]], axis=1)  # (B, D*P)
    else:  # mean over valid steps
        pooled = (out * valid[..., None]).sum(axis=1) / lengths[:, None]
    W = model.fc.weight.detach().double().numpy()  # (C, D*P)
    logits = pooled @ W.T + model.fc.bias.detach().double().numpy()
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    d_logits = probabilities - np.eye(W.shape[0])[data.y]  # summed cross-entropy
    d_pooled = d_logits @ W  # (B, D*P)
    d_out = np.zeros_like(out)
    if model.head == "last":
        d_out[rows, lengths - 1, :P] += d_pooled[:, :P]
        d_out[:, 0, P:] += d_pooled[:, P:]
    else:
        d_out += valid[..., None] * (d_pooled / lengths[:, None])[:, None, :]
    grads = reference.backward(d_out)

    def mean_norms(g):  # (B, T, K) -> mean norm over valid sequences per step
        return (np.linalg.norm(g, axis=2) * valid).sum(axis=0) / valid.sum(axis=0)

    return [mean_norms(g) for g in reference.state_grads], mean_norms(grads["x"])


@pytest.mark.parametrize("name, options, variable", [
    ("gru", {"num_layers": 2}, True),
    ("lstm", {"proj_size": 3}, True),
    ("bilstm", {"num_layers": 2, "head": "mean"}, False),
    ("rnn", {}, True),
])
def test_hidden_and_input_gradients_match_the_reference_engine(name, options, variable):
    torch.manual_seed(1)
    model = build_model(name, FEATURES, 3, hidden_size=5, **options)
    rng = np.random.default_rng(0)
    B = 6
    lengths = np.array([STEPS, 3, 7, 1, STEPS, 9]) if variable else None
    X = rng.normal(size=(B, STEPS, FEATURES)).astype(np.float32)
    if variable:
        X[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0.0
    data = SequenceSet(X, rng.integers(0, 3, size=B), lengths)
    flow = gradient_flow(model, model.encoder, data)
    hidden, inputs = _reference_flow(model, data)
    assert len(flow.hidden) == len(hidden)
    for ours, theirs in zip(flow.hidden, hidden):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(flow.input, inputs, rtol=2e-4, atol=1e-7)
    # The total derivative carries gradient back into early steps, not just where the head reads.
    assert min(flow.hidden[-1]) > 0


def test_gradients_cli_compares_runs_and_refuses_bad_input(runs, waves, tmp_path, capsys):
    out = tmp_path / "compare"
    status, printed, err = run_cli(capsys, "inspect", "gradients", "--run", runs["gru"], "--run", runs["lstm"],
                                   "--input", waves, "--out", out)
    assert status == 0, err
    report = json.loads((out / "gradients.json").read_text())
    assert [r["label"] for r in report["runs"]] == ["gru (gru)", "lstm (lstm)"]
    assert (out / "gradients.png").stat().st_size > 10_000 and "gru (gru): top layer" in printed
    # One run: hidden and input at the top level, the same numbers as the Python API on the same data.
    status, _, err = run_cli(capsys, "inspect", "gradients", "--run", runs["gru"], "--out", out / "one",
                             "--batch", "5")
    assert status == 0, err
    single = json.loads((out / "one" / "gradients.json").read_text())
    assert single["sequences"] == 5 and len(single["hidden"]) == 1 and len(single["input"]) == len(single["hidden"][0])

    X = np.zeros((4, STEPS, FEATURES + 1), np.float32)
    np.savez(tmp_path / "wide.npz", X=X, y=np.zeros(4, int))
    np.savez(tmp_path / "unknown.npz", X=X[..., :FEATURES], y=np.full(4, 7))
    for file, message in (("wide.npz", "sequences have 3 features; the run expects 2"),
                          ("unknown.npz", "label '7' is not among the declared classes ['0', '1']")):
        status, _, err = run_cli(capsys, "inspect", "gradients", "--run", runs["gru"], "--input", tmp_path / file,
                                 "--out", tmp_path / "bad")
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    status, _, err = run_cli(capsys, "inspect", "gradients", "--run", runs["tcn"], "--out", tmp_path / "bad")
    assert status == 2 and "model tcn has no recurrent layers" in err
    assert not (tmp_path / "bad").exists()


def test_history_records_gradient_norm_before_clipping_and_clipped_steps(runs):
    def rows(run):
        with open(run / "history.csv") as handle:
            return list(csv.DictReader(handle))

    steps_per_epoch = int(np.ceil(json.loads((runs["lstm"] / "metrics.json").read_text())["data"]["train"] / 16))
    (clipped,) = rows(runs["lstm"])  # clip 1e-6: every step clipped, the recorded norm the unclipped one
    assert int(clipped["clipped_steps"]) == steps_per_epoch
    assert float(clipped["grad_norm_max"]) >= float(clipped["grad_norm"]) > 1e-3
    (free,) = rows(runs["gru"])  # clip 0: clipping off
    assert int(free["clipped_steps"]) == 0 and float(free["grad_norm"]) > 0


def test_readme_python_examples_of_the_inspection_section_run_as_written(runs, tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Inspecting and explaining models", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    (tmp_path / "runs").mkdir()
    for name, folder in runs.items():
        (tmp_path / "runs" / name).symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "gradients" / "gradients.json").is_file()
