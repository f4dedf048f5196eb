"""The fast CPU backend: its drivers, parts and buffers, and torch.nn at larger sizes (its outputs, states
and gradients against the oracle, for every driver: tests/test_recurrence.py)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import run_cli
from seqlab.kernels import buffers, dispatch, drivers, parallel
from seqlab.kernels.policy import DEFAULT_POLICY, KernelPolicy, part_bounds, use_policy
from seqlab.models import build_model


def _torch_reference(module, x, lengths, state):
    inp = x if lengths is None else pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final = module(inp, state)
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, final


def _flat(final):
    return list(final) if isinstance(final, tuple) else [final]


DRIVERS = ["compiled-loop", "python-loop", "parts"]


def parts_policy(rows: int = 2, chunk: int = 3, **changes) -> KernelPolicy:
    """GRU and LSTM layers in parts of ``rows`` rows on two threads whatever the sizes and cores, with
    backward chunks of ``chunk`` steps (so that chunk edges fall inside short test sequences)."""
    return KernelPolicy(parts_min_macs={"gru": 0, "lstm": 0}, parts_min_batch={"gru": 0, "lstm": 0},
                        parts_max_hidden={"gru": None, "lstm": None}, infer_parts_min_macs=0, part_rows=rows,
                        chunk_steps=chunk, workers=2, **changes)


def driver_policy(driver: str) -> KernelPolicy:
    """The policy that runs every layer with ``driver``, whatever the sizes (LSTM training stays in the loop)."""
    if driver == "parts":
        return parts_policy(lstm_handover_macs=1 << 62, python_loop_min_macs=0)
    return KernelPolicy(python_loop_min_macs=1 << 62 if driver == "compiled-loop" else 0,
                        lstm_handover_macs=1 << 62, parts_min_macs={})


def test_only_the_gradients_asked_for_are_computed(monkeypatch):
    python_loop = KernelPolicy(python_loop_min_macs=0)
    torch.manual_seed(4)
    for cls in (nn.GRU, nn.LSTM):
        module = cls(6, 9, batch_first=True)
        module.weight_ih_l0.requires_grad_(False)
        x = torch.randn(4, 5, 6)  # data: no gradient wanted
        out, _ = dispatch.fast_forward(module, x, policy=python_loop)
        out_ref, _ = module(x)
        g = torch.randn_like(out)
        wanted = [module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
        got = torch.autograd.grad((out * g).sum(), wanted)
        ref = torch.autograd.grad((out_ref * g).sum(), wanted)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # dL/dx is one product; it is computed when x requires grad and skipped when it does not
    calls = []
    original = drivers._product_padded
    monkeypatch.setattr(drivers, "_product_padded", lambda a, b: calls.append(1) or original(a, b))
    module = nn.GRU(6, 9, batch_first=True)
    for requires in (True, False):
        calls.clear()
        x = torch.randn(4, 5, 6, requires_grad=requires)
        dispatch.fast_forward(module, x, policy=python_loop)[0].sum().backward()
        assert len(calls) == (1 if requires else 0)


def test_full_length_lstm_training_is_handed_to_torch_from_the_handover_size(monkeypatch):
    """From B * 4H * H >= lstm_handover_macs a full batch runs in the module (oneDNN); below, or with
    lengths, in the step loop. Both give torch.nn's numbers."""
    B, H = 4, 5
    policy = KernelPolicy(lstm_handover_macs=B * 4 * H * H)
    torch.manual_seed(6)
    module = nn.LSTM(3, H, batch_first=True)
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    cases = [(B, None, True), (B - 1, None, False), (B, torch.tensor([6, 2, 6, 4]), False),
             (B, torch.full((B,), 6), True)]  # lengths that are all full: a full batch
    for batch, lengths, handed_over in cases:
        calls.clear()
        x = torch.randn(batch, 6, 3, requires_grad=True)
        out, _ = dispatch.fast_forward(module, x, lengths, policy=policy)
        assert bool(calls) == handed_over, (batch, lengths)
        calls.clear()
        out_ref, _ = _torch_reference(module, x, lengths, None)
        g = torch.randn_like(out)
        got = torch.autograd.grad((out * g).sum(), [x, module.weight_hh_l0])
        ref = torch.autograd.grad((out_ref * g).sum(), [x, module.weight_hh_l0])
        torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fast_path_at_benchmark_size_matches_torch():
    torch.manual_seed(1)
    module = nn.GRU(90, 128, batch_first=True)
    x = torch.randn(16, 60, 90, requires_grad=True)
    out_ref, _ = module(x)
    out, _ = dispatch.fast_forward(module, x)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(out)
    ref = torch.autograd.grad((out_ref * g).sum(), [x, module.weight_hh_l0])
    got = torch.autograd.grad((out * g).sum(), [x, module.weight_hh_l0])
    for a, b in zip(got, ref):
        torch.testing.assert_close(a / b.abs().max(), b / b.abs().max(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
def test_parts_match_torch_at_larger_sizes(cls, monkeypatch):
    """Uneven parts (19 rows: 7, 6, 6), chunk edges inside the sequences, lengths, two bidirectional
    layers and initial states; every gradient against torch.nn."""
    policy = KernelPolicy(parts_min_macs={"gru": 0, "lstm": 0}, parts_min_batch={"gru": 0, "lstm": 0}, workers=2,
                          chunk_steps=8)
    torch.manual_seed(7)
    module = cls(20, 32, num_layers=2, bidirectional=True, batch_first=True)
    B, T = 19, 45
    assert [n for _, n in part_bounds(B, 2, policy.rows_per_part(32))] == [7, 6, 6]
    x = torch.randn(B, T, 20, requires_grad=True)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[3] = T
    h0 = torch.randn(4, B, 32, requires_grad=True)
    c0 = torch.randn(4, B, 32, requires_grad=True)
    state = (h0, c0) if cls is nn.LSTM else h0
    calls = []
    original = drivers._Parts.apply
    monkeypatch.setattr(drivers._Parts, "apply", lambda *a: calls.append(1) or original(*a))
    out, fin = dispatch.fast_forward(module, x, lengths, state, policy=policy)
    assert len(calls) == 4  # two layers, two directions
    out_ref, fin_ref = _torch_reference(module, x, lengths, state)
    inputs = [x, h0] + ([c0] if cls is nn.LSTM else []) + list(module.parameters())
    weights = [torch.randn_like(out)] + [torch.randn_like(f) for f in _flat(fin)]

    def grads(o, f):
        loss = (o * weights[0]).sum() + sum((a * w).sum() for a, w in zip(_flat(f), weights[1:]))
        return torch.autograd.grad(loss, inputs)

    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    for g, g_ref in zip(grads(out, fin), grads(out_ref, fin_ref)):
        scale = max(1.0, g_ref.abs().max().item())
        torch.testing.assert_close(g / scale, g_ref / scale, rtol=1e-5, atol=1e-5)


def test_parts_need_two_cores_and_enough_work(monkeypatch):
    two = KernelPolicy(workers=2)  # the default thresholds
    assert two.use_parts("gru", 64, 250, 128)  # the benchmark's training step
    assert two.use_parts("lstm", 64, 250, 128)
    assert two.use_parts("gru", 64, 250, 128, training=False)
    assert not two.use_parts("lstm", 64, 250, 128, training=False)  # oneDNN's kernel is faster
    assert not two.use_parts("gru", 8, 250, 128)  # small batches keep the compiled loop
    assert not two.use_parts("rnn", 64, 250, 128)
    assert not KernelPolicy(workers=1).use_parts("gru", 64, 250, 128)
    monkeypatch.setattr(parallel, "workers", lambda: 1)
    assert not DEFAULT_POLICY.use_parts("gru", 64, 250, 128)  # workers None: the usable cores
    monkeypatch.undo()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the user's thread setting caps the workers
        assert parallel.workers() == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("driver", ["python-loop", "parts"])
def test_second_derivatives_are_refused(driver, monkeypatch):
    """The backward pass runs outside autograd, so differentiating it again is an error, not silent zeros."""
    module = nn.GRU(3, 8, batch_first=True)
    x = torch.randn(6, 4, 3, requires_grad=True)
    out = dispatch.fast_forward(module, x, policy=driver_policy(driver))[0]
    (g,) = torch.autograd.grad(out.square().sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="marked with @once_differentiable"):
        g.sum().backward()


def test_run_parts_runs_every_task_and_raises_the_first_error():
    done = []

    def task(i):
        done.append(i)
        if i in (2, 5):
            raise ValueError(f"part {i}")

    with pytest.raises(ValueError, match="part 2|part 5"):
        parallel.run_parts([(task, i) for i in range(8)], 2)
    assert sorted(done) == list(range(8))  # the other parts still finished
    parallel.run_parts([(task, 0)], 3)  # one task: no helper thread needed


def test_parts_keep_their_arrays_for_a_second_backward(monkeypatch):
    """Work arrays are reused only when nothing refers to them: a graph kept with retain_graph gives
    the same gradients twice, with other steps run in between."""
    policy = parts_policy(rows=4, chunk=5)
    monkeypatch.setattr(buffers, "MIN_BYTES", 0)  # keep even these small arrays
    torch.manual_seed(8)
    for cls in (nn.GRU, nn.LSTM):
        module = cls(6, 16, batch_first=True)
        x = torch.randn(9, 11, 6, requires_grad=True)
        loss = dispatch.fast_forward(module, x, policy=policy)[0].square().sum()
        first = torch.autograd.grad(loss, [x, module.weight_hh_l0], retain_graph=True)
        for _ in range(2):  # other steps that would take idle arrays of the same sizes
            other = torch.randn(9, 11, 6, requires_grad=True)
            dispatch.fast_forward(module, other, policy=policy)[0].sum().backward()
        second = torch.autograd.grad(loss, [x, module.weight_hh_l0])
        for a, b in zip(first, second):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_buffers_hand_out_an_array_again_only_when_it_is_idle(monkeypatch):
    monkeypatch.setattr(buffers, "MIN_BYTES", 0)
    buffers.release()
    a = buffers.empty(3, 5)
    view = a[1:]
    del a
    b = buffers.empty(5, 3)  # the first array is still referred to by the view
    assert b.data_ptr() != view.data_ptr() - 5 * 4
    first = view.data_ptr() - 5 * 4
    del view
    c = buffers.empty(15)
    assert c.data_ptr() == first  # idle again: reused
    assert buffers.zeros(15).abs().sum() == 0
    monkeypatch.setattr(buffers, "POOL_BYTES", 0)
    buffers.release()
    d = buffers.empty(15)
    del d
    assert not buffers._arrays  # over the limit: a plain allocation, not kept
    buffers.release()


def test_unsupported_inputs_fall_back_to_torch():
    module = nn.LSTM(3, 6, proj_size=2, batch_first=True)
    x = torch.randn(2, 4, 3)
    assert "proj_size" in dispatch.supports(module, x)
    assert "float32" in dispatch.supports(nn.GRU(3, 4).double(), x.double())
    model = build_model("lstm", 3, 2, hidden_size=6, proj_size=2, backend="fast")
    reference = build_model("lstm", 3, 2, hidden_size=6, proj_size=2)
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize("bad,message", [
    ({"x": torch.randn(2, 4, 5)}, r"expected input of shape \(B, T, 3\), got \(2, 4, 5\)"),
    ({"x": torch.randn(4, 3)}, r"expected input of shape \(B, T, 3\), got \(4, 3\)"),
    ({"x": torch.randn(2, 0, 3)}, r"expected at least one time step, got T=0"),
    ({"x": torch.randn(0, 4, 3)}, r"expected at least one sequence, got B=0"),
    ({"lengths": torch.tensor([4, 0])}, r"expected lengths in 1..4, got min 0 max 4"),
    ({"lengths": torch.tensor([5, 2])}, r"expected lengths in 1..4, got min 2 max 5"),
    ({"lengths": torch.tensor([4, 2, 1])}, r"expected lengths of shape \(2,\), got \(3,\)"),
    ({"state": torch.zeros(1, 3, 6)}, r"expected h0 of shape \(1, 2, 6\), got \(1, 3, 6\)"),
    ({"x": torch.tensor([[[0.0, float("nan"), 0.0]] * 4] * 2)}, r"x contains NaN or Inf"),
    ({"x": torch.tensor([[[0.0, float("inf"), 0.0]] * 4] * 2)}, r"x contains NaN or Inf"),
])
def test_bad_input_is_a_clear_error(bad, message):
    module = nn.GRU(3, 6, batch_first=True)
    args = {"x": torch.randn(2, 4, 3), "lengths": None, "state": None} | bad
    with pytest.raises(ValueError, match=message):
        dispatch.fast_forward(module, args["x"], args["lengths"], args["state"])


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "bigru", "bilstm"])
def test_zoo_models_give_the_same_numbers_on_both_backends(name):
    torch.manual_seed(2)
    fast = build_model(name, 4, 3, hidden_size=8, num_layers=2, head="mean", backend="fast")
    plain = build_model(name, 4, 3, hidden_size=8, num_layers=2, head="mean")
    plain.load_state_dict(fast.state_dict())  # same parameter names on both backends
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    torch.testing.assert_close(fast(x, lengths), plain(x, lengths), rtol=1e-5, atol=1e-6)


def test_fast_backend_trains_digits_to_the_same_accuracy(tmp_path, capsys, monkeypatch):
    """Batches of 64 with H=128 train in parts (two threads, even on one core); the smaller last batch
    of an epoch runs in the step loop."""
    calls = []
    original = drivers._Parts.apply
    monkeypatch.setattr(drivers._Parts, "apply", lambda *a: calls.append(1) or original(*a))
    accuracies = {}
    for backend in ("torch", "fast"):
        out = tmp_path / backend
        with use_policy(KernelPolicy(workers=2)):  # the default thresholds
            status, _, err = run_cli(capsys, "train", "--data", "digits", "--model", "gru", "--epochs", "8",
                                     "--hidden-size", "128", "--batch-size", "64", "--backend", backend,
                                     "--quiet", "--out", out)
        assert status == 0, err
        accuracies[backend] = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
        assert f"backend: {backend}" in (out / "config.yaml").read_text()
    assert calls
    assert accuracies["fast"] >= 0.9
    assert abs(accuracies["fast"] - accuracies["torch"]) <= 0.02
