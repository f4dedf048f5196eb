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
from seqlab.inspect import attribute, gate_activity, gradient_flow
from seqlab.inspect.gates import encoder_input
from seqlab.models import build_model
from seqlab.reference import ReferenceRNN
from seqlab.training.pipeline import train

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


def _train(path, out, model, clip=1.0, **options):
    options.update({"channels": 8, "levels": 2} if model == "tcn" else {"hidden_size": 8})
    config = resolve_config({"data": {"spec": str(path)}, "model": {"name": model, **options},
                             "train": {"epochs": 1, "batch_size": 16, "patience": 0, "clip": clip}})
    train(config, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(waves, tmp_path_factory):
    """An RNN, a GRU trained without clipping, an attention LSTM clipped at every step, a TCN (no recurrence)."""
    folder = tmp_path_factory.mktemp("runs")
    return {"rnn": _train(waves, folder / "rnn", "rnn"),
            "gru": _train(waves, folder / "gru", "gru", clip=0.0),
            "lstm": _train(waves, folder / "lstm", "lstm", clip=1e-6, head="attention"),
            "tcn": _train(waves, folder / "tcn", "tcn")}


# ----------------------------------------------------------------------------
# dL/dh_t against the NumPy engine


def _reference_flow(model, data: SequenceSet):
    """The same norms from ReferenceRNN (float64): head gradient by hand, then its backward pass."""
    encoder = model.encoder
    D, P = encoder.num_directions, encoder.step_size
    reference = ReferenceRNN(encoder.mode, encoder.input_size, encoder.rnn.hidden_size, encoder.num_layers,
                             bidirectional=D == 2, nonlinearity=getattr(encoder.rnn, "nonlinearity", "tanh"),
                             proj_size=getattr(encoder.rnn, "proj_size", 0), reset_after=encoder.reset_after)
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
    ("gru", {"reset_after": False}, True),
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
    status, printed, err = run_cli(capsys, "inspect", "gradients", "--run", runs["rnn"], "--run", runs["gru"],
                                   "--run", runs["lstm"], "--input", waves, "--out", out)
    assert status == 0, err
    report = json.loads((out / "gradients.json").read_text())
    assert [r["label"] for r in report["runs"]] == ["rnn (rnn)", "gru (gru)", "lstm (lstm)"]
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
    (tmp_path / "runs" / "gru").symlink_to(runs["gru"])  # the Quick start's run; the section trains runs/lstm
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "gradients" / "gradients.json").is_file()


# ----------------------------------------------------------------------------
# Gates against torch's parameters and explicit formulas


def _torch_gates(encoder, x, outputs):
    """Gates of a one-layer, one-direction encoder from torch.nn's parameters, h_{t-1} read off its outputs."""
    rnn = encoder.rnn
    w_ih, w_hh, b_ih, b_hh = (getattr(rnn, name).detach() for name in ("weight_ih_l0", "weight_hh_l0",
                                                                       "bias_ih_l0", "bias_hh_l0"))
    previous = torch.cat([torch.zeros_like(outputs[:, :1]), outputs[:, :-1]], dim=1)  # h_{t-1}, (B, T, H)
    gi, gh = x @ w_ih.T + b_ih, previous @ w_hh.T + b_hh  # (B, T, G*H)
    if encoder.mode == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=2)
        return {"input": torch.sigmoid(i), "forget": torch.sigmoid(f), "cell": torch.tanh(g), "output": torch.sigmoid(o)}
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, dim=2), gh.chunk(3, dim=2)
    r = torch.sigmoid(i_r + h_r)
    return {"reset": r, "update": torch.sigmoid(i_z + h_z), "new": torch.tanh(i_n + r * h_n)}


