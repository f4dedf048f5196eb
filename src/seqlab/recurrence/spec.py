"""One description per recurrence: its gates and their order, its parameters, its equations.

Symbols: B batch, F input features, H hidden size, P state width (H, or the
LSTM projection size), G gates, x (B, F) the input at one step, h (B, P) the
state before it, c (B, H) the LSTM cell before it.

Parameters are PyTorch's, per layer k and direction (suffix ``_l{k}``, and
``_reverse`` for the backward direction): ``weight_ih`` (G*H, F) (F: the
layer's input width), ``weight_hh`` (G*H, P), ``bias_ih`` and ``bias_hh``
(G*H,), and for a projected LSTM ``weight_hr`` (P, H). The G*H rows stack
the gates in the order :attr:`CellSpec.gates` names; ``W_ir`` below is the
block of ``weight_ih`` rows of gate r.

:meth:`CellSpec.step` is the step in torch, the equations of
:attr:`CellSpec.equations` one to one (the torch modules' own kernels, the
fast and batch-1 kernels and the exported graphs are separate
implementations); :mod:`seqlab.recurrence.oracle` is the same step in NumPy
float64 with its backward pass, the oracle every implementation is tested
against. A new variant (a cell, or another placement of a gate) is one more
entry of :data:`CELLS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

RNN_EQUATIONS = "h' = act(W_ih x + b_ih + W_hh h + b_hh),  act = tanh or relu"
GRU_GATES = """r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
"""
GRU_UPDATE = "h' = (1 - z) * n + z * h"
LSTM_EQUATIONS = """i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
f  = sigmoid(W_if x + b_if + W_hf h + b_hf)
g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
o  = sigmoid(W_io x + b_io + W_ho h + b_ho)
c' = f * c + i * g
m  = o * tanh(c')
h' = W_hr m   (h' = m without projection)"""


@dataclass(frozen=True)
class CellSpec:
    """One recurrence.

    Attributes:
        name: ``rnn_tanh``, ``rnn_relu``, ``gru``, ``gru_reset_before`` or ``lstm``.
        mode: the torch family it belongs to (``rnn``, ``gru``, ``lstm``).
        gates: the gates in the order their rows are stacked (G = len(gates)).
        equations: the step, in the symbols of the module docstring.
        nonlinearity: ``tanh`` or ``relu`` (``rnn``).
        reset_after: GRU: the reset gate multiplies W_hn h + b_hn (PyTorch,
            cuDNN) rather than the state the product reads (Cho et al. 2014).
        onnx: the ONNX operator and the attributes that select this cell.
    """

    name: str
    mode: str
    gates: tuple[str, ...]
    equations: str
    nonlinearity: str = "tanh"
    reset_after: bool = True
    onnx: tuple[str, tuple[tuple[str, object], ...]] = ("", ())

    @property
    def gate_count(self) -> int:
        return len(self.gates)

    def parameter_shapes(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                         proj_size: int = 0, bias: bool = True) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape, in torch.nn's order."""
        G, H, P, D = self.gate_count, hidden_size, proj_size or hidden_size, 2 if bidirectional else 1
        shapes = {}
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else D * P
            for direction in range(D):
                s = parameter_suffix(layer, direction)
                shapes[f"weight_ih{s}"] = (G * H, layer_input)
                shapes[f"weight_hh{s}"] = (G * H, P)
                if bias:
                    shapes[f"bias_ih{s}"] = (G * H,)
                    shapes[f"bias_hh{s}"] = (G * H,)
                if proj_size:
                    shapes[f"weight_hr{s}"] = (P, H)
        return shapes

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_ih: torch.Tensor,
             w_hh: torch.Tensor, b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
             w_hr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step in torch: x (B, F), h (B, P), c (B, H) or None -> h' (B, P), c' (B, H) or None."""
        linear = nn.functional.linear
        if self.mode == "lstm":
            i, f, g, o = (linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)).chunk(4, dim=1)  # (B, H) each
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
            m = torch.sigmoid(o) * torch.tanh(c_new)  # (B, H)
            return (m if w_hr is None else linear(m, w_hr)), c_new  # (B, P), (B, H)
        if self.mode == "rnn":
            a = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)  # (B, H)
            return (torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)), None
        H = h.shape[-1]
        gi = linear(x, w_ih, b_ih)  # (B, 3H)
        gh = linear(h, w_hh[: 2 * H], None if b_hh is None else b_hh[: 2 * H])  # (B, 2H)
        r, z = torch.sigmoid(gi[:, : 2 * H] + gh).chunk(2, dim=1)  # (B, H) each
        b_hn = None if b_hh is None else b_hh[2 * H :]
        if self.reset_after:
            n = torch.tanh(gi[:, 2 * H :] + r * linear(h, w_hh[2 * H :], b_hn))  # (B, H)
        else:
            n = torch.tanh(gi[:, 2 * H :] + linear(r * h, w_hh[2 * H :], b_hn))  # (B, H)
        return n + z * (h - n), None  # (1 - z) * n + z * h


def parameter_suffix(layer: int, direction: int) -> str:
    """``_l{layer}``, with ``_reverse`` for the backward direction (direction 1): torch.nn's names."""
    return f"_l{layer}" + ("_reverse" if direction else "")


CELLS: dict[str, CellSpec] = {spec.name: spec for spec in (
    CellSpec("rnn_tanh", "rnn", ("h",), RNN_EQUATIONS, onnx=("RNN", (("activations", ("Tanh",)),))),
    CellSpec("rnn_relu", "rnn", ("h",), RNN_EQUATIONS, nonlinearity="relu", onnx=("RNN", (("activations", ("Relu",)),))),
    CellSpec("gru", "gru", ("r", "z", "n"), GRU_GATES + "n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))\n" + GRU_UPDATE,
             onnx=("GRU", (("linear_before_reset", 1),))),
    CellSpec("gru_reset_before", "gru", ("r", "z", "n"),
             GRU_GATES + "n  = tanh(W_in x + b_in + W_hn (r * h) + b_hn)\n" + GRU_UPDATE, reset_after=False,
             onnx=("GRU", (("linear_before_reset", 0),))),
    CellSpec("lstm", "lstm", ("i", "f", "g", "o"), LSTM_EQUATIONS, onnx=("LSTM", ())),
)}

# G of each torch family (the rows of its stacked weights are G*H)
GATE_COUNT = {spec.mode: spec.gate_count for spec in CELLS.values()}


def cell_spec(mode: str, nonlinearity: str = "tanh", reset_after: bool = True) -> CellSpec:
    """The spec of a family with its options: ``cell_spec("gru", reset_after=False)`` -> gru_reset_before."""
    if mode not in GATE_COUNT:
        raise ValueError(f"expected mode in {list(GATE_COUNT)}, got {mode!r}")
    if mode == "rnn":
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"expected nonlinearity tanh or relu, got {nonlinearity!r}")
        return CELLS[f"rnn_{nonlinearity}"]
    if mode == "gru":
        return CELLS["gru" if reset_after else "gru_reset_before"]
    return CELLS["lstm"]


def spec_of(rnn: nn.Module) -> CellSpec:
    """The spec of a torch recurrent layer (``nn.RNN``, ``nn.GRU``, ``nn.LSTM`` or seqlab's reset-before GRU)."""
    mode = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "GRU": "gru", "LSTM": "lstm"}[rnn.mode]
    return cell_spec(mode, getattr(rnn, "nonlinearity", "tanh"), getattr(rnn, "reset_after", True))
