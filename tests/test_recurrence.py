"""Every implementation of every recurrence against one oracle: the NumPy reference in float64.

One matrix: cell (each spec of seqlab.recurrence) x layout (layers, directions,
variable lengths) x implementation (the torch module, the fast kernels with
each driver, for training and for inference, the batch-1 step kernels, the
streaming step model, the exported ONNX, TorchScript and ncnn graphs).
Outputs and final states are compared everywhere, gradients where the
implementation has them. Sizes are tiny: F=3, H=4, B=5, T=7, lengths 7, 3,
5, 1, 7.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.kernels import dispatch, step_kernels
from seqlab.models.recurrent import RecurrentEncoder
from seqlab.models.reset_before import ResetBeforeGRU
from seqlab.recurrence import CELLS, spec_of
from seqlab.reference import ReferenceRNN
from seqlab.serving.modules import StepModel
from test_fast_backend import DRIVERS, driver_policy

F, H, B, T, C = 3, 4, 5, 7, 2
LENGTHS = np.array([7, 3, 5, 1, 7])
PROJ = 2
HAVE_NCNN = importlib.util.find_spec("ncnn") is not None and importlib.util.find_spec("pnnx") is not None

# cell -> (mode, options of the layer); lstm_proj is the lstm spec with proj_size
CASES = {
    "rnn_tanh": ("rnn", {}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "gru": ("gru", {}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "lstm": ("lstm", {}),
    "lstm_proj": ("lstm", {"proj_size": PROJ}),
}
LAYOUTS = {"1 layer": (1, False, False), "2 layers, both directions, lengths": (2, True, True),
           "2 layers, lengths": (2, False, True)}


def test_every_spec_is_in_the_matrix():
    assert {spec_of(layer(cell, 1, False)).name for cell in CASES} == set(CELLS)


def layer(cell: str, layers: int, bidirectional: bool) -> nn.Module:
    """The torch layer of ``cell`` (seeded), batch-first."""
    mode, options = CASES[cell]
    torch.manual_seed(len(cell) + 10 * layers + bidirectional)
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=True)
    if options.get("reset_after") is False:
        return ResetBeforeGRU(F, H, **kwargs)
    extra = {"nonlinearity": options["nonlinearity"]} if "nonlinearity" in options else {}
    if "proj_size" in options:
        extra["proj_size"] = options["proj_size"]
    return {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[mode](F, H, **kwargs, **extra)


@dataclass
class Oracle:
    x: np.ndarray  # (B, T, F)
    lengths: np.ndarray | None
    h0: np.ndarray  # (L*D, B, P)
    c0: np.ndarray | None  # (L*D, B, H)
    out: np.ndarray  # (B, T, D*P)
    h_n: np.ndarray
    c_n: np.ndarray | None
    weights: tuple  # the loss's weights G1, G2, G3: loss = <out, G1> + <h_n, G2> + <c_n, G3>
    grads: dict  # d loss / d x, h0, c0 and every parameter


@functools.lru_cache(maxsize=None)
def oracle(cell: str, layout: str, zero_state: bool = False) -> Oracle:
    mode, options = CASES[cell]
    layers, bidirectional, variable = LAYOUTS[layout]
    D, P = 2 if bidirectional else 1, options.get("proj_size") or H
    rng = np.random.default_rng(abs(hash((cell, layout, zero_state))) % 2**32)
    reference = ReferenceRNN(mode, F, H, layers, bidirectional, options.get("nonlinearity", "tanh"),
                             options.get("proj_size", 0), reset_after=options.get("reset_after", True))
    reference.load_state_dict(layer(cell, layers, bidirectional).state_dict())
    x = rng.normal(size=(B, T, F))
    h0 = np.zeros((layers * D, B, P)) if zero_state else rng.normal(size=(layers * D, B, P))
    c0 = None if mode != "lstm" else np.zeros((layers * D, B, H)) if zero_state else rng.normal(size=(layers * D, B, H))
    lengths = LENGTHS if variable else None
    out, h_n, c_n = reference.forward(x, h0, c0, lengths)
    weights = (rng.normal(size=out.shape), rng.normal(size=h_n.shape), None if c_n is None else rng.normal(size=c_n.shape))
    return Oracle(x, lengths, h0, c0, out, h_n, c_n, weights, reference.backward(*weights))


def close(got, expected, tol: float, what: str) -> None:
    got = got.detach().double().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got / scale, expected / scale, rtol=tol, atol=tol, err_msg=what)


def hold_to_oracle(case: Oracle, out, h_n, c_n, tol: float, grads: dict | None = None) -> None:
    close(out, case.out, tol, "outputs")
    close(h_n, case.h_n, tol, "h_n")
    if case.c_n is not None:
        close(c_n, case.c_n, tol, "c_n")
    for name, value in (grads or {}).items():
        close(value, case.grads[name], tol, f"gradient of {name}")


def torch_inputs(case: Oracle, dtype, grad: bool):
    x = torch.tensor(case.x, dtype=dtype, requires_grad=grad)
    h0 = torch.tensor(case.h0, dtype=dtype, requires_grad=grad)
    c0 = None if case.c0 is None else torch.tensor(case.c0, dtype=dtype, requires_grad=grad)
    lengths = None if case.lengths is None else torch.from_numpy(case.lengths)
    return x, h0, c0, lengths


def run_with_gradients(case: Oracle, module: nn.Module, forward) -> tuple:
    """``forward(x, lengths, state) -> (out, state)``; returns out, h_n, c_n and the loss's gradients."""
    dtype = next(module.parameters()).dtype
    x, h0, c0, lengths = torch_inputs(case, dtype, grad=True)
    out, state = forward(x, lengths, (h0, c0) if c0 is not None else h0)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    G1, G2, G3 = (None if w is None else torch.tensor(w, dtype=dtype) for w in case.weights)
    loss = (out * G1).sum() + (h_n * G2).sum() + ((c_n * G3).sum() if c_n is not None else 0.0)
    named = dict(module.named_parameters())
    inputs = {"x": x, "h0": h0, **({"c0": c0} if c0 is not None else {}), **named}
    grads = dict(zip(inputs, torch.autograd.grad(loss, list(inputs.values()))))
    return out, h_n, c_n, grads