@pytest.mark.parametrize("name", ["lstm", "gru", "cnn1d-gru"])
def test_gates_match_explicit_formulas_and_the_stepping_matches_torch(name):
    torch.manual_seed(2)
    model = build_model(name, FEATURES, 3, hidden_size=6)
    encoder = model.rnn if name.startswith("cnn") else model.encoder
    with torch.no_grad():  # larger input weights, so that some gates saturate
        encoder.rnn.weight_ih_l0.mul_(6.0)
    data = SequenceSet(np.random.default_rng(0).normal(size=(16, STEPS, FEATURES)).astype(np.float32))
    activity = gate_activity(model, encoder, data, threshold=0.9)
    x, _, torch_outputs = encoder_input(model, encoder, data)
    np.testing.assert_allclose(activity.outputs, torch_outputs.numpy(), atol=2e-6)  # the model's own recurrence
    expected = _torch_gates(encoder, x, torch_outputs)
    (layer,) = activity.layers
    assert list(layer["gates"]) == list(expected)
    saturated = 0.0
    for gate, values in expected.items():
        values = values.numpy()  # (B, T, H)
        low = 0.1 if gate not in ("cell", "new") else -0.9
        np.testing.assert_allclose(layer["gates"][gate]["mean"], values.mean(axis=(0, 2)), atol=1e-6)
        np.testing.assert_allclose(layer["gates"][gate]["high"], (values > 0.9).mean(axis=(0, 2)), atol=1e-6)
        np.testing.assert_allclose(layer["gates"][gate]["low"], (values < low).mean(axis=(0, 2)), atol=1e-6)
        assert layer["overall"][gate]["high"] == pytest.approx((values > 0.9).mean())
        saturated += layer["overall"][gate]["high"] + layer["overall"][gate]["low"]
    assert saturated > 0.1  # the comparison covered saturated units too


def test_gates_cli_writes_every_gate_and_refuses_models_without_gates(runs, tmp_path, capsys):
    status, printed, err = run_cli(capsys, "inspect", "gates", "--run", runs["lstm"], "--out", tmp_path / "g")
    assert status == 0, err
    report = json.loads((tmp_path / "g" / "gates.json").read_text())
    assert report["cell"] == "lstm" and list(report["layers"][0]["gates"]) == ["input", "forget", "cell", "output"]
    assert len(report["layers"][0]["gates"]["forget"]["high"]) == STEPS
    assert (tmp_path / "g" / "gates.png").is_file() and "forget mean" in printed
    for run, message in ((runs["rnn"], "model rnn is a plain RNN"), (runs["tcn"], "model tcn has no recurrent layers")):
        status, _, err = run_cli(capsys, "inspect", "gates", "--run", run, "--out", tmp_path / "bad")
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------
# Attributions: integrated gradients' completeness, saliency = the gradient


def _batch(variable: bool):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(5, STEPS, FEATURES)).astype(np.float32))
    lengths = torch.tensor([STEPS, 4, 9, 1, 7]) if variable else None
    if variable:
        x[torch.arange(STEPS)[None, :] >= lengths[:, None]] = 0.0
    return x, lengths


@pytest.mark.parametrize("name, variable", [("gru", True), ("tcn", False), ("ablstm", True)])
def test_integrated_gradients_sum_to_the_change_in_logit(name, variable):
    torch.manual_seed(4)
    model = build_model(name, FEATURES, 3, **({"channels": 8, "levels": 2} if name == "tcn" else {"hidden_size": 6}))
    model.eval()
    x, lengths = _batch(variable)
    target = torch.tensor([0, 1, 2, 1, 0])
    attributions, delta = attribute(model, x, lengths, target, "integrated-gradients", steps=128)
    with torch.no_grad():
        rows = torch.arange(len(x))
        change = model(x, lengths)[rows, target] - model(torch.zeros_like(x), lengths)[rows, target]
    total = attributions.sum(dim=(1, 2))
    # Exact in the limit; 128 Gauss-Legendre points leave ~1e-5 on smooth recurrences, more on the TCN's ReLU kinks.
    np.testing.assert_allclose(total.numpy(), change.numpy(), rtol=1e-2 if name == "tcn" else 1e-3, atol=1e-5)
    np.testing.assert_allclose(delta.numpy(), (total - change).numpy(), atol=1e-5)  # the reported gap is that gap
    if variable:  # padding is not part of the sequence: nothing is attributed to it
        assert torch.all(attributions[torch.arange(STEPS)[None, :] >= lengths[:, None]] == 0)


def test_saliency_is_the_gradient_of_the_target_logit():
    torch.manual_seed(5)
    model = build_model("lstm", FEATURES, 3, hidden_size=6).eval()
    x, lengths = _batch(True)
    target = torch.tensor([2, 0, 1, 1, 0])
    saliency, _ = attribute(model, x, lengths, target, "saliency")
    x = x.clone().requires_grad_(True)
    model(x, lengths)[torch.arange(len(x)), target].sum().backward()
    np.testing.assert_allclose(saliency.numpy(), x.grad.numpy(), atol=1e-7)


def test_explain_cli_on_an_attention_model_and_bad_input(runs, waves, tmp_path, capsys):
    from seqlab.runs import load_run

    out = tmp_path / "explain"
    status, printed, err = run_cli(capsys, "explain", "--run", runs["lstm"], "--input", waves, "--index", "0", "3",
                                   "--out", out)
    assert status == 0, err
    report = json.loads((out / "attributions.json").read_text())
    assert [r["index"] for r in report["sequences"]] == [0, 3] and "attributions sum to" in printed
    run = load_run(runs["lstm"])
    raw = np.load(waves)
    for record in report["sequences"]:
        i, length = record["index"], record["length"]
        assert length == raw["lengths"][i] and np.array(record["attribution"]).shape == (length, FEATURES)
        attention = np.array(record["attention"])
        assert attention.shape == (length,) and attention.sum() == pytest.approx(1.0, abs=1e-5)
        x = (raw["X"][i : i + 1, :length] - run.normalizer.shift) / run.normalizer.scale
        target = run.class_names.index(record["target"])
        with torch.no_grad():
            logits = [run.model(torch.tensor(v, dtype=torch.float32))[0, target] for v in (x, np.zeros_like(x))]
        assert record["total"] == pytest.approx(float(logits[0] - logits[1]), rel=1e-3, abs=1e-5)
        assert (out / f"explain_{i}.png").is_file()
    status, _, err = run_cli(capsys, "explain", "--run", runs["gru"], "--input", waves, "--method", "saliency",
                             "--target", "1", "--out", tmp_path / "saliency")
    assert status == 0, err
    (record,) = json.loads((tmp_path / "saliency" / "attributions.json").read_text())["sequences"]
    assert record["target"] == "1" and record["delta"] is None and record["attention"] is None

    X = np.zeros((4, STEPS, FEATURES + 1), np.float32)
    np.savez(tmp_path / "wide.npz", X=X)
    np.savez(tmp_path / "unknown.npz", X=X[..., :FEATURES], y=np.full(4, 7))
    for args, message in (
        (["--input", tmp_path / "wide.npz"], "sequences have 3 features; the run expects 2"),
        (["--input", tmp_path / "unknown.npz"], "label '7' is not among the declared classes ['0', '1']"),
        (["--input", waves, "--index", "60"], "--index 60: "),
        (["--input", waves, "--target", "cat"], "--target 'cat': not a class of the run"),
    ):
        status, _, err = run_cli(capsys, "explain", "--run", runs["gru"], *args, "--out", tmp_path / "bad")
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_class_mean_attention_leaves_padding_out():
    from seqlab.reports.plots import mean_attention_by_class

    weights = np.array([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4], [0.6, 0.4, 0.0, 0.0]])
    rows = mean_attention_by_class(weights, np.array([0, 0, 1]), 2, np.array([2, 4, 2]))
    np.testing.assert_allclose(rows[0], [0.3, 0.35, 0.3, 0.4])  # steps 2, 3: only the long sequence reaches them
    np.testing.assert_allclose(rows[1, :2], [0.6, 0.4])
    assert np.isnan(rows[1, 2:]).all()  # no sequence of class 1 is that long: no value, not a zero weight


# ----------------------------------------------------------------------------
# Profile


@pytest.mark.parametrize("backend", ["torch", "fast"])
def test_profile_regions_add_up_to_the_step_and_label_the_timeline(runs, tmp_path, capfd, backend):
    out = tmp_path / backend
    status, printed, err = run_cli(capfd, "profile", "--run", runs["gru"], "--backend", backend, "--steps", "3",
                                   "--warmup", "1", "--batch-size", "16", "--out", out)
    assert status == 0 and err == "", err  # not even the profiler library's own lines on the terminal
    report = json.loads((out / "profile.json").read_text())
    assert list(report["regions"]) == ["data loading", "input projection", "recurrence", "head", "backward",
                                       "optimizer"]
    for phase in (report, report["inference"]):
        total = sum(phase["regions"].values())
        assert phase["regions"]["recurrence"] > 0
        assert abs(total - phase["step_ms"]) <= 0.1 * phase["step_ms"], phase
    names = {event.get("name") for event in json.loads((out / "trace.json").read_text())["traceEvents"]}
    assert {"train: recurrence", "train: backward", "inference: head"} <= names
    assert ({"fast_rnn.forward", "fast_rnn.backward"} <= names) == (backend == "fast")
    assert "recurrence" in printed and "(sum of regions)" in printed


def test_profile_refuses_what_it_cannot_profile(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for args, message in (
        (["--run", tmp_path / "empty"], f"run folder {tmp_path / 'empty'}: no model.pt"),
        (["--run", runs["gru"], "--backend", "cuda"], "--backend: expected one of torch, fast, got 'cuda'"),
        (["--run", runs["tcn"]], "model tcn has no recurrent layers"),
    ):
        status, _, err = run_cli(capsys, "profile", *args, "--out", tmp_path / "bad")
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()