def encoder_forward(encoder: RecurrentEncoder):
    return lambda x, lengths, state: encoder(x, lengths, state)[::2]  # outputs and state


# ----------------------------------------------------------------------------
# The matrix


@pytest.mark.parametrize("layout", list(LAYOUTS)[:2])
@pytest.mark.parametrize("cell", CASES)
def test_torch_module(cell, layout):
    """seqlab's encoder on torch.nn (or the reset-before GRU) in float64: outputs, states, every gradient;
    its parameters are named and shaped as the spec says."""
    mode, options = CASES[cell]
    layers, bidirectional, _ = LAYOUTS[layout]
    encoder = RecurrentEncoder(mode, F, H, layers, bidirectional=bidirectional, **options).double()
    encoder.rnn.load_state_dict({k: v.double() for k, v in layer(cell, layers, bidirectional).state_dict().items()})
    spec = spec_of(encoder.rnn)
    assert {n: tuple(p.shape) for n, p in encoder.rnn.named_parameters()} == spec.parameter_shapes(
        F, H, layers, bidirectional, options.get("proj_size", 0))
    case = oracle(cell, layout)
    out, h_n, c_n, grads = run_with_gradients(case, encoder.rnn, encoder_forward(encoder))
    hold_to_oracle(case, out, h_n, c_n, 1e-10, grads)


FAST_CELLS = [cell for cell, (_, options) in CASES.items() if not options.keys() & {"reset_after", "proj_size"}]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("layout", list(LAYOUTS)[:2])
@pytest.mark.parametrize("cell", FAST_CELLS)
def test_fast_kernels(cell, layout, driver, training):
    """The fast backend (float32) with each time-loop driver; training also checks every gradient, and
    inference (no gradients wanted) the path that skips what backward needs."""
    policy = driver_policy(driver)
    module = layer(cell, *LAYOUTS[layout][:2])
    case = oracle(cell, layout)
    if training:
        out, h_n, c_n, grads = run_with_gradients(
            case, module, lambda x, n, s: dispatch.fast_forward(module, x, n, s, policy=policy))
        hold_to_oracle(case, out, h_n, c_n, 2e-5, grads)
        return
    x, h0, c0, lengths = torch_inputs(case, torch.float32, grad=False)
    with torch.no_grad():
        out, state = dispatch.fast_forward(module, x, lengths, (h0, c0) if c0 is not None else h0, policy=policy)
    assert not out.requires_grad
    hold_to_oracle(case, out, *(state if isinstance(state, tuple) else (state, None)), 2e-5)


STEP1 = {"rnn": step_kernels.rnn_step1, "gru": step_kernels.gru_step1, "lstm": step_kernels.lstm_step1}


@pytest.mark.parametrize("layout", ["1 layer", "2 layers, lengths"])
@pytest.mark.parametrize("cell", FAST_CELLS)
def test_batch_one_step_kernels(cell, layout):
    """The streaming kernels, one row at a time, one step at a time, each row to its own length."""
    mode, options = CASES[cell]
    layers, _, _ = LAYOUTS[layout]
    case = oracle(cell, layout)
    params = {k: np.ascontiguousarray(v.detach().numpy(), dtype=np.float32)
              for k, v in layer(cell, layers, False).state_dict().items()}
    out = np.zeros((B, T, H), np.float32)
    h_n, c_n = np.zeros((layers, B, H), np.float32), np.zeros((layers, B, H), np.float32)
    gi, gh = np.zeros(CELLS[cell].gate_count * H, np.float32), np.zeros(CELLS[cell].gate_count * H, np.float32)
    for b in range(B):
        steps = T if case.lengths is None else int(case.lengths[b])
        below = case.x[b, :steps].astype(np.float32)  # (t, F): the layer's input
        for k in range(layers):
            w = [params[f"{name}_l{k}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = case.h0[k, b].astype(np.float32).copy()
            c = None if case.c0 is None else case.c0[k, b].astype(np.float32).copy()
            outputs = np.zeros((steps, H), np.float32)
            for t in range(steps):
                v = np.ascontiguousarray(below[t])
                if mode == "lstm":
                    STEP1[mode](v, h, c, *w, gi, gh)
                elif mode == "rnn":
                    STEP1[mode](v, h, *w, options.get("nonlinearity") == "relu", gi, gh)
                else:
                    STEP1[mode](v, h, *w, gi, gh)
                outputs[t] = h
            below, h_n[k, b] = outputs, h
            if c is not None:
                c_n[k, b] = c
        out[b, :steps] = below
    hold_to_oracle(case, out, h_n, c_n if mode == "lstm" else None, 1e-5)


@pytest.mark.parametrize("cell", CASES)
def test_streaming_step_model(cell):
    """StepModel (head step) fed frame by frame from the oracle's initial state: y_t = fc(h_t), and the
    final states."""
    from seqlab.models import build_model

    mode, options = CASES[cell]
    layout = "2 layers, lengths"
    case = oracle(cell, layout)
    torch.manual_seed(0)
    model = build_model(mode, F, C, hidden_size=H, num_layers=2, head="step", **options).eval()
    model.encoder.rnn.load_state_dict(layer(cell, 2, False).state_dict())
    step = StepModel(model, np.zeros(F), np.ones(F)).eval()
    x, h0, c0, _ = torch_inputs(case, torch.float32, grad=False)
    state = [h0] + ([c0] if c0 is not None else [])
    ys = np.zeros((B, T, C))
    with torch.no_grad():
        for t in range(T):
            y, *state = step(x[:, t], *state)
            ys[:, t] = y.numpy()
    # every row read to the end, so the oracle is rerun without lengths
    reference = ReferenceRNN(mode, F, H, 2, False, options.get("nonlinearity", "tanh"), options.get("proj_size", 0),
                             reset_after=options.get("reset_after", True))
    reference.load_state_dict(model.encoder.rnn.state_dict())
    out, h_n, c_n = reference.forward(case.x, case.h0, case.c0)
    w, b = (p.detach().double().numpy() for p in (model.fc.weight, model.fc.bias))
    close(ys, out @ w.T + b, 1e-5, "step outputs")
    close(state[0], h_n, 1e-5, "h")
    if c_n is not None:
        close(state[1], c_n, 1e-5, "c")


class Outputs(nn.Module):
    """The encoder's outputs alone, as a graph: (x (B, T, F)[, lengths (B,)]) -> (B, T, D*P)."""

    def __init__(self, encoder: RecurrentEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x, lengths=None):
        return self.encoder(x, lengths)[0]


# every cell exports to ONNX; TorchScript refuses the reset-before GRU (its ONNX form is a custom function)
EXPORTED = [(cell, "onnx") for cell in CASES] + [(cell, "torchscript") for cell in CASES if cell != "gru_reset_before"]


@pytest.mark.parametrize("cell,fmt", EXPORTED)
def test_exported_graph(cell, fmt, tmp_path):
    """The encoder exported as the exporter writes it (lengths as an input where it packs; a projected LSTM
    rewritten), run by its runtime from zero states; an ONNX graph uses the spec's operator."""
    from seqlab.export.graph import replace_projected_lstms
    from seqlab.export.torch_export import export_onnx

    mode, options = CASES[cell]
    layout = "2 layers, both directions, lengths"
    layers, bidirectional, _ = LAYOUTS[layout]
    case = oracle(cell, layout, zero_state=True)
    encoder = RecurrentEncoder(mode, F, H, layers, bidirectional=bidirectional, **options)
    encoder.rnn.load_state_dict(layer(cell, layers, bidirectional).state_dict())
    graph = Outputs(encoder).eval()
    projected = replace_projected_lstms(graph)  # its rewrite reads full lengths only
    x = torch.tensor(case.x, dtype=torch.float32)
    lengths = torch.from_numpy(case.lengths)
    expected = case.out
    if projected:
        reference = ReferenceRNN(mode, F, H, layers, bidirectional, proj_size=PROJ)
        reference.load_state_dict(layer(cell, layers, bidirectional).state_dict())
        expected = reference.forward(case.x, case.h0, case.c0)[0]
    inputs = (x,) if projected else (x, lengths)
    example = (x[:2, :5],) if projected else (x[:2, :5], torch.tensor([5, 3]))
    path = tmp_path / f"{cell}.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            names = ["x"] if projected else ["x", "lengths"]
            axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}, **({} if projected else {"lengths": {0: "batch"}})}
            export_onnx(graph, example, names, path, axes, "legacy")
            import onnx
            import onnxruntime as ort

            op, attributes = CELLS[cell.removesuffix("_proj")].onnx
            node = next(n for n in onnx.load(str(path)).graph.node if n.op_type == op)
            for name, value in attributes:
                found = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)
                if isinstance(found, list):  # one activation per gate function and direction
                    found = tuple(sorted({v.decode() for v in found}))
                assert found == value, (name, found)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
        else:
            traced = torch.jit.trace(graph, example, check_trace=False)
            traced.save(str(path))
            got = torch.jit.load(str(path))(*inputs).detach().numpy()
    close(got, expected, 1e-5, f"{fmt} outputs")


@pytest.mark.skipif(not HAVE_NCNN, reason="ncnn and pnnx are not installed")
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_exported_ncnn_graph(cell, tmp_path):
    """pnnx's ncnn graph of the encoder at batch 1 (ncnn has no batch axis), from zero states."""
    from seqlab.export.ncnn import _convert
    from seqlab.serving.ncnn_runtime import load_ncnn, ncnn_sequence

    mode, options = CASES[cell]
    case = oracle(cell, "1 layer", zero_state=True)
    encoder = RecurrentEncoder(mode, F, H, 1, **options)
    encoder.rnn.load_state_dict(layer(cell, 1, False).state_dict())
    x = torch.tensor(case.x[:1], dtype=torch.float32)  # (1, T, F)
    _convert(Outputs(encoder).eval(), tmp_path, "--format ncnn", inputs=x)
    got = ncnn_sequence(load_ncnn(tmp_path / "model.param"), x[0].numpy())
    close(got.reshape(T, -1), case.out[0], 1e-4, "ncnn outputs")
